"""Forbidden lane, solid line and no stopping, each with the near misses that must not fire."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable
from typing import Any

import pytest

from edge.rules.base import RuleUnavailableError, TrackRule
from edge.rules.engine import RuleSet
from edge.rules.forbidden_lane import ForbiddenLaneRule
from edge.rules.geometry import Point
from edge.rules.no_stopping import NoStoppingRule
from edge.rules.plane import SceneGeometry
from edge.rules.solid_line import SolidLineRule
from edge.rules.tracks import EvidenceTimes, TrackFrame, Violation, WorldTrackPoint
from roadwatch.contract import VehicleClass, ViolationType
from tests.rules_tracks import (
    BASE,
    T0,
    Track,
    frames,
    frames_in_perspective,
    geometry,
    hold,
    line_path,
    perspective,
    run,
    scene_config,
)

TRUCK, CAR, MOTO = VehicleClass.TRUCK, VehicleClass.CAR, VehicleClass.MOTORCYCLE
HOURS_TO_0730 = -(6 * 3600 + 33 * 60)  # from 14:03 back to 07:30 local
HOURS_TO_0900 = -(5 * 3600 + 3 * 60)  # from 14:03 back to 09:00 local


def run_without_road_position(
    rule: TrackRule[Any], track: Track, missing: Iterable[int]
) -> list[Violation]:
    """Feed one calibrated track whose samples at the ``missing`` indices have no road point
    (the ground point is off the road plane of the calibration)."""
    gone = set(missing)
    found: list[Violation] = []
    for i, p in enumerate(track.points(metric=True)):
        point = dataclasses.replace(p, world=None) if i in gone else p
        found.extend(rule.update(TrackFrame(point.t, (point,))))
    return found


def lane_1_with_gap(out_from: int, out_to: int) -> list[tuple[float, float, float]]:
    """Up lane 1 at 2 m/s for 4.5 s, outside the lanes (x=380) from sample out_from to out_to."""
    return [(k / 10, 380 if out_from <= k <= out_to else 420, 900 - 2 * k) for k in range(46)]


# Lane 1 is closed to trucks at all times; lane 2 to motorcycles 06:00-09:00.
FORBIDDEN_CASES = {
    "truck drives up lane 1": (Track(1, line_path((500, 950), (500, 300), 0, 5), TRUCK), True),
    "car drives up lane 1": (Track(1, line_path((500, 950), (500, 300), 0, 5), CAR), False),
    "truck touches lane 1 for 1 s": (
        Track(
            1,
            line_path((350, 900), (420, 800), 0, 0.5)
            + line_path((420, 800), (350, 700), 0.6, 1.5)
            + line_path((350, 700), (350, 100), 1.6, 8),
            TRUCK,
        ),
        False,
    ),
    "truck flickers over the lane edge but stays": (
        Track(
            1, [(k / 10, 405 + (-8 if k % 7 == 0 else 0), 950 - 10 * k) for k in range(60)], TRUCK
        ),
        True,
    ),
    "car once mislabelled as truck": (
        Track(
            1,
            line_path((500, 950), (500, 300), 0, 5),
            classes=[TRUCK if k in (0, 1, 20) else CAR for k in range(51)],
        ),
        False,
    ),
    "motorcycle in lane 2 at 14:03 (open)": (
        Track(1, line_path((700, 950), (700, 300), 0, 6), MOTO),
        False,
    ),
    "motorcycle in lane 2 at 07:30 (closed)": (
        Track(1, line_path((700, 950), (700, 300), HOURS_TO_0730, HOURS_TO_0730 + 6), MOTO),
        True,
    ),
    "motorcycle in lane 2 from 08:59:58, when the closure ends at 09:00": (
        Track(1, line_path((700, 950), (700, 750), HOURS_TO_0900 - 2, HOURS_TO_0900 + 4), MOTO),
        False,
    ),
    "truck in lane 1 for exactly the 3 s minimum": (
        Track(1, line_path((500, 950), (500, 850), 0, 3), TRUCK),
        True,
    ),
    "truck labelled a car for 1.6 s is still a truck": (
        Track(
            1,
            line_path((500, 950), (500, 700), 0, 5),
            classes=[CAR if 20 <= k < 36 else TRUCK for k in range(51)],
        ),
        True,
    ),
    "truck leaves lane 1 for the 0.5 s allowed": (Track(1, lane_1_with_gap(16, 20), TRUCK), True),
    "truck leaves lane 1 for 0.6 s and starts again": (
        Track(1, lane_1_with_gap(16, 21), TRUCK),
        False,
    ),
    # Its box jitters 3 px either way (0.85 m a frame) while it waits 1 m inside lane 1.
    "truck waits 2.4 s just inside lane 1, its box jittering": (
        Track(
            1,
            hold((410, 500), 0, 2.4, jitter=3) + line_path((400, 500), (350, 500), 2.5, 3.5),
            TRUCK,
        ),
        False,
    ),
    "truck waits 1.6 s just inside lane 1, its box jittering, at 25 fps": (
        Track(
            1,
            [(k / 25, 410 + 3 * (-1) ** k, 500 - 3 * (-1) ** k) for k in range(40)]
            + [(1.6 + k / 25, 380, 500) for k in range(25)],
            TRUCK,
        ),
        False,
    ),
    "truck in lane 1 twice, 12 m each time": (
        Track(
            1,
            line_path((500, 950), (500, 830), 0, 1)
            + line_path((380, 820), (380, 720), 1.1, 2)
            + line_path((500, 710), (500, 590), 2.1, 3.1),
            TRUCK,
        ),
        False,
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(FORBIDDEN_CASES))
def test_forbidden_lane_table(name: str, metric: bool) -> None:
    track, fires = FORBIDDEN_CASES[name]
    found = run(ForbiddenLaneRule(geometry(metric)), [track])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


def test_forbidden_lane_by_distance_and_its_explanation() -> None:
    # 22 m in 1.5 s: fires on distance (20 m) before the 3 s minimum time.
    [v] = run(
        ForbiddenLaneRule(geometry(True)),
        [Track(1, line_path((500, 950), (500, 600), 0, 1.6), TRUCK)],
    )
    assert v.rule is ViolationType.FORBIDDEN_LANE and v.lane == "1"
    assert v.measured.distance_m == pytest.approx(20.0, abs=2.5)
    assert v.explanation.startswith(
        "truck drove in lane 1, which is closed to truck at 14:03 on Mon, for 1."
    )
    assert "from 14:03:00.000 to 14:03:01." in v.explanation


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
def test_forbidden_lane_records_entry_time_dwell_and_distance(metric: bool) -> None:
    [v] = run(
        ForbiddenLaneRule(geometry(metric)),
        [Track(1, line_path((500, 950), (500, 850), 0, 3), TRUCK)],
    )
    assert (v.t, v.lane, v.vehicle_class) == (T0 + 3.0, "1", TRUCK)
    assert v.evidence == EvidenceTimes(before=T0, at=T0 + 3.0, after=T0 + 3.0)
    assert v.measured.dwell_s == 3.0
    assert v.measured.distance_m == (pytest.approx(10.0) if metric else None)
    assert v.explanation == (
        "truck drove in lane 1, which is closed to truck at 14:03 on Mon, for 3.0 s"
        + (" and 10.0 m" if metric else "")
        + " from 14:03:00.000 to 14:03:03.000"
    )


def test_forbidden_lane_fires_at_exactly_the_minimum_distance() -> None:
    # Three frames, the last 20 m (the minimum) from the first, long before the 3 s
    # minimum time.
    [v] = run(
        ForbiddenLaneRule(geometry(True)),
        [Track(1, [(0.0, 500, 900), (0.25, 500, 800), (0.5, 500, 700)], TRUCK)],
    )
    assert v.measured.distance_m == 20.0 and v.t == T0 + 0.5
    assert v.measured.dwell_s == 0.5 and "for 0.5 s and 20.0 m" in v.explanation


def test_forbidden_lane_counts_distance_over_frames_with_a_road_position() -> None:
    # 35 m in 1.6 s; the first and a middle frame are off the road plane.
    track = Track(1, line_path((500, 950), (500, 600), 0, 1.6), TRUCK)
    [v] = run_without_road_position(ForbiddenLaneRule(geometry(True)), track, [0, 8])
    assert v.measured.distance_m is not None and v.measured.distance_m >= 20.0
    assert v.t < T0 + 1.6


def test_forbidden_lane_measures_from_where_it_entered_to_where_it_is_fined() -> None:
    # 15 m up lane 1, then 5 m back: at the 3 s minimum it stands 10 m from where it
    # entered, as the first and last pictures show.
    track = Track(
        1,
        line_path((500, 950), (500, 800), 0, 1.5) + line_path((500, 810), (500, 850), 1.6, 3),
        TRUCK,
    )
    [v] = run(ForbiddenLaneRule(geometry(True)), [track])
    assert v.t == T0 + 3.0 and v.measured.distance_m == pytest.approx(10.0)
    assert "for 3.0 s and 10.0 m from 14:03:00.000 to 14:03:03.000" in v.explanation


@pytest.mark.parametrize(
    "outliers_s",
    [(0.4,), (0.9,), (0.4, 0.5), (0.9, 1.0)],
    ids=["at entry", "while in the lane", "two at entry", "two while in the lane"],
)
def test_forbidden_lane_far_off_road_positions_make_no_distance(
    outliers_s: tuple[float, ...],
) -> None:
    # A truck dips into lane 1 for under a second; one frame's ground point (near the
    # horizon of a real calibration), or two frames' in a row, land 50 m up the road:
    # no 20 m were driven.
    touch = Track(
        1,
        line_path((650, 900), (580, 880), 0, 0.5)
        + line_path((580, 880), (560, 870), 0.6, 1.2)
        + line_path((620, 860), (680, 850), 1.3, 3.0),
        TRUCK,
    )
    far = Point(58.0, 38.0)
    shown = [
        TrackFrame(
            f.t,
            tuple(
                dataclasses.replace(p, world=far)
                if any(abs(p.t - T0 - s) < 1e-6 for s in outliers_s)
                else p
                for p in f.points
            ),
        )
        for f in frames([touch], True)
    ]
    rule = ForbiddenLaneRule(geometry(True))
    assert [v for f in shown for v in rule.update(f)] == []


@pytest.mark.parametrize(
    "outliers_s",
    [(0.9, 1.0, 1.1), (0.9, 1.0, 1.1, 1.2), (0.1, 0.2, 0.3)],
    ids=["three in a row", "four in a row", "three at entry"],
)
def test_forbidden_lane_road_positions_near_the_horizon_make_no_distance(
    outliers_s: tuple[float, ...],
) -> None:
    # A truck creeps 3 m into lane 1 over 1.5 s, near the camera, and leaves it; the box
    # bottoms of three or four frames in a row land on one image point just below the
    # horizon (720 m up the road, where one pixel is 72 m): no 20 m were driven.
    touch = Track(
        1, line_path((580, 900), (560, 880), 0, 1.5) + line_path((620, 880), (680, 870), 1.6, 3.0),
        TRUCK,
    )  # fmt: skip
    horizon = Point(560.0, 60.0)

    def seen(p: WorldTrackPoint) -> WorldTrackPoint:
        outlier = any(abs(p.t - T0 - s) < 1e-6 for s in outliers_s)
        ground = horizon if outlier else p.ground_px
        return dataclasses.replace(p, ground_px=ground, world=perspective(ground))

    shown = [TrackFrame(f.t, tuple(seen(p) for p in f.points)) for f in frames([touch], True)]
    rule = ForbiddenLaneRule(SceneGeometry(scene_config(), perspective))
    assert [v for f in shown for v in rule.update(f)] == []


def test_forbidden_lane_by_distance_under_aperspective_calibration() -> None:
    # Up lane 1 at 20 m/s from 8.5 m to 32.5 m away (image rows 897 to 272) in 1.2 s:
    # fined on distance (20 m), long before the 3 s minimum.
    samples = [(k / 10, 500.0, 50.0 + 7200.0 / (8.5 + 2.0 * k)) for k in range(13)]
    track = Track(1, samples, TRUCK)
    points = frames_in_perspective([track])
    rule = ForbiddenLaneRule(SceneGeometry(scene_config(), perspective))
    [v] = [v for f in points for v in rule.update(f)]
    assert v.measured.distance_m is not None and v.measured.distance_m >= 20.0
    assert v.t < T0 + 1.2


def test_forbidden_lane_by_distance_in_a_lane_across_the_picture() -> None:
    lanes = [
        {
            "id": "bus",
            "polygon": [[0, 100], [1000, 100], [1000, 300], [0, 300]],
            "closures": [{"classes": ["truck"]}],
        }
    ]
    scene = geometry(True, lanes=lanes, speed_traps=[])
    # 30 m along it in 1.5 s: 20 m after 1 s, long before the 3 s minimum.
    track = Track(1, line_path((100, 200), (400, 200), 0, 1.5), TRUCK)
    [v] = run(ForbiddenLaneRule(scene), [track])
    assert (v.lane, v.t, v.measured.distance_m) == ("bus", T0 + 1.0, 20.0)


def test_forbidden_lane_counts_each_closed_lane_on_its_own() -> None:
    # Both lanes closed to trucks: 2 s in lane 1, then 2 s in lane 2, is 2 s in each.
    lanes = copy.deepcopy(BASE["lanes"])
    lanes[1]["closures"] = [{"classes": ["truck"]}]
    track = Track(
        1,
        line_path((550, 950), (550, 900), 0, 2) + line_path((650, 895), (650, 850), 2.1, 4),
        TRUCK,
    )
    for metric in (True, False):
        assert run(ForbiddenLaneRule(geometry(metric, lanes=lanes)), [track]) == []


def test_forbidden_lane_runs_on_a_lane_open_only_to_some_classes() -> None:
    lanes = copy.deepcopy(BASE["lanes"])
    for lane in lanes:
        lane["closures"] = []
    lanes[0]["allowed_classes"] = ["car", "motorcycle"]
    rule = ForbiddenLaneRule(geometry(True, lanes=lanes))
    [v] = run(rule, [Track(1, line_path((500, 950), (500, 850), 0, 3), TRUCK)])
    assert v.lane == "1"


def test_forbidden_lane_needs_a_closed_lane() -> None:
    lanes = [{"id": "1", "polygon": [[0, 0], [100, 0], [100, 100]]}]
    with pytest.raises(RuleUnavailableError, match="closed"):
        ForbiddenLaneRule(geometry(True, lanes=lanes, speed_traps=[]))


# The divider x=600 runs from y=100 to y=900 between lanes 1 and 2.
SOLID_CASES = {
    "changes from lane 1 to lane 2 across it": (line_path((520, 900), (680, 500), 0, 3), True),
    "changes from lane 2 to lane 1 across it": (line_path((680, 900), (520, 500), 0, 3), True),
    "drives along beside it": (line_path((590, 950), (590, 50), 0, 6), False),
    "jitters on it": (
        line_path((560, 700), (598, 600), 0, 1) + hold((600, 600), 1, 5, jitter=3),
        False,
    ),
    "touches it and comes back": (
        line_path((560, 800), (603, 700), 0, 1) + line_path((603, 700), (560, 600), 1.1, 2),
        False,
    ),
    "goes round its end": (
        line_path((520, 850), (520, 960), 0, 1)
        + line_path((520, 960), (680, 960), 1.1, 2)
        + line_path((680, 960), (680, 850), 2.1, 3),
        False,
    ),
    "changes from lane 1 to lane 2 after running on it for 2 s": (
        line_path((560, 800), (597, 780), 0, 0.5)
        + line_path((602, 775), (602, 575), 0.6, 2.6)
        + line_path((602, 570), (640, 540), 2.7, 3.2)
        + hold((640, 540), 3.2, 4),
        True,
    ),
    "changes from lane 1 to lane 2, ending just past it": (
        line_path((560, 800), (605, 700), 0, 1) + hold((605, 700), 1, 3),
        True,
    ),
    "cuts in from the kerb, one frame in lane 1 to lane 2": (
        [
            (0.0, 380, 500),
            (0.1, 380, 490),
            (0.2, 590, 480),
            *line_path((610, 470), (650, 450), 0.3, 0.5),
        ],
        True,
    ),
    "comes round its end from lane 2, then changes from lane 1 to lane 2 across it": (
        line_path((680, 880), (680, 960), 0, 0.8)
        + line_path((680, 960), (520, 960), 0.9, 2.5)
        + line_path((520, 960), (520, 850), 2.6, 3.7)
        + line_path((520, 850), (680, 600), 3.8, 6),
        True,
    ),
    "one frame's box jumps across it": (
        [
            *line_path((570, 800), (590, 700), 0, 1),
            (1.1, 612, 690),
            *line_path((590, 680), (590, 500), 1.2, 3),
        ],
        False,
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(SOLID_CASES))
def test_solid_line_table(name: str, metric: bool) -> None:
    samples, fires = SOLID_CASES[name]
    found = run(SolidLineRule(geometry(metric)), [Track(2, samples)])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]
    if fires:
        assert found[0].rule is ViolationType.SOLID_LINE
        assert found[0].explanation.startswith("car crossed solid line divider at 14:03:0")
        lanes = "from lane 1 into lane 2" if "1 to lane 2" in name else "from lane 2 into lane 1"
        assert lanes in found[0].explanation


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
def test_solid_line_records_the_crossing_between_its_frames(metric: bool) -> None:
    # The divider (x=600) is crossed halfway between the frames at 0.5 s and 0.75 s; the
    # second frame beyond the margin, at 1.0 s, confirms it.
    samples = [(k / 4, x, 800 - 20 * k) for k, x in enumerate([560, 580, 590, 610, 630, 650])]
    [v] = run(SolidLineRule(geometry(metric)), [Track(2, samples)])
    assert v.t == pytest.approx(T0 + 0.625, abs=1e-6) and v.lane == "2"
    assert v.evidence == EvidenceTimes(before=T0 + 0.5, at=T0 + 0.75, after=T0 + 1.0)
    assert v.explanation == (
        "car crossed solid line divider at 14:03:00.625, from lane 1 into lane 2, "
        "and stayed across it"
    )


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
def test_solid_line_watches_every_line_of_the_scene(metric: bool) -> None:
    lines = [*BASE["solid_lines"], {"id": "kerb", "points": [[400, 100], [400, 900]]}]
    track = Track(2, line_path((350, 700), (450, 600), 0, 1))
    [v] = run(SolidLineRule(geometry(metric, solid_lines=lines)), [track])
    assert v.explanation.startswith("car crossed solid line kerb at 14:03:00.")
    assert v.explanation.endswith(", from outside the lanes into lane 1, and stayed across it")


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
def test_solid_line_names_outside_the_lanes_on_the_far_side(metric: bool) -> None:
    # Out of lane 1 over a kerb line (x=400) onto the verge, which is in no lane.
    lines = [*BASE["solid_lines"], {"id": "kerb", "points": [[400, 100], [400, 900]]}]
    track = Track(2, line_path((450, 700), (350, 600), 0, 1))
    [v] = run(SolidLineRule(geometry(metric, solid_lines=lines)), [track])
    assert v.lane is None
    assert v.explanation.startswith("car crossed solid line kerb at 14:03:00.")
    assert v.explanation.endswith(", from lane 1 into outside the lanes, and stayed across it")


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
def test_solid_line_names_the_lane_left_after_running_on_the_line_for_3_s_at_25_fps(
    metric: bool,
) -> None:
    # At 25 frames a second: over the line (x=600) between 0.48 s and 0.52 s, then 75
    # frames running on it 0.2 m past, inside the band, before it goes on into lane 2.
    samples = (
        [(k / 25, 560 + 3 * k, 800 - k) for k in range(13)]
        + [(0.52 + k / 25, 602, 786 - k) for k in range(75)]
        + [(3.52 + k / 25, 606 + 4 * k, 711 - k) for k in range(10)]
    )
    [v] = run(SolidLineRule(geometry(metric)), [Track(2, samples)])
    assert v.t == pytest.approx(T0 + 0.48 + 0.04 * 4 / 6)
    assert (v.evidence.before, v.evidence.at) == (T0 + 0.48, T0 + 0.52)
    assert ", from lane 1 into lane 2, and stayed across it" in v.explanation


def test_solid_line_skips_frames_without_a_road_position() -> None:
    track = Track(2, line_path((520, 900), (680, 500), 0, 3))
    [v] = run_without_road_position(SolidLineRule(geometry(True)), track, [10, 16])
    assert "from lane 1 into lane 2" in v.explanation


def test_solid_line_fires_once_for_a_weaving_track() -> None:
    weave = (
        line_path((520, 900), (680, 700), 0, 2)
        + line_path((680, 700), (520, 500), 2.1, 4)
        + line_path((520, 500), (680, 300), 4.1, 6)
    )
    assert len(run(SolidLineRule(geometry(True)), [Track(2, weave)])) == 1


# The no-stopping zone is x 800-1000, y 200-800; the dwell limit is 30 s.
STOP_CASES = {
    "stands 40 s in the zone": (
        line_path((900, 950), (900, 500), 0, 3) + hold((900, 500), 3, 43),
        True,
    ),
    "stands 40 s with box jitter": (
        line_path((900, 950), (900, 500), 0, 3) + hold((900, 500), 3, 43, jitter=5),
        True,
    ),
    # The limit is "more than 30 s": standing exactly 30 s is allowed, 30.1 s is not.
    "stands exactly the 30 s allowed": ([(0.0, 900, 500), *hold((900, 500), 0, 30)], False),
    "stands 30.1 s": ([(0.0, 900, 500), *hold((900, 500), 0, 30.1)], True),
    "stands 20 s in the zone": (
        line_path((900, 950), (900, 500), 0, 3)
        + hold((900, 500), 3, 23)
        + line_path((900, 500), (900, 100), 23.1, 26),
        False,
    ),
    "creeps through the zone": (line_path((900, 790), (900, 210), 0, 60), False),
    "stands 40 s outside the zone": (hold((900, 900), 0, 40), False),
    "two short stops of 20 s": (
        hold((900, 700), 0, 20)
        + line_path((900, 700), (900, 400), 20.1, 22)
        + hold((900, 400), 22, 42),
        False,
    ),
    # The zone's edge is y=800: box jitter carries the ground point over it and back.
    "parked on the zone's edge, its box jittering over the edge": (
        hold((900, 799), 0, 40, jitter=3),
        True,
    ),
    "parked just outside the zone, its box once jittering in": (
        [*hold((900, 806), 0, 5), (5.1, 900, 799), *hold((900, 806), 5.1, 40)],
        False,
    ),
    "stands 20 s on the zone's edge, one frame 3.5 m out of it, 20 s more": (
        [*hold((900, 795), 0, 20), (20.1, 900, 830), *hold((900, 795), 20.1, 40)],
        False,
    ),
    "stands 30.04 s, shown as 30.0 s": ([(0.0, 900, 500), *hold((900, 500), 0, 30.04)], False),
    "stands 20 s, moves 2 m on, stands 20 s": (
        hold((900, 500), 0, 20) + hold((900, 480), 20, 40),
        False,
    ),
    "stands 20 s, steps out of the zone and back, stands 20 s": (
        hold((900, 780), 0, 20)
        + line_path((900, 780), (900, 840), 20.1, 21)
        + line_path((900, 840), (900, 780), 21.1, 22)
        + hold((900, 780), 22, 42),
        False,
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(STOP_CASES))
def test_no_stopping_table(name: str, metric: bool) -> None:
    samples, fires = STOP_CASES[name]
    found = run(NoStoppingRule(geometry(metric)), [Track(9, samples)])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]
    if fires:
        [v] = found
        assert v.rule is ViolationType.NO_STOPPING and v.measured.dwell_s == pytest.approx(
            30.0, abs=0.11
        )
        assert "inside no-stopping zone shoulder from 14:03:0" in v.explanation
        shown = re.search(r": (\d+\.\d) s, more than the 30 s allowed$", v.explanation)
        assert shown is not None and float(shown[1]) > 30.0, v.explanation


@pytest.mark.parametrize(("metric", "step"), [(True, 15), (False, 12)], ids=["metres", "pixels"])
def test_no_stopping_counts_moving_exactly_the_stationary_radius_as_standing(
    metric: bool, step: int
) -> None:
    # The stationary radius is 1.5 m (15 px on this camera) calibrated, 12 px without.
    samples = [(k / 10, 900 + step * (k % 2), 500) for k in range(401)]
    [v] = run(NoStoppingRule(geometry(metric)), [Track(9, samples)])
    assert v.measured.dwell_s == pytest.approx(30.1)


@pytest.mark.parametrize(("metric", "step"), [(True, 15), (False, 12)], ids=["metres", "pixels"])
def test_no_stopping_keeps_a_stop_through_frames_off_the_zone_the_stationary_radius_away(
    metric: bool, step: int
) -> None:
    # Stopped 0.5 m inside the zone's edge (y=800); every other frame's ground point lies
    # outside the zone, exactly the stationary radius from where it stopped: one stop.
    samples = [(k / 10, 900, 795 + step * (k % 2)) for k in range(302)]
    [v] = run(NoStoppingRule(geometry(metric)), [Track(9, samples)])
    assert v.measured.dwell_s == pytest.approx(30.1)


@pytest.mark.parametrize(("metric", "radius"), [(True, "1.5 m"), (False, "12 px")])
def test_no_stopping_records_the_stop(metric: bool, radius: str) -> None:
    [v] = run(NoStoppingRule(geometry(metric)), [Track(9, [(0.0, 900, 500), (30.25, 900, 500)])])
    assert (v.t, v.lane) == (T0 + 30.25, None)
    assert v.evidence == EvidenceTimes(before=T0, at=T0 + 15.0, after=T0 + 30.25)
    assert v.measured.dwell_s == 30.25
    assert v.explanation == (
        f"car stood still (within {radius}) inside no-stopping zone shoulder from "
        "14:03:00.000 to 14:03:30.250: 30.3 s, more than the 30 s allowed"
    )


def test_no_stopping_starts_a_stop_again_only_back_inside_the_zone() -> None:
    # Stands at y=780, backs 2.6 m out over the zone's edge (y=800) and pulls in again to
    # stand at y=796: the second stop, the one fined, starts at the first frame back inside.
    samples = [
        (0.0, 900, 780),
        *hold((900, 780), 0, 10),
        (10.1, 900, 790),
        (10.2, 900, 800),
        (10.3, 900, 806),
        (10.4, 900, 796),
        *hold((900, 796), 10.4, 45),
    ]
    [v] = run(NoStoppingRule(geometry(True)), [Track(9, samples)])
    assert v.evidence.before == T0 + 10.4 and v.t == pytest.approx(T0 + 40.5)
    assert "zone shoulder from 14:03:10.400 to 14:03:40.500: 30.1 s," in v.explanation


def test_no_stopping_names_the_lane_it_stands_in() -> None:
    zones = [{"id": "bay", "polygon": [[620, 200], [780, 200], [780, 800], [620, 800]]}]
    [v] = run(
        NoStoppingRule(geometry(True, no_stopping_zones=zones)),
        [Track(9, hold((700, 500), 0, 31))],
    )
    assert v.lane == "2"


def test_no_stopping_fires_once_despite_a_frame_without_a_road_position() -> None:
    track = Track(9, hold((900, 500), 0, 45))
    assert len(run_without_road_position(NoStoppingRule(geometry(True)), track, [100])) == 1


@pytest.mark.parametrize(
    ("samples", "missing"),
    [(hold((900, 500), 0, 40), [199]), (hold((900, 799), 0, 40, jitter=3), [100, 199, 200])],
    ids=["inside the zone", "on the zone's edge, its box jittering over it"],
)
def test_no_stopping_frames_without_a_road_position_do_not_end_a_stop(
    samples: list[tuple[float, float, float]], missing: list[int]
) -> None:
    # Standing 40 s, with a frame at 20 s off the road plane (on the edge: 10 s, 20 s, 20.1 s).
    track = Track(9, samples)
    [v] = run_without_road_position(NoStoppingRule(geometry(True)), track, missing)
    assert v.measured.dwell_s == pytest.approx(30.0, abs=0.11)
    assert re.search(r" from 14:03:00.[12]00 to 14:03:30.[23]00: 30.1 s,", v.explanation)


@pytest.mark.parametrize(
    ("windows", "fires"),
    [
        ([("16:00", "19:00")], False),
        ([("14:00", "15:00")], True),
        ([("06:00", "09:00"), ("14:00", "15:00")], True),
        ([("06:00", "09:00"), ("16:00", "19:00")], False),
    ],
    ids=["16-19", "14-15", "6-9 and 14-15", "6-9 and 16-19"],
)
def test_no_stopping_is_in_force_within_any_of_the_zone_windows(
    windows: list[tuple[str, str]], fires: bool
) -> None:
    zones = [
        {
            "id": "shoulder",
            "polygon": [[800, 200], [1000, 200], [1000, 800], [800, 800]],
            "windows": [{"start": start, "end": end} for start, end in windows],
        }
    ]
    found = run(
        NoStoppingRule(geometry(True, no_stopping_zones=zones)), [Track(9, hold((900, 500), 0, 40))]
    )
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


@pytest.mark.parametrize(
    ("dwell_s", "stood_s", "shown"),
    [
        (30.2, 30.25, "30.3 s, more than the 30.2 s allowed"),  # (an exact half)
        (30.0, 30.25, "30.3 s, more than the 30 s allowed"),
    ],
)
def test_no_stopping_judges_the_dwell_as_the_page_writes_it(
    dwell_s: float, stood_s: float, shown: str
) -> None:
    """A stop longer than allowed whose dwell, to 0.1 s, reads more than the limit on the
    review page (half up) is fined; rounded half to even it read as the limit itself."""
    zones = [{"id": "shoulder", "polygon": [[800, 200], [1000, 200], [1000, 800], [800, 800]],
              "dwell_s": dwell_s}]  # fmt: skip
    scene = geometry(True, no_stopping_zones=zones)
    [v] = run(NoStoppingRule(scene), [Track(9, [(0.0, 900, 500), (stood_s, 900, 500)])])
    assert v.measured.dwell_s == stood_s
    assert v.explanation.endswith(shown), v.explanation


def test_no_stopping_honours_the_zone_window() -> None:
    zones = [
        {
            "id": "shoulder",
            "polygon": [[800, 200], [1000, 200], [1000, 800], [800, 800]],
            "windows": [{"start": "16:00", "end": "19:00"}],
            "dwell_s": 10,
        }
    ]
    scene = geometry(True, no_stopping_zones=zones)
    assert run(NoStoppingRule(scene), [Track(9, hold((900, 500), 0, 40))]) == []
    zones[0]["windows"] = [{"start": "14:00", "end": "15:00"}]
    [v] = run(
        NoStoppingRule(geometry(True, no_stopping_zones=zones)), [Track(9, hold((900, 500), 0, 40))]
    )
    assert v.measured.dwell_s == pytest.approx(10.0, abs=0.11)


def border_zones(north_dwell_s: float, south_dwell_s: float) -> list[dict[str, object]]:
    """Two no-stopping zones meeting at y=500 (the shoulder, cut in two)."""
    return [
        {"id": "north", "polygon": [[800, 200], [1000, 200], [1000, 500], [800, 500]],
         "dwell_s": north_dwell_s},
        {"id": "south", "polygon": [[800, 500], [1000, 500], [1000, 800], [800, 800]],
         "dwell_s": south_dwell_s},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("dwells", "samples", "fires_after"),
    [
        ((30, 30), hold((900, 500), 0, 40, jitter=3), 30.0),
        ((30, 60), hold((900, 500), 0, 70, jitter=3), 60.0),
        ((30, 60), hold((900, 500), 0, 55, jitter=3), None),
        ((30, 60), hold((900, 450), 0, 20) + hold((900, 510), 20, 40), None),
    ],
    ids=[
        "parked across the border, its point jittering from zone to zone",
        "allowed the longer dwell of the two zones",
        "standing less than the longer dwell",
        "stands 20 s, moves 6 m into the next zone, stands 20 s",
    ],
)
def test_no_stopping_across_the_border_of_two_zones_is_one_stop(
    dwells: tuple[float, float],
    samples: list[tuple[float, float, float]],
    fires_after: float | None,
) -> None:
    scene = geometry(True, no_stopping_zones=border_zones(*dwells))
    found = run(NoStoppingRule(scene), [Track(9, samples)])
    assert len(found) == (0 if fires_after is None else 1), [v.explanation for v in found]
    if found:
        [v] = found
        assert v.measured.dwell_s == pytest.approx(fires_after, abs=0.11)
        assert "inside no-stopping zone north and no-stopping zone south from" in v.explanation


def test_no_stopping_a_new_stop_in_the_next_zone_is_allowed_that_zones_dwell() -> None:
    # 20 s in the north zone (60 s allowed), then 6 m on into the south zone (30 s).
    scene = geometry(True, no_stopping_zones=border_zones(60, 30))
    track = Track(9, hold((900, 450), 0, 20) + hold((900, 510), 20, 60))
    [v] = run(NoStoppingRule(scene), [track])
    assert v.measured.dwell_s == pytest.approx(30.1)
    assert v.explanation.endswith(
        "inside no-stopping zone south from 14:03:20.100 to 14:03:50.200: 30.1 s, "
        "more than the 30 s allowed"
    )


def test_no_stopping_across_the_border_goes_on_when_one_zones_window_ends() -> None:
    # Parked across the border from 13:59:40 local, its point jittering from the south
    # zone (in force until 14:00) to the north one (always): at 14:00 the stop goes on.
    zones = border_zones(30, 30)
    zones[1]["windows"] = [{"start": "13:00", "end": "14:00"}]
    track = Track(9, hold((900, 500), -200, -160, jitter=3))
    [v] = run(NoStoppingRule(geometry(True, no_stopping_zones=zones)), [track])
    assert v.measured.dwell_s == pytest.approx(30.1)
    assert "inside no-stopping zone north and no-stopping zone south from 13:59:40.100 to" in (
        v.explanation
    )


def test_explanations_name_each_place_by_its_id_and_name() -> None:
    lanes = copy.deepcopy(BASE["lanes"])
    lanes[0]["name"] = "Tran Hung Dao, inner"
    lines = [{**BASE["solid_lines"][0], "name": "centre"}]
    zones = [{**BASE["no_stopping_zones"][0], "name": "bus stop"}]
    scene = geometry(True, lanes=lanes, solid_lines=lines, no_stopping_zones=zones)
    [v] = run(ForbiddenLaneRule(scene), [Track(1, line_path((500, 950), (500, 850), 0, 3), TRUCK)])
    assert v.explanation.startswith("truck drove in lane 1 (Tran Hung Dao, inner), which is ")
    [v] = run(SolidLineRule(scene), [Track(2, line_path((520, 900), (680, 500), 0, 3))])
    assert v.explanation.startswith("car crossed solid line divider (centre) at 14:03:0")
    assert ", from lane 1 (Tran Hung Dao, inner) into lane 2, and stayed" in v.explanation
    [v] = run(NoStoppingRule(scene), [Track(9, hold((900, 500), 0, 31))])
    assert " inside no-stopping zone shoulder (bus stop) from 14:03:00.100 to " in v.explanation


def test_a_lanes_world_polygon_does_not_move_the_lane_in_the_image() -> None:
    # Areas are judged in the image, where they were drawn, whatever the road-plane copy.
    lanes = copy.deepcopy(BASE["lanes"])
    lanes[0]["world_polygon"] = [[40, 0], [60, 0], [60, 100], [40, 100]]
    track = Track(1, line_path((500, 950), (500, 850), 0, 3), TRUCK)
    [v] = run(ForbiddenLaneRule(geometry(True, lanes=lanes)), [track])
    assert v.lane == "1"


def test_lane_lookups_remembered_for_the_rules_stay_bounded() -> None:
    # A node runs for months: each frame's new ground points must not pile up.
    scene = geometry(True)
    points = Track(1, [(k / 10, 400 + k % 200, k // 200) for k in range(5000)]).points(True)
    assert all(scene.lane_at(p) is scene.lanes[0] for p in points)
    assert len(scene._lane_memo) <= 4096


def test_state_is_bounded_by_forgetting_tracks() -> None:
    rule = NoStoppingRule(geometry(True))
    tracks = [Track(i, [(i * 0.5, 900, 500)]) for i in range(100)]
    run(rule, tracks)
    # forget_after_s is 5: only the tracks seen in the last 5 s (of 49.5 s) are held.
    assert rule.tracks_held == 11


@pytest.mark.parametrize(
    ("limit", "seconds", "fires"),
    [(10.06, 10.058, False), (10.06, 10.1, True), (10.75, 10.75, False)],
)
def test_no_stopping_fires_only_past_a_limit_of_hundredths(
    limit: float, seconds: float, fires: bool
) -> None:
    """A zone's 10.06 s: 10.058 s shows rounded as 10.1 s yet is within it, so it stands;
    so does exactly 10.75 s of a 10.75 s limit, though it shows as 10.8 s."""
    zones = [
        {
            "id": "shoulder",
            "polygon": [[800, 200], [1000, 200], [1000, 800], [800, 800]],
            "dwell_s": limit,
        }
    ]
    samples = [(0.0, 900, 500), (seconds, 900, 500)]
    found = run(NoStoppingRule(geometry(True, no_stopping_zones=zones)), [Track(9, samples)])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


# Each rule names the vehicle by the track's majority class, not by the class of the frame
# that completes the violation.
VOTE_CASES: dict[str, tuple[type[TrackRule[Any]], Track, VehicleClass]] = {
    "forbidden lane": (
        ForbiddenLaneRule,
        Track(
            1,
            line_path((500, 950), (500, 850), 0, 3),
            classes=[CAR if k == 30 else TRUCK for k in range(31)],
        ),
        TRUCK,
    ),
    "solid line": (
        SolidLineRule,
        Track(
            2,
            line_path((520, 900), (680, 500), 0, 3),
            classes=[MOTO if k in (16, 17) else CAR for k in range(31)],
        ),
        CAR,
    ),
    "no stopping": (
        NoStoppingRule,
        Track(
            9,
            [(0.0, 900, 500), *hold((900, 500), 0, 30.1)],
            classes=[TRUCK if k == 301 else CAR for k in range(302)],
        ),
        CAR,
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(VOTE_CASES))
def test_violation_names_the_tracks_majority_class(name: str, metric: bool) -> None:
    rule, track, vehicle = VOTE_CASES[name]
    [v] = run(rule(geometry(metric)), [track])
    assert v.vehicle_class is vehicle
    assert v.explanation.startswith(f"{vehicle.value} ")


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize(("cycle", "fires"), [(3, True), (4, False)], ids=["0.5 s", "0.75 s"])
def test_no_stopping_keeps_a_stop_on_the_zone_edge_through_absences_up_to_the_gap_allowed(
    cycle: int, fires: bool, metric: bool
) -> None:
    # At 4 frames a second one frame in `cycle` is inside the zone (y < 800), the others
    # 4 px outside: absences of 0.5 s keep the stop (max_gap_s 0.5), of 0.75 s end it.
    samples = [(k / 4, 900, 799 if k % cycle == 0 else 803) for k in range(161)]
    found = run(NoStoppingRule(geometry(metric)), [Track(9, samples)])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


@pytest.mark.parametrize(("end", "fires"), [("14:00", False), ("15:00", True)])
def test_no_stopping_ends_a_stop_on_the_zone_edge_with_the_zones_window(
    end: str, fires: bool
) -> None:
    zones = [
        {
            "id": "shoulder",
            "polygon": [[800, 200], [1000, 200], [1000, 800], [800, 800]],
            "windows": [{"start": "13:00", "end": end}],
            "dwell_s": 29.9,
        }
    ]
    # On the zone's edge, its box jittering over it, from 13:59:30 local for 40 s.
    track = Track(9, hold((900, 799), -210, -170, jitter=3))
    found = run(NoStoppingRule(geometry(True, no_stopping_zones=zones)), [track])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


# A vehicle fined for no stopping and then hidden (a bus stopping in front of it) comes
# back with a new track id: the same stop goes on, not a new one to fine again. A vehicle
# seen riding in is another vehicle, however close and however soon. (The tracks fined.)
SAME_STOP_CASES: dict[str, tuple[list[Track], tuple[int, ...]]] = {
    "fined, hidden 3 s, seen again standing on": (
        [Track(9, hold((900, 500), 0, 40)), Track(10, hold((900, 500), 43, 90))],
        (9,),
    ),
    "fined, hidden three times, each time a new id": (
        [
            Track(9, hold((900, 500), 0, 40)),
            Track(10, hold((900, 501), 45, 80)),
            Track(11, hold((901, 500), 90, 130)),
            Track(12, hold((900, 500), 140, 180)),
        ],
        (9,),
    ),
    "fined, hidden 50 s behind a bus, seen again": (
        [Track(9, hold((900, 500), 0, 40)), Track(10, hold((900, 500), 90, 130))],
        (9,),
    ),
    "fined, hidden 4 minutes (a queue standing in front of it), seen again": (
        [Track(9, hold((900, 500), 0, 40)), Track(10, hold((900, 500), 280, 320))],
        (9,),
    ),
    "fined, hidden 6 minutes, longer than a stop is taken to go on unseen": (
        [Track(9, hold((900, 500), 0, 40)), Track(10, hold((900, 500), 400, 440))],
        (9, 10),
    ),
    "fined, drives off, another car parks on the spot 5 s later": (
        [
            Track(9, hold((900, 500), 0, 40) + line_path((900, 500), (900, 250), 40.1, 45)),
            Track(10, line_path((900, 750), (900, 500), 45, 50) + hold((900, 500), 50, 90)),
        ],
        (9, 10),
    ),
    "fined, another car parks 5 m behind it": (
        [Track(9, hold((900, 500), 0, 60)), Track(10, hold((900, 550), 20, 60))],
        (9, 10),
    ),
    "fined, hidden 3 s, seen again 5 m away (another car)": (
        [Track(9, hold((900, 500), 0, 40)), Track(10, hold((900, 550), 43, 90))],
        (9, 10),
    ),
    "fined, a passing bus hides its wheels for a frame (3.5 m off), then hidden 3 s": (
        [
            Track(9, [*hold((900, 500), 0, 40), (40.1, 900, 465), *hold((900, 500), 40.1, 50)]),
            Track(10, hold((900, 500), 53, 100)),
        ],
        (9,),
    ),
    "fined, its id goes off with a passing bus, the car re-found under a new id": (
        [
            Track(9, hold((900, 500), 0, 40) + line_path((900, 490), (900, 200), 40.1, 43)),
            Track(10, hold((900, 500), 40.1, 100)),
        ],
        (9,),
    ),
    "fined after rolling its last 1.4 m, re-found where it came to rest": (
        [
            Track(
                9,
                line_path((900, 800), (900, 514), 0, 3)
                + line_path((900, 514), (900, 500), 3, 5)[1:]
                + hold((900, 500), 5, 45),
            ),
            Track(10, hold((900, 497), 48, 100)),
        ],
        (9,),
    ),
    "fined, re-found 4 m off for 0.5 s (half hidden as the bus pulls away)": (
        [
            Track(9, hold((900, 500), 0, 40)),
            Track(10, hold((900, 540), 43, 43.5) + hold((900, 500), 43.5, 100)),
        ],
        (9,),
    ),
    "fined, re-found 2 m off (a bus still half in front of it)": (
        [Track(9, hold((900, 500), 0, 40)), Track(10, hold((900, 520), 43, 100))],
        (9,),
    ),
    "fined, a motorcycle rides in and stands 0.8 m beside it; the car hidden later": (
        [
            Track(9, hold((900, 500), 0, 90)),
            Track(
                10,
                line_path((950, 800), (908, 500), 0, 5)
                + hold((908, 500), 5, 45)
                + line_path((908, 500), (950, 200), 45, 50),
                MOTO,
            ),
            Track(11, hold((900, 500), 93, 140)),
        ],
        (9, 10),
    ),
    "fined, leaves unseen; a new car rides in 50 s later, and so on, four cars": (
        [
            Track(
                9 + k,
                line_path((900, 800), (900, 500), 100 * k, 100 * k + 3)
                + hold((900, 500), 100 * k + 3, 100 * k + 50),
            )
            for k in range(4)
        ],
        (9, 10, 11, 12),
    ),
    "fined, leaves unseen; cars queue over the spot 1.5 s each; one parks there later": (
        [Track(9, hold((900, 500), 0, 40))]
        + [
            Track(
                20 + k,
                line_path((900, 800), (900, 505), 40 + 20 * k, 43 + 20 * k)
                + hold((900, 505), 43 + 20 * k, 44.5 + 20 * k)
                + line_path((900, 505), (900, 200), 44.5 + 20 * k, 47 + 20 * k),
            )
            for k in range(12)
        ]
        + [Track(50, line_path((900, 800), (900, 500), 280, 283) + hold((900, 500), 283, 330))],
        (9, 50),
    ),
    "fined truck, a second box on it for 36 s, hidden later, back under a new id": (
        [
            Track(9, hold((900, 500), 0, 150)),
            Track(10, hold((900, 510), 40, 76)),
            Track(11, hold((900, 500), 153, 220)),
        ],
        (9,),
    ),
    "a row of eight motorcycles 0.7 m apart, each ridden in": (
        [
            Track(
                30 + k,
                line_path((990, 700), (850 + 7 * k, 500), 2 * k, 2 * k + 3)
                + hold((850 + 7 * k, 500), 2 * k + 3, 100),
                MOTO,
            )
            for k in range(8)
        ],
        tuple(range(30, 38)),
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(SAME_STOP_CASES))
def test_no_stopping_fines_a_stop_once_however_often_its_vehicle_gets_a_new_id(
    name: str, metric: bool
) -> None:
    tracks, fined = SAME_STOP_CASES[name]
    found = run(NoStoppingRule(geometry(metric)), tracks)
    assert tuple(v.track_id for v in found) == fined, [(v.track_id, v.explanation) for v in found]


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize(
    "hidden_after", [False, True], ids=["seen throughout", "hidden, back under a new id"]
)
def test_a_new_scene_does_not_fine_again_a_vehicle_fined_before_it(
    metric: bool, hidden_after: bool
) -> None:
    """A scene pushed while a fined car stands on: the rules start afresh on the new scene
    (the camera's enforcement takes the old one's fired tracks and fined places over)."""
    old = RuleSet(geometry(metric))
    parked = Track(9, hold((900, 500), 0, 40))
    fined = [v for frame in frames([parked], metric) for v in old.update(frame)]
    assert [v.rule for v in fined] == [ViolationType.NO_STOPPING]
    new = RuleSet(geometry(metric, version="synthetic/8"))
    new.carry_fired(old)
    later = Track(10 if hidden_after else 9, hold((900, 500), 45 if hidden_after else 40, 90))
    assert [v for frame in frames([later], metric) for v in new.update(frame)] == []
    # (without what the old rules knew, the new ones would fine it again)
    fresh = RuleSet(geometry(metric, version="synthetic/8"))
    again = [v for frame in frames([later], metric) for v in fresh.update(frame)]
    assert [v.rule for v in again] == [ViolationType.NO_STOPPING]


def test_a_new_calibration_maps_a_fined_stop_again_from_the_image() -> None:
    """A scene pushed with a new calibration (its road plane's origin 4 m elsewhere): the
    fined car, hidden meanwhile and back under a new id, is the same stop."""
    old = RuleSet(geometry(True))
    fined = [
        v for frame in frames([Track(9, hold((900, 500), 0, 40))], True) for v in old.update(frame)
    ]
    assert len(fined) == 1

    def moved(p: Point) -> Point:
        return Point(p.x / 10, p.y / 10 + 4.0)

    new = RuleSet(SceneGeometry(scene_config(version="synthetic/8"), moved))
    new.carry_fired(old)
    later = [Track(9, hold((900, 500), 40, 50)), Track(10, hold((900, 500), 53, 100))]
    again = []
    for frame in frames(later, True):
        points = tuple(dataclasses.replace(p, world=moved(p.ground_px)) for p in frame.points)
        again += new.update(dataclasses.replace(frame, points=points))
    assert again == [], [v.explanation for v in again]
