from __future__ import annotations

import pytest

from edge.delivery_policy import (
    REFUSAL_ORDER,
    DiskBudget,
    backoff_delay,
    effective_budget,
    plan_admission,
)
from roadwatch.contract import EvidenceRole as R


@pytest.mark.parametrize(
    ("attempts", "jitter", "expected"),
    [
        (0, 0.0, 0.0),
        (1, 0.0, 1.0),
        (2, 0.0, 2.0),
        (3, 0.0, 4.0),
        (6, 0.0, 30.0),  # capped
        (500, 0.0, 30.0),  # no overflow
        (3, 0.5, 2.0),
    ],
)
def test_backoff_is_exponential_and_capped(attempts: int, jitter: float, expected: float) -> None:
    assert backoff_delay(attempts, base_s=1.0, cap_s=30.0, jitter=jitter) == expected


def test_backoff_refuses_bad_jitter() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff_delay(1, base_s=1.0, cap_s=2.0, jitter=1.0)


BUDGET = DiskBudget(limit_bytes=1000, event_reserve_bytes=100, alarm_fraction=0.8)
PACKAGE = {R.FRAME_BEFORE: 100, R.FRAME_AT: 100, R.FRAME_AFTER: 100, R.CLIP: 400}


@pytest.mark.parametrize(
    ("used", "kept", "refused", "event_fits"),
    [
        (0, (R.FRAME_BEFORE, R.FRAME_AT, R.FRAME_AFTER, R.CLIP), (), True),
        (290, (R.FRAME_BEFORE, R.FRAME_AT, R.FRAME_AFTER, R.CLIP), (), True),
        (300, (R.FRAME_BEFORE, R.FRAME_AT, R.FRAME_AFTER), (R.CLIP,), True),
        (700, (R.FRAME_AT, R.FRAME_AFTER), (R.CLIP, R.FRAME_BEFORE), True),
        (850, (R.FRAME_AT,), (R.CLIP, R.FRAME_BEFORE, R.FRAME_AFTER), True),
        (950, (), (R.CLIP, R.FRAME_BEFORE, R.FRAME_AFTER, R.FRAME_AT), True),
        (1085, (), (R.CLIP, R.FRAME_BEFORE, R.FRAME_AFTER, R.FRAME_AT), True),
        (1090, (), (R.CLIP, R.FRAME_BEFORE, R.FRAME_AFTER, R.FRAME_AT), True),  # reserve full
        (1095, (), (R.CLIP, R.FRAME_BEFORE, R.FRAME_AFTER, R.FRAME_AT), False),
    ],
)
def test_admission_refuses_the_clip_first_and_the_event_last(
    used: int, kept: tuple[R, ...], refused: tuple[R, ...], event_fits: bool
) -> None:
    plan = plan_admission(BUDGET, used, 10, PACKAGE)
    assert plan.kept == kept
    assert plan.refused == refused
    assert plan.event_fits is event_fits


@pytest.mark.parametrize(("used", "alarm"), [(0, False), (799, False), (800, True), (5000, True)])
def test_alarm_when_nearly_full(used: int, alarm: bool) -> None:
    assert BUDGET.alarm(used) is alarm


@pytest.mark.parametrize(
    ("limit", "reserve", "alarm_fraction"),
    [(0, 0, 0.8), (10, -1, 0.8), (10, 0, 1.5), (10, 0, 0.0), (10, 0, -0.1)],
)
def test_budget_refuses_nonsense(limit: int, reserve: int, alarm_fraction: float) -> None:
    with pytest.raises(ValueError):
        DiskBudget(limit_bytes=limit, event_reserve_bytes=reserve, alarm_fraction=alarm_fraction)


@pytest.mark.parametrize(("limit", "reserve", "alarm_fraction"), [(1, 0, 1.0), (10, 0, 0.01)])
def test_budget_takes_the_edges_of_its_ranges(
    limit: int, reserve: int, alarm_fraction: float
) -> None:
    budget = DiskBudget(
        limit_bytes=limit, event_reserve_bytes=reserve, alarm_fraction=alarm_fraction
    )
    assert budget.alarm(limit) and not budget.alarm(0)


def test_every_evidence_role_has_its_place_in_the_refusal_order() -> None:
    assert sorted(REFUSAL_ORDER) == sorted(R)
    assert len(set(REFUSAL_ORDER)) == len(REFUSAL_ORDER)


@pytest.mark.parametrize(
    ("used", "free", "limit", "reserve"),
    [
        (0, 10_000, 1000, 100),  # a roomy disk: the budget as configured
        (500, 560, 1000, 60),  # room for the limit, only part of the reserve
        (500, 200, 700, 0),  # other files fill the disk: the limit shrinks to it
        (500, 0, 500, 0),  # full: nothing more
        (0, 0, 1, 0),  # (a limit is never zero)
    ],
)
def test_the_budget_shrinks_to_the_free_disk(
    used: int, free: int, limit: int, reserve: int
) -> None:
    got = effective_budget(BUDGET, used, free, headroom=0)
    assert (got.limit_bytes, got.event_reserve_bytes) == (limit, reserve)
    assert got.alarm_fraction == BUDGET.alarm_fraction


MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("used", "free", "headroom", "limit", "reserve"),
    [
        (500, 760, 200, 1000, 60),  # the headroom comes off the free space
        (500, 400, 200, 700, 0),
        (500, 100, 200, 500, 0),  # less free than the headroom: nothing more
        (0, 64 * MIB + 350, None, 350, 100),  # the default headroom is 64 MiB
        (0, 64 * MIB - 1, None, 1, 100),  # (events alone go on into it: see below)
    ],
)
def test_the_headroom_stays_free(
    used: int, free: int, headroom: int | None, limit: int, reserve: int
) -> None:
    if headroom is None:
        got = effective_budget(BUDGET, used, free)
    else:
        got = effective_budget(BUDGET, used, free, headroom=headroom)
    assert (got.limit_bytes, got.event_reserve_bytes) == (limit, reserve)


@pytest.mark.parametrize(
    ("free", "reserve"),
    [
        (64 * MIB - 1, 100),  # short of the headroom: no evidence, the event still fits
        (8 * MIB + 50, 49),  # down to the events' headroom (limit 1 + reserve 49: the 50 bytes)
        (8 * MIB, 0),  # at the events' headroom: nothing more
    ],
)
def test_events_go_on_into_the_headroom(free: int, reserve: int) -> None:
    """A disk with less free than the 64 MiB headroom stores no evidence, but still the
    bare event, down to 8 MiB free: a violation refused is lost for good."""
    got = effective_budget(BUDGET, 0, free)
    assert (got.limit_bytes, got.event_reserve_bytes) == (1, reserve)
    assert got.disk_free_bytes == free  # (the disk, not the configuration, is short)
    plan = plan_admission(got, 0, 10, PACKAGE)
    assert plan.kept == () and plan.event_fits is (reserve > 0)


def test_a_roomy_disk_leaves_the_budget_as_configured() -> None:
    got = effective_budget(BUDGET, 0, 1 << 30)
    assert got == BUDGET and got.disk_free_bytes is None


def test_on_a_disk_filling_up_the_clip_goes_first_then_nothing_is_written() -> None:
    """With 350 bytes free (after headroom) the frames fit and the clip does not; with
    5 bytes free not even the event does, so nothing is written to a full disk."""
    roomy = plan_admission(effective_budget(BUDGET, 0, 350 + 64, headroom=64), 0, 10, PACKAGE)
    assert roomy.refused == (R.CLIP,) and roomy.event_fits
    full = plan_admission(effective_budget(BUDGET, 0, 5, headroom=0), 0, 10, PACKAGE)
    assert not full.event_fits
