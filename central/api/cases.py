"""Violations: search, detail, the review queue, deadlines and review actions."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from central.api.deps import (
    NOT_FOUND,
    PROTECTED,
    AnyUser,
    ApiRefusal,
    AppState,
    CaseReader,
    Reviewer,
    SessionDep,
    StateDep,
    query_refused,
)
from central.api.schemas import (
    NO_NUL,
    SAME_PLATE_WINDOW_MIN,
    AuditOut,
    DeadlineOut,
    EvidenceOut,
    IsoTime,
    NearbyCase,
    Page,
    QueueItem,
    ReviewCommand,
    ViolationDetail,
    ViolationSummary,
)
from central.case_export import (
    NoCaseKeyError,
    case_on_record,
    export_case,
    load_case_key,
    record_export,
)
from central.case_record import record_problems
from central.evidence import EvidenceError
from central.models import AuditEntry, Blob, EvidenceRef, Violation, utcnow
from central.records import append_audit, blob_as_listed
from central.workflow import (
    Action,
    Actor,
    Case,
    Command,
    Policy,
    Role,
    Status,
    WorkflowError,
    deadlines,
    decide,
    plate_to_act_on,
    written_plate,
)
from roadwatch.contract import ViolationType

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", responses=PROTECTED)


Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
ViolationId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip")]
Ident = Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
AfterId = Annotated[
    int | None,
    Query(ge=1, le=2**63 - 1,
          description="Continue after this case (the last of the page before): a walk that"
          " neither repeats nor skips a case while others are decided meanwhile"),
]  # fmt: skip
Plate = Annotated[
    str | None, Query(min_length=1, max_length=16, pattern=NO_NUL, description="Exact plate")
]

WORKFLOW_ERRORS = {
    "forbidden": status.HTTP_403_FORBIDDEN,
    "two_person_rule": status.HTTP_403_FORBIDDEN,
    "invalid_transition": status.HTTP_409_CONFLICT,
    "not_reviewer": status.HTTP_409_CONFLICT,
    "evidence_incomplete": status.HTTP_409_CONFLICT,
    "plate_required": status.HTTP_409_CONFLICT,
}


@dataclass(frozen=True, slots=True)
class Listed:
    """A violation as the list routes read it: only the columns a list shows, built from
    a row by position (a Row's attributes cost about 0.5 µs each to read by name)."""

    id: int
    event_id: str
    type: str
    site: str
    camera: str
    lane: str | None
    occurred_at: datetime
    vehicle_class: str
    plate_text: str | None
    plate_corrected: str | None
    plate_valid: bool | None
    speed_kmh: float | None
    speed_limit_kmh: float | None
    status: str
    version: int
    evidence_complete: bool
    reviewer: str | None
    confirmed_by: str | None
    decided_at: datetime | None
    reject_reason: str | None
    notice_issued_by: str | None
    notice_issued_at: datetime | None
    closed_at: datetime | None


SUMMARY_COLUMNS = tuple(getattr(Violation, f.name) for f in fields(Listed))
LISTED = select(*SUMMARY_COLUMNS)  # the list routes add their filters and order to it
CaseRow = Violation | Listed


def case_of(v: CaseRow, *, evidence_on_file: bool) -> Case:
    return Case(
        status=Status(v.status),
        occurred_at=v.occurred_at,
        plate_text=v.plate_text,
        plate_corrected=v.plate_corrected,
        plate_valid=v.plate_valid,
        reviewer=v.reviewer,
        confirmed_by=v.confirmed_by,
        decided_at=v.decided_at,
        reject_reason=v.reject_reason,
        notice_issued_by=v.notice_issued_by,
        notice_issued_at=v.notice_issued_at,
        closed_at=v.closed_at,
        evidence_on_file=evidence_on_file,
    )


def evidence_on_file(session: Session, v: Violation) -> bool:
    """The case's event lists evidence and every listed blob has arrived as listed."""
    if not v.evidence_complete:
        return False
    listed = session.scalar(select(exists().where(EvidenceRef.violation_id == v.id)))
    return bool(listed)


def _deadlines(v: CaseRow, policy: Policy, now: datetime) -> list[DeadlineOut]:
    return [
        DeadlineOut(name=d.name, due_at=d.due_at, state=d.state)
        for d in deadlines(case_of(v, evidence_on_file=False), now, policy)
    ]


def summary(v: CaseRow) -> ViolationSummary:
    return ViolationSummary(**summary_fields(v))


def queue_item(v: CaseRow, policy: Policy, now: datetime) -> QueueItem:
    return QueueItem(**summary_fields(v), reviewer=v.reviewer, deadlines=_deadlines(v, policy, now))


def summary_fields(v: CaseRow) -> dict[str, Any]:
    return dict(
        id=v.id,
        event_id=v.event_id,
        type=v.type,
        site=v.site,
        camera=v.camera,
        lane=v.lane,
        occurred_at=v.occurred_at,
        vehicle_class=v.vehicle_class,
        plate=v.plate_corrected or v.plate_text,
        plate_text=v.plate_text,
        plate_corrected=v.plate_corrected,
        plate_valid=v.plate_valid,
        speed_kmh=v.speed_kmh,
        speed_limit_kmh=v.speed_limit_kmh,
        status=Status(v.status),
        version=v.version,
        evidence_complete=v.evidence_complete,
    )


def _page(session: Session, stmt: Select[Any], limit: int, offset: int) -> list[Listed]:
    """One page (plus one row to tell whether more follow) of the list columns: no ORM
    objects are built for a list (they cost about half the time of a page request)."""
    page = stmt.limit(limit + 1).offset(offset)
    return [Listed(*row) for row in session.execute(page)]


def queue_page(
    session: Session, stmt: Select[Any], policy: Policy, limit: int, offset: int
) -> Page[QueueItem]:
    """One page of ``stmt`` (LISTED with filters and order) as queue items with deadlines."""
    rows = _page(session, stmt, limit, offset)
    now = utcnow()
    items = [queue_item(v, policy, now) for v in rows[:limit]]
    return Page[QueueItem](items=items, limit=limit, offset=offset, has_more=len(rows) > limit)


def ordered_range(start: datetime | None, end: datetime | None) -> None:
    """Refuses (422) a range whose start is not before its end; an open end is no range
    to check."""
    if start is not None and end is not None and start >= end:
        raise query_refused("from", "from must be before to")


@router.get(
    "/violations",
    tags=["violations"],
    summary="Search violations",
    responses={404: {"description": "No case `after_id` to continue after"}},
)
def search_violations(
    _: AnyUser,
    session: SessionDep,
    plate: Plate = None,
    camera: Ident = None,
    site: Ident = None,
    type: ViolationType | None = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    occurred_from: Annotated[IsoTime | None, Query(alias="from")] = None,
    occurred_to: Annotated[IsoTime | None, Query(alias="to")] = None,
    complete: bool | None = None,
    after_id: AfterId = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ViolationSummary]:
    """Newest first. `plate` matches the roadside reading or the correction, as written
    or in a plate's normal form (`51f12345` finds `51F-123.45`). `from` must
    be before `to` when both are given (a 422 otherwise). To read every page of a search
    whose cases change meanwhile (by `status`: officers decide them as you read), send
    the last case's id as `after_id` instead of an `offset`."""
    ordered_range(occurred_from, occurred_to)
    stmt = after_in_queue(session, LISTED, after_id, newest_first=True)
    if plate:
        # As typed, and in its normal form: "51f12345" finds 51F-123.45.
        texts = sorted({plate.strip().upper(), written_plate(plate)})
        stmt = stmt.where(
            or_(Violation.plate_text.in_(texts), Violation.plate_corrected.in_(texts))
        )
    if camera:
        stmt = stmt.where(Violation.camera == camera)
    if site:
        stmt = stmt.where(Violation.site == site)
    if type is not None:
        stmt = stmt.where(Violation.type == type.value)
    if status_ is not None:
        stmt = stmt.where(Violation.status == status_.value)
    if occurred_from is not None:
        stmt = stmt.where(Violation.occurred_at >= occurred_from)
    if occurred_to is not None:
        stmt = stmt.where(Violation.occurred_at < occurred_to)
    if complete is not None:
        stmt = stmt.where(Violation.evidence_complete.is_(complete))
    rows = _page(
        session, stmt.order_by(Violation.occurred_at.desc(), Violation.id.desc()), limit, offset
    )
    return Page[ViolationSummary](
        items=[summary(v) for v in rows[:limit]],
        limit=limit,
        offset=offset,
        has_more=len(rows) > limit,
    )


def after_in_queue(
    session: Session, stmt: Select[Any], case: int | None, *, newest_first: bool = False
) -> Select[Any]:
    """``stmt`` (in the queue's order: violation time, then id; or the reverse) continued
    after ``case``: page by page by position, not by count, so a case decided or arriving
    meanwhile neither repeats another nor hides one."""
    if case is None:
        return stmt
    at = session.scalar(select(Violation.occurred_at).where(Violation.id == case))
    if at is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case} to continue after")
    if newest_first:
        return stmt.where(
            or_(Violation.occurred_at < at, and_(Violation.occurred_at == at, Violation.id < case))
        )
    return stmt.where(
        or_(Violation.occurred_at > at, and_(Violation.occurred_at == at, Violation.id > case))
    )


@router.get(
    "/review/queue",
    tags=["review"],
    summary="Cases waiting for a decision",
    responses={404: {"description": "No case `after_id` to continue after"}},
)
def review_queue(
    caller: Reviewer,
    state: StateDep,
    session: SessionDep,
    camera: Ident = None,
    mine: Annotated[bool, Query(description="Only cases I have opened")] = False,
    after_id: AfterId = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[QueueItem]:
    """New cases and cases in review, oldest first (the notice deadline runs from the
    violation time). Confirmed cases waiting for a notice are listed by `/review/deadlines`."""
    stmt = LISTED
    if mine:
        stmt = stmt.where(
            Violation.status == Status.IN_REVIEW.value, Violation.reviewer == caller.username
        )
    else:
        stmt = stmt.where(Violation.status.in_([Status.NEW.value, Status.IN_REVIEW.value]))
    if camera:
        stmt = stmt.where(Violation.camera == camera)
    stmt = after_in_queue(session, stmt, after_id).order_by(Violation.occurred_at, Violation.id)
    return queue_page(session, stmt, state.policy, limit, offset)


@router.get(
    "/review/deadlines", tags=["review"], summary="Open cases whose legal deadline is near or past"
)
def review_deadlines(
    _: Reviewer,
    state: StateDep,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[QueueItem]:
    """Cases without a notice whose notice deadline is within a day or past, and cases with
    a notice and no response whose escalation deadline is within a day or past."""
    policy = state.policy
    now = utcnow()
    notice_cut = now - timedelta(days=policy.notice_days) + timedelta(days=1)
    escalate_cut = now - timedelta(days=policy.escalation_days) + timedelta(days=1)
    stmt = LISTED.where(
        or_(
            (Violation.status.in_(["new", "in_review", "confirmed"]))
            & (Violation.occurred_at <= notice_cut),
            (Violation.status == "notice_issued") & (Violation.notice_issued_at <= escalate_cut),
        )
    ).order_by(Violation.occurred_at, Violation.id)
    return queue_page(session, stmt, policy, limit, offset)


def _get(session: Session, violation_id: int) -> Violation:
    v = session.get(Violation, violation_id)
    if v is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no violation {violation_id}")
    return v


# The roles that may download evidence (``GET /api/v1/evidence/{sha256}``): a case read
# by any other lists its blobs without links.
EVIDENCE_READERS = frozenset({Role.OFFICER, Role.SUPERVISOR})


def detail(
    session: Session, v: Violation, policy: Policy, *, evidence_links: bool = True
) -> ViolationDetail:
    refs = session.execute(
        select(EvidenceRef, Blob.sha256)
        .outerjoin(Blob, blob_as_listed())
        .where(EvidenceRef.violation_id == v.id)
        .order_by(EvidenceRef.role)
    ).all()
    event = json.loads(v.payload)
    return ViolationDetail(
        **summary(v).model_dump(),
        node=v.node,
        place=v.place,
        explanation=v.explanation,
        # (from the signed event itself: a node before it sent none)
        explanation_vi=event.get("explanation_vi"),
        plate_confidence=v.plate_confidence,
        received_at=v.received_at,
        reviewer=v.reviewer,
        confirmed_by=v.confirmed_by,
        decided_at=v.decided_at,
        reject_reason=v.reject_reason,
        notice_issued_by=v.notice_issued_by,
        notice_issued_at=v.notice_issued_at,
        closed_at=v.closed_at,
        evidence=[
            EvidenceOut(
                role=r.role,
                media_type=r.media_type,
                sha256=r.sha256,
                size=r.size,
                arrived=arrived is not None,
                url=f"/api/v1/evidence/{r.sha256}" if evidence_links else None,
            )
            for r, arrived in refs
        ],
        deadlines=_deadlines(v, policy, utcnow()),
        event=event,
        record_problems=record_problems(session, v),
        same_plate_nearby=same_plate_nearby(session, v),
    )


def same_plate_nearby(session: Session, v: Violation) -> list[NearbyCase]:
    """The other cases of the same type for the same plate (as corrected, else as read)
    on the same camera within ``SAME_PLATE_WINDOW_MIN`` minutes either side, oldest first."""
    plate = v.plate_corrected or v.plate_text
    if not plate:
        return []
    window = timedelta(minutes=SAME_PLATE_WINDOW_MIN)
    rows = session.execute(
        select(Violation.id, Violation.occurred_at, Violation.status)
        .where(
            Violation.site == v.site,
            Violation.camera == v.camera,
            Violation.type == v.type,
            Violation.id != v.id,
            Violation.occurred_at >= v.occurred_at - window,
            Violation.occurred_at <= v.occurred_at + window,
            or_(
                Violation.plate_corrected == plate,
                and_(Violation.plate_corrected.is_(None), Violation.plate_text == plate),
            ),
        )
        .order_by(Violation.occurred_at, Violation.id)
    ).all()
    return [NearbyCase(id=i, occurred_at=at, status=Status(st)) for i, at, st in rows]


@router.get(
    "/violations/{violation_id}",
    tags=["violations"],
    summary="One violation in full",
    responses=NOT_FOUND,
)
def get_violation(
    caller: AnyUser, state: StateDep, session: SessionDep, violation_id: ViolationId
) -> ViolationDetail:
    """The case, its evidence listed (with download links for the roles that may follow
    them), its deadlines and its signed event."""
    return detail(
        session,
        _get(session, violation_id),
        state.policy,
        evidence_links=caller.role in EVIDENCE_READERS,
    )


@router.post(
    "/violations/{violation_id}/review",
    tags=["review"],
    summary="Take a review action (start, release, correct plate, confirm, reject, notice, close)",
    responses={
        403: {
            "description": "Your role may not take this action (`forbidden`), or the"
            " two-person rule (`two_person_rule`)"
        },
        404: {"description": "No such violation"},
        409: {
            "description": "The case changed since you loaded it (`changed`: reload it), the"
            " action does not apply to its status (`invalid_transition`), or another officer"
            " reviews it (`not_reviewer`); to confirm or issue a notice, also: its evidence"
            " has not all arrived (`evidence_incomplete`), it has no plate to act on"
            " (`plate_required`: correct the plate, or reject), the stored case disagrees"
            " with its signed event or audit trail (`record_altered`), or a stored copy of"
            " its evidence was altered or damaged (`evidence_damaged`)"
        },
        422: {
            "description": "The body is not valid, the plate is not one (`invalid_plate`), or"
            " the reason is missing or too long (`reason_required`, `reason_too_long`)"
        },
    },
)
def review(
    caller: Reviewer,
    state: StateDep,
    session: SessionDep,
    violation_id: ViolationId,
    body: ReviewCommand,
) -> ViolationDetail:
    v = _get(session, violation_id)
    if v.version != body.version:
        raise ApiRefusal(
            status.HTTP_409_CONFLICT,
            "changed",
            f"case {violation_id} was changed by someone else (now version {v.version}, "
            f"you decided on version {body.version}); reload it and decide again",
            id=violation_id,
        )
    before = Status(v.status)
    plate_before = v.plate_corrected or v.plate_text  # (the plate a correction replaces)
    if body.action in (Action.CONFIRM, Action.ISSUE_NOTICE) and (
        problems := record_problems(session, v)
    ):
        raise ApiRefusal(
            status.HTTP_409_CONFLICT,
            "record_altered",
            "the stored case disagrees with its signed event or audit trail: "
            + "; ".join(problems),
            problems="; ".join(problems),
        )
    try:
        after = decide(
            case_of(v, evidence_on_file=evidence_on_file(session, v)),
            Command(body.action, reason=body.reason, plate=body.plate),
            Actor(caller.username, caller.role),
            utcnow(),
            state.policy,
        )
    except WorkflowError as exc:
        code = WORKFLOW_ERRORS.get(exc.code, status.HTTP_422_UNPROCESSABLE_CONTENT)
        raise ApiRefusal(code, exc.code, str(exc), **exc.params) from exc
    if body.action in (Action.CONFIRM, Action.ISSUE_NOTICE):
        _check_evidence_intact(session, state, v)
    for name in (
        "status",
        "plate_corrected",
        "reviewer",
        "confirmed_by",
        "decided_at",
        "reject_reason",
        "notice_issued_by",
        "notice_issued_at",
        "closed_at",
    ):
        value = getattr(after, name)
        setattr(v, name, value.value if isinstance(value, Status) else value)
    audit: dict[str, object] = {
        "from": before.value,
        "to": after.status.value,
        "version": body.version,
    }
    if body.action is Action.CORRECT_PLATE:
        audit.update(plate_before=plate_before, plate_after=after.plate_corrected)
    if body.action in (Action.CONFIRM, Action.ISSUE_NOTICE):
        # The decision stands on this signed event, which lists its evidence by sha256,
        # and on this plate.
        audit["payload_sha256"] = v.payload_sha256
        audit["plate"] = plate_to_act_on(after)
    if body.reason:
        audit["reason"] = body.reason
    if body.note:
        audit["note"] = body.note
    try:
        session.flush()  # the version column makes a concurrent decision fail here
        append_audit(
            session,
            actor=caller.username,
            action=body.action.value,
            violation_id=v.id,
            detail=audit,
        )
        session.commit()
    except StaleDataError as exc:
        session.rollback()
        raise ApiRefusal(
            status.HTTP_409_CONFLICT,
            "changed",
            f"case {violation_id} was decided by someone else a moment ago; reload it",
            id=violation_id,
        ) from exc
    return detail(session, v, state.policy)


def _check_evidence_intact(session: Session, state: AppState, v: Violation) -> None:
    """Refuses (409 ``evidence_damaged``) a decision on evidence of which the stored copy
    is gone from the store or no longer hashes to its sha256: nobody could see what it
    stands on. Each blob is read once in full (about 3 ms for a 3 MB clip); the node's
    next upload mends it."""
    refs = session.scalars(select(EvidenceRef).where(EvidenceRef.violation_id == v.id)).all()
    roles: dict[str, str] = {}
    for ref in refs:
        roles.setdefault(ref.sha256, ref.role)
    for sha256, role in roles.items():
        try:
            checked = state.store.open_checked(sha256)
        except FileNotFoundError:
            why = "is gone from the store"
        else:
            if checked is not None:
                checked.close()
                continue
            why = "no longer hashes to its sha256: it was altered or damaged in the store"
        log.error("case %d: evidence %s %s", v.id, sha256, why)
        state.metrics.damaged.inc()
        raise ApiRefusal(
            status.HTTP_409_CONFLICT,
            "evidence_damaged",
            f"the stored copy of the case's {role} {why}; no decision stands on it until its"
            " node sends it again",
        )


@router.post(
    "/violations/{violation_id}/export",
    tags=["violations"],
    summary="Export the case as one ZIP a third party can check (roadwatch verify)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "The package; its sha256 is in X-Package-SHA256 and the audit trail",
        },
        404: {"description": "No such violation"},
        503: {
            "description": "Central has no usable case-signing key (code no_case_key: an"
            " administrator runs `roadwatch central case keygen`), or the evidence store is"
            " unavailable (try again later)"
        },
    },
)
def export(
    caller: Reviewer, state: StateDep, session: SessionDep, violation_id: ViolationId
) -> StreamingResponse:
    """The signed event, its node's public key, every piece of evidence that is on file,
    the case's audit trail and a manifest (see `roadwatch.case_package`). Evidence that
    never arrived or no longer hashes to its sha256 is left out and named in the manifest.
    Central signs the manifest with its case-signing key. The export is written to the
    case's audit trail with the package's sha256."""
    v = _get(session, violation_id)
    try:
        key = load_case_key(state.settings)
    except NoCaseKeyError as exc:
        log.error("%s", exc)
        raise ApiRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, "no_case_key", str(exc)) from exc
    record = case_on_record(session, v)
    # The evidence is read with no transaction open: on SQLite one holds the write lock.
    session.rollback()
    try:
        exported = export_case(record, state.store, key=key, actor=caller.username, at=utcnow())
    except EvidenceError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    try:
        record_export(session, record, exported, actor=caller.username)
        session.commit()
    except BaseException:
        exported.file.close()
        raise
    session.close()  # the download may take long: it holds no database connection

    def body() -> Iterator[bytes]:
        with exported.file:
            while chunk := exported.file.read(1 << 20):
                yield chunk

    return StreamingResponse(
        body(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{exported.name}"',
            "Content-Length": str(exported.size),
            "X-Package-SHA256": exported.sha256,
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/violations/{violation_id}/audit",
    tags=["audit"],
    summary="The audit trail of one case",
    responses=NOT_FOUND,
)
def case_audit(_: CaseReader, session: SessionDep, violation_id: ViolationId) -> list[AuditOut]:
    _get(session, violation_id)
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.violation_id == violation_id).order_by(AuditEntry.seq)
    )
    return [audit_out(e) for e in rows]


def audit_out(e: AuditEntry) -> AuditOut:
    return AuditOut(
        seq=e.seq,
        at=e.at,
        actor=e.actor,
        action=e.action,
        violation_id=e.violation_id,
        detail=json.loads(e.detail),
        prev_hash=e.prev_hash,
        entry_hash=e.entry_hash,
    )
