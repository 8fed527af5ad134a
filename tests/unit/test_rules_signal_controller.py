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


def test_a_green_whose_messages_were_lost_is_never_read_as_red() -> None:
    """A head only the controller reports: red from -10 s, a green from 1 s to 4 s whose
    messages were all lost, red again from 4 s, told at 5 s. The two messages are close
    enough for their spans to join, but the second says when its red began: a crossing
    during the green is never judged against the red before it."""
    state = SignalState("main", SETTINGS, lamps=False)
    state.on_controller(told(RED, -10.0, 0.0))
    assert state.red_began(t0 + 2.5) == t0 - 10.0  # (what was known before 5 s)
    state.on_controller(told(RED, 4.0, 5.0))
    for s in (1.0, 2.5, 3.9):
        assert state.red_began(t0 + s) is None, s
        assert state.phase_at(t0 + s) is not RED, s
    assert state.red_began(t0 + 4.5) == t0 + 4.0


def _red_light_cases(
    messages: list[SignalPhase], state: SignalState | None = None
) -> tuple[list[tuple[float, float]], int]:
    """A car up lane 1 over the stop line at 2.5 s and the second line at 3.5 s, judged
    on a head only the controller reports, each message taken before the first frame at
    or after its sending: (when each case was found, its decisive time) and the
    crossings still waiting at the end."""
    from edge.rules.red_light import RedLightRule
    from tests.rules_tracks import Track, frames, geometry, hold, line_path

    rule = RedLightRule(geometry(True))
    state = state or SignalState("main", SETTINGS, lamps=False)
    car = Track(1, line_path((500.0, 900.0), (500.0, 200.0), -1.5, 5.5))
    parked = Track(2, hold((900.0, 500.0), -2.0, 12.0))  # (frames go on after the car)
    queue = sorted(messages, key=lambda m: m.sent_at)
    found = []
    for frame in frames([car, parked], True):
        while queue and queue[0].sent_at.timestamp() <= frame.t:
            assert state.on_controller(queue.pop(0), frame.t)
        found += [(frame.t - t0, v.t - t0) for v in rule.update(frame, {"main": state})]
    return found, rule.awaiting


def _every_second(phase: LampColour, changed_s: float, first: int, last: int) -> list[SignalPhase]:
    return [told(phase, changed_s, float(s)) for s in range(first, last + 1)]


GREEN = LampColour.GREEN


@pytest.mark.parametrize(
    ("messages", "fined_at"),
    [
        (_every_second(RED, -10.0, -2, 11), 4.0),
        # A green from 1.5 s to 4 s whose messages were lost: the last red stood, fresh.
        (_every_second(RED, -10.0, -2, 1) + _every_second(RED, 4.0, 4, 11), None),
        (_every_second(RED, -10.0, -2, 1), None),  # (silent from 1 s on: never told)
        (_every_second(RED, -10.0, -2, 3) + _every_second(GREEN, 4.0, 4, 11), 4.0),
        # A green from 1 s to 3.8 s whose messages were all lost, then a yellow: the red
        # is known only to 1 s, not up to the yellow.
        (_every_second(RED, -10.0, -2, 1) + _every_second(YELLOW, 3.8, 4, 11), None),
        ([*_every_second(RED, -10.0, -2, 3), told(RED, -10.0, 9.4)], 9.4),  # (within 6 s)
        ([*_every_second(RED, -10.0, -2, 3), told(RED, -10.0, 9.6)], None),  # (too late)
    ],
    ids=[
        "red throughout: fined when the next message comes",
        "a green whose messages were lost: not fined",
        "the controller silent after the crossing: not judged",
        "green only after the car went on: fined",
        "a green whose messages were lost, then a yellow: not fined",
        "the next message 5.9 s after the car went on: fined",
        "the next message 6.1 s after the car went on: not judged",
    ],
)
def test_a_crossing_on_the_controllers_red_is_judged_on_its_next_message(
    messages: list[SignalPhase], fined_at: float | None
) -> None:
    found, awaiting = _red_light_cases(messages)
    if fined_at is None:
        assert found == []
    else:
        [(at, decisive)] = found
        assert at == pytest.approx(fined_at) and decisive == pytest.approx(2.5, abs=0.11)
    assert awaiting == 0


def test_a_phase_that_does_not_follow_the_last_one_leaves_the_gap_unknown() -> None:
    """Red told to 1 s, then a yellow from 3.8 s: a green came between, unheard, so the
    red is not taken to stand to 3.8 s; a green from 2.8 s follows red, and red stands."""
    state = SignalState("main", SETTINGS, lamps=False)
    state.on_controller(told(RED, -10.0, 1.0))
    state.on_controller(told(YELLOW, 3.8, 4.0))
    assert state.red_began(t0 + 0.5) == t0 - 10.0
    assert state.red_began(t0 + 2.5) is None and state.phase_at(t0 + 2.5) is UNKNOWN
    assert state.phase_at(t0 + 3.9) is YELLOW
    state = SignalState("main", SETTINGS, lamps=False)
    state.on_controller(told(RED, -10.0, 1.0))
    state.on_controller(told(LampColour.GREEN, 2.8, 3.0))
    assert state.red_began(t0 + 2.5) == t0 - 10.0


def test_a_red_the_lamp_goes_on_showing_after_the_controller_fell_silent_is_the_lamps() -> None:
    """A head with lamps and a controller: the controller told red from -10 s and fell
    silent after -2 s; the lamp reads the same red on. A crossing at 2.5 s stands on the
    lamp (judged at once, no "(signal controller)"), not on the silent controller, whose
    next message never comes; at -3 s the red was still the controller's."""
    state = SignalState("main", SETTINGS)
    state.on_controller(told(RED, -10.0, -2.0))
    for k in range(-20, 61):
        state.on_lamp(t0 + k * 0.1, LIT_RED)
    assert state.source_at(t0 - 3.0) is SignalSource.CONTROLLER
    assert state.source_at(t0 + 2.5) is SignalSource.LAMP
    assert state.red_began(t0 + 2.5) == t0 - 10.0
    found, _ = _red_light_cases([], state)
    assert [at for at, _ in found] == [pytest.approx(3.7)]  # (the second line, confirmed)


GLARE = LampStrengths(150, 140, 145)  # (lit, but no lamp stands out: nothing read)


def test_a_controller_red_is_not_kept_past_its_silence_by_a_lamp_that_reads_nothing() -> None:
    """The controller told red from -10 s and fell silent after -2 s; the lamp reads
    nothing (glare) throughout. The red stands while the controller is fresh (to 1 s) and
    is unknown after: no lamp confirms it, and its green may have gone unheard."""
    state = SignalState("main", SETTINGS)
    state.on_controller(told(RED, -10.0, -2.0))
    for k in range(-20, 61):
        state.on_lamp(t0 + k * 0.1, GLARE)
    assert state.phase_at(t0 + 0.5) is RED
    assert state.source_at(t0 + 0.5) is SignalSource.CONTROLLER
    assert state.phase_at(t0 + 2.5) is UNKNOWN
    assert state.red_began(t0 + 2.5) is None
    found, _ = _red_light_cases([], state)
    assert found == []
    # The lamp reads red again later: the red is the lamp's, begun when it was read.
    for k in range(61, 81):
        state.on_lamp(t0 + k * 0.1, LIT_RED)
    assert state.phase_at(t0 + 7.9) is RED
    assert state.red_began(t0 + 7.9) == pytest.approx(t0 + 6.1)


@pytest.mark.parametrize("pushed", [False, True], ids=["no push", "a scene pushed"])
def test_a_crossing_waiting_on_the_controller_is_judged_after_a_scene_push(
    pushed: bool,
) -> None:
    """The car crosses on the controller's red (stop line at 2.5 s, second line at
    3.5 s, seen so at 3.7 s); a new scene is pushed at 3.9 s, before the controller's
    next message (4 s). The rule of the new scene judges the crossing on the lines and
    version of the scene it crossed under, once; before, the push dropped it."""
    from edge.rules.red_light import RedLightRule
    from tests.rules_tracks import Track, frames, geometry, hold, line_path

    state = SignalState("main", SETTINGS, lamps=False)
    rule = RedLightRule(geometry(True))
    car = Track(1, line_path((500.0, 900.0), (500.0, 200.0), -1.5, 5.5))
    parked = Track(2, hold((900.0, 500.0), -2.0, 12.0))
    queue = _every_second(RED, -10.0, -2, 11)
    found = []
    for frame in frames([car, parked], True):
        if pushed and frame.t - t0 >= 3.85 and rule.scene.config.version == "synthetic/7":
            rule, old = RedLightRule(geometry(True, version="synthetic/8")), rule
            rule.carry_fired(old)
        while queue and queue[0].sent_at.timestamp() <= frame.t:
            assert state.on_controller(queue.pop(0), frame.t)
        found += rule.update(frame, {"main": state})
    [v] = found
    assert v.t - t0 == pytest.approx(2.5) and v.config_version == "synthetic/7"
    assert rule.scene.config.version == ("synthetic/8" if pushed else "synthetic/7")
    assert rule.awaiting == 0


@pytest.mark.parametrize(
    ("messages_after", "unseen"),
    [((6.0,), None), ((4.0, 6.0), (3.86, 4.05))],
    ids=["fined under the new scene first", "fined while the car was not in view"],
)
def test_a_crossing_taken_over_by_a_pushed_scene_is_not_fined_again_under_it(
    messages_after: tuple[float, ...], unseen: tuple[float, float] | None
) -> None:
    """The car crosses on the controller's red (stop line at 2.5 s, second line at
    3.5 s), the controller's last message at 1 s; a scene pushed at 3.85 s moves the
    lines 25 and 22 m on, and the car crosses those too (at 5 s and 5.7 s), on the same
    red. One act, one case: either the crossing taken over is judged first (the
    controller speaks at 4 s, while the car is out of view) and the car is not judged
    again under the new scene, or the new scene fines it first (on the lamp's red, the
    controller stale from 4 s) and the crossing taken over, judged when the controller
    speaks again at 6 s, is not fined again."""
    import copy

    from edge.rules.red_light import RedLightRule
    from tests.rules_tracks import BASE, Track, frames, geometry, hold, line_path

    lanes = copy.deepcopy(BASE["lanes"])
    lanes[0]["stop_line"] = [[400, 250], [600, 250]]
    lanes[0]["went_on_line"] = [[400, 180], [600, 180]]
    lanes[0]["turn_exemptions"] = []
    state = SignalState("main", SETTINGS)
    rule = RedLightRule(geometry(True))
    path = line_path((500.0, 900.0), (500.0, 100.0), -1.5, 6.5)
    if unseen is not None:
        path = [s for s in path if not unseen[0] <= s[0] <= unseen[1]]
    car = Track(1, path)
    parked = Track(2, hold((900.0, 500.0), -2.0, 12.0))
    queue = [*_every_second(RED, -10.0, -2, 1), *(told(RED, -10.0, s) for s in messages_after)]
    found = []
    for frame in frames([car, parked], True):
        if frame.t - t0 >= 3.85 and rule.scene.config.version == "synthetic/7":
            rule, old = RedLightRule(geometry(True, version="synthetic/8", lanes=lanes)), rule
            rule.carry_fired(old)
        while queue and queue[0].sent_at.timestamp() <= frame.t:
            assert state.on_controller(queue.pop(0), frame.t)
        state.on_lamp(frame.t, LIT_RED)
        found += rule.update(frame, {"main": state})
    assert [v.track_id for v in found] == [1]
    assert rule.awaiting == 0


@pytest.mark.parametrize(
    "lamp",
    [None, GLARE, LampStrengths(20, 15, 200)],
    ids=["a head without lamps", "a lamp in glare", "a lamp that reads the green"],
)
@pytest.mark.parametrize(
    "after",
    [_every_second(YELLOW, 4.8, 5, 11), _every_second(RED, 4.8, 5, 11)],
    ids=["then a yellow", "then the next red"],
)
def test_a_green_whose_messages_were_lost_is_not_read_as_red_whatever_the_lamp_read(
    lamp: LampStrengths | None, after: list[SignalPhase]
) -> None:
    """The controller told red to 0 s and fell silent; a yellow from 4.8 s, or the next
    red, told at 5 s, shows that a green came between, unheard. The car crossed at 2.5 s:
    the red is known only to 0 s, and the crossing is not fined, whether the head has no
    lamps, its lamp read nothing (glare) or read the green once the controller went stale
    (3 s)."""
    from edge.rules.red_light import RedLightRule
    from tests.rules_tracks import Track, frames, geometry, hold, line_path

    state = SignalState("main", SETTINGS, lamps=lamp is not None)
    rule = RedLightRule(geometry(True))
    car = Track(1, line_path((500.0, 900.0), (500.0, 200.0), -1.5, 5.5))
    parked = Track(2, hold((900.0, 500.0), -2.0, 12.0))
    queue = [*_every_second(RED, -10.0, -2, 0), *after]
    found = []
    for frame in frames([car, parked], True):
        while queue and queue[0].sent_at.timestamp() <= frame.t:
            assert state.on_controller(queue.pop(0), frame.t)
        if lamp is not None:
            state.on_lamp(frame.t, lamp)
        found += rule.update(frame, {"main": state})
    assert found == []
    assert state.red_began(t0 + 2.5) is None
