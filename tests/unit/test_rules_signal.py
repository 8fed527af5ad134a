"""Signal state: lamp reading with hysteresis and dwell, controller messages, phase history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

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
