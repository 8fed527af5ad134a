"""End-to-end delivery receipts: which events central holds, told back to their nodes.

And which it refused for good: a violation quarantined for a reason no re-send can change
(signed with a key revoked since, forged, not canonical, an event id reused, stamped
before 2025: ``FINALITY``) will never be receipted however often its node sends it again,
so the node is told (``RefusalBatch``, on the same topic) and keeps it as refused instead
of sending it forever. A copy of an event central holds is not refused: it gets its
receipt (``held_copies``).

After an ingest batch is committed, every violation it left in the database (new ones and
re-sent ones central already held) gets a ``Receipt``; they go to each node's receipt
topic as ``ReceiptBatch`` messages of at most ``MAX_RECEIPTS_PER_BATCH``. A node deletes
an event from its outbox only on a receipt, so a receipt is sent only for a committed row.
The same lookup answers a node's reconciliation question (``known_event_ids``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import one_of
from central.intake import Message, Refusal
from central.intake import RefusalCode as Quarantined
from central.models import Violation
from central.records import same_event
from roadwatch.contract import (
    CameraTopic,
    ContractError,
    NodeTopic,
    TopicError,
    ViolationEvent,
    node_topic,
    parse_payload,
    parse_topic,
    to_wire,
)
from roadwatch.contract.models import (
    MAX_RECEIPTS_PER_BATCH,
    EventRefusal,
    Receipt,
    ReceiptBatch,
    RefusalBatch,
    RefusalCode,
)

# Every quarantine of a violation, final (the code told back to its node: the very
# message sent again would be refused again, whatever the time, until an admin acts) or
# transient (None: the node sends it again until it is taken). Each code is decided here,
# so that a new one cannot be added without saying which it is (docs/receipts.md).
FINALITY: dict[Quarantined, RefusalCode | None] = {
    Quarantined.REVOKED_KEY: RefusalCode.REVOKED_KEY,
    # (a node's key central lacks: the node, which can tell its own key's signature, keeps
    # such a one awaiting the key and sends it again once central receipts another signed
    # with it; edge/outbox.py)
    Quarantined.FORGED: RefusalCode.FORGED,
    # (canonical as central's own serializer writes it: a central and nodes of versions that
    # write a field apart disagree until one is upgraded)
    Quarantined.NOT_CANONICAL: None,
    Quarantined.REUSED_ID: RefusalCode.REUSED_ID,  # central keeps the first content
    Quarantined.PAST: RefusalCode.PAST,  # the stamp is signed: no clock put right changes it
    Quarantined.FUTURE: None,  # taken once its time has come
    Quarantined.UNKNOWN_NODE: None,  # an admin may register the node
    Quarantined.SCHEMA_VERSION: None,  # central may be upgraded
    # (a message that does not parse names no event; "could not be checked / stored" is
    # central's own failure, which an upgrade may mend)
    Quarantined.MALFORMED: None,
    Quarantined.BAD_TOPIC: None,  # names no camera's violation topic: nobody to tell
    # (the payload names another node or camera than the topic it came on: its node's
    # receipt topic is not known to be the sender's)
    Quarantined.TOPIC_MISMATCH: None,
    # (never a violation's: traffic minutes and statuses only)
    Quarantined.UNSIGNED: None,
    Quarantined.UNSEQUENCED: None,
    Quarantined.REPLAYED: None,
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HeldEvent:
    site: str
    node: str
    event_id: str
    committed_at: datetime
    evidence_complete: bool


@dataclass(frozen=True, slots=True)
class ReceiptMessage:
    topic: str
    payload: bytes
    count: int


def held_events(session: Session, event_ids: Sequence[str]) -> list[HeldEvent]:
    """The committed violations among ``event_ids`` (unknown ids are left out)."""
    if not event_ids:
        return []
    rows = session.execute(
        select(
            Violation.site,
            Violation.node,
            Violation.event_id,
            Violation.received_at,
            Violation.evidence_complete,
        ).where(one_of(session, Violation.event_id, event_ids))
    ).all()
    return [
        HeldEvent(
            site=r[0],
            node=r[1],
            event_id=r[2],
            committed_at=_utc(r[3]),
            evidence_complete=bool(r[4]),
        )
        for r in rows
    ]


def known_event_ids(session: Session, site: str, node: str, event_ids: Sequence[str]) -> list[str]:
    """Which of a node's own event ids central holds (another node's ids are never told)."""
    if not event_ids:
        return []
    return sorted(
        session.scalars(
            select(Violation.event_id).where(
                one_of(session, Violation.event_id, event_ids),
                Violation.site == site,
                Violation.node == node,
            )
        )
    )


def receipt_messages(held: Sequence[HeldEvent], sent_at: datetime) -> list[ReceiptMessage]:
    """Group receipts by node and cut them into contract-sized batches."""
    by_node: dict[tuple[str, str], list[Receipt]] = {}
    for h in held:
        by_node.setdefault((h.site, h.node), []).append(
            Receipt(
                event_id=h.event_id,
                committed_at=h.committed_at,
                evidence_complete=h.evidence_complete,
            )
        )
    return _batched(
        by_node,
        lambda site, node, chunk: ReceiptBatch(
            site=site, node=node, sent_at=sent_at, receipts=chunk
        ),
    )


@dataclass(frozen=True, slots=True)
class NodeRefusal:
    site: str
    node: str
    refusal: EventRefusal
    event: ViolationEvent  # (as refused: to tell a copy of one held from another content)


def final_refusals(refused: Sequence[tuple[Message, Refusal]]) -> list[NodeRefusal]:
    """The violations among ``refused`` quarantined for a reason no re-send can change."""
    out: list[NodeRefusal] = []
    for message, refusal in refused:
        code = FINALITY.get(refusal.code)
        if code is None:
            continue
        try:
            if parse_topic(message.topic).kind is not CameraTopic.VIOLATION:
                continue
            event = parse_payload(ViolationEvent, message.payload)
        except (TopicError, ContractError):
            continue  # (refused as it is: there is no event to name)
        out.append(
            NodeRefusal(
                event.site,
                event.node,
                EventRefusal(
                    event_id=event.event_id,
                    payload_sha256=hashlib.sha256(message.payload).hexdigest(),
                    code=code,
                    reason=refusal.reason[:2000],
                ),
                event,
            )
        )
    return out


def held_copies(session: Session, refusals: Sequence[NodeRefusal]) -> set[tuple[str, str]]:
    """The refusals (event id, payload sha256) of events central holds from the same node
    with the same content: a copy sent again (its receipt lost) and quarantined all the
    same, e.g. because its key was revoked since it was taken, or sent in another JSON
    form. Such a one is owed its receipt, not a refusal; another content under a held id
    (reused_event_id) is not a copy."""
    if not refusals:
        return set()
    ids = sorted({r.refusal.event_id for r in refusals})
    stored = {
        event_id: (site, node, sha, payload)
        for event_id, site, node, sha, payload in session.execute(
            select(
                Violation.event_id,
                Violation.site,
                Violation.node,
                Violation.payload_sha256,
                Violation.payload,
            ).where(one_of(session, Violation.event_id, ids))
        ).all()
    }
    out: set[tuple[str, str]] = set()
    for r in refusals:
        held = stored.get(r.refusal.event_id)
        if held is None:
            continue
        site, node, sha, payload = held
        if (site, node) != (r.site, r.node):
            continue
        try:
            same = same_event((sha, payload), r.refusal.payload_sha256, r.event)
        except ValueError:  # (pydantic's ValidationError is one)
            same = False
        if same:
            out.add((r.refusal.event_id, r.refusal.payload_sha256))
    return out


def refusal_messages(refusals: Sequence[NodeRefusal], sent_at: datetime) -> list[ReceiptMessage]:
    """Group final refusals by node, and each node's by code (a node that does not know a
    code refuses the whole batch that names it: the codes it knows come in batches of their
    own), and cut them into contract-sized batches."""
    by_code: dict[RefusalCode, dict[tuple[str, str], list[EventRefusal]]] = {}
    for r in refusals:
        by_code.setdefault(r.refusal.code, {}).setdefault((r.site, r.node), []).append(r.refusal)
    out: list[ReceiptMessage] = []
    for code in RefusalCode:  # (the contract's order: revoked_key, the oldest, first)
        out += _batched(
            by_code.get(code, {}),
            lambda site, node, chunk: RefusalBatch(
                site=site, node=node, sent_at=sent_at, refused=chunk
            ),
        )
    return out


def _batched(
    by_node: dict[tuple[str, str], list[T]],
    batch: Callable[[str, str, list[T]], ReceiptBatch | RefusalBatch],
) -> list[ReceiptMessage]:
    """Each node's items cut into contract-sized batches on its receipt topic."""
    out: list[ReceiptMessage] = []
    for (site, node), items in sorted(by_node.items()):
        topic = node_topic(site, node, NodeTopic.RECEIPT)
        for start in range(0, len(items), MAX_RECEIPTS_PER_BATCH):
            chunk = items[start : start + MAX_RECEIPTS_PER_BATCH]
            payload = to_wire(batch(site, node, chunk))
            out.append(ReceiptMessage(topic=topic, payload=payload, count=len(chunk)))
    return out


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
