"""Wrong way: by the order two lines are crossed (lane 1) or along a road-plane vector (lane 2)."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from edge.rules.base import RuleUnavailableError
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry
from edge.rules.tracks import TrackFrame, WorldTrackPoint
from edge.rules.wrong_way import WrongWayRule
from roadwatch.contract import ViolationType
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

# Lane 3 (the shoulder, x 800-1000) is measured along a road-plane centreline, up the image.
LANE_3 = {
    "id": "3",
    "polygon": [[800, 0], [1000, 0], [1000, 1000], [800, 1000]],
    "world_centreline": [[90, 100], [90, 0]],
}

LINES_CASES = {
    "drives down lane 1 against its direction": (line_path((500, 300), (500, 950), 0, 6), True),
    "drives up lane 1 lawfully": (line_path((500, 950), (500, 300), 0, 6), False),
    "jitters at the far line, then drives on lawfully": (
        line_path((500, 950), (500, 601), 0, 3)
        + hold((500, 600), 3, 6, jitter=3)
        + line_path((500, 600), (500, 300), 6.1, 8),
        False,
    ),
    "reverses briefly over the near line, then drives on": (
        line_path((500, 950), (500, 780), 0, 2)
        + line_path((500, 780), (500, 840), 2.1, 3)
        + line_path((500, 840), (500, 300), 3.1, 7),
        False,
    ),
    "backs a little over the far line only": (
        line_path((500, 950), (500, 560), 0, 3) + line_path((500, 560), (500, 650), 3.1, 4),
        False,
    ),
    "enters between the lines and leaves down": (line_path((500, 700), (500, 950), 0, 3), False),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(LINES_CASES))
def test_wrong_way_by_line_order(name: str, metric: bool) -> None:
    samples, fires = LINES_CASES[name]
    found = run(WrongWayRule(geometry(metric)), [Track(3, samples)])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


# Lane 2 (x 600-800) has a road-plane direction (0, -1): lawful is up the image.
AXIS_CASES = {
    "10 m down lane 2": (line_path((700, 300), (700, 400), 0, 2), True),
    "7 m down lane 2 (minimum is 8 m)": (line_path((700, 300), (700, 370), 0, 2), False),
    "up lane 2 lawfully": (line_path((700, 900), (700, 200), 0, 5), False),
    "up, backs 3 m, up again": (
        line_path((700, 900), (700, 600), 0, 3)
        + line_path((700, 600), (700, 630), 3.1, 4)
        + line_path((700, 630), (700, 300), 4.1, 7),
        False,
    ),
    "stands with heavy jitter": (hold((700, 500), 0, 10, jitter=20), False),
    "one box glitch 12 m back while driving up": (
        [
            (s, x, y + 120 if k == 30 else y)
            for k, (s, x, y) in enumerate(line_path((700, 900), (700, 200), 0, 5))
        ],
        False,
    ),
    # The mean of five would move 14 m back; the median does not move.
    "one box glitch 70 m back while driving up": (
        [
            (s, x, y + 700 if k == 45 else y)
            for k, (s, x, y) in enumerate(line_path((700, 900), (700, 200), 0, 5))
        ],
        False,
    ),
    "a first box 12 m ahead of the vehicle, then driving up": (
        [(0.0, 700.0, 780.0), *line_path((700, 900), (700, 200), 0.1, 5)],
        False,
    ),
    # Backing along the shoulder (x > 800, no lane) is not motion along lane 2.
    "up lane 2, backs 12 m on the shoulder, rejoins lane 2 driving up": (
        line_path((700, 900), (700, 300), 0, 4)
        + line_path((700, 300), (900, 300), 4.1, 5)
        + line_path((900, 300), (900, 420), 5.1, 6)
        + line_path((900, 420), (700, 420), 6.1, 7)
        + line_path((700, 420), (700, 100), 7.1, 9),
        False,
    ),
}


@pytest.mark.parametrize("name", list(AXIS_CASES))
def test_wrong_way_along_a_road_vector(name: str) -> None:
    samples, fires = AXIS_CASES[name]
    found = run(WrongWayRule(geometry(True)), [Track(3, samples)])
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]
    if fires:
        assert found[0].lane == "2" and found[0].measured.distance_m >= 8.0  # type: ignore[operator]


def test_axis_evidence_runs_from_the_farthest_point() -> None:
    [v] = run(WrongWayRule(geometry(True)), [Track(3, line_path((700, 300), (700, 400), 0, 2))])
    # The five-sample median first stands at 0.4 s, the farthest it gets; 8 m back at 2 s.
    assert (v.evidence.before - T0, v.evidence.at - T0, v.evidence.after - T0) == pytest.approx(
        (0.4, 2.0, 2.0), abs=1e-6
    )
    assert v.t == v.evidence.at


def test_positions_along_one_lane_are_not_compared_with_another_lanes() -> None:
    """Lane 3 measures along its centreline (from its start, 70 m at y=300 px); lane 2 along
    its vector (-30 m there). Driving up lane 3 and on up lane 2 is lawful throughout."""
    scene = geometry(True, lanes=[*BASE["lanes"], LANE_3], no_stopping_zones=[])
    samples = (
        line_path((900, 900), (900, 400), 0, 3)
        + line_path((900, 400), (700, 300), 3.1, 4)
        + line_path((700, 300), (700, 100), 4.1, 5.5)
    )
    assert run(WrongWayRule(scene), [Track(3, samples)]) == []


def test_wrong_way_along_a_road_centreline() -> None:
    # Lane 3's centreline here bends right at y=200 px, beyond where the vehicle drives.
    lane_3 = {**LANE_3, "world_centreline": [[90, 100], [90, 20], [140, -30]]}
    scene = geometry(True, lanes=[*BASE["lanes"], lane_3], no_stopping_zones=[])
    [v] = run(WrongWayRule(scene), [Track(3, line_path((900, 300), (900, 400), 0, 2))])
    assert v.lane == "3" and v.t == pytest.approx(T0 + 2.0) and v.measured.distance_m == 8.0
    assert v.explanation == (
        "car moved 8.0 m against the direction of lane 3 between 14:03:00.400 and 14:03:02.000"
    )


@pytest.mark.parametrize("vector", [(0, -1), (0, -5), (0, -0.2)])
def test_a_road_vectors_length_does_not_scale_the_distance(vector: tuple[float, float]) -> None:
    lanes = copy.deepcopy(BASE["lanes"])
    lanes[1]["direction"] = {"vector": list(vector)}
    track = Track(3, line_path((700, 300), (700, 400), 0, 2))
    [v] = run(WrongWayRule(geometry(True, lanes=lanes)), [track])
    assert v.t == pytest.approx(T0 + 2.0) and v.measured.distance_m == pytest.approx(8.0)
    assert v.explanation.startswith("car moved 8.0 m against the direction of lane 2 ")


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize(
    "reversed_lines",
    [("first",), ("second",), ("first", "second")],
    ids=["first", "second", "both"],
)
def test_direction_lines_may_be_drawn_either_way(
    reversed_lines: tuple[str, ...], metric: bool
) -> None:
    # A person marking the lines may click either end first: lawful travel is the same.
    lanes = copy.deepcopy(BASE["lanes"])
    for key in reversed_lines:
        lanes[0]["direction"]["lines"][key].reverse()
    rule = WrongWayRule(geometry(metric, lanes=lanes))
    down, up = line_path((500, 300), (500, 950), 0, 6), line_path((500, 950), (500, 300), 7, 13)
    [v] = run(rule, [Track(3, down), Track(4, up)])
    assert v.track_id == 3 and v.lane == "1"


def test_road_vector_lanes_need_a_calibration() -> None:
    # Without metres lane 2's vector cannot be used; lane 1's lines still can.
    assert (
        run(WrongWayRule(geometry(False)), [Track(3, line_path((700, 300), (700, 500), 0, 2))])
        == []
    )
    lanes = [geometry(True).config.lanes[1].model_dump(mode="json")]
    with pytest.raises(RuleUnavailableError, match="needs a calibration"):
        WrongWayRule(geometry(False, lanes=lanes, speed_traps=[]))


def test_explanation_and_fires_once() -> None:
    there_and_back = line_path((500, 300), (500, 950), 0, 6) + line_path(
        (500, 950), (500, 300), 6.1, 12
    )
    found = run(
        WrongWayRule(geometry(True)),
        [Track(3, there_and_back + line_path((500, 300), (500, 950), 12.1, 18))],
    )
    [v] = found
    assert v.rule is ViolationType.WRONG_WAY and v.lane == "1"
    # Judged when the near line is crossed: the evidence brackets each crossing.
    assert (v.t - T0, v.evidence.before - T0, v.evidence.at - T0, v.evidence.after - T0) == (
        pytest.approx((4.615, 2.7, 4.6, 4.7), abs=1e-3)
    )
    assert v.explanation == (
        "car drove against the direction of lane 1: it crossed the lane's far line at "
        "14:03:02.769 and then its near line at 14:03:04.615, 20.0 m further on"
    )


def test_no_distance_in_metres_without_a_calibration() -> None:
    [v] = run(WrongWayRule(geometry(False)), [Track(3, line_path((500, 300), (500, 950), 0, 6))])
    assert v.measured.distance_m is None
    assert v.explanation.endswith(", 200 px further on")


# Lawfully down lane 2 (in perspective its lawful (0, -1) is down the image, toward the
# camera) over 4 s; some frames' box bottoms land on one image point just below the
# horizon (720 m up the road, where one pixel is 72 m).
NEAR_HORIZON_CASES = {
    "three in a row": ((1.0, 1.1, 1.2), False),
    "four in a row": ((2.0, 2.1, 2.2, 2.3), False),
    "three at the start": ((0.0, 0.1, 0.2), False),
}


@pytest.mark.parametrize("name", list(NEAR_HORIZON_CASES))
def test_wrong_way_road_positions_near_the_horizon_measure_nothing(name: str) -> None:
    outliers_s, fires = NEAR_HORIZON_CASES[name]
    horizon = Point(700.0, 60.0)

    def seen(p: WorldTrackPoint) -> WorldTrackPoint:
        outlier = any(abs(p.t - T0 - s) < 1e-6 for s in outliers_s)
        ground = horizon if outlier else p.ground_px
        return dataclasses.replace(p, ground_px=ground, world=perspective(ground))

    track = Track(3, line_path((700, 300), (700, 900), 0, 4))
    shown = [TrackFrame(f.t, tuple(seen(p) for p in f.points)) for f in frames([track], True)]
    rule = WrongWayRule(SceneGeometry(scene_config(), perspective))
    found = [v for f in shown for v in rule.update(f)]
    assert len(found) == (1 if fires else 0), [v.explanation for v in found]


def test_wrong_way_far_up_the_road_jitter_measures_nothing() -> None:
    # Standing 140-720 m up the road (rows 60-100): box jitter of a few pixels there moves
    # the road position by tens of metres each way.
    pts = frames_in_perspective([Track(3, hold((700, 70), 0, 10, jitter=4))])
    rule = WrongWayRule(SceneGeometry(scene_config(), perspective))
    assert [v.explanation for f in pts for v in rule.update(f)] == []


def test_wrong_way_is_still_found_near_the_camera_under_aperspective() -> None:
    # Up lane 2 (against its lawful direction) from 8.7 m to 20 m away: 11 m back.
    samples = [(k / 10, 700.0, 50.0 + 7200.0 / (8.7 + 0.5 * k)) for k in range(24)]
    pts = frames_in_perspective([Track(3, samples)])
    rule = WrongWayRule(SceneGeometry(scene_config(), perspective))
    [v] = [v for f in pts for v in rule.update(f)]
    assert v.measured.distance_m is not None and v.measured.distance_m >= 8.0
