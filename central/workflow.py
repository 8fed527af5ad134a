"""The review workflow as a pure state machine (no I/O).

::

    new -> in_review -> confirmed -> notice_issued -> closed (paid)
             |   ^          |  \\                \\-> escalated (no response)
             |   release    |   (rejected needs a reason)
             +-> rejected   +-> new (a supervisor's release: reopened for review)

``decide`` takes a case, a command, the acting person and the policy, and returns the
case's next state or raises ``WorkflowError``. A case is confirmed, and its notice
issued, only when the evidence its event lists is all on file and it has a plate to act
on (a roadside reading that passed the format check, or an officer's correction). The
API persists what it
returns; the audit log records the command. Legal deadlines follow from the case and the clock:
the owner notice is due within ``notice_days`` of the violation, and a case with a
notice and no response is escalated after ``escalation_days``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from edge.plates.grammar import parse_written


class Status(StrEnum):
    NEW = "new"
    IN_REVIEW = "in_review"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    NOTICE_ISSUED = "notice_issued"
    CLOSED = "closed"
    ESCALATED = "escalated"


class Action(StrEnum):
    START_REVIEW = "start_review"
    RELEASE = "release"
    CORRECT_PLATE = "correct_plate"
    CONFIRM = "confirm"
    REJECT = "reject"
    ISSUE_NOTICE = "issue_notice"
    CLOSE = "close"
    ESCALATE = "escalate"


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    IOC = "ioc"
    NODE = "node"


class DeadlineState(StrEnum):
    PENDING = "pending"
    DUE = "due"
    OVERDUE = "overdue"


# (from status, action) -> to status. Anything not listed is an invalid transition.
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.NEW, Action.START_REVIEW): Status.IN_REVIEW,
    (Status.IN_REVIEW, Action.RELEASE): Status.NEW,
    (Status.IN_REVIEW, Action.CORRECT_PLATE): Status.IN_REVIEW,
    (Status.IN_REVIEW, Action.CONFIRM): Status.CONFIRMED,
    (Status.IN_REVIEW, Action.REJECT): Status.REJECTED,
    (Status.CONFIRMED, Action.ISSUE_NOTICE): Status.NOTICE_ISSUED,
    # A supervisor reopens a confirmed case before its notice (a plate that cannot be
    # noticed, a doubt): back to the queue, the confirmation undone.
    (Status.CONFIRMED, Action.RELEASE): Status.NEW,
    (Status.NOTICE_ISSUED, Action.CLOSE): Status.CLOSED,
    (Status.NOTICE_ISSUED, Action.ESCALATE): Status.ESCALATED,
}

# Who may take each action. Admins manage users, nodes and cameras, not cases.
ALLOWED_ROLES: dict[Action, frozenset[Role]] = {
    Action.START_REVIEW: frozenset({Role.OFFICER, Role.SUPERVISOR}),
    Action.RELEASE: frozenset({Role.OFFICER, Role.SUPERVISOR}),
    Action.CORRECT_PLATE: frozenset({Role.OFFICER, Role.SUPERVISOR}),
    Action.CONFIRM: frozenset({Role.OFFICER, Role.SUPERVISOR}),
    Action.REJECT: frozenset({Role.OFFICER, Role.SUPERVISOR}),
    Action.ISSUE_NOTICE: frozenset({Role.SUPERVISOR}),
    Action.CLOSE: frozenset({Role.SUPERVISOR}),
    Action.ESCALATE: frozenset({Role.SUPERVISOR}),
}

OPEN_STATUSES = frozenset({Status.NEW, Status.IN_REVIEW, Status.CONFIRMED, Status.NOTICE_ISSUED})
PLATE_PATTERN = re.compile(r"^[0-9A-Z.\- ]{1,16}$")
MAX_REASON = 2000


class WorkflowError(ValueError):
    """A command that the case, the role or the policy does not allow: ``code`` names the
    refusal (the review page words it in the reviewer's language), ``params`` its values."""

    def __init__(self, code: str, message: str, **params: str | int) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


# Every code ``decide`` refuses with.
WORKFLOW_REFUSALS = (
    "forbidden",
    "invalid_transition",
    "not_reviewer",
    "invalid_plate",
    "reason_required",
    "reason_too_long",
    "two_person_rule",
    "evidence_incomplete",
    "plate_required",
)
# The decisions that stand on the evidence.
_NEED_EVIDENCE = frozenset({Action.CONFIRM, Action.ISSUE_NOTICE})


@dataclass(frozen=True, slots=True)
class Policy:
    two_person_rule: bool = True
    notice_days: int = 10
    escalation_days: int = 20


@dataclass(frozen=True, slots=True)
class Actor:
    username: str
    role: Role


@dataclass(frozen=True, slots=True)
class Case:
    """The review-relevant state of one violation."""

    status: Status
    occurred_at: datetime
    plate_text: str | None = None
    plate_corrected: str | None = None
    # Whether the roadside reading passed the Vietnamese plate format check.
    plate_valid: bool | None = None
    reviewer: str | None = None
    confirmed_by: str | None = None
    decided_at: datetime | None = None
    reject_reason: str | None = None
    notice_issued_by: str | None = None
    notice_issued_at: datetime | None = None
    closed_at: datetime | None = None
    # The event lists evidence and every listed blob has arrived as listed: a case is
    # confirmed, and its notice issued, only on evidence that is all on file.
    evidence_on_file: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    action: Action
    reason: str | None = None
    plate: str | None = None


@dataclass(frozen=True, slots=True)
class Deadline:
    name: str
    due_at: datetime
    state: DeadlineState


def decide(case: Case, command: Command, actor: Actor, now: datetime, policy: Policy) -> Case:
    """The case after ``command`` by ``actor``; raises WorkflowError when not allowed."""
    action = command.action
    if actor.role not in ALLOWED_ROLES[action]:
        raise WorkflowError(
            "forbidden",
            f"role '{actor.role.value}' may not {action.value}",
            role=actor.role.value,
            action=action.value,
        )
    target = TRANSITIONS.get((case.status, action))
    if target is None:
        raise WorkflowError(
            "invalid_transition",
            f"cannot {action.value} a case that is {case.status.value}",
            action=action.value,
            status=case.status.value,
        )
    reopening = action is Action.RELEASE and case.status is Status.CONFIRMED
    if reopening and actor.role is not Role.SUPERVISOR:
        raise WorkflowError(
            "forbidden",
            f"role '{actor.role.value}' may not reopen a confirmed case",
            role=actor.role.value,
            action=action.value,
        )
    if (
        case.status is Status.IN_REVIEW
        and case.reviewer not in (None, actor.username)
        and actor.role is not Role.SUPERVISOR
    ):
        raise WorkflowError(
            "not_reviewer",
            f"case is being reviewed by '{case.reviewer}', not by you",
            user=case.reviewer or "",
        )
    if action in _NEED_EVIDENCE and not case.evidence_on_file:
        raise WorkflowError(
            "evidence_incomplete",
            f"cannot {action.value} a case whose evidence has not all arrived",
            action=action.value,
        )
    if action in _NEED_EVIDENCE and plate_to_act_on(case) is None:
        way = (
            "correct the plate, or reject the case" if case.status is Status.IN_REVIEW
            else "a supervisor can return it to the queue (release) to correct the plate"
        )  # fmt: skip
        raise WorkflowError(
            "plate_required",
            f"cannot {action.value} a case without a plate to act on: the roadside reading"
            f" is missing or failed the format check; {way}",
            action=action.value,
        )
    if action is Action.START_REVIEW:
        return replace(case, status=target, reviewer=actor.username)
    if action is Action.RELEASE:
        return replace(case, status=target, reviewer=None, confirmed_by=None, decided_at=None)
    if action is Action.CORRECT_PLATE:
        plate = written_plate(command.plate or "")
        if not PLATE_PATTERN.fullmatch(plate):
            raise WorkflowError(
                "invalid_plate", "plate must be 1-16 of A-Z, 0-9, '.', '-' or space"
            )
        return replace(case, plate_corrected=plate)
    if action is Action.CONFIRM:
        return replace(case, status=target, confirmed_by=actor.username, decided_at=now)
    if action is Action.REJECT:
        reason = (command.reason or "").strip()
        if not reason:
            raise WorkflowError("reason_required", "a reason is required to reject a case")
        if len(reason) > MAX_REASON:
            raise WorkflowError(
                "reason_too_long", f"reason is longer than {MAX_REASON}", max=MAX_REASON
            )
        return replace(case, status=target, decided_at=now, reject_reason=reason)
    if action is Action.ISSUE_NOTICE:
        if policy.two_person_rule and case.confirmed_by == actor.username:
            raise WorkflowError(
                "two_person_rule",
                "the person who confirmed a case may not also issue its notice",
            )
        return replace(case, status=target, notice_issued_by=actor.username, notice_issued_at=now)
    # CLOSE and ESCALATE end the case.
    return replace(case, status=target, closed_at=now)


# The decisions the review page offers on a new case: it starts the review first.
_STARTS_REVIEW = frozenset({Action.CORRECT_PLATE, Action.CONFIRM, Action.REJECT})


def available_actions(case: Case, actor: Actor, now: datetime, policy: Policy) -> list[Action]:
    """The actions ``actor`` can take on ``case`` now, as ``decide`` would allow them (with
    a reason and a plate given): the review page offers these and no others. On a new case
    the decisions count when the actor could start its review."""
    found: list[Action] = []
    for action in Action:
        if action is Action.START_REVIEW:
            continue
        try:
            probe = case
            if case.status is Status.NEW and action in _STARTS_REVIEW:
                probe = decide(case, Command(Action.START_REVIEW), actor, now, policy)
            decide(probe, Command(action, reason="-", plate="-"), actor, now, policy)
        except WorkflowError:
            continue
        found.append(action)
    return found


def deadlines(case: Case, now: datetime, policy: Policy) -> list[Deadline]:
    """The legal deadlines still running for ``case`` and whether they are due or overdue.

    A deadline is 'due' within its last day and 'overdue' once past.
    """
    found: list[Deadline] = []
    if case.status in (Status.NEW, Status.IN_REVIEW, Status.CONFIRMED):
        due = case.occurred_at + timedelta(days=policy.notice_days)
        found.append(Deadline("notice", due, _state(due, now)))
    elif case.status is Status.NOTICE_ISSUED and case.notice_issued_at is not None:
        due = case.notice_issued_at + timedelta(days=policy.escalation_days)
        found.append(Deadline("escalation", due, _state(due, now)))
    return found


def _state(due: datetime, now: datetime) -> DeadlineState:
    if now > due:
        return DeadlineState.OVERDUE
    if due - now <= timedelta(days=1):
        return DeadlineState.DUE
    return DeadlineState.PENDING


def plate_to_act_on(case: Case) -> str | None:
    """The plate a confirmation and a notice stand on: an officer's correction, else the
    roadside reading where it passed the format check; None when there is none."""
    if case.plate_corrected:
        return case.plate_corrected
    return case.plate_text if case.plate_text and case.plate_valid is not False else None


def written_plate(text: str) -> str:
    """A plate as a person typed it, upper-cased, in the normal form the roadside readings
    take when it reads as a Vietnamese plate just as typed (``51a12345`` is stored as
    ``51A-123.45``, ``59x1 12345`` as ``59-X1 123.45``), so that one plate is one text for
    the notice, a search and the same act found twice; a text the grammar does not cover
    (a foreign plate) or would only read by repairing a character is kept as typed."""
    return check_written_plate(text).plate


@dataclass(frozen=True, slots=True)
class WrittenPlate:
    """What central makes of a plate an officer typed, before it is sent: the text it
    would store, whether that reads as a Vietnamese plate just as typed, and, where it
    reads as one only by repairing a character (``O`` for ``0``), that reading."""

    plate: str
    reads_as_plate: bool
    suggestion: str | None


def check_written_plate(text: str) -> WrittenPlate:
    """A correction checked against the plate grammar as :func:`written_plate` stores it; a
    text that does not read as a plate (a foreign plate, a slip) may still be sent."""
    typed = text.strip().upper()
    parsed = parse_written(typed)
    reads = parsed.valid and parsed.repairs == 0
    return WrittenPlate(
        plate=parsed.wire_text if reads else typed,
        reads_as_plate=reads,
        suggestion=parsed.wire_text if parsed.valid and not reads else None,
    )


def effective_plate(case: Case) -> str | None:
    """The plate to act on: the correction when there is one, else the roadside reading."""
    return case.plate_corrected or case.plate_text
