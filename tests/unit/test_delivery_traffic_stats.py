from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.traffic_stats import LaneObservation, TrafficAggregator
from roadwatch.contract import TrafficStats
from roadwatch.contract import VehicleClass as V

T = datetime(2026, 11, 23, 7, 3, 0, tzinfo=UTC)


def aggregator() -> TrafficAggregator:
    return TrafficAggregator(site="s", node="n", camera="c", lanes=["l1", "l2"])


def o(lane: str, track: int, cls: V = V.CAR, speed: float | None = None) -> LaneObservation:
    return LaneObservation(lane=lane, track_id=track, vehicle_class=cls, speed_kmh=speed)


def run(frames: list[tuple[float, list[LaneObservation]]]) -> list[TrafficStats]:
    agg = aggregator()
    out: list[TrafficStats] = []
    for seconds, observations in frames:
        out.extend(agg.add_frame(T + timedelta(seconds=seconds), observations))
    return out + agg.flush()


# (frames as (seconds after T, observations), expected per lane: counts, mean speed, occupancy)
CASES = [
    pytest.param(
        [(0, [o("l1", 1, V.CAR, 50)]), (1, [o("l1", 1, V.CAR, 70)]), (2, [])],
        {"l1": ({V.CAR: 1}, 60.0, 0.6667), "l2": ({}, None, 0.0)},
        id="one car counted once, its samples averaged",
    ),
    pytest.param(
        [
            (0, [o("l1", 1, V.MOTORCYCLE, 30), o("l1", 2, V.MOTORCYCLE, 40)]),
            (1, [o("l1", 3, V.CAR, 80), o("l2", 4, V.TRUCK)]),
        ],
        {"l1": ({V.CAR: 1, V.MOTORCYCLE: 2}, 50.0, 1.0), "l2": ({V.TRUCK: 1}, None, 0.5)},
        id="counts by class, each vehicle weighted once in the mean",
    ),
    pytest.param(
        [(0, [o("l1", 1)]), (1, [o("l2", 1)])],
        {"l1": ({V.CAR: 1}, None, 0.5), "l2": ({V.CAR: 1}, None, 0.5)},
        id="a lane change counts in both lanes",
    ),
]


@pytest.mark.parametrize(("frames", "expected"), CASES)
def test_one_minute(
    frames: list[tuple[float, list[LaneObservation]]],
    expected: dict[str, tuple[dict[V, int], float | None, float]],
) -> None:
    [stats] = run(frames)
    assert stats.minute_start == T
    got = {f.lane: (f.counts, f.mean_speed_kmh, f.occupancy) for f in stats.lanes}
    assert got == expected


def test_a_vehicle_across_the_minute_boundary_counts_once() -> None:
    first, second = run([(58, [o("l1", 9, V.BUS, 20)]), (61, [o("l1", 9, V.BUS, 22)])])
    assert first.minute_start == T and second.minute_start == T + timedelta(minutes=1)
    assert first.lanes[0].counts == {V.BUS: 1}
    assert second.lanes[0].counts == {}
    assert second.lanes[0].mean_speed_kmh == 22.0  # it was still observed moving
    assert second.lanes[0].occupancy == 1.0


def test_a_minute_is_published_when_a_later_frame_closes_it() -> None:
    agg = aggregator()
    assert agg.add_frame(T, [o("l1", 1)]) == []
    assert agg.add_frame(T + timedelta(seconds=59.9), []) == []
    [closed] = agg.add_frame(T + timedelta(minutes=3), [])
    assert closed.minute_start == T
    assert agg.flush()[0].minute_start == T + timedelta(minutes=3)
    assert agg.flush() == []


@pytest.mark.parametrize(
    "bad",
    [
        lambda: TrafficAggregator(site="s", node="n", camera="c", lanes=[]),
        lambda: TrafficAggregator(site="s", node="n", camera="c", lanes=["a", "a"]),
        lambda: aggregator().add_frame(T, [o("l9", 1)]),
        lambda: aggregator().add_frame(T.replace(tzinfo=None), []),
    ],
    ids=["no lanes", "duplicate lane", "unknown lane", "naive time"],
)
def test_bad_input_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]
