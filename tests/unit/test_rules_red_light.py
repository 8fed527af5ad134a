"""Red light: crossed the stop line on red (after grace) and went on; near misses do not fire."""

from __future__ import annotations

import pytest

from edge.rules.base import RuleUnavailableError
from edge.rules.red_light import RedLightRule
from edge.rules.signal import PhaseHistory
from roadwatch.contract import LampColour, SignalSource, ViolationType
from tests.rules_tracks import T0, Track, geometry, hold, line_path, run, signal_plan

RED_AT_10_PHASES = ((0.0, LampColour.GREEN), (7.0, LampColour.YELLOW), (10.0, LampColour.RED))
RED_AT_10 = signal_plan(*RED_AT_10_PHASES)
RED_THEN_GREEN = signal_plan(
    (0.0, LampColour.GREEN),
    (7.0, LampColour.YELLOW),
    (10.0, LampColour.RED),
    (20.0, LampColour.GREEN),
)


NEXT_RED = signal_plan(
    (0.0, LampColour.GREEN),
    (10.0, LampColour.RED),
    (20.0, LampColour.GREEN),
    (40.0, LampColour.RED),
)

# Short reds for the cases timed sample by sample.
RED_10_TO_14 = signal_plan(
    (0.0, LampColour.GREEN),
    (7.0, LampColour.YELLOW),
    (10.0, LampColour.RED),
    (14.0, LampColour.GREEN),
)
RED_10_TO_13_5 = signal_plan(
    (0.0, LampColour.GREEN),
    (7.0, LampColour.YELLOW),
    (10.0, LampColour.RED),
    (13.5, LampColour.GREEN),
)

RED_GREEN_RED_GREEN = signal_plan(
    (0.0, LampColour.GREEN),
    (10.0, LampColour.RED),
    (20.0, LampColour.GREEN),
    (40.0, LampColour.RED),
    (50.0, LampColour.GREEN),
)


def straddle(y: float, swing: float, t0: float, t1: float) -> list[tuple[float, float, float]]:
    """Standing on the line y at x=500, the box bottom +-swing px across it, two frames a side.

    Ends on the far side, so the last crossing of the line is the one the rule judges.
    """
    n = max(2, round((t1 - t0) * 10.0) // 4 * 4)
    return [
        (t0 + (t1 - t0) * k / n, 500.0, y - swing if (k // 2) % 2 == 0 else y + swing)
        for k in range(1, n + 1)
    ]


def at_x(x: float, *points: tuple[float, float]) -> list[tuple[float, float, float]]:
    """Samples at the given (s, y) along x=``x``: for cases that need exact sample times."""
    return [(s, x, y) for s, y in points]


# Up lane 1 at 100 px/s (10 m/s): stop line (y=500) is reached 4 s after start.
def through(start_s: float, x: float = 500.0) -> list[tuple[float, float, float]]:
    return line_path((x, 900.0), (x, 200.0), start_s, start_s + 7.0)


CASES = {
    "crosses 2 s after red began and goes on": (Track(1, through(8.0)), RED_AT_10, True),
    "crosses on green": (Track(1, through(1.0)), RED_AT_10, False),
    "crosses on yellow": (Track(1, through(4.5)), RED_AT_10, False),
    "crosses inside the grace time": (Track(1, through(6.2)), RED_AT_10, False),
    "crosses as the grace time ends": (Track(1, through(6.5)), RED_AT_10, True),  # 0.5 s
    "waits over the line on red, goes on within max_went_on_s": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + hold((500, 470), 12.3, 180.0)
            + line_path((500, 470), (500, 200), 180.0, 182.7)[1:],
        ),
        RED_AT_10,
        True,
    ),
    "waits over the line on red longer than max_went_on_s (180 s), then goes on": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + hold((500, 470), 12.3, 195.0)
            + line_path((500, 470), (500, 200), 195.0, 197.7)[1:],
        ),
        RED_AT_10,
        False,
    ),
    "stops over the stop line": (
        Track(1, line_path((500, 900), (500, 470), 8.0, 12.3) + hold((500, 470), 12.3, 30.0)),
        RED_AT_10,
        False,
    ),
    "stops over the line, goes on after green": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + hold((500, 470), 12.3, 21.0)
            + line_path((500, 470), (500, 200), 21.1, 24.0),
        ),
        RED_THEN_GREEN,
        False,
    ),
    "never stops, reaches the second line just after green": (
        Track(1, through(15.7)),
        RED_THEN_GREEN,
        True,
    ),
    "stops over the line for 8 s, goes on while still red": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + hold((500, 470), 12.3, 19.0)
            + line_path((500, 470), (500, 200), 19.1, 19.9),
        ),
        RED_THEN_GREEN,
        True,
    ),
    "stops over the line through green, goes on in the next red": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + hold((500, 470), 12.3, 44.0)
            + line_path((500, 470), (500, 200), 44.1, 46.0),
        ),
        NEXT_RED,
        False,
    ),
    "jitters at the stop line during red": (
        Track(
            1,
            line_path((500, 900), (500, 502), 8.0, 12.0) + hold((500, 500), 12.0, 19.0, jitter=3.0),
        ),
        RED_AT_10,
        False,
    ),
    # +-5 px is +-0.5 m: past the hysteresis band, so each two-frame run is a crossing.
    "waits on the stop line jittering across it, goes on after green": (
        Track(
            1,
            line_path((500, 900), (500, 510), 8.0, 12.0)
            + straddle(500.0, 5.0, 12.0, 19.6)
            + line_path((500, 495), (500, 200), 20.5, 23.5),
        ),
        RED_THEN_GREEN,
        False,
    ),
    "stops over the line in one red, runs the next without stopping": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + hold((500, 470), 12.3, 14.0)
            + line_path((500, 470), (500, 540), 14.1, 15.0)
            + hold((500, 540), 15.0, 49.2)
            + line_path((500, 540), (500, 200), 49.3, 52.7),
        ),
        RED_GREEN_RED_GREEN,
        True,
    ),
    "waits just behind the line, then drives over it on red without stopping": (
        Track(
            1,
            line_path((500, 900), (500, 508), 4.0, 8.0)
            + hold((500, 508), 8.0, 18.5)
            + line_path((500, 508), (500, 496), 18.6, 19.4)
            + line_path((500, 494), (500, 200), 19.5, 22.5),
        ),
        RED_THEN_GREEN,
        True,
    ),
    # The stop line (y=500) is crossed at 10.83 s; standing at y=460 from 11.5 s to 12.5 s is
    # exactly stopped_s (1 s); the second line (y=400) is crossed at 14.1 s, after green.
    "stops over the line exactly stopped_s, goes on after green": (
        Track(
            1,
            at_x(500, (10.0, 600), (10.5, 540), (11.0, 480), (11.5, 460), (12.0, 460))
            + at_x(500, (12.5, 460), (13.0, 440), (13.5, 420), (14.0, 405), (14.5, 380))
            + at_x(500, (15.0, 360)),
        ),
        RED_10_TO_14,
        False,
    ),
    # Over the line on yellow (8.75 s), standing still up to the instant red begins (10 s);
    # backs out, crosses again on red (11.33 s), reaches the second line after green.
    "stands over the line until red begins, backs out, crosses on red, goes on after green": (
        Track(
            1,
            at_x(500, (8.0, 540), (8.5, 520), (9.0, 480), (9.5, 470), (10.0, 470))
            + at_x(500, (10.5, 540), (11.0, 540), (11.5, 480), (12.0, 460), (12.5, 444))
            + at_x(500, (13.0, 428), (13.5, 412), (14.0, 395), (14.5, 380), (15.0, 360)),
        ),
        RED_10_TO_13_5,
        False,
    ),
    "waits on the stop line jittering across it from before red, goes on after green": (
        Track(
            1,
            line_path((500, 900), (500, 510), 4.0, 8.0)
            + straddle(500.0, 5.0, 8.0, 19.6)
            + line_path((500, 495), (500, 200), 20.5, 23.5),
        ),
        RED_THEN_GREEN,
        False,
    ),
    # On the stop line at exactly 12 s and on the second line at exactly 192 s.
    "goes on exactly max_went_on_s (180 s) after crossing": (
        Track(
            1,
            line_path((500, 900), (500, 500), 8.0, 12.0)
            + hold((500, 470), 12.0, 191.0)
            + line_path((500, 470), (500, 400), 191.0, 192.0)[1:]
            + line_path((500, 400), (500, 300), 192.0, 193.0)[1:],
        ),
        RED_AT_10,
        True,
    ),
    "crosses on red, leaves past the lines' ends, comes back and reverses over the second line": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + line_path((500, 470), (300, 470), 12.4, 13.4)
            + line_path((300, 470), (300, 300), 13.5, 15.0)
            + line_path((300, 300), (500, 300), 15.1, 16.1)
            + line_path((500, 300), (500, 450), 16.2, 17.7),
        ),
        RED_AT_10,
        False,
    ),
    "pokes into the right-turn area, backs out, then goes straight on": (
        Track(
            1,
            line_path((580, 900), (580, 470), 8.0, 12.3)
            + line_path((580, 470), (580, 540), 12.4, 13.0)
            + line_path((580, 540), (500, 540), 13.1, 13.9)
            + line_path((500, 540), (500, 200), 14.0, 17.4),
        ),
        RED_AT_10,
        True,
    ),
    "turns right through the exemption": (
        Track(
            1,
            line_path((580, 900), (580, 470), 8.0, 12.3)
            + line_path((580, 460), (585, 300), 12.4, 14.0),
        ),
        RED_AT_10,
        False,
    ),
    "comes the other way across both lines": (
        Track(1, line_path((500, 200), (500, 900), 11.0, 18.0)),
        RED_AT_10,
        False,
    ),
    "backs out behind the line, then goes on at green": (
        Track(
            1,
            line_path((500, 900), (500, 470), 8.0, 12.3)
            + line_path((500, 470), (500, 540), 12.4, 13.0)
            + hold((500, 540), 13.0, 20.5)
            + line_path((500, 540), (500, 200), 20.6, 24.0),
        ),
        RED_THEN_GREEN,
        False,
    ),
    "crosses outside the lane's stop line": (
        Track(1, line_path((700, 900), (700, 200), 8.0, 15.0)),
        RED_AT_10,
        False,
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(CASES))
def test_red_light_table(name: str, metric: bool) -> None:
    track, signals, fires = CASES[name]
    found = run(RedLightRule(geometry(metric)), [track], signals)
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


def test_violation_carries_what_a_person_checks() -> None:
    [v] = run(RedLightRule(geometry(True)), [Track(7, through(8.0))], RED_AT_10)
    assert v.rule is ViolationType.RED_LIGHT
    assert (v.rule_version, v.config_version, v.camera) == (
        "red_light/4",
        "synthetic/7",
        "cam-test",
    )
    assert (v.track_id, v.lane) == (7, "1")
    # Stop line y=500 reached 4 s after the start at 8 s: 12 s, 2 s after red began.
    assert v.t == pytest.approx(T0 + 12.0, abs=1e-6)
    assert v.measured.signal_phase is LampColour.RED
    assert v.measured.time_since_red_s == pytest.approx(2.0, abs=1e-6)
    assert v.measured.distance_m == pytest.approx(10.0, abs=0.01)
    assert v.evidence.before <= v.t <= v.evidence.at < v.evidence.after
    # The frames either side of the stop line, and the first frame past the second line.
    assert (v.evidence.before - T0, v.evidence.at - T0, v.evidence.after - T0) == pytest.approx(
        (12.0, 12.1, 13.1), abs=1e-6
    )
    assert v.explanation == (
        "car crossed the stop line of lane 1 at 14:03:12.000, 2.0 s after red began at "
        "14:03:10.000, and went on past the second line at 14:03:13.000, while still red, "
        "10.0 m beyond where it crossed"
    )


def test_a_red_the_controller_reported_is_said_in_the_explanation() -> None:
    """No lamp in the pictures shows a phase the controller reported: the text says where
    the red came from."""
    told = signal_plan(*RED_AT_10_PHASES, source=SignalSource.CONTROLLER)
    [v] = run(RedLightRule(geometry(True)), [Track(7, through(8.0))], told)
    assert "2.0 s after red began at 14:03:10.000 (signal controller), and went on" in (
        v.explanation
    )


def test_a_red_the_controller_reported_is_said_even_when_a_lamp_showed_green_after() -> None:
    """The source said is that of the red at the crossing, not of the phase at the second line."""
    history = PhaseHistory()
    history.record(LampColour.GREEN, T0, SignalSource.LAMP)
    history.record(LampColour.RED, T0 + 10.0, SignalSource.CONTROLLER)
    history.record(LampColour.GREEN, T0 + 20.0, SignalSource.LAMP)
    [v] = run(RedLightRule(geometry(True)), [Track(7, through(15.7))], {"main": history})
    assert "(signal controller)" in v.explanation and v.explanation.endswith(
        ", without stopping, 10.0 m beyond where it crossed"
    )


def test_a_lane_is_judged_on_its_own_signal_head() -> None:
    """Another head's red (a turn arrow, say) does not make lane 1's green a red."""
    signals = {
        "left arrow": signal_plan(*RED_AT_10_PHASES)["main"],
        "main": signal_plan((0.0, LampColour.GREEN))["main"],
    }
    assert run(RedLightRule(geometry(True)), [Track(1, through(8.0))], signals) == []


def test_no_distance_in_metres_without_a_calibration() -> None:
    [v] = run(RedLightRule(geometry(False)), [Track(7, through(8.0))], RED_AT_10)
    assert v.measured.distance_m is None
    assert v.explanation.endswith("while still red")


def test_fires_once_per_track_and_keeps_tracks_apart() -> None:
    back_and_forth = (
        through(8.0)[:45]
        + line_path((500, 460), (500, 560), 12.6, 13.5)
        + line_path((500, 560), (500, 200), 13.6, 17.0)
    )
    found = run(
        RedLightRule(geometry(True)),
        [Track(1, back_and_forth), Track(2, through(8.5, x=450)), Track(3, through(1.0, x=420))],
        RED_AT_10,
    )
    assert sorted(v.track_id for v in found) == [1, 2]


def test_no_signal_head_state_means_no_judgement() -> None:
    assert run(RedLightRule(geometry(True)), [Track(1, through(8.0))], {}) == []


def test_unavailable_without_a_stop_line() -> None:
    lanes = [{"id": "1", "polygon": [[0, 0], [100, 0], [100, 100]]}]
    with pytest.raises(RuleUnavailableError, match="stop line"):
        RedLightRule(geometry(True, lanes=lanes, speed_traps=[]))
