"""Page-shaped API calls of the web UI: the filtered review queue and the case page.

They answer what one screen shows in one request, built from the same records and
helpers as the rest of the API, and follow the same roles.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from central.api.admin import camera_view
from central.api.cases import (
    EVIDENCE_READERS,
    LISTED,
    AfterId,
    Ident,
    Limit,
    Offset,
    ViolationId,
    _get,
    after_in_queue,
    audit_out,
    case_of,
    detail,
    evidence_on_file,
    queue_page,
)
from central.api.deps import NOT_FOUND, PROTECTED, CaseReader, Reviewer, SessionDep, StateDep
from central.api.schemas import (
    NO_NUL,
    AuditOut,
    CameraOut,
    IsoTime,
    Page,
    QueueItem,
    ViolationDetail,
)
from central.models import AuditEntry, Camera, Violation, utcnow
from central.workflow import (
    OPEN_STATUSES,
    Action,
    Actor,
    Status,
    available_actions,
    check_written_plate,
)
from roadwatch.contract import ViolationType

router = APIRouter(prefix="/api/v1/ui", tags=["review"], responses=PROTECTED)

QUEUE_STATUSES = (Status.NEW.value, Status.IN_REVIEW.value)


class CasePage(BaseModel):
    """Everything the case page shows: the record, its camera and its audit trail."""

    case: ViolationDetail
    camera: CameraOut | None = Field(description="The camera that saw it, with its place")
    audit: list[AuditOut]
    can_review: bool = Field(description="The caller's role may take review actions")
    actions: list[Action] = Field(
        description="What the caller can do to the case now (the workflow's own answer: who"
        " holds it, the two-person rule); on a new case the decisions start its review"
    )
    evidence_visible: bool = Field(description="The caller's role may download evidence")


@router.get(
    "/queue",
    summary="The review queue with filters, the oldest due first",
    responses={404: {"description": "No case `after_id` to continue after"}},
)
def ui_queue(
    _: Reviewer,
    state: StateDep,
    session: SessionDep,
    camera: Ident = None,
    type: ViolationType | None = None,
    occurred_from: Annotated[IsoTime | None, Query(alias="from")] = None,
    occurred_to: Annotated[IsoTime | None, Query(alias="to")] = None,
    after_id: AfterId = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[QueueItem]:
    """New cases and cases in review. The notice deadline runs from the violation time, so
    the oldest violation is the first due."""
    stmt = LISTED.where(Violation.status.in_(QUEUE_STATUSES))
    if camera:
        stmt = stmt.where(Violation.camera == camera)
    if type is not None:
        stmt = stmt.where(Violation.type == type.value)
    if occurred_from is not None:
        stmt = stmt.where(Violation.occurred_at >= occurred_from)
    if occurred_to is not None:
        stmt = stmt.where(Violation.occurred_at < occurred_to)
    stmt = after_in_queue(session, stmt, after_id).order_by(Violation.occurred_at, Violation.id)
    return queue_page(session, stmt, state.policy, limit, offset)


class PlateCheck(BaseModel):
    """A plate correction as central would take it, for the dialog to warn before it is sent."""

    plate: str = Field(description="The text the correction would store (its normal form)")
    reads_as_plate: bool = Field(
        description="It reads as a Vietnamese plate just as typed (the grammar the roadside"
        " readings are checked against); a foreign plate does not, and may still be sent"
    )
    suggestion: str | None = Field(
        description="The plate it reads as after repairing a look-alike character"
        " (`O` for `0`), where it reads as one only so"
    )


@router.get("/plate", summary="How central reads a plate correction before it is sent")
def ui_plate(
    _: Reviewer,
    text: Annotated[str, Query(min_length=1, max_length=16, pattern=NO_NUL)],
) -> PlateCheck:
    return PlateCheck.model_validate(check_written_plate(text), from_attributes=True)


@router.get("/cases/{violation_id}", summary="One case as its page shows it", responses=NOT_FOUND)
def ui_case(
    caller: CaseReader, state: StateDep, session: SessionDep, violation_id: ViolationId
) -> CasePage:
    v = _get(session, violation_id)
    cam = session.scalar(
        select(Camera).where(
            Camera.site == v.site, Camera.node == v.node, Camera.camera == v.camera
        )
    )
    audit = session.scalars(
        select(AuditEntry).where(AuditEntry.violation_id == v.id).order_by(AuditEntry.seq)
    )
    reviewer = caller.role in EVIDENCE_READERS
    actor = Actor(caller.username, caller.role)
    case = detail(session, v, state.policy, evidence_links=reviewer)
    actions = available_actions(
        case_of(v, evidence_on_file=evidence_on_file(session, v)), actor, utcnow(), state.policy
    )
    if case.record_problems:  # (the API refuses these on an altered record)
        actions = [a for a in actions if a not in (Action.CONFIRM, Action.ISSUE_NOTICE)]
    return CasePage(
        case=case,
        camera=camera_view(cam) if cam is not None else None,
        audit=[audit_out(e) for e in audit],
        can_review=reviewer and Status(v.status) in OPEN_STATUSES,
        actions=actions,
        evidence_visible=reviewer,
    )
