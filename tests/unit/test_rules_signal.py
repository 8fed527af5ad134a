"""Signal state: lamp reading with hysteresis and dwell, controller messages, phase history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from numpy.typing import NDArray

from edge.rules.scene import LampSettings, SignalHead
from edge.rules.signal import (
    LampReader,
    LampStrengths,
    PhaseHistory,
    SignalState,
    lamp_region,
    lamp_strengths,
)
from roadwatch.contract import LampColour, SignalPhase, SignalSource

RED, YELLOW, GREEN = LampColour.RED, LampColour.YELLOW, LampColour.GREEN
SETTINGS = LampSettings(min_dwell_s=0.25, controller_ttl_s=3.0)
LIT_RED = LampStrengths(200, 20, 15)
LIT_GREEN = LampStrengths(15, 20, 180)
T = datetime(2026, 11, 23, 7, 3, 0, tzinfo=UTC)


def feed(reader: LampReader, seq: list[LampStrengths], dt: float = 0.1) -> list[LampColour]:
    return [reader.update(i * dt, x).colour for i, x in enumerate(seq)]


def test_lamp_needs_the_minimum_dwell_and_back_dates_the_change() -> None:
    reader = LampReader(SETTINGS)
    out = feed(reader, [LIT_RED] * 5 + [LIT_GREEN] * 5)
    assert out == [LampColour.UNKNOWN] * 3 + [RED] * 5 + [GREEN] * 2
    assert reader.reading.began_at == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("noise", "kept"),
    [
        (LIT_GREEN, RED),  # one odd frame shorter than the dwell
        (LampStrengths(120, 20, 100), RED),  # red still 1.2x green: within the hysteresis band
        (LampStrengths(0, 0, 0), RED),  # one dark frame
    ],
)
def test_one_noisy_frame_does_not_flip_the_state(noise: LampStrengths, kept: LampColour) -> None:
    reader = LampReader(SETTINGS)
    out = feed(reader, [LIT_RED] * 5 + [noise] + [LIT_RED] * 4)
    assert out[-5:] == [kept] * 5


def test_hysteresis_turns_on_at_enter_ratio_and_stays_on_to_exit_ratio() -> None:
    reader = LampReader(SETTINGS)
    assert reader.raw(LampStrengths(150, 100, 10)) is LampColour.UNKNOWN  # 1.5x: not enough
    feed(reader, [LIT_RED] * 4)
    assert reader.raw(LampStrengths(150, 100, 10)) is RED  # 1.5x keeps a lit red on
    assert reader.raw(LampStrengths(120, 100, 10)) is LampColour.UNKNOWN  # below 1.3x
    assert reader.raw(LampStrengths(5, 6, 4)) is LampColour.OFF


def test_lamp_strength_is_relative_not_absolute() -> None:
    head = SignalHead(red=(0, 0, 4, 4), yellow=(0, 4, 4, 8), green=(0, 8, 4, 12))
    image = np.full((12, 4, 3), 40, np.uint8)
    image[0:4] = (40, 40, 230)  # lit red (BGR)
    bright = lamp_strengths(image, head)
    dim = lamp_strengths((image // 4).astype(np.uint8), head)
    glare = lamp_strengths(np.clip(image.astype(int) + 120, 0, 255).astype(np.uint8), head)
    for x in (bright, dim, glare):
        assert x.red > 1.8 * max(x.yellow, x.green, 1.0)


def test_the_lamps_region_alone_measures_as_the_whole_frame() -> None:
    head = SignalHead(red=(30, 10, 34, 14), yellow=(30, 14, 34, 18), green=(30, 18, 34, 22))
    image = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert lamp_region(head) == (30, 10, 34, 22)
    x0, y0, x1, y1 = lamp_region(head)
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    assert lamp_strengths(patch, head, origin=(x0, y0)) == lamp_strengths(image, head)


def test_fresh_controller_wins_and_stale_one_expires() -> None:
    state = SignalState("main", SETTINGS)
    t0 = T.timestamp()
    message = SignalPhase(
        site="s1",
        node="n1",
        camera="c1",
        phase=GREEN,
        changed_at=T - timedelta(seconds=5),
        sent_at=T,
    )
    state.on_controller(message)
    # The lamp says red, but the controller said green 0-3 s ago: green stands.
    for i in range(20):
        phase = state.on_lamp(t0 + i * 0.1, LIT_RED)
    assert phase is GREEN
    assert [s.source for s in state.history.spans] == [SignalSource.CONTROLLER]
    # Four seconds later the controller is stale: the lamp's red takes over.
    assert state.on_lamp(t0 + 4.0, LIT_RED) is RED
    assert [s.source for s in state.history.spans][-1] == SignalSource.LAMP


def test_older_controller_message_is_ignored_and_a_newer_one_corrects_history() -> None:
    state = SignalState("main", SETTINGS)
    red = SignalPhase(site="s1", node="n1", camera="c1", phase=RED, changed_at=T, sent_at=T)
    state.on_controller(red)
    old = red.model_copy(update={"phase": GREEN, "sent_at": T - timedelta(seconds=1)})
    state.on_controller(old)
    assert state.phase_at(T.timestamp() + 1) is RED
    corrected = red.model_copy(
        update={"changed_at": T - timedelta(seconds=0.4), "sent_at": T + timedelta(seconds=1)}
    )
    state.on_controller(corrected)
    # abs: approx is relative by default, and 1e-6 of an epoch time is half an hour.
    assert state.red_began(T.timestamp() + 1) == pytest.approx(T.timestamp() - 0.4, abs=1e-6)
    with pytest.raises(ValueError, match="head"):
        state.on_controller(red.model_copy(update={"head": "left"}))


def test_phase_history_answers_time_since_red() -> None:
    history = PhaseHistory()
    for began, colour in [(0.0, GREEN), (30.0, YELLOW), (33.0, RED), (60.0, GREEN)]:
        history.record(colour, began, SignalSource.LAMP)
    assert history.time_since_red(35.5) == pytest.approx(2.5)
    assert history.time_since_red(32.0) is None
    assert history.time_since_red(61.0) is None
    assert history.phase_at(-1.0) is LampColour.UNKNOWN
    assert history.phase_at(59.9) is RED


def test_phase_history_is_bounded() -> None:
    history = PhaseHistory(horizon_s=100.0)
    for i in range(1000):
        history.record([RED, GREEN][i % 2], float(i), SignalSource.LAMP)
    assert len(history.spans) <= 102 and history.phase_at(999.0) is GREEN


# Ratios and strengths chosen so the products are exact in binary floating point.
EXACT = LampSettings(enter_ratio=2.0, exit_ratio=1.5, min_strength=20.0, min_dwell_s=0.0)
DARK = LampSettings(enter_ratio=2.0, exit_ratio=1.5, min_strength=0.0, min_dwell_s=0.0)
LIT_YELLOW = LampStrengths(20, 190, 15)


def lamp_row(chroma: list[int]) -> tuple[NDArray[np.uint8], SignalHead]:
    """A three-row BGR frame whose red row has the given colour strengths, the rest grey."""
    n = len(chroma)
    image = np.full((3, n, 3), 50, np.uint8)
    image[0, :, 2] = [50 + c for c in chroma]
    head = SignalHead(red=(0, 0, n, 1), yellow=(0, 1, n, 2), green=(0, 2, n, 3))
    return image, head


@pytest.mark.parametrize(
    ("chroma", "strength"),
    [
        pytest.param([10, 20, 30, 40], 35.0, id="even: mean of the brighter half"),
        pytest.param([40, 10, 50, 30, 20], 40.0, id="odd: the median and above"),
        pytest.param([0, 0, 200, 200], 200.0, id="round lamp in a square: the lit half"),
    ],
)
def test_lamp_strength_is_the_mean_of_the_brighter_half(chroma: list[int], strength: float) -> None:
    image, head = lamp_row(chroma)
    assert lamp_strengths(image, head) == LampStrengths(strength, 0.0, 0.0)


def test_lamps_outside_the_image_measure_zero() -> None:
    head = SignalHead(red=(10, 10, 12, 12), yellow=(10, 12, 12, 14), green=(10, 14, 12, 16))
    image = np.full((8, 8, 3), (0, 0, 255), np.uint8)
    assert lamp_strengths(image, head) == LampStrengths(0.0, 0.0, 0.0)


def test_a_patch_that_starts_inside_a_lamp_measures_the_part_it_holds() -> None:
    image, head = lamp_row([0, 0, 100, 100, 0, 0])
    patch = np.ascontiguousarray(image[:, 2:])
    assert lamp_strengths(patch, head, origin=(2, 0)).red == 100.0


@pytest.mark.parametrize(
    ("head", "region"),
    [
        pytest.param(
            SignalHead(red=(30, 10, 34, 14), yellow=(30, 14, 34, 18), green=(30, 18, 34, 22)),
            (30, 10, 34, 22),
            id="vertical",
        ),
        pytest.param(
            SignalHead(red=(10, 5, 14, 9), yellow=(14, 5, 18, 9), green=(18, 5, 22, 9)),
            (10, 5, 22, 9),
            id="horizontal",
        ),
    ],
)
def test_lamp_region_holds_every_lamp(head: SignalHead, region: tuple[int, ...]) -> None:
    assert lamp_region(head) == region


@pytest.mark.parametrize(
    ("settings", "lit", "x", "colour"),
    [
        pytest.param(EXACT, None, LampStrengths(20, 5, 5), RED, id="exactly min_strength is lit"),
        pytest.param(EXACT, None, LampStrengths(19.5, 5, 5), LampColour.OFF, id="below it: off"),
        pytest.param(EXACT, None, LampStrengths(100, 50, 10), RED, id="exactly enter_ratio: on"),
        pytest.param(EXACT, None, LampStrengths(99, 50, 10), LampColour.UNKNOWN, id="below: not"),
        pytest.param(EXACT, RED, LampStrengths(75, 50, 10), RED, id="exactly exit_ratio: stays"),
        pytest.param(
            EXACT, RED, LampStrengths(74, 50, 10), LampColour.UNKNOWN, id="below exit_ratio: goes"
        ),
        pytest.param(
            DARK, None, LampStrengths(1.5, 0.2, 0), LampColour.UNKNOWN, id="faint glow: not lit"
        ),
        pytest.param(
            DARK, RED, LampStrengths(1.2, 0.2, 0), LampColour.UNKNOWN, id="fades to a glow: out"
        ),
    ],
)
def test_lamp_thresholds_are_inclusive_and_dark_lamps_count_as_one(
    settings: LampSettings, lit: LampColour | None, x: LampStrengths, colour: LampColour
) -> None:
    reader = LampReader(settings)
    if lit is RED:
        reader.update(0.0, LIT_RED)  # no dwell: red at once
        assert reader.reading.colour is RED
    assert reader.raw(x) is colour


@pytest.mark.parametrize(
    ("frames", "colour", "began_at"),
    [
        pytest.param(
            [LIT_RED] * 5 + [LIT_GREEN, LIT_RED, LIT_GREEN, LIT_GREEN],
            RED,
            0.0,
            id="flicker does not add up to the dwell",
        ),
        pytest.param(
            [LIT_RED] * 5 + [LIT_GREEN] + [LIT_YELLOW] * 4,
            YELLOW,
            0.6,
            id="a change of mind restarts the dwell",
        ),
    ],
)
def test_the_dwell_needs_one_colour_throughout(
    frames: list[LampStrengths], colour: LampColour, began_at: float
) -> None:
    reader = LampReader(SETTINGS)
    feed(reader, frames)
    assert reader.reading.colour is colour
    assert reader.reading.began_at == pytest.approx(began_at)


def test_the_dwell_is_inclusive() -> None:
    reader = LampReader(LampSettings(min_dwell_s=0.5))
    out = [reader.update(t, LIT_RED).colour for t in (0.0, 0.25, 0.5)]
    assert out == [LampColour.UNKNOWN, LampColour.UNKNOWN, RED]


CTRL, LAMP = SignalSource.CONTROLLER, SignalSource.LAMP
Record = tuple[LampColour, float, SignalSource]

HISTORY_CASES: dict[str, tuple[list[Record], float, LampColour, float | None]] = {
    # records, query time, phase then, red began
    "the controller back-dates its own red": (
        [(RED, 100.0, CTRL), (RED, 99.5, CTRL)],
        101.0,
        RED,
        99.5,
    ),
    "a late lamp reading does not turn the past red": (
        [(GREEN, 0.0, CTRL), (YELLOW, 10.0, CTRL), (RED, 8.0, LAMP)],
        9.0,
        GREEN,
        None,
    ),
    "the lamp does not move the start of the controller's red": (
        [(RED, 10.0, CTRL), (RED, 12.0, LAMP)],
        13.0,
        RED,
        10.0,
    ),
    "a retracted green continues the red before it": (
        [(RED, 0.0, CTRL), (GREEN, 10.0, CTRL), (RED, 5.0, CTRL)],
        11.0,
        RED,
        0.0,
    ),
    "before the first phase": ([(RED, 10.0, LAMP)], 9.0, LampColour.UNKNOWN, None),
    "no phase at all": ([], 9.0, LampColour.UNKNOWN, None),
}


@pytest.mark.parametrize("name", list(HISTORY_CASES))
def test_phase_history_records(name: str) -> None:
    records, t, phase, red_began = HISTORY_CASES[name]
    history = PhaseHistory()
    for colour, began_at, source in records:
        history.record(colour, began_at, source)
    assert history.phase_at(t) is phase
    assert history.red_began(t) == red_began


def test_phase_history_keeps_the_phase_in_force_at_its_horizon() -> None:
    history = PhaseHistory(horizon_s=100.0)
    history.record(RED, 0.0, SignalSource.LAMP)
    history.record(GREEN, 150.0, SignalSource.LAMP)
    assert history.phase_at(60.0) is RED  # 90 s before the latest phase: within the horizon


def test_phase_history_keeps_at_most_max_spans() -> None:
    history = PhaseHistory(max_spans=4)
    for i in range(10):
        history.record([RED, GREEN][i % 2], float(i), SignalSource.LAMP)
    assert [s.began_at for s in history.spans] == [6.0, 7.0, 8.0, 9.0]


@pytest.mark.parametrize(
    ("age", "fresh"),
    [
        pytest.param(-0.5, True, id="frame from just before the message"),
        pytest.param(0.0, True, id="at once"),
        pytest.param(3.0, True, id="exactly the ttl"),
        pytest.param(3.5, False, id="older than the ttl"),
    ],
)
def test_controller_is_fresh_up_to_and_including_its_ttl(age: float, fresh: bool) -> None:
    state = SignalState("main", SETTINGS)
    message = SignalPhase(site="s1", node="n1", camera="c1", phase=RED, changed_at=T, sent_at=T)
    state.on_controller(message)
    assert state.controller_fresh(T.timestamp() + age) is fresh


def test_a_controller_message_as_old_as_the_last_is_taken() -> None:
    state = SignalState("main", SETTINGS)
    red = SignalPhase(site="s1", node="n1", camera="c1", phase=RED, changed_at=T, sent_at=T)
    state.on_controller(red)
    state.on_controller(red.model_copy(update={"phase": GREEN}))
    assert state.phase_at(T.timestamp() + 1) is GREEN
