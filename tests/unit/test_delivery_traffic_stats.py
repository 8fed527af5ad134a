from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.traffic_stats import LaneObservation, TrafficAggregator, minute_of
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
        {"l1": ({V.CAR: 1}, None, 0.5), "l2": ({}, None, 0.5)},
        id="a lane change counts once, in the lane first seen in",
    ),
    pytest.param(
        [(0, [o("l1", 1, V.CAR, 10), o("l1", 2, V.CAR, 80)]), (1, [o("l1", 1, V.CAR, 30)])],
        {"l1": ({V.CAR: 2}, 50.0, 1.0), "l2": ({}, None, 0.0)},
        id="a vehicle sampled twice weighs as much as one sampled once",
    ),
    pytest.param(
        [(0, [o("l2", 1, V.CAR, 10), o("l2", 2, V.CAR, 20), o("l2", 3, V.CAR, 20.5)])],
        {"l1": ({}, None, 0.0), "l2": ({V.CAR: 3}, 16.83, 1.0)},
        id="the mean speed is rounded to two decimals",
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
        lambda: aggregator().note_sent(T.replace(tzinfo=None)),
    ],
    ids=["no lanes", "duplicate lane", "unknown lane", "naive time", "naive minute sent"],
)
def test_bad_input_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


def test_a_vehicle_changing_lanes_across_minutes_counts_once_for_the_camera() -> None:
    first, second = run([(50, [o("l1", 5)]), (58, [o("l1", 5), o("l2", 5)]), (65, [o("l2", 5)])])
    assert [sum(sum(f.counts.values()) for f in s.lanes) for s in (first, second)] == [1, 0]


def test_a_clock_set_back_starts_the_minute_it_says_again() -> None:
    """A clock an hour ahead, then corrected: the traffic after the correction is filed
    under its own minutes, not all under the wrong one; a frame a few seconds early still
    counts in the open minute."""
    agg = aggregator()
    out = agg.add_frame(T, [o("l1", 1)])
    out += agg.add_frame(T + timedelta(hours=1), [o("l1", 2)])  # the wrong time
    for minute in range(1, 4):
        out += agg.add_frame(T + timedelta(minutes=minute, seconds=1), [o("l1", 10 + minute)])
    out += agg.add_frame(T + timedelta(minutes=3, seconds=-2), [o("l1", 20)])  # (2 s early)
    out += agg.flush()
    starts = [s.minute_start - T for s in out]
    assert starts == [timedelta(minutes=m) for m in (0, 60, 1, 2, 3)]
    assert [s.lanes[0].counts for s in out] == [{V.CAR: 1}] * 4 + [{V.CAR: 2}]
    # (the minutes after the correction, up to the latest sent at the wrong time, are
    # parts: each is kept beside one of them sent before the correction, if any)
    parts = [None, None, *(T + timedelta(minutes=m, seconds=1) for m in (1, 2, 3))]
    assert [s.counted_from for s in out] == parts


def test_minutes_counted_again_after_a_clock_set_back_are_parts_of_them() -> None:
    """Counted to 07:08, then the clock set back to 07:05:30: 07:05, 07:06 and 07:07
    come again, each as a part beside the one sent before; 07:09 is new."""
    agg = aggregator()
    out: list[TrafficStats] = []
    for k in range(11):  # 07:03:00 to 07:08:00, a car each 30 s
        out += agg.add_frame(T + timedelta(seconds=30 * k), [o("l1", k)])
    for k in range(8):  # 07:05:30 to 07:09:00
        out += agg.add_frame(T + timedelta(seconds=150 + 30 * k), [o("l1", 100 + k)])
    out += agg.flush()
    keys = [(s.minute_start - T, s.part_start - T) for s in out]
    assert len(set(keys)) == len(keys), keys  # (none taken for another sent before)
    again = [(s.minute_start - T, s.counted_from - T) for s in out if s.counted_from]
    us = timedelta(microseconds=1)  # (begun on the minute's first instant, counted again)
    assert again == [
        (timedelta(minutes=2), timedelta(minutes=2, seconds=30)),
        (timedelta(minutes=3), timedelta(minutes=3) + us),
        (timedelta(minutes=4), timedelta(minutes=4) + us),
        (timedelta(minutes=5), timedelta(minutes=5) + us),
    ]
    assert sum(sum(s.lanes[0].counts.values()) for s in out) == 11 + 8  # (each car once)


def test_counting_begun_within_a_minute_is_a_part_of_it() -> None:
    """A node restarted mid-minute sends the minute in two parts; each says when it began,
    so central keeps both rather than taking the second for the first sent again."""
    before = aggregator()
    before.add_frame(T + timedelta(seconds=5), [o("l1", 1)])
    [first] = before.flush()  # (the node stops: its partial minute goes out)
    after = aggregator()  # (the node started again)
    out = after.add_frame(T + timedelta(seconds=35.5), [o("l1", 1), o("l2", 2)])
    out += after.add_frame(T + timedelta(minutes=1, seconds=2), [o("l1", 3)])
    out += after.flush()
    second, next_minute = out
    assert (first.minute_start, second.minute_start) == (T, T)
    assert first.counted_from == T + timedelta(seconds=5)
    assert second.counted_from == T + timedelta(seconds=35.5)
    assert first.part_start != second.part_start
    assert [f.counts for f in second.lanes] == [{V.CAR: 1}, {V.CAR: 1}]
    assert next_minute.counted_from is None  # (counted from its first instant)
    assert next_minute.part_start == T + timedelta(minutes=1)


def test_a_part_stopped_before_its_minute_ends_says_when() -> None:
    """A minute split by a restart: the part before it says it stopped at its last frame
    (central weighs it by the time it ran, not to the minute's end); the part after it,
    closed by a later minute's frame, ran to the end and says nothing."""
    before = aggregator()
    before.add_frame(T + timedelta(seconds=5), [o("l1", 1)])
    before.add_frame(T + timedelta(seconds=30), [o("l1", 1)])
    [first] = before.flush()  # (the node stops)
    after = aggregator()  # (started again)
    out = after.add_frame(T + timedelta(seconds=41.5), [o("l2", 2)])
    out += after.add_frame(T + timedelta(minutes=1, seconds=2), [o("l1", 3)])
    [second] = out
    assert (first.counted_from, first.counted_until) == (T + 5 * _S, T + 30 * _S)
    assert (second.counted_from, second.counted_until) == (T + 41.5 * _S, None)
    assert (second.part_start, second.part_end) == (T + 41.5 * _S, T + _M)


def test_a_minute_closed_by_a_clock_set_back_says_where_it_stopped() -> None:
    agg = aggregator()
    out = agg.add_frame(T + timedelta(minutes=5, seconds=10), [o("l1", 1)])
    out += agg.add_frame(T + timedelta(minutes=5, seconds=25), [o("l1", 1)])
    out += agg.add_frame(T + timedelta(minutes=1), [o("l1", 2)])  # (set back 4 minutes)
    [cut] = out
    assert (cut.minute_start, cut.counted_until) == (T + 5 * _M, T + 5 * _M + 25 * _S)


def test_a_frame_stamped_early_never_ends_a_part_before_it_began() -> None:
    """A part begun 10 s in, its only other frame stamped 20 s back (counted in the open
    minute, within the tolerance): the part stops where it began, not before."""
    agg = aggregator()
    agg.add_frame(T + timedelta(minutes=1, seconds=10), [o("l1", 1)])
    agg.add_frame(T + timedelta(seconds=50), [o("l1", 1)])
    [part] = agg.flush()
    assert part.counted_until == part.counted_from == T + _M + 10 * _S


_M, _S, _US = timedelta(minutes=1), timedelta(seconds=1), timedelta(microseconds=1)
_20S = 20 * _S

# (the latest minute sent before the aggregator began, as after T; its first frame, after
# T, then one every 30 s up to T + 5 min: when each of the five minutes' part began, into
# its minute; None for a whole minute)
SENT_BEFORE = [
    pytest.param(None, _20S, [_20S, None, None, None, None], id="nothing sent before"),
    pytest.param(-_M, _20S, [_20S, None, None, None, None], id="a minute before the first"),
    pytest.param(3 * _M, _20S, [_20S] * 4 + [None], id="up to a later one: each up to it a part"),
    pytest.param(3 * _M + 42 * _S, _20S, [_20S] * 4 + [None], id="a time stands for its minute"),
    pytest.param(3 * _M, 0 * _S, [_US] * 4 + [None], id="counted again from the first instant"),
    pytest.param(0 * _M, 0 * _S, [_US, None, None, None, None], id="up to the first minute"),
    pytest.param(10 * _M, _20S, [_20S] * 5, id="up to a minute past them all"),
]


@pytest.mark.parametrize(("sent", "first", "parts"), SENT_BEFORE)
@pytest.mark.parametrize("told", ["at construction", "by note_sent"])
def test_minutes_up_to_the_latest_sent_before_the_aggregator_began_are_parts(
    sent: timedelta | None, first: timedelta, parts: list[timedelta | None], told: str
) -> None:
    """A node restarted with its clock set back (it ran fast, and sent minutes up to a
    later one than it now counts): told the latest minute sent before it began, the
    aggregator counts each minute up to it as a part, never as a whole minute the
    outbox would take for the one it holds; the minutes after it are whole. (One counted
    again from its first instant begins a microsecond in, apart from the whole one.)"""
    up_to = None if sent is None else T + sent
    if told == "at construction":
        agg = TrafficAggregator(site="s", node="n", camera="c", lanes=["l1"], sent_up_to=up_to)
    else:
        agg = TrafficAggregator(site="s", node="n", camera="c", lanes=["l1"])
        agg.note_sent(up_to)
    out: list[TrafficStats] = []
    at = T + first
    while at < T + 5 * _M:
        out += agg.add_frame(at, [o("l1", 1)])
        at += 30 * _S
    out += agg.flush()
    assert [s.minute_start - T for s in out] == [m * _M for m in range(5)]
    assert [s.counted_from and s.counted_from - s.minute_start for s in out] == parts
    # (the latest minute sent is its own now, or the one it was told of, if later)
    assert agg.sent_up_to == max(T + 4 * _M, minute_of(up_to or T))


def test_an_earlier_minute_sent_than_the_aggregator_knows_changes_nothing() -> None:
    agg = TrafficAggregator(
        site="s", node="n", camera="c", lanes=["l1"], sent_up_to=T + 3 * _M + 5 * _S
    )
    assert agg.sent_up_to == T + 3 * _M
    agg.note_sent(T + _M)
    agg.note_sent(None)
    assert agg.sent_up_to == T + 3 * _M
    agg.note_sent(T + 4 * _M)
    assert agg.sent_up_to == T + 4 * _M


def test_a_part_begun_on_the_minutes_first_instant_is_the_whole_minute() -> None:
    agg = aggregator()
    agg.add_frame(T, [o("l1", 1)])
    [whole] = agg.flush()
    assert whole.counted_from is None and whole.part_start == T


def _cars_counted(stats: list[TrafficStats]) -> int:
    return sum(f.counts.get(V.CAR, 0) for s in stats for f in s.lanes)


@pytest.mark.parametrize(
    ("gap_s", "counted"),
    [(60, 1), (119, 1), (120, 1), (121, 2), (600, 2)],
    ids=["1 min", "just under 2 min", "exactly 2 min", "just over 2 min", "10 min"],
)
def test_a_track_id_seen_again_counts_again_only_after_two_minutes_unseen(
    gap_s: int, counted: int
) -> None:
    """Some trackers reuse ids: an id unseen for over two minutes is another vehicle."""
    assert _cars_counted(run([(0, [o("l1", 7)]), (gap_s, [o("l1", 7)])])) == counted


def test_a_vehicle_seen_steadily_for_minutes_counts_once() -> None:
    """Each sighting renews the track: a queue standing for five minutes is not recounted."""
    frames = [(float(t), [o("l1", 7)]) for t in range(0, 300, 30)]
    assert _cars_counted(run(frames)) == 1


@pytest.mark.parametrize(
    ("early", "parts"),
    [
        (timedelta(seconds=59), 1),
        (timedelta(seconds=60), 1),
        (timedelta(seconds=60, milliseconds=1), 2),
        (timedelta(minutes=2), 2),
    ],
    ids=["59 s early", "60 s early", "just over 60 s early", "2 min early"],
)
def test_a_frame_stamped_early_counts_in_the_open_minute_up_to_one_minute(
    early: timedelta, parts: int
) -> None:
    """Up to STEP_BACK_TOLERANCE before the open minute a frame is jitter; further back,
    the clock was set back and the frame's own minute begins, as a part."""
    open_minute = T + timedelta(minutes=5)
    agg = aggregator()
    out = agg.add_frame(open_minute + timedelta(seconds=1), [o("l1", 1)])
    out += agg.add_frame(open_minute - early, [o("l1", 2)])
    out += agg.flush()
    assert len(out) == parts
    if parts == 1:
        assert out[0].minute_start == open_minute and out[0].lanes[0].counts == {V.CAR: 2}
    else:
        back = out[1]
        assert back.minute_start == (open_minute - early).replace(second=0, microsecond=0)
        began = open_minute - early  # (its counting began there; on a minute's first
        # instant, a microsecond in: it may be counted again, after the whole one)
        on_the_minute = began.second == 0 and began.microsecond == 0
        assert back.part_start == began + timedelta(microseconds=on_the_minute)
        assert back.lanes[0].counts == {V.CAR: 1}


@pytest.mark.parametrize(("n", "ok"), [(1, True), (16, True), (17, False)], ids=str)
def test_a_camera_has_at_most_sixteen_lanes(n: int, ok: bool) -> None:
    lanes = [f"l{i}" for i in range(n)]
    if ok:
        assert TrafficAggregator(site="s", node="n", camera="c", lanes=lanes).lanes == tuple(lanes)
        return
    with pytest.raises(ValueError):
        TrafficAggregator(site="s", node="n", camera="c", lanes=lanes)


def test_after_a_flush_counting_begins_a_new_part() -> None:
    """A flush (a partial minute sent) leaves nothing behind: what follows, in the same
    minute, is a part of its own with only its own traffic."""
    agg = aggregator()
    agg.add_frame(T + timedelta(seconds=5), [o("l1", 1)])
    [first] = agg.flush()
    agg.add_frame(T + timedelta(seconds=20), [o("l2", 2)])
    [second] = agg.flush()
    assert first.counted_from == T + timedelta(seconds=5)
    assert second.counted_from == T + timedelta(seconds=20)
    assert [f.counts for f in second.lanes] == [{}, {V.CAR: 1}]
    assert [f.occupancy for f in second.lanes] == [0.0, 1.0]


def test_counts_are_listed_in_class_order() -> None:
    """Whatever order vehicles arrive in, a minute's message reads the same."""
    [stats] = run([(0, [o("l1", 1, V.TRUCK), o("l1", 2, V.BUS), o("l1", 3, V.CAR)])])
    assert list(stats.lanes[0].counts) == sorted([V.TRUCK, V.BUS, V.CAR])


def test_the_tracks_remembered_stay_bounded_on_a_long_run() -> None:
    """A node runs for months: ids unseen for over two minutes are let go (the memory
    bound is checked on the aggregator's own table, there being no other way to see it)."""
    agg = aggregator()
    for i in range(10_000):
        agg.add_frame(T + timedelta(seconds=i), [o("l1", i)])
    assert len(agg._last_seen) <= 4096


def test_a_camera_down_for_minutes_ends_its_part_at_its_last_frame() -> None:
    """The camera's stream went at 20 s into a minute and came back 7 minutes later: the
    minute it went in said it ran to its end (central weighed its 20 s of counting as a
    whole minute's), and the minute it came back in said it ran from its start. Now the
    first stops at its last frame and the second is a part begun at its first."""
    agg = aggregator()
    out = agg.add_frame(T + timedelta(seconds=1), [o("l1", 1)])
    out += agg.add_frame(T + timedelta(seconds=20), [o("l1", 1)])
    out += agg.add_frame(T + timedelta(minutes=7, seconds=5), [o("l2", 2)])
    [gone] = out
    [back] = agg.flush()
    assert (gone.part_start, gone.counted_until) == (T + _S, T + _20S)
    assert (back.minute_start, back.counted_from) == (T + 7 * _M, T + 7 * _M + 5 * _S)
    # A frame of the next minute soon after (the stream steady): the minute ran to its end.
    agg = aggregator()
    out = agg.add_frame(T + timedelta(seconds=1), [o("l1", 1)])
    out += agg.add_frame(T + timedelta(seconds=59.5), [o("l1", 1)])
    out += agg.add_frame(T + timedelta(minutes=1, seconds=0.5), [o("l1", 1)])
    [whole] = out
    [following] = agg.flush()
    assert whole.counted_until is None
    assert following.counted_from is None
