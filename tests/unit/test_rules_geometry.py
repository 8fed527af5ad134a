"""Plane geometry: points, polylines, polygons and debounced line sides, at their edges."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from edge.rules.geometry import Point, Polygon, Polyline, SideTracker, side_of

# A left turn: east along y = 0 for 10, then north along x = 10 for 10. Left of travel is
# +y on the first leg and -x on the second.
BEND = Polyline([Point(0, 0), Point(10, 0), Point(10, 10)])
# East along y = 0: left of travel (the positive side) is y > 0.
EAST = Polyline([Point(0, 0), Point(10, 0)])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(Point(3, 4).norm(), 5.0, id="norm is euclidean"),
        pytest.param(Point(1, 0).cross(Point(0, 1)), 1.0, id="cross is positive to the left"),
        pytest.param(Point(0, 1).cross(Point(1, 0)), -1.0, id="cross is negative to the right"),
        pytest.param(Point(1, 2).dot(Point(3, 4)), 11.0, id="dot"),
        pytest.param(Point(1, 1).distance(Point(4, 5)), 5.0, id="distance"),
    ],
)
def test_point_algebra(value: float, expected: float) -> None:
    assert value == expected


@pytest.mark.parametrize(
    ("p", "signed_distance", "along", "within"),
    [
        pytest.param(Point(5, 2), 2.0, 5.0, True, id="left of the first leg"),
        pytest.param(Point(0, 3), 3.0, 0.0, True, id="abreast of the start is within"),
        pytest.param(Point(-3, 1), math.sqrt(10), -3.0, False, id="before the start"),
        pytest.param(Point(7, 10), 3.0, 20.0, True, id="abreast of the end is within"),
        pytest.param(Point(7, 12), math.sqrt(13), 22.0, False, id="past the end"),
        pytest.param(Point(12, -2), -math.sqrt(8), 10.0, True, id="round the outside of the bend"),
        pytest.param(Point(10, 5), 0.0, 15.0, True, id="on the line"),
    ],
)
def test_polyline_places_points_up_to_its_ends(
    p: Point, signed_distance: float, along: float, within: bool
) -> None:
    place = BEND.place(p)
    assert place.signed_distance == pytest.approx(signed_distance)
    assert place.along == pytest.approx(along)
    assert place.within is within


@pytest.mark.parametrize(
    ("along", "expected"),
    [
        pytest.param(-5.0, Point(0, 0), id="before the start clamps to the start"),
        pytest.param(0.0, Point(0, 0), id="start"),
        pytest.param(10.0, Point(10, 0), id="the bend"),
        pytest.param(15.0, Point(10, 5), id="second leg"),
        pytest.param(20.0, Point(10, 10), id="end"),
        pytest.param(99.0, Point(10, 10), id="past the end clamps to the end"),
    ],
)
def test_point_at_stays_on_the_line(along: float, expected: Point) -> None:
    assert BEND.point_at(along) == expected


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Polyline([Point(0, 0)]), id="line of one point"),
        pytest.param(lambda: Polyline([Point(1, 1), Point(1, 1)]), id="line of equal points"),
        pytest.param(lambda: Polygon([Point(0, 0), Point(1, 0)]), id="polygon of two points"),
        pytest.param(lambda: SideTracker(EAST, margin=-0.1), id="negative margin"),
        pytest.param(lambda: SideTracker(EAST, margin=1.0, confirm=0), id="confirm of zero"),
    ],
)
def test_degenerate_shapes_and_settings_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_smallest_valid_shapes_and_settings_are_accepted() -> None:
    assert Polygon([Point(0, 0), Point(1, 0), Point(0, 1)]).contains(Point(0.2, 0.2))
    assert SideTracker(EAST, margin=0.0, confirm=1).side == 0


# An L-shaped (concave) zone: the 10 x 10 square less its top-right quarter.
ELL = Polygon([Point(0, 0), Point(10, 0), Point(10, 5), Point(5, 5), Point(5, 10), Point(0, 10)])


@pytest.mark.parametrize(
    ("p", "inside"),
    [
        pytest.param(Point(2, 2), True, id="inside"),
        pytest.param(Point(8, 2), True, id="inside the foot"),
        pytest.param(Point(2, 8), True, id="inside the upright"),
        pytest.param(Point(8, 8), False, id="in the notch"),
        pytest.param(Point(-1, 5), False, id="left of it"),
        pytest.param(Point(5, 11), False, id="above it"),
    ],
)
def test_polygon_contains(p: Point, inside: bool) -> None:
    assert ELL.contains(p) is inside


def lane(x0: float, x1: float) -> Polygon:
    return Polygon([Point(x0, 0), Point(x1, 0), Point(x1 + 2, 100), Point(x0 + 2, 100)])


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(Point(10.5, 25), id="a quarter up the shared edge"),
        pytest.param(Point(11, 50), id="halfway up the shared edge"),
        pytest.param(Point(11.5, 75), id="three quarters up the shared edge"),
    ],
)
def test_a_point_on_the_edge_between_two_lanes_is_in_exactly_one(p: Point) -> None:
    assert [lane(0, 10).contains(p), lane(10, 20).contains(p)].count(True) == 1


@pytest.mark.parametrize(
    ("p", "side"),
    [
        pytest.param(Point(5, 1), 1, id="left"),
        pytest.param(Point(5, -1), -1, id="right"),
        pytest.param(Point(5, 0), 1, id="on the line counts as left, as the tracker does"),
    ],
)
def test_side_of(p: Point, side: int) -> None:
    assert side_of(EAST, p) == side


TrackerCase = tuple[list[tuple[float, float]], float, int, list[tuple[float, int]], int]

TRACKER_CASES: dict[str, TrackerCase] = {
    # (points, one a second from t = 0), margin, confirm, [(crossing t, to side)], final side
    "crosses and is confirmed": ([(5, -3), (5, -3), (5, 3), (5, 3)], 1.0, 2, [(1.5, 1)], 1),
    "a sample exactly at the margin changes nothing": (
        [(5, -3), (5, -3), (5, 1), (5, 1), (5, 1)],
        1.0,
        2,
        [],
        -1,
    ),
    "samples inside the band do not break the count": (
        [(5, -3), (5, -3), (5, 3), (5, 0.5), (5, 3)],
        1.0,
        2,
        [(1.5, 1)],
        1,
    ),
    "going back to the confirmed side restarts the count": (
        [(5, -3), (5, -3), (5, 3), (5, -3), (5, 3)],
        1.0,
        2,
        [],
        -1,
    ),
    "one sample each side before either is confirmed": ([(5, 3), (5, -3)], 1.0, 2, [], 0),
    "first seen on one side, confirmed on the other: no crossing": (
        [(5, 3), (5, -3), (5, -3)],
        1.0,
        2,
        [],
        -1,
    ),
    "leaving past the line's end forgets the side": ([(5, -3), (5, -3), (15, -3)], 1.0, 2, [], 0),
    "round the end of the line is not a crossing": (
        [(5, -3), (5, -3), (15, -3), (15, 3), (5, 3), (5, 3)],
        1.0,
        2,
        [],
        1,
    ),
    "confirm 1: one sample beyond the band is enough": ([(5, -3), (5, 3)], 1.0, 1, [(0.5, 1)], 1),
    "margin 0: any sample off the line counts": (
        [(5, -0.5), (5, -0.5), (5, 0.5), (5, 0.5)],
        0.0,
        2,
        [(1.5, 1)],
        1,
    ),
}


@pytest.mark.parametrize("name", list(TRACKER_CASES))
def test_side_tracker(name: str) -> None:
    points, margin, confirm, crossings, side = TRACKER_CASES[name]
    tracker = SideTracker(EAST, margin, confirm)
    found = [tracker.update(float(t), Point(x, y)) for t, (x, y) in enumerate(points)]
    assert [(c.t, c.to_side) for c in found if c is not None] == crossings
    assert tracker.side == side
