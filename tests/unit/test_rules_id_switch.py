"""A track id that passes to another vehicle some way off is not one vehicle jumping: each
rule judges the track afresh from there, so the jump is never read as a crossing of two
lines, a reversal or a speed. A fast vehicle is still one vehicle."""

from __future__ import annotations

from typing import Any

import pytest

from edge.rules import base
from edge.rules.base import TrackRule
from edge.rules.red_light import RedLightRule
from edge.rules.speeding import SpeedingRule
from edge.rules.wrong_way import WrongWayRule
from roadwatch.contract import LampColour
from tests.rules_tracks import Track, geometry, hold, line_path, run, signal_plan

RED_AT_10 = signal_plan((0.0, LampColour.GREEN), (7.0, LampColour.YELLOW), (10.0, LampColour.RED))
TRAP = [{"id": "t1", "entry": [[400, 900], [600, 900]], "exit": [[400, 700], [600, 700]],
         "length_m": 20.0, "lane": "1"}]  # fmt: skip


def wrong_way(metric: bool) -> TrackRule[Any]:
    return WrongWayRule(geometry(metric))


def red_light(metric: bool) -> TrackRule[Any]:
    return RedLightRule(geometry(metric))


def trap(metric: bool) -> TrackRule[Any]:
    return SpeedingRule(geometry(metric, speed_traps=TRAP))


# (rule, samples, signals): the id passes, in one sample, to a vehicle 14-30 m off.
SWITCHES = {
    # Up lane 1 past both direction lines, then the id goes to a car 30 m behind: read
    # as one vehicle, it crossed the second line and then the first, going down.
    "wrong way: to a car behind, over both direction lines": (
        wrong_way,
        line_path((500, 950), (500, 550), 0, 4) + line_path((500, 850), (500, 300), 4.1, 10),
        None,
    ),
    # A car waits at the stop line in the red; the id goes to a car 14 m on, already past
    # the second line: read as one vehicle, it crossed both lines on red.
    "red light: from a car waiting at the stop line to one past the second line": (
        red_light,
        hold((500, 520), 8, 14) + line_path((500, 380), (500, 200), 14.1, 16),
        RED_AT_10,
    ),
    # A car creeps towards the trap; the id goes to a car past its exit line: read as one
    # vehicle, it covered the trap's 20 m in 0.1 s.
    "speed trap: from a car before the entry line to one past the exit line": (
        trap,
        line_path((500, 980), (500, 910), 0, 2) + line_path((500, 690), (500, 500), 2.1, 4),
        None,
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(SWITCHES))
def test_a_track_id_passed_to_another_vehicle_is_judged_afresh(
    name: str, metric: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, samples, signals = SWITCHES[name]
    assert run(make(metric), [Track(4, samples)], signals) == []
    # (the same track read as one vehicle, as before: fined)
    monkeypatch.setattr(base, "PLAUSIBLE_BOXES", 1e9)
    assert len(run(make(metric), [Track(4, samples)], signals)) == 1


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
def test_a_car_at_200_kmh_through_the_trap_is_one_vehicle_and_is_fined(metric: bool) -> None:
    # 200 km/h is 556 px/s here (10 px a metre): 56 px between samples, 1.4 box sizes.
    [v] = run(trap(metric), [Track(4, line_path((500, 1000), (500, 300), 0, 700 / 556))])
    assert v.measured.speed_kmh is not None and v.measured.speed_kmh > 190
