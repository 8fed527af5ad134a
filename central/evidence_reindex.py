"""Record again the evidence central's evidence store holds but its database forgot.

After the database is restored from a backup, violations its nodes send again list
evidence uploaded after the backup: the files are in the evidence store (backed up after
the database), but the restored ``blobs`` table has no row for them, so the violations
stay incomplete. ``reindex`` reads each such blob back from the store, checks it against
what the violations list (its sha256, its size, the first bytes of its media type), and
records the ones that check out as an upload does (``record_blob``: insert-if-absent, so
an upload of the same blob at the same time is not disturbed). A copy that does not match
is reported and left alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from central.db import one_of, transaction
from central.evidence import MEDIA_SIGNATURES, EvidenceStore, blob_name
from central.models import Blob, EvidenceRef, Node, Violation
from central.records import record_blob, refresh_completeness

BATCH = 100  # blobs looked up, checked and recorded together
SNIFF = 12  # the bytes a media type is told by (as the upload checks them)


@dataclass(frozen=True, slots=True)
class Listing:
    """How incomplete violations list a blob: its size and media type (and the node of the
    first such violation, for the record)."""

    size: int
    media_type: str
    node_id: int | None


class Verdict(Enum):
    INTACT = "intact"
    DAMAGED = "damaged"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Checked:
    """One blob read back from the store: ``listing`` is the one it matches (INTACT);
    ``reason`` says why a DAMAGED copy does not."""

    sha256: str
    verdict: Verdict
    listing: Listing | None = None
    reason: str = ""


def judge(sha256: str, chunks: Iterable[bytes], listings: list[Listing]) -> Checked:
    """The stored copy's bytes held against its name and its listings. Read as they
    come, and no further than the largest size listed: a copy larger than that matches
    none, and a 200 MB clip is never held whole."""
    digest = hashlib.sha256()
    head = b""
    size = 0
    largest = max(listing.size for listing in listings)
    for chunk in chunks:
        size += len(chunk)
        if size > largest:
            return Checked(sha256, Verdict.DAMAGED, reason=f"is larger than the {largest}"
                           " bytes listed")  # fmt: skip
        if len(head) < SNIFF:
            head += chunk[: SNIFF - len(head)]
        digest.update(chunk)
    actual = digest.hexdigest()
    if actual != sha256:
        return Checked(sha256, Verdict.DAMAGED, reason=f"hashes to {actual}")
    sized = [listing for listing in listings if listing.size == size]
    if not sized:
        return Checked(sha256, Verdict.DAMAGED, reason=f"is {size} bytes, listed as"
                       f" {' or '.join(str(each.size) for each in listings)}")  # fmt: skip
    for listing in sized:
        sniff = MEDIA_SIGNATURES.get(listing.media_type)
        if sniff is not None and sniff(head):
            return Checked(sha256, Verdict.INTACT, listing)
    types = " or ".join(sorted({each.media_type for each in sized}))
    return Checked(sha256, Verdict.DAMAGED, reason=f"is not {types}")


def check_stored(store: EvidenceStore, sha256: str, listings: list[Listing]) -> Checked:
    """``judge`` on the copy the store holds (ABSENT where it holds none)."""
    chunks = store.read(sha256)
    try:
        return judge(sha256, chunks, listings)
    except FileNotFoundError:
        return Checked(sha256, Verdict.ABSENT)
    finally:
        # (a copy judged before its end is let go now: its file, or its S3 connection)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


@dataclass
class Reindexed:
    """What a run found, and (with ``apply``) what it recorded."""

    incomplete: int = 0  # violations whose evidence is not complete
    missing: int = 0  # blobs they list that the ``blobs`` table does not hold
    intact: int = 0
    absent: int = 0
    damaged: list[Checked] = field(default_factory=list)
    recorded: int = 0  # blobs recorded (or found recorded by an upload meanwhile)
    completed: int = 0  # violations whose evidence became complete


def _incomplete(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Violation)
            .where(Violation.evidence_complete.is_(False))
        )
        or 0
    )


def _unrecorded() -> list[ColumnElement[bool]]:
    """Where an evidence row of an incomplete violation names a blob with no row."""
    return [
        EvidenceRef.violation_id == Violation.id,
        Violation.evidence_complete.is_(False),
        ~exists().where(Blob.sha256 == EvidenceRef.sha256),
    ]


def _missing_batches(factory: sessionmaker[Session]) -> Iterator[dict[str, list[Listing]]]:
    """The blobs incomplete violations list that have no row, ``BATCH`` at a time in
    sha256 order, each with its listings. Each batch is read afresh, so a blob recorded
    meanwhile (by this run or an upload) is not offered again."""
    after = ""
    while True:
        with factory() as session:
            shas = list(
                session.scalars(
                    select(EvidenceRef.sha256)
                    .join(Violation, Violation.id == EvidenceRef.violation_id)
                    .where(*_unrecorded(), EvidenceRef.sha256 > after)
                    .group_by(EvidenceRef.sha256)
                    .order_by(EvidenceRef.sha256)
                    .limit(BATCH)
                )
            )
            if not shas:
                return
            rows = session.execute(
                select(EvidenceRef.sha256, EvidenceRef.size, EvidenceRef.media_type,
                       func.min(Node.id))
                .join(Violation, Violation.id == EvidenceRef.violation_id)
                .outerjoin(Node, (Node.site == Violation.site) & (Node.node == Violation.node))
                .where(*_unrecorded(), one_of(session, EvidenceRef.sha256, shas))
                .group_by(EvidenceRef.sha256, EvidenceRef.size, EvidenceRef.media_type)
                .order_by(EvidenceRef.sha256, EvidenceRef.size, EvidenceRef.media_type)
            ).all()  # fmt: skip
        batch: dict[str, list[Listing]] = {}
        for sha, size, media_type, node_id in rows:
            batch.setdefault(sha, []).append(Listing(size, media_type, node_id))
        yield batch
        after = shas[-1]


def _complete_the_rest(factory: sessionmaker[Session]) -> int:
    """Mark complete every incomplete violation whose blobs are all recorded (those an
    upload completed meanwhile are not counted twice: they are no longer incomplete)."""
    completed = 0
    after = 0
    while True:
        with transaction(factory) as session:
            ids = list(
                session.scalars(
                    select(Violation.id)
                    .where(Violation.evidence_complete.is_(False), Violation.id > after)
                    .order_by(Violation.id)
                    .limit(BATCH * 5)
                )
            )
            if not ids:
                return completed
            completed += len(ids) - len(refresh_completeness(session, ids))
        after = ids[-1]


def reindex(factory: sessionmaker[Session], store: EvidenceStore, *, apply: bool) -> Reindexed:
    """Find the blobs incomplete violations list that the ``blobs`` table lacks, check
    each against the copy in ``store`` and (``apply``) record those that check out, one
    transaction a batch, then mark complete the violations whose blobs are all there."""
    found = Reindexed()
    with factory() as session:
        found.incomplete = _incomplete(session)
    for batch in _missing_batches(factory):
        found.missing += len(batch)
        checked = [check_stored(store, sha, listings) for sha, listings in batch.items()]
        intact = [c for c in checked if c.verdict is Verdict.INTACT]
        found.intact += len(intact)
        found.absent += sum(c.verdict is Verdict.ABSENT for c in checked)
        found.damaged += [c for c in checked if c.verdict is Verdict.DAMAGED]
        if not apply or not intact:
            continue
        with transaction(factory) as session:
            for each in intact:
                assert each.listing is not None
                found.completed += len(
                    record_blob(
                        session,
                        sha256=each.sha256,
                        size=each.listing.size,
                        media_type=each.listing.media_type,
                        node_id=each.listing.node_id,
                    )
                )
        found.recorded += len(intact)
    if apply:
        found.completed += _complete_the_rest(factory)
    return found


def damaged_line(checked: Checked) -> str:
    return f"damaged, left alone: {blob_name(checked.sha256)} {checked.reason}"
