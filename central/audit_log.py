"""The audit log as stored: its hash chain checked from the database, and checkpoints of
its head signed with central's case-signing key.

The chain shows an entry altered or removed, but not a log rewritten whole (every hash
recomputed) by someone who can write the database. A checkpoint closes that: it is the
head (entry number and hash) signed by central, kept where the database's writers cannot
reach (another machine, a printout, the province's archive). ``roadwatch central audit
verify --checkpoints FILE`` then holds each one against the log: a log rewritten at or
before a checkpoint's entry no longer has that entry's hash there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.audit import (
    CHECKPOINT_FORMAT,
    ChainEntry,
    ChainReport,
    CheckpointFinding,
    checkpoint_body,
    hold_checkpoint,
    verify_chain,
)
from central.models import AuditEntry, AuditHead
from roadwatch.contract.canonical import canonical_bytes
from roadwatch.contract.signing import (
    SignatureError,
    key_fingerprint,
    sign_bytes,
    verify_bytes,
)
from roadwatch.errors import UserError

MAX_CHECKPOINT_FILE = 16 << 20


def check_log(session: Session) -> ChainReport:
    """Walk the chain up to the head as read; an entry past the head is a break too."""
    head = session.execute(select(AuditHead.seq, AuditHead.entry_hash)).one()
    # Only the entries up to the head as read: each read may see a later commit (reading
    # sessions autocommit on PostgreSQL), and an entry appended meanwhile is no tampering.
    rows = session.execute(
        select(AuditEntry).where(AuditEntry.seq <= head.seq).order_by(AuditEntry.seq)
    ).scalars()
    entries = (
        ChainEntry(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            violation_id=e.violation_id,
            detail=e.detail,
            prev_hash=e.prev_hash,
            entry_hash=e.entry_hash,
        )
        for e in rows.yield_per(1000)
    )
    report = verify_chain(entries, (int(head.seq), str(head.entry_hash)))
    if report.ok:
        # An entry past the head is one appended since (the head has moved on past it
        # by now) or one added outside the chain.
        last = session.scalar(select(func.max(AuditEntry.seq)))
        now_head = session.scalar(select(AuditHead.seq))
        if last is not None and now_head is not None and last > now_head:
            report = ChainReport(
                False,
                report.entries,
                report.head,
                int(now_head) + 1,
                f"entries past the head (up to {last}; the head records {now_head})",
            )
    return report


def make_checkpoint(session: Session, key: Ed25519PrivateKey, at: datetime) -> dict[str, Any]:
    """The log's head signed by ``key``, once the chain up to it checks out (a broken
    chain is not vouched for: UserError says where it breaks)."""
    report = check_log(session)
    if not report.ok:
        raise UserError(
            f"the audit log does not check out (entry {report.first_bad_seq}: {report.problem});"
            " no checkpoint is signed"
        )
    if report.entries == 0:
        raise UserError("the audit log is empty: there is no entry to vouch for yet")
    body = checkpoint_body(report.entries, report.head, at)
    return {
        **body,
        "key": key_fingerprint(key.public_key()),
        "signature": sign_bytes(canonical_bytes(body), key),
    }


@dataclass(frozen=True, slots=True)
class CheckpointsReport:
    findings: tuple[CheckpointFinding, ...]

    @property
    def ok(self) -> bool:
        return all(f.problem is None for f in self.findings)


def read_checkpoints(path: Path) -> list[dict[str, Any]]:
    """The checkpoints in ``path``, one JSON object a line (as `central audit checkpoint`
    appends them); a line that is not one is a UserError naming it."""
    try:
        if path.stat().st_size > MAX_CHECKPOINT_FILE:
            raise UserError(f"{path}: more than {MAX_CHECKPOINT_FILE >> 20} MiB of checkpoints")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the checkpoints {path}: {exc}") from exc
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            doc = None
        if not _well_formed(doc):
            raise UserError(
                f"{path}:{number}: not an audit checkpoint ({CHECKPOINT_FORMAT}: format, seq,"
                " entry_hash, at and signature as `central audit checkpoint` writes them)"
            )
        found.append(doc)
    if not found:
        raise UserError(f"{path}: holds no checkpoint")
    return found


def _well_formed(doc: Any) -> bool:
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        return False
    seq = doc.get("seq")
    return (
        type(seq) is int
        and 1 <= seq < 1 << 63
        and isinstance(doc.get("entry_hash"), str)
        and re.fullmatch(r"[0-9a-f]{64}", doc["entry_hash"]) is not None
        and isinstance(doc.get("at"), str)
        and len(doc["at"]) <= 64
        and isinstance(doc.get("signature"), str)
    )


def check_checkpoints(
    session: Session, checkpoints: Iterable[dict[str, Any]], keys: Sequence[Ed25519PublicKey]
) -> CheckpointsReport:
    """Each checkpoint's signature by one of ``keys`` (central's case-signing keys, the one
    in use and those before it), then the log's entry it names as stored now."""
    entries = int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    findings = []
    for doc in checkpoints:  # (well formed: read_checkpoints checked each)
        seq, at = doc["seq"], doc["at"]
        body = {k: doc[k] for k in ("format", "seq", "entry_hash", "at")}
        problem = _unsigned(canonical_bytes(body), str(doc.get("signature", "")), keys)
        if problem is not None:
            findings.append(CheckpointFinding(seq, at, problem))
            continue
        stored = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq))
        findings.append(hold_checkpoint(seq, doc["entry_hash"], at, stored, entries))
    return CheckpointsReport(tuple(findings))


def _unsigned(body: bytes, signature: str, keys: Sequence[Ed25519PublicKey]) -> str | None:
    """None when ``signature`` verifies under one of ``keys``; else why not."""
    problems = []
    for key in keys:
        try:
            verify_bytes(body, signature, key)
            return None
        except SignatureError as exc:
            problems.append(str(exc))
    if len(keys) == 1:
        return f"not signed by central's key: {problems[0]}"
    return f"not signed by any of the {len(keys)} central keys given: {problems[0]}"
