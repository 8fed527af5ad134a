"""The review state machine, deadlines and the audit chain: tables, no I/O."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from central.audit import GENESIS, ChainEntry, detail_text, entry_hash, verify_chain
from central.workflow import (
    ALLOWED_ROLES,
    MAX_REASON,
    TRANSITIONS,
    WORKFLOW_REFUSALS,
    Action,
    Actor,
    Case,
    Command,
    DeadlineState,
    Policy,
    Role,
    Status,
    WorkflowError,
    available_actions,
    deadlines,
    decide,
    effective_plate,
)

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)
POLICY = Policy()
OFFICER = Actor("an", Role.OFFICER)
OFFICER2 = Actor("binh", Role.OFFICER)
SUPERVISOR = Actor("cuong", Role.SUPERVISOR)

VALID = [
    (Status.NEW, Action.START_REVIEW, Status.IN_REVIEW),
    (Status.IN_REVIEW, Action.RELEASE, Status.NEW),
    (Status.IN_REVIEW, Action.CORRECT_PLATE, Status.IN_REVIEW),
    (Status.IN_REVIEW, Action.CONFIRM, Status.CONFIRMED),
    (Status.IN_REVIEW, Action.REJECT, Status.REJECTED),
    (Status.CONFIRMED, Action.ISSUE_NOTICE, Status.NOTICE_ISSUED),
    (Status.CONFIRMED, Action.RELEASE, Status.NEW),  # a supervisor reopens it
    (Status.NOTICE_ISSUED, Action.CLOSE, Status.CLOSED),
    (Status.NOTICE_ISSUED, Action.ESCALATE, Status.ESCALATED),
]
INVALID = [
    (s, a) for s in Status for a in Action if (s, a) not in {(f, act) for f, act, _t in VALID}
]


def _case(status: Status, **kw: object) -> Case:
    fields: dict[str, object] = {
        "occurred_at": T0,
        "plate_text": "51F-123.45",
        "evidence_on_file": True,
    }
    if status is Status.IN_REVIEW:
        fields["reviewer"] = SUPERVISOR.username
    if status is Status.CONFIRMED:
        fields["confirmed_by"] = OFFICER.username
    fields.update(kw)
    return Case(status=status, **fields)  # type: ignore[arg-type]


def _command(action: Action) -> Command:
    return Command(action, reason="không rõ biển số", plate="51F-123.46")


def test_the_table_is_exactly_the_documented_machine() -> None:
    assert {(f, a): t for f, a, t in VALID} == TRANSITIONS
    assert len(INVALID) == len(Status) * len(Action) - len(VALID)


@pytest.mark.parametrize(("start", "action", "target"), VALID)
def test_valid_transition(start: Status, action: Action, target: Status) -> None:
    after = decide(_case(start), _command(action), SUPERVISOR, NOW, POLICY)
    assert after.status is target


@pytest.mark.parametrize(("start", "action"), INVALID)
def test_every_invalid_transition_is_refused(start: Status, action: Action) -> None:
    case = _case(start)
    with pytest.raises(WorkflowError) as err:
        decide(case, _command(action), SUPERVISOR, NOW, POLICY)
    assert err.value.code == "invalid_transition"
    assert str(err.value) == f"cannot {action.value} a case that is {start.value}"
    assert err.value.params == {"action": action.value, "status": start.value}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_roles(action: Action, role: Role) -> None:
    start = next(f for f, a, _t in VALID if a is action)
    actor = Actor("someone", role)
    case = _case(start, reviewer="someone" if start is Status.IN_REVIEW else None)
    if role in ALLOWED_ROLES[action]:
        assert (
            decide(case, _command(action), actor, NOW, POLICY).status
            is TRANSITIONS[(start, action)]
        )
    else:
        with pytest.raises(WorkflowError) as err:
            decide(case, _command(action), actor, NOW, POLICY)
        assert err.value.code == "forbidden"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reject_needs_a_reason(reason: str | None) -> None:
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    with pytest.raises(WorkflowError) as err:
        decide(case, Command(Action.REJECT, reason=reason), OFFICER, NOW, POLICY)
    assert err.value.code == "reason_required"
    after = decide(case, Command(Action.REJECT, reason="xe cứu thương"), OFFICER, NOW, POLICY)
    assert after.reject_reason == "xe cứu thương"
    assert after.decided_at == NOW


@pytest.mark.parametrize(("length", "refused"), [(MAX_REASON, False), (MAX_REASON + 1, True)])
def test_a_reason_is_at_most_2000_characters(length: int, refused: bool) -> None:
    assert MAX_REASON == 2000
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    command = Command(Action.REJECT, reason=" " + "x" * length + " ")  # (stripped first)
    if not refused:
        assert decide(case, command, OFFICER, NOW, POLICY).reject_reason == "x" * length
        return
    with pytest.raises(WorkflowError) as err:
        decide(case, command, OFFICER, NOW, POLICY)
    assert err.value.code == "reason_too_long" and err.value.params == {"max": MAX_REASON}


def test_each_decision_records_who_and_when_and_nothing_else() -> None:
    """The fields each step writes: the review page and the audit read them back."""
    new = _case(Status.NEW)
    review = decide(new, Command(Action.START_REVIEW), OFFICER, NOW, POLICY)
    assert review == dataclasses.replace(new, status=Status.IN_REVIEW, reviewer="an")
    later = NOW + timedelta(minutes=5)
    confirmed = decide(review, Command(Action.CONFIRM), OFFICER, later, POLICY)
    assert confirmed == dataclasses.replace(
        review, status=Status.CONFIRMED, confirmed_by="an", decided_at=later
    )
    rejected = decide(review, Command(Action.REJECT, reason="mờ"), OFFICER, later, POLICY)
    assert rejected == dataclasses.replace(
        review, status=Status.REJECTED, decided_at=later, reject_reason="mờ"
    )
    released = decide(review, Command(Action.RELEASE), OFFICER, later, POLICY)
    assert released == dataclasses.replace(review, status=Status.NEW, reviewer=None)
    issued_at = later + timedelta(hours=1)
    issued = decide(confirmed, Command(Action.ISSUE_NOTICE), SUPERVISOR, issued_at, POLICY)
    assert issued == dataclasses.replace(
        confirmed,
        status=Status.NOTICE_ISSUED,
        notice_issued_by="cuong",
        notice_issued_at=issued_at,
    )
    ended_at = issued_at + timedelta(days=3)
    for action, status in ((Action.CLOSE, Status.CLOSED), (Action.ESCALATE, Status.ESCALATED)):
        ended = decide(issued, Command(action), SUPERVISOR, ended_at, POLICY)
        assert ended == dataclasses.replace(issued, status=status, closed_at=ended_at)


def test_plate_correction_keeps_the_roadside_reading() -> None:
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    after = decide(case, Command(Action.CORRECT_PLATE, plate="51f-123.46"), OFFICER, NOW, POLICY)
    assert after.plate_text == "51F-123.45"
    assert after.plate_corrected == "51F-123.46"
    assert effective_plate(after) == "51F-123.46"
    assert effective_plate(case) == "51F-123.45"


@pytest.mark.parametrize("plate", [None, "", "51F<script>", "X" * 17, "51F-12\n3"])
def test_bad_plate_corrections_are_refused(plate: str | None) -> None:
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    with pytest.raises(WorkflowError) as err:
        decide(case, Command(Action.CORRECT_PLATE, plate=plate), OFFICER, NOW, POLICY)
    assert err.value.code == "invalid_plate"


def test_only_the_reviewer_or_a_supervisor_decides_a_case_in_review() -> None:
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    with pytest.raises(WorkflowError) as err:
        decide(case, Command(Action.CONFIRM), OFFICER2, NOW, POLICY)
    assert err.value.code == "not_reviewer"
    assert err.value.params == {"user": OFFICER.username}
    assert decide(case, Command(Action.CONFIRM), SUPERVISOR, NOW, POLICY).confirmed_by == "cuong"


DECISIONS = [Action.CORRECT_PLATE, Action.CONFIRM, Action.REJECT]


@pytest.mark.parametrize(
    ("case", "actor", "expected"),
    [
        (_case(Status.NEW), OFFICER, DECISIONS),
        (_case(Status.NEW), Actor("ioc", Role.IOC), []),
        (_case(Status.IN_REVIEW, reviewer="an"), OFFICER, [Action.RELEASE, *DECISIONS]),
        (_case(Status.IN_REVIEW, reviewer="an"), OFFICER2, []),  # another officer holds it
        (_case(Status.IN_REVIEW, reviewer="an"), SUPERVISOR, [Action.RELEASE, *DECISIONS]),
        (_case(Status.CONFIRMED, confirmed_by="cuong"), SUPERVISOR, [Action.RELEASE]),  # 2 persons
        (
            _case(Status.CONFIRMED, confirmed_by="an"),
            SUPERVISOR,
            [Action.RELEASE, Action.ISSUE_NOTICE],
        ),
        (_case(Status.CONFIRMED, confirmed_by="an"), OFFICER, []),
        (_case(Status.NOTICE_ISSUED), SUPERVISOR, [Action.CLOSE, Action.ESCALATE]),
        (_case(Status.REJECTED), SUPERVISOR, []),
        (_case(Status.CLOSED), OFFICER, []),
    ],
)
def test_available_actions_are_what_decide_allows(
    case: Case, actor: Actor, expected: list[Action]
) -> None:
    assert available_actions(case, actor, NOW, POLICY) == expected


def test_without_the_two_person_rule_the_confirming_supervisor_may_issue_the_notice() -> None:
    case = _case(Status.CONFIRMED, confirmed_by="cuong")
    allowed = available_actions(case, SUPERVISOR, NOW, Policy(two_person_rule=False))
    assert allowed == [Action.RELEASE, Action.ISSUE_NOTICE]


@pytest.mark.parametrize(("rule", "allowed"), [(True, False), (False, True)])
def test_two_person_rule(rule: bool, allowed: bool) -> None:
    policy = Policy(two_person_rule=rule)
    case = _case(Status.CONFIRMED, confirmed_by=SUPERVISOR.username)
    if allowed:
        after = decide(case, Command(Action.ISSUE_NOTICE), SUPERVISOR, NOW, policy)
        assert after.notice_issued_by == SUPERVISOR.username
    else:
        with pytest.raises(WorkflowError) as err:
            decide(case, Command(Action.ISSUE_NOTICE), SUPERVISOR, NOW, policy)
        assert err.value.code == "two_person_rule"
    other = Actor("dung", Role.SUPERVISOR)
    assert decide(case, Command(Action.ISSUE_NOTICE), other, NOW, policy).status is (
        Status.NOTICE_ISSUED
    )


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("status", "age", "notice_age", "expected"),
    [
        (Status.NEW, 2 * DAY, None, [("notice", DeadlineState.PENDING)]),
        (Status.NEW, 9 * DAY - timedelta(seconds=1), None, [("notice", DeadlineState.PENDING)]),
        (Status.NEW, 9 * DAY, None, [("notice", DeadlineState.DUE)]),  # its last day begins
        (Status.NEW, 10 * DAY, None, [("notice", DeadlineState.DUE)]),  # due now, not yet past
        (Status.IN_REVIEW, 9 * DAY + timedelta(hours=1), None, [("notice", DeadlineState.DUE)]),
        (
            Status.CONFIRMED,
            10 * DAY + timedelta(seconds=1),
            None,
            [("notice", DeadlineState.OVERDUE)],
        ),
        (Status.NOTICE_ISSUED, 30 * DAY, 5 * DAY, [("escalation", DeadlineState.PENDING)]),
        (
            Status.NOTICE_ISSUED,
            30 * DAY,
            19 * DAY + timedelta(hours=3),
            [("escalation", DeadlineState.DUE)],
        ),
        (Status.NOTICE_ISSUED, 40 * DAY, 21 * DAY, [("escalation", DeadlineState.OVERDUE)]),
        (Status.NOTICE_ISSUED, 40 * DAY, None, []),  # (no issue time on record: nothing to count)
        (Status.REJECTED, 40 * DAY, None, []),
        (Status.CLOSED, 40 * DAY, 21 * DAY, []),
        (Status.ESCALATED, 40 * DAY, 21 * DAY, []),
    ],
)
def test_deadlines(
    status: Status,
    age: timedelta,
    notice_age: timedelta | None,
    expected: list[tuple[str, DeadlineState]],
) -> None:
    now = T0 + age
    case = _case(status, notice_issued_at=None if notice_age is None else now - notice_age)
    found = deadlines(case, now, POLICY)
    assert [(d.name, d.state) for d in found] == expected
    for d in found:
        start = case.occurred_at if d.name == "notice" else case.notice_issued_at
        days = POLICY.notice_days if d.name == "notice" else POLICY.escalation_days
        assert d.due_at == start + timedelta(days=days)  # type: ignore[operator]


def _chain(n: int) -> list[ChainEntry]:
    prev, out = GENESIS, []
    for i in range(1, n + 1):
        at = T0 + timedelta(minutes=i)
        detail = detail_text({"i": i, "lý do": "ảnh mờ"})
        h = entry_hash(
            prev_hash=prev,
            seq=i,
            at=at,
            actor="an",
            action="confirm",
            violation_id=i,
            detail=detail,
        )
        out.append(ChainEntry(i, at, "an", "confirm", i, detail, prev, h))
        prev = h
    return out


def test_an_intact_chain_verifies() -> None:
    report = verify_chain(_chain(5))
    assert report.ok and report.entries == 5 and report.head == _chain(5)[-1].entry_hash


@pytest.mark.parametrize(
    ("index", "change", "problem"),
    [
        (2, {"actor": "mallory"}, "entry was altered"),
        (2, {"detail": '{"i":3}'}, "entry was altered"),
        (3, {"prev_hash": "f" * 64}, "previous hash does not match"),
        (1, {"seq": 7}, "expected entry 2"),
    ],
)
def test_tampering_is_found(index: int, change: dict[str, object], problem: str) -> None:
    chain = _chain(5)
    chain[index] = dataclasses.replace(chain[index], **change)  # type: ignore[arg-type]
    report = verify_chain(chain)
    assert not report.ok
    assert report.problem == problem
    assert report.entries == index


def test_a_deleted_entry_breaks_the_chain() -> None:
    chain = _chain(5)
    del chain[2]
    report = verify_chain(chain)
    assert not report.ok and report.first_bad_seq == 4


@pytest.mark.parametrize(
    ("kept", "head_seq", "problem"),
    [
        (5, 5, None),  # whole, and ending where its head says
        (3, 5, "the log ends at entry 3, but its head records entry 5"),
        (0, 5, "the log ends at entry 0, but its head records entry 5"),
        (5, 4, "the head records entry 4 with another hash than the log's end"),
    ],
)
def test_the_chain_must_end_at_its_head(kept: int, head_seq: int, problem: str | None) -> None:
    """Entries taken off the end leave an intact chain: only the head row shows it."""
    full = _chain(5)
    head = (head_seq, full[head_seq - 1].entry_hash)
    report = verify_chain(full[:kept], head)
    assert report.ok is (problem is None)
    if problem is not None:
        assert report.problem is not None and report.problem.startswith(problem)
        assert report.first_bad_seq == kept + 1
    assert verify_chain(full[:kept]).ok  # (without the head, nothing to see)


@pytest.mark.parametrize(
    ("start", "action", "actor"),
    [
        (Status.IN_REVIEW, Action.CONFIRM, SUPERVISOR),
        (Status.CONFIRMED, Action.ISSUE_NOTICE, SUPERVISOR),
    ],
)
def test_no_confirmation_or_notice_without_all_the_evidence(
    start: Status, action: Action, actor: Actor
) -> None:
    case = _case(start, evidence_on_file=False)
    with pytest.raises(WorkflowError) as err:
        decide(case, _command(action), actor, NOW, POLICY)
    assert err.value.code == "evidence_incomplete"
    assert err.value.params == {"action": action.value}
    assert action not in available_actions(case, actor, NOW, POLICY)
    # Everything else a reviewer does goes on: the case can still be rejected or released.
    if start is Status.IN_REVIEW:
        assert {Action.REJECT, Action.RELEASE, Action.CORRECT_PLATE} <= set(
            available_actions(case, actor, NOW, POLICY)
        )
    assert action in available_actions(_case(start), actor, NOW, POLICY)


def test_a_case_decides_nothing_on_evidence_unless_told() -> None:
    """The safe default: a case built without saying its evidence is on file has none."""
    assert Case(status=Status.IN_REVIEW, occurred_at=T0).evidence_on_file is False


@pytest.mark.parametrize(
    ("plate_text", "plate_valid", "corrected", "allowed"),
    [
        ("51F-123.45", True, None, True),
        ("51F-123.45", None, None, True),  # (a reading without a check said nothing wrong)
        (None, None, None, False),  # nothing read: nobody to address the notice to
        ("5IF-I23.4S", False, None, False),  # read, but not a Vietnamese plate
        ("5IF-I23.4S", False, "51F-123.45", True),  # corrected by the officer
        (None, None, "51F-123.45", True),
        ("", None, None, False),
    ],
)
@pytest.mark.parametrize(
    ("start", "action"),
    [(Status.IN_REVIEW, Action.CONFIRM), (Status.CONFIRMED, Action.ISSUE_NOTICE)],
)
def test_no_confirmation_or_notice_without_a_plate_to_act_on(
    start: Status,
    action: Action,
    plate_text: str | None,
    plate_valid: bool | None,
    corrected: str | None,
    allowed: bool,
) -> None:
    case = _case(start, plate_text=plate_text, plate_valid=plate_valid, plate_corrected=corrected)
    if allowed:
        assert decide(case, _command(action), SUPERVISOR, NOW, POLICY).status is not start
        assert action in available_actions(case, SUPERVISOR, NOW, POLICY)
        return
    with pytest.raises(WorkflowError) as err:
        decide(case, _command(action), SUPERVISOR, NOW, POLICY)
    assert err.value.code == "plate_required" and err.value.params == {"action": action.value}
    offered = available_actions(case, SUPERVISOR, NOW, POLICY)
    assert action not in offered
    if start is Status.IN_REVIEW:  # the way on: correct the plate, or reject
        assert {Action.CORRECT_PLATE, Action.REJECT} <= set(offered)
        fixed = decide(case, Command(Action.CORRECT_PLATE, plate="51f-123.45"), SUPERVISOR, NOW,
                       POLICY)  # fmt: skip
        assert decide(fixed, _command(action), SUPERVISOR, NOW, POLICY).status is Status.CONFIRMED


def test_a_supervisor_reopens_a_confirmed_case_an_officer_may_not() -> None:
    """A confirmed case that cannot be noticed (no plate to act on, from before that was
    required; a doubt) goes back to the queue with its confirmation undone, by a
    supervisor only; there its plate can be corrected and it can be decided again."""
    stuck = _case(Status.CONFIRMED, plate_text="5IF-I23.4S", plate_valid=False,
                  confirmed_by="an", decided_at=T0)  # fmt: skip
    with pytest.raises(WorkflowError) as err:
        decide(stuck, Command(Action.ISSUE_NOTICE), SUPERVISOR, NOW, POLICY)
    assert err.value.code == "plate_required" and "release" in str(err.value)
    assert available_actions(stuck, SUPERVISOR, NOW, POLICY) == [Action.RELEASE]
    with pytest.raises(WorkflowError) as err:
        decide(stuck, Command(Action.RELEASE), OFFICER, NOW, POLICY)
    assert err.value.code == "forbidden"
    assert Action.RELEASE not in available_actions(stuck, OFFICER, NOW, POLICY)
    reopened = decide(stuck, Command(Action.RELEASE), SUPERVISOR, NOW, POLICY)
    assert (reopened.status, reopened.confirmed_by, reopened.decided_at) == (Status.NEW, None, None)
    review = decide(reopened, Command(Action.START_REVIEW), OFFICER, NOW, POLICY)
    fixed = decide(review, Command(Action.CORRECT_PLATE, plate="51F-123.45"), OFFICER, NOW, POLICY)
    again = decide(fixed, Command(Action.CONFIRM), OFFICER, NOW, POLICY)
    assert decide(again, Command(Action.ISSUE_NOTICE), SUPERVISOR, NOW, POLICY).status is (
        Status.NOTICE_ISSUED
    )


# Who may take each action, written out rather than read back from ALLOWED_ROLES: an
# officer issuing a notice, or an admin or the IOC deciding a case, must fail a test.
_REVIEWERS = {Role.OFFICER, Role.SUPERVISOR}
EXPECTED_ROLES: dict[Action, set[Role]] = {
    Action.START_REVIEW: _REVIEWERS,
    Action.RELEASE: _REVIEWERS,
    Action.CORRECT_PLATE: _REVIEWERS,
    Action.CONFIRM: _REVIEWERS,
    Action.REJECT: _REVIEWERS,
    Action.ISSUE_NOTICE: {Role.SUPERVISOR},
    Action.CLOSE: {Role.SUPERVISOR},
    Action.ESCALATE: {Role.SUPERVISOR},
}


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_the_role_table_is_the_documented_one(action: Action) -> None:
    assert set(ALLOWED_ROLES[action]) == EXPECTED_ROLES[action]


@pytest.mark.parametrize(
    "plate",
    ["51f-123.46", " 51F-123.46", "51F-123.46  ", "\t51f-123.46\n"],
    ids=["lower", "leading-space", "trailing-spaces", "tab-and-newline"],
)
def test_a_plate_correction_is_stored_trimmed_and_upper_case(plate: str) -> None:
    """Only ``plate_corrected`` changes: the reviewer keeps the case, nothing is decided."""
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    after = decide(case, Command(Action.CORRECT_PLATE, plate=plate), OFFICER, NOW, POLICY)
    assert after == dataclasses.replace(case, plate_corrected="51F-123.46")


_NO_PLATE = {"plate_text": None}
# One way to meet each refusal: (start, its fields, action, actor, policy, code).
REFUSALS = [
    pytest.param(Status.CLOSED, {}, Action.CLOSE, Actor("x", Role.IOC), POLICY, "forbidden",
                 id="forbidden"),
    pytest.param(Status.REJECTED, {}, Action.CONFIRM, SUPERVISOR, POLICY, "invalid_transition",
                 id="invalid_transition"),
    pytest.param(Status.IN_REVIEW, {"reviewer": "an"}, Action.REJECT, OFFICER2, POLICY,
                 "not_reviewer", id="not_reviewer"),
    pytest.param(Status.IN_REVIEW, {}, Action.CORRECT_PLATE, SUPERVISOR, POLICY, "invalid_plate",
                 id="invalid_plate"),
    pytest.param(Status.IN_REVIEW, {}, Action.REJECT, SUPERVISOR, POLICY, "reason_required",
                 id="reason_required"),
    pytest.param(Status.IN_REVIEW, {}, Action.REJECT, SUPERVISOR, POLICY, "reason_too_long",
                 id="reason_too_long"),
    pytest.param(Status.CONFIRMED, {"confirmed_by": "cuong"}, Action.ISSUE_NOTICE, SUPERVISOR,
                 POLICY, "two_person_rule", id="two_person_rule"),
    pytest.param(Status.IN_REVIEW, {"evidence_on_file": False}, Action.CONFIRM, SUPERVISOR,
                 POLICY, "evidence_incomplete", id="evidence_incomplete"),
    pytest.param(Status.IN_REVIEW, _NO_PLATE, Action.CONFIRM, SUPERVISOR, POLICY,
                 "plate_required", id="plate_required"),
    # Which refusal speaks first where several apply.
    pytest.param(Status.CLOSED, {}, Action.CONFIRM, Actor("x", Role.ADMIN), POLICY, "forbidden",
                 id="role-before-status"),
    pytest.param(Status.IN_REVIEW, {"reviewer": "an", "evidence_on_file": False},
                 Action.CONFIRM, OFFICER2, POLICY, "not_reviewer", id="reviewer-before-evidence"),
    pytest.param(Status.IN_REVIEW, {**_NO_PLATE, "evidence_on_file": False}, Action.CONFIRM,
                 SUPERVISOR, POLICY, "evidence_incomplete", id="evidence-before-plate"),
]  # fmt: skip
_COMMANDS = {
    "invalid_plate": Command(Action.CORRECT_PLATE, plate="51F<b>"),
    "reason_required": Command(Action.REJECT, reason=" "),
    "reason_too_long": Command(Action.REJECT, reason="x" * (MAX_REASON + 1)),
}


@pytest.mark.parametrize(("start", "fields", "action", "actor", "policy", "code"), REFUSALS)
def test_each_refusal_has_its_code(
    start: Status,
    fields: dict[str, object],
    action: Action,
    actor: Actor,
    policy: Policy,
    code: str,
) -> None:
    command = _COMMANDS.get(code, _command(action))
    assert command.action is action
    with pytest.raises(WorkflowError) as err:
        decide(_case(start, **fields), command, actor, NOW, policy)
    assert err.value.code == code


def test_the_refusal_catalogue_is_exactly_the_codes_decide_raises() -> None:
    """The API maps each listed code to an HTTP status and the page words it: a code that
    ``decide`` raises but the catalogue lacks would reach the reviewer unworded."""
    raised = {p.values[-1] for p in REFUSALS}
    assert raised == set(WORKFLOW_REFUSALS)
    assert len(WORKFLOW_REFUSALS) == len(set(WORKFLOW_REFUSALS))


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("51a12345", "51A-123.45"),  # the punctuation left out
        ("51A 123.45", "51A-123.45"),  # a two-line car plate as two lines
        ("51f 1234", "51F-1234"),  # the older four digits
        ("59x1 12345", "59-X1 123.45"),  # a motorcycle's two lines
        ("29md1 123.45", "29-MD1 123.45"),  # an electric motorcycle, as the wire writes it
        ("NG-123-45", "NG-123-45"),  # (a diplomatic plate: not in the grammar, as typed)
        ("51F-I23.45", "51F-I23.45"),  # (read only by repairing a character: as typed)
    ],
)
def test_a_plate_correction_is_stored_in_the_normal_form_of_the_roadside_readings(
    typed: str, stored: str
) -> None:
    """One plate is one text: the notice names it so, a search finds it, and two cases of
    it are seen as the same act found twice, however the officer typed it."""
    case = _case(Status.IN_REVIEW, reviewer=OFFICER.username)
    after = decide(case, Command(Action.CORRECT_PLATE, plate=typed), OFFICER, NOW, POLICY)
    assert after.plate_corrected == stored
