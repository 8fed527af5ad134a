"""Speeding: the lower bound above limit + tolerance, sustained; Decree 168/2024 bands."""

from __future__ import annotations

import pytest

from edge.rules.base import RuleUnavailableError
from edge.rules.speeding import SpeedingRule, decree_band
from roadwatch.contract import VehicleClass, ViolationType
from tests.rules_tracks import T0, Track, geometry, line_path, run

# A slow drive up lane 1 that stays clear of the speed trap, with a scripted speed per sample.
PATH = line_path((500, 690), (500, 300), 0.0, 2.0)  # 21 samples


def steady(kmh: float, uncertainty: float) -> list[tuple[float, float]]:
    return [(kmh, uncertainty)] * len(PATH)


CAR, MOTO = VehicleClass.CAR, VehicleClass.MOTORCYCLE
CASES = {
    "car 80 +- 2 in a 60 lane": (CAR, steady(80, 2), "from 10 to 20 km/h over"),
    "motorcycle 58 +- 1 in its 50 limit": (MOTO, steady(58, 1), "from 5 to under 10 km/h over"),
    "car 100 +- 3": (CAR, steady(100, 3), "over 35 km/h over"),
    "car 64 +- 1: within the tolerance": (CAR, steady(64, 1), None),
    "car at the limit": (CAR, steady(60, 0.5), None),
    "car 68 +- 5: the lower bound is within tolerance": (CAR, steady(68, 5), None),
    "one spike of 120 in a 55 drive": (
        CAR,
        [(55.0, 1.0)] * 10 + [(120.0, 2.0)] + [(55.0, 1.0)] * 10,
        None,
    ),
    "two spikes then normal": (CAR, [(90.0, 2.0)] * 2 + [(58.0, 1.0)] * 19, None),
    "no speed measured": (CAR, [(None, None)] * len(PATH), None),
    "a speed without its uncertainty": (CAR, [(90.0, None)] * len(PATH), None),
    # the lower bound must be above limit + tolerance (60 + 5), not at it
    "car 66 +- 1: the lower bound is exactly limit + tolerance": (CAR, steady(66, 1), None),
    "car 66.1 +- 1: just above": (CAR, steady(66.1, 1), "from 5 to under 10 km/h over"),
    # three samples in a row over: a sample under the limit or without a speed starts again
    "two over, one under, two over": (
        CAR,
        ([(90.0, 2.0)] * 2 + [(55.0, 1.0)]) * 7,
        None,
    ),
    "two over, one unmeasured, two over": (
        CAR,
        ([(90.0, 2.0)] * 2 + [(None, None)]) * 7,
        None,
    ),
    "over, unmeasured, over three times": (
        CAR,
        [(90.0, 2.0), (None, None)] + [(90.0, 2.0)] * 3 + [(55.0, 1.0)] * 16,
        "over 20 to 35 km/h over",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_speeding_table(name: str) -> None:
    vehicle, speeds, band = CASES[name]
    track = Track(4, PATH, vehicle=vehicle, speeds=speeds)  # type: ignore[arg-type]
    found = run(SpeedingRule(geometry(True)), [track])
    if band is None:
        assert found == [], [v.explanation for v in found]
        return
    [v] = found
    assert v.rule is ViolationType.SPEEDING and v.lane == "1"
    assert f"Decree 168/2024 band {band}" in v.explanation


def test_measured_values_and_explanation() -> None:
    speeds = [(80.0, 2.0)] * 3 + [(79.0, 3.0)] + [(85.0, 2.0)] * 17
    [v] = run(SpeedingRule(geometry(True)), [Track(4, PATH, speeds=speeds)])
    # Fires on the third sample over; reports the most conservative of those samples.
    assert (v.measured.speed_kmh, v.measured.speed_uncertainty_kmh) == (80.0, 2.0)
    assert v.measured.speed_limit_kmh == 60.0
    assert v.explanation == (
        "car in lane 1 measured 80.0 ± 2.0 km/h (at least 78.0 km/h) at 14:03:00.000; the "
        "limit for car is 60 km/h: 18.0 km/h over, Decree 168/2024 band from 10 to 20 km/h over"
    )


def test_the_run_reports_its_slowest_sample_and_its_own_times() -> None:
    """The evidence frames: the run's first sample, its slowest (whose speed is reported)
    and the sample that completed it."""
    speeds = [(55.0, 1.0)] * 4 + [(85.0, 2.0), (80.0, 2.0), (90.0, 2.0)] + [(55.0, 1.0)] * 14
    [v] = run(SpeedingRule(geometry(True)), [Track(4, PATH, speeds=speeds)])
    t = [T0 + s for s, _x, _y in PATH]
    assert (v.evidence.before, v.evidence.at, v.evidence.after) == (t[4], t[5], t[6])
    assert (v.t, v.measured.speed_kmh, v.measured.speed_uncertainty_kmh) == (t[5], 80.0, 2.0)


def test_a_speed_beyond_the_contract_is_reported_at_its_bound() -> None:
    [v] = run(SpeedingRule(geometry(True)), [Track(4, PATH, speeds=steady(700, 150))])
    assert (v.measured.speed_kmh, v.measured.speed_uncertainty_kmh) == (400.0, 100.0)
    assert "700.0 ± 150.0 km/h" in v.explanation  # (the explanation keeps what was measured)


def test_per_frame_speeds_need_a_calibration() -> None:
    """Without metres only a speed trap times a vehicle; a per-frame speed is not judged."""
    track = Track(4, PATH, speeds=steady(90, 2))
    assert run(SpeedingRule(geometry(False)), [track]) == []


def test_a_car_is_judged_by_its_voted_class_not_one_frame_label() -> None:
    """58 +- 1 is over a motorcycle's 50 + 5 but not a car's 60 + 5: three frames labelled
    motorcycle in a car's track do not make it one."""
    classes = [CAR] * 10 + [MOTO] * 3 + [CAR] * 8
    track = Track(4, PATH, speeds=steady(58, 1), classes=classes)
    assert run(SpeedingRule(geometry(True)), [track]) == []


def test_no_speeding_outside_every_lane() -> None:
    outside = line_path((200, 690), (200, 300), 0.0, 2.0)
    track = Track(4, outside, speeds=[(120.0, 2.0)] * len(outside))
    assert run(SpeedingRule(geometry(True)), [track]) == []


@pytest.mark.parametrize(
    ("seconds", "fires"), [(0.8, True), (1.0, True), (1.25, False), (1.5, False)]
)
def test_speed_trap_section_speed_without_calibration(seconds: float, fires: bool) -> None:
    # 20 m between the trap lines (y=900 -> y=700); 0.8 s is 90 km/h, 1.25 s is 57.6 km/h.
    track = Track(5, line_path((500, 950), (500, 650), 0.0, seconds * 300 / 200))
    found = run(SpeedingRule(geometry(False)), [track])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]
    if fires:
        assert "speed trap t1" in found[0].explanation
        assert found[0].measured.speed_kmh == pytest.approx(72.0 / seconds, rel=0.01)
        uncertainty = found[0].measured.speed_uncertainty_kmh
        assert uncertainty is not None and 0.0 < uncertainty < 10.0


def trap_pass(
    entry: tuple[float, float], exit: tuple[float, float]
) -> list[tuple[float, float, float]]:
    """Up lane 1 through speed trap t1 (entry line y=900, exit line y=700) with the frames
    either side of each line at the given times (s); each line is crossed midway between.

    The section speed is timed midway to midway; its lower bound over the outer frames.
    """
    (entry_before, entry_after), (exit_before, exit_after) = entry, exit
    between = (entry_after + exit_before) / 2.0
    return [
        (entry_before - 0.2, 500.0, 960.0),
        (entry_before - 0.1, 500.0, 950.0),
        (entry_before, 500.0, 910.0),
        (entry_after, 500.0, 890.0),
        (between, 500.0, 800.0),
        (exit_before, 500.0, 710.0),
        (exit_after, 500.0, 690.0),
        (exit_after + 0.1, 500.0, 600.0),
        (exit_after + 0.2, 500.0, 550.0),
    ]


def trap(length_m: float = 20.0, lane: str = "1") -> list[dict[str, object]]:
    return [
        {
            "id": "t1",
            "entry": [[400, 900], [600, 900]],
            "exit": [[400, 700], [600, 700]],
            "length_m": length_m,
            "lane": lane,
        }
    ]


# A car in lane 1: limit 60, tolerance 5. (length m, entry frames, exit frames, fires)
TRAP_CASES = {
    # 65/3.6 m over an outer 1.0 s is a lower bound of exactly 65 km/h (timed: 72.2).
    "lower bound exactly limit + tolerance": (65 / 3.6, (0.0, 0.1), (0.9, 1.0), False),
    # 20 m timed over 0.9 s is 80 km/h, but over the outer 1.2 s only 60.
    "timed over limit + tolerance, lower bound at the limit": (20.0, (0.0, 0.3), (0.9, 1.2), False),
    # 20 m: timed 68.6 km/h, lower bound 62.6: over the limit, within the tolerance.
    "lower bound over the limit, within the tolerance": (20.0, (0.0, 0.1), (1.05, 1.15), False),
    "lower bound just above limit + tolerance": (20.0, (0.0, 0.1), (1.0, 1.1), True),  # 65.45
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(TRAP_CASES))
def test_speed_trap_judges_the_lower_bound(name: str, metric: bool) -> None:
    length_m, entry, exit_, fires = TRAP_CASES[name]
    rule = SpeedingRule(geometry(metric, speed_traps=trap(length_m)))
    found = run(rule, [Track(5, trap_pass(entry, exit_))])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


def test_speed_trap_evidence_frames() -> None:
    """Evidence: the first frame past the entry line, the last before the exit line and the
    first past it."""
    [v] = run(SpeedingRule(geometry(False)), [Track(5, trap_pass((0.0, 0.1), (1.0, 1.1)))])
    assert (v.evidence.before - T0, v.evidence.at - T0, v.evidence.after - T0) == pytest.approx(
        (0.1, 1.0, 1.1), abs=1e-6
    )
    assert "from 5 to under 10 km/h over" in v.explanation


def test_speed_trap_judges_the_voted_class() -> None:
    """62.6 km/h at least is over a motorcycle's 50 + 5, not a car's 60 + 5: the frame the
    car is last seen in, labelled motorcycle, does not decide the limit."""
    samples = trap_pass((0.0, 0.1), (1.05, 1.15))
    track = Track(5, samples, classes=[CAR] * 7 + [MOTO] * 2)
    assert run(SpeedingRule(geometry(False)), [track]) == []


def test_speed_trap_uses_its_configured_lanes_limit() -> None:
    """A trap configured for lane 2 (80 km/h) times at lane 2's limit wherever the box is."""
    track = Track(5, trap_pass((0.0, 0.1), (0.9, 1.0)))  # 72 km/h at least
    assert run(SpeedingRule(geometry(False, speed_traps=trap(lane="2"))), [track]) == []
    assert len(run(SpeedingRule(geometry(False, speed_traps=trap(lane="1"))), [track])) == 1


def test_refuses_to_run_without_metres() -> None:
    with pytest.raises(RuleUnavailableError, match="speeding needs metres: calibrate"):
        SpeedingRule(geometry(False, speed_traps=[]))


@pytest.mark.parametrize(
    ("excess", "band"),
    [
        (4.9, None),
        (4.94, None),
        (4.95, "from 5 to under 10 km/h over"),  # (written 5.0: the band follows it)
        (5.0, "from 5 to under 10 km/h over"),
        (9.94, "from 5 to under 10 km/h over"),
        (9.99, "from 10 to 20 km/h over"),  # (written 10.0)
        (10.0, "from 10 to 20 km/h over"),
        # The decree: "from 10 km/h to 20 km/h", "over 20 km/h to 35 km/h", "over 35".
        (20.0, "from 10 to 20 km/h over"),
        (20.04, "from 10 to 20 km/h over"),
        (20.05, "over 20 to 35 km/h over"),
        (20.1, "over 20 to 35 km/h over"),
        (35.0, "over 20 to 35 km/h over"),
        (35.1, "over 35 km/h over"),
        (80.0, "over 35 km/h over"),
    ],
)
def test_decree_bands(excess: float, band: str | None) -> None:
    assert decree_band(excess) == band


# Lane 1 (x 400-600) allows a car 60 km/h, lane 2 (x 600-800) 80; a motorcycle 50 in lane 1.
LIMIT_CHANGES = {
    "car 72 in lane 1 moves to lane 2 and drives 72 there": (
        [(0.0, 550, 650), (0.1, 580, 640), (0.2, 650, 630), (0.3, 700, 620), (0.4, 720, 610)],
        [CAR] * 5,
        [(72.0, 2.0)] * 5,
        None,
    ),
    "car 72 in lane 1 moves to lane 2 and speeds up to 92": (
        [(0.0, 550, 650), (0.1, 580, 640), (0.2, 650, 630), (0.3, 700, 620), (0.4, 720, 610)],
        [CAR] * 5,
        [(72.0, 2.0)] * 2 + [(92.0, 2.0)] * 3,
        (CAR, 92.0, 80.0),
    ),
    "a motorcycle at 60 turns out to be a car at 70": (
        [(0.1 * i, 500, 650 - i) for i in range(6)],
        [MOTO] + [CAR] * 5,
        [(60.0, 2.0)] + [(70.0, 2.0)] * 5,
        (CAR, 70.0, 60.0),
    ),
}


@pytest.mark.parametrize("name", list(LIMIT_CHANGES))
def test_a_run_is_judged_against_one_limit(name: str) -> None:
    samples, classes, speeds, expected = LIMIT_CHANGES[name]
    track = Track(6, samples, CAR, speeds=speeds, classes=classes)
    found = run(SpeedingRule(geometry(True, speed_traps=[])), [track])
    if expected is None:
        assert found == [], [v.explanation for v in found]
        return
    [v] = found
    vehicle, speed, limit = expected
    assert (v.vehicle_class, v.measured.speed_kmh, v.measured.speed_limit_kmh) == (
        vehicle,
        speed,
        limit,
    )
    assert (v.measured.speed_kmh or 0.0) - (v.measured.speed_uncertainty_kmh or 0.0) > limit
