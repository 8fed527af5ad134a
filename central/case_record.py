"""Does a stored case still say what its signed event and its audit trail say?

The case's columns are copied from the event when it arrives, and its status moves only
with an audit entry. A row changed in the database by hand (a plate, a speed, an evidence
hash, a status set without a review) keeps its old signed event beside it: comparing the
two, and the status with the trail, shows the change, so that no notice rests on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from central.intake import RefusalCode, unsigned
from central.models import AuditEntry, EvidenceRef, Violation
from central.records import node_keys, violation_row
from central.workflow import Action
from roadwatch.contract import ContractError, ViolationEvent, parse_payload

# The columns copied from the signed event.
SIGNED_COLUMNS = (
    "event_id",
    "type",
    "site",
    "node",
    "camera",
    "lane",
    "occurred_at",
    "vehicle_class",
    "plate_text",
    "plate_confidence",
    "plate_valid",
    "speed_kmh",
    "speed_limit_kmh",
    "place",
    "explanation",
    "payload_sha256",
    "evidence_count",
)


def record_problems(session: Session, v: Violation) -> list[str]:
    """Where the stored case disagrees with its signed event or its audit trail (empty
    when everything agrees)."""
    wire = v.payload.encode("utf-8")
    try:
        event = parse_payload(ViolationEvent, wire)
    except ContractError:
        return ["the stored event cannot be read"]
    problems: list[str] = []
    keys = node_keys(session, v.site, v.node)
    if keys is None:
        problems.append("its node is not registered: the signature cannot be checked")
    elif (refused := unsigned(event, wire, keys, at=v.received_at)) is not None:
        problems.append(
            f"it came signed with a key revoked since ({refused.reason})"
            if refused.code is RefusalCode.REVOKED_KEY
            else "the stored event's signature does not verify"
        )
    expected = violation_row(event, wire)
    problems += [
        f"{name} differs from the signed event"
        for name in SIGNED_COLUMNS
        if getattr(v, name) != expected[name]
    ]
    stored = {
        (r.role, r.sha256, r.size, r.media_type)
        for r in session.scalars(select(EvidenceRef).where(EvidenceRef.violation_id == v.id))
    }
    listed = {(e.role.value, e.sha256, e.size, e.media_type.value) for e in event.evidence}
    if stored != listed:
        problems.append("the evidence list differs from the signed event's")
    trail = session.execute(
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
        .where(  # (the decisions only: an export, say, moves no status)
            AuditEntry.violation_id == v.id, AuditEntry.action.in_([a.value for a in Action])
        )
        .order_by(AuditEntry.seq)
    ).all()
    led = _where_the_trail_leads(trail)
    if v.status != led["status"]:
        problems.append(
            f"its status {v.status} is not where its audit trail leads ({led['status']})"
        )
    problems += [
        f"its {name} is not what its audit trail says"
        for name, value in led.items()
        if name != "status" and getattr(v, name) != value
    ]
    return problems


def _where_the_trail_leads(trail: Sequence[Row[str, str, str]]) -> dict[str, str | None]:
    """The review columns as a case's decisions (actor, action, detail; oldest first) left
    them: who reviews it, the plate correction, who confirmed it, the reason it was
    rejected for, who issued its notice, and its status."""
    led: dict[str, str | None] = dict.fromkeys(
        ("reviewer", "plate_corrected", "confirmed_by", "reject_reason", "notice_issued_by")
    )
    led["status"] = "new"
    for actor, action, text in trail:
        detail = json.loads(text)
        led["status"] = detail.get("to", led["status"])
        if action == Action.START_REVIEW:
            led["reviewer"] = actor
        elif action == Action.RELEASE:  # (from a confirmation too: it is undone)
            led["reviewer"] = led["confirmed_by"] = None
        elif action == Action.CORRECT_PLATE:
            led["plate_corrected"] = detail.get("plate_after")
        elif action == Action.CONFIRM:
            led["confirmed_by"] = actor
        elif action == Action.REJECT:
            led["reject_reason"] = (detail.get("reason") or "").strip() or None
        elif action == Action.ISSUE_NOTICE:
            led["notice_issued_by"] = actor
    return led
