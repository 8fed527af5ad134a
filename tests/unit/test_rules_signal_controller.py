"""The controller beside the lamp image: what it said while fresh stands, and a head only
the controller reports is unknown while it is silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.rules.scene import LampSettings
from edge.rules.signal import LampStrengths, SignalState
from roadwatch.contract import LampColour, SignalPhase, SignalSource

RED, YELLOW, UNKNOWN = LampColour.RED, LampColour.YELLOW, LampColour.UNKNOWN
SETTINGS = LampSettings(min_dwell_s=0.25, controller_ttl_s=3.0)
LIT_RED = LampStrengths(200, 20, 15)
T = datetime(2026, 11, 23, 7, 3, 0, tzinfo=UTC)
t0 = T.timestamp()


def told(phase: LampColour, changed_s: float, sent_s: float) -> SignalPhase:
    return SignalPhase(
        site="s1", node="n1", camera="c1", phase=phase,
        changed_at=T + timedelta(seconds=changed_s), sent_at=T + timedelta(seconds=sent_s),
    )  # fmt: skip


def test_a_lamp_reading_begun_earlier_does_not_erase_what_the_controller_said() -> None:
    """The lamp reads red from -1 s; the controller says yellow from 0 s and falls silent.
    Yellow stands while it is fresh (to 3 s); the lamp's red takes over from then, not
    from before the controller's yellow."""
    state = SignalState("main", SETTINGS)
    for k in range(11):
        state.on_lamp(t0 - 1.0 + k * 0.1, LIT_RED)
    state.on_controller(told(YELLOW, 0.0, 0.0))
    for k in range(1, 41):
        state.on_lamp(t0 + k * 0.1, LIT_RED)
    assert state.phase_at(t0 - 0.5) is RED
    assert state.phase_at(t0 + 2.0) is YELLOW
    assert state.source_at(t0 + 2.0) is SignalSource.CONTROLLER
    assert state.phase_at(t0 + 3.5) is RED
    assert state.red_began(t0 + 3.5) == t0 + 3.0
    assert state.source_at(t0 + 3.5) is SignalSource.LAMP


def test_a_head_only_the_controller_reports_is_unknown_while_it_is_silent() -> None:
    state = SignalState("main", SETTINGS, lamps=False)
    assert state.phase_at(t0) is UNKNOWN
    state.on_controller(told(RED, -2.0, 0.0))
    assert state.phase_at(t0 + 1.0) is RED
    assert state.red_began(t0 + 1.0) == t0 - 2.0
    assert state.source_at(t0 + 1.0) is SignalSource.CONTROLLER
    assert state.phase_at(t0 + 3.0) is RED  # (3 s old: still fresh)
    # Silent past controller_ttl_s: no red stands on a controller that may be down.
    assert state.phase_at(t0 + 3.1) is UNKNOWN
    assert state.red_began(t0 + 3.1) is None
    assert state.source_at(t0 + 3.1) is None
    state.on_controller(told(RED, -2.0, 5.0))  # (it sends again: the same red)
    assert state.red_began(t0 + 6.0) == t0 - 2.0


def test_a_head_with_lamps_keeps_its_lamp_reading_when_the_controller_is_silent() -> None:
    state = SignalState("main", SETTINGS)
    for k in range(5):
        state.on_lamp(t0 + k * 0.1, LIT_RED)
    assert state.phase_at(t0 + 60.0) is RED  # (no controller at all: the lamp decides)


def test_a_controller_message_far_from_the_frames_time_is_refused() -> None:
    """One sent long after the frame (a recording replayed on its own clock while a
    controller sends the time now) or that arrives late is not fresh for it: refused, it
    neither stands nor rewrites the history, and the lamp decides."""
    state = SignalState("main", SETTINGS)
    assert not state.on_controller(told(YELLOW, 3600.0, 3600.0), t0)  # (an hour after)
    assert not state.on_controller(told(YELLOW, -10.0, -3.5), t0)  # (arrived 3.5 s late)
    for k in range(10):
        state.on_lamp(t0 + k * 0.1, LIT_RED)
    assert state.phase_at(t0 + 0.9) is RED
    assert state.source_at(t0 + 0.9) is SignalSource.LAMP
    assert state.on_controller(told(YELLOW, 0.5, 3.9), t0 + 0.9)  # (3 s ahead: fresh)
    assert state.phase_at(t0 + 0.9) is YELLOW


@pytest.mark.parametrize(("frame_s", "fresh"), [(0.0, True), (-3.0, True), (-3.1, False),
                                               (3.0, True), (3.1, False)])  # fmt: skip
def test_a_controller_message_is_fresh_within_its_ttl_either_side(
    frame_s: float, fresh: bool
) -> None:
    state = SignalState("main", SETTINGS)
    state.on_controller(told(YELLOW, 0.0, 0.0))
    assert state.controller_fresh(t0 + frame_s) is fresh


def test_a_head_only_the_controller_reports_answers_for_the_times_its_messages_cover() -> None:
    """A red-light case is judged when the vehicle has gone on, seconds after it crossed:
    the phase at the crossing is known while the controller's messages covered that time,
    and not where it fell silent."""
    state = SignalState("main", SETTINGS, lamps=False)
    for second in [*range(0, 11), *range(20, 31)]:  # (silent from 10 s to 20 s)
        state.on_controller(told(RED, -2.0, float(second)))
    assert state.red_began(t0 + 2.0) == t0 - 2.0  # (asked at 30 s)
    assert state.red_began(t0 + 13.0) == t0 - 2.0  # (3 s after the last message before)
    assert state.red_began(t0 + 15.0) is None and state.phase_at(t0 + 15.0) is UNKNOWN
    assert state.red_began(t0 + 17.0) == t0 - 2.0  # (3 s before the first one after)
    assert state.red_began(t0 - 3.5) is None  # (before the first message's cover)
