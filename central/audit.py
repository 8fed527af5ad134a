"""Hash chain of the audit log (pure): each entry's hash covers the previous hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from roadwatch.contract.canonical import canonical_bytes

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class ChainEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    violation_id: int | None
    detail: str  # canonical JSON
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None


def entry_hash(
    *,
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    violation_id: int | None,
    detail: str,
) -> str:
    body: dict[str, Any] = {
        "seq": seq,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "action": action,
        "violation_id": violation_id,
        "detail": detail,
    }
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes(body)).hexdigest()


def detail_text(detail: dict[str, Any]) -> str:
    return canonical_bytes(detail).decode("utf-8")


def verify_chain(entries: Iterable[ChainEntry], head: tuple[int, str] | None = None) -> ChainReport:
    """Walk the entries in sequence order; report the first that breaks the chain. With
    ``head`` (the sequence number and hash the log's head row holds), the chain must end
    there too: entries taken off its end, or the whole log emptied, break it."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for e in entries:
        if e.seq != expected_seq:
            return ChainReport(False, count, prev, e.seq, f"expected entry {expected_seq}")
        if e.prev_hash != prev:
            return ChainReport(False, count, prev, e.seq, "previous hash does not match")
        actual = entry_hash(
            prev_hash=e.prev_hash,
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            violation_id=e.violation_id,
            detail=e.detail,
        )
        if actual != e.entry_hash:
            return ChainReport(False, count, prev, e.seq, "entry was altered")
        prev = e.entry_hash
        expected_seq += 1
        count += 1
    if head is not None and head != (count, prev):
        return ChainReport(
            False,
            count,
            prev,
            count + 1,
            f"the log ends at entry {count}, but its head records entry {head[0]}"
            " (entries removed from the end)"
            if head[0] > count
            else f"the head records entry {head[0]} with another hash than the log's end",
        )
    return ChainReport(True, count, prev)


# ---------------------------------------------------------------- signed checkpoints

CHECKPOINT_FORMAT = "roadwatch-audit-checkpoint/1"


def checkpoint_body(seq: int, entry_hash: str, at: datetime) -> dict[str, Any]:
    """What a checkpoint signs: the chain's entry ``seq`` had hash ``entry_hash`` at ``at``."""
    return {
        "format": CHECKPOINT_FORMAT,
        "seq": seq,
        "entry_hash": entry_hash,
        "at": at.astimezone(UTC).isoformat(),
    }


@dataclass(frozen=True, slots=True)
class CheckpointFinding:
    """One checkpoint held against the log: ``problem`` is None where the log agrees."""

    seq: int
    at: str
    problem: str | None


def hold_checkpoint(
    seq: int, entry_hash: str, at: str, stored_hash: str | None, log_entries: int
) -> CheckpointFinding:
    """A checkpoint (already known to be signed by central) against the log's entry
    ``seq`` as stored now (``stored_hash``; None where there is no such entry)."""
    if stored_hash is None:
        return CheckpointFinding(
            seq, at, f"the log holds {log_entries} entries, but on {at} it held entry {seq}:"
            " entries were removed",
        )  # fmt: skip
    if stored_hash != entry_hash:
        return CheckpointFinding(
            seq, at, f"entry {seq} is not the entry it was on {at}: the log was rewritten at"
            " or before it",
        )  # fmt: skip
    return CheckpointFinding(seq, at, None)
