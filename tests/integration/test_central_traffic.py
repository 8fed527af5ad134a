"""Traffic minutes in parts: a minute a node began counting within it (after a restart)
is kept beside the part sent before, each part once, and the flow statistics add them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import column, create_engine, func, insert, select, table

from central.db import alembic_config, session_factory, transaction
from central.intake import Message
from central.models import TrafficMinute, UtcDateTime
from central.records import KeyCache, record_batch
from edge.traffic_stats import LaneObservation, TrafficAggregator
from roadwatch.contract import CameraTopic, LaneFlow, TrafficStats, VehicleClass, to_wire
from roadwatch.contract.signing import sign
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import Account, CentralDb, NodeIdentity

pytestmark = pytest.mark.integration

MINUTE = datetime(2026, 11, 23, 7, 3, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z"}


def part(node: NodeIdentity, counted_from: datetime | None, cars: int) -> TrafficStats:
    stats = TrafficStats(
        site=node.site,
        node=node.node,
        camera="cam-a",
        minute_start=MINUTE,
        counted_from=counted_from,
        lanes=[
            LaneFlow(lane="lane-1", counts={VehicleClass.CAR: cars}, mean_speed_kmh=40.0),
            LaneFlow(lane="lane-2", counts={VehicleClass.MOTORCYCLE: 2 * cars}),
        ],
    )
    return sign(stats, node.key)


def test_a_minute_split_by_a_restart_keeps_both_parts_once(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    before_restart = part(node, None, 3)  # (the node ran from the minute's start)
    after_restart = part(node, MINUTE + timedelta(seconds=41.5), 2)
    topic = node.topic("cam-a", CameraTopic.TRAFFIC)
    resent = [before_restart, after_restart, after_restart, before_restart]
    with transaction(session_factory(central_db.engine)) as s:
        result = record_batch(s, [Message(topic, to_wire(p)) for p in resent], KeyCache())
    assert result.quarantined == {}
    flow = api.get(
        "/api/v1/stats/traffic",
        headers=accounts["ioc"].headers,
        params={"site": node.site, "by": "hour", **DAY},
    ).json()
    [bucket] = flow["buckets"]
    assert bucket["vehicles"] == 3 * 3 + 3 * 2  # both parts, each once
    assert bucket["minutes"] == 1  # (one minute reported, in two parts)
    assert bucket["mean_speed_kmh"] == 40.0


WHOLE = 0.0  # (a part that began with its minute)
AGAIN = 1e-6  # (the minute counted again after a clock set back: a microsecond in)


@pytest.mark.parametrize(
    ("parts", "mean"),
    [
        # (minute, seconds into it the part began, each lane's occupancy)
        # Lanes weigh alike.
        ([(0, WHOLE, (0.2, 0.6))], 0.4),
        # A part weighs the seconds it spans: a whole minute 60, one begun 50 s in 10.
        ([(0, WHOLE, (0.8, 0.8)), (0, 50.0, (0.0, 0.0))], (0.8 * 60) / 70),
        ([(0, WHOLE, (0.3, 0.3)), (1, 45.0, (0.9, 0.9))], (0.3 * 60 + 0.9 * 15) / 75),
        ([(0, 30.0, (0.5, 0.1)), (1, WHOLE, (0.0, 0.0))], (0.3 * 30) / 90),
        # A minute counted again after the clock was set back spans the minute again.
        ([(0, WHOLE, (0.5, 0.5)), (0, AGAIN, (0.1, 0.1))], 0.3),
    ],
)
def test_occupancy_is_the_mean_over_the_time_each_part_spans(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    parts: list[tuple[int, float, tuple[float, float]]],
    mean: float,
) -> None:
    node = make_node()
    sent = []
    for minute, seconds_in, occupancy in parts:
        start = MINUTE + timedelta(minutes=minute)
        stats = TrafficStats(
            site=node.site,
            node=node.node,
            camera="cam-a",
            minute_start=start,
            counted_from=start + timedelta(seconds=seconds_in) if seconds_in else None,
            lanes=[
                LaneFlow(lane=f"lane-{n}", counts={VehicleClass.CAR: 1}, occupancy=o)
                for n, o in enumerate(occupancy, 1)
            ],
        )
        sent.append(
            Message(node.topic("cam-a", CameraTopic.TRAFFIC), to_wire(sign(stats, node.key)))
        )
    with transaction(session_factory(central_db.engine)) as s:
        assert record_batch(s, sent, KeyCache()).quarantined == {}
    flow = api.get(
        "/api/v1/stats/traffic",
        headers=accounts["ioc"].headers,
        params={"site": node.site, "by": "hour", **DAY},
    ).json()
    [bucket] = flow["buckets"]
    assert bucket["mean_occupancy"] == pytest.approx(mean, abs=1e-4)


def _occupancy(api: TestClient, accounts: dict[str, Account], node: NodeIdentity) -> float:
    flow = api.get(
        "/api/v1/stats/traffic",
        headers=accounts["ioc"].headers,
        params={"site": node.site, "by": "hour", **DAY},
    ).json()
    [bucket] = flow["buckets"]
    return float(bucket["mean_occupancy"])


@pytest.mark.parametrize(
    ("parts", "mean"),
    [
        # (seconds into the minute each part began and stopped, None: at its end; occupancy)
        # Stopped 30 s in by a restart, begun again 40 s in: 30 s and 20 s.
        ([(WHOLE, 30.0, 0.9), (40.0, None, 0.3)], (0.9 * 30 + 0.3 * 20) / 50),
        # A lanes change 45 s in: the part before it 45 s, the one after 15 s.
        ([(10.0, 45.0, 0.5), (45.0, None, 0.1)], (0.5 * 35 + 0.1 * 15) / 50),
        # A node before counted_until: its part runs to the minute's end, as it always has.
        ([(WHOLE, None, 0.9), (40.0, None, 0.3)], (0.9 * 60 + 0.3 * 20) / 80),
        # Said to stop at the minute's end: the whole minute.
        ([(WHOLE, 60.0, 0.6)], 0.6),
    ],
)
def test_a_part_that_says_when_it_stopped_weighs_the_time_it_ran(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    parts: list[tuple[float, float | None, float]],
    mean: float,
) -> None:
    node = make_node()
    sent = []
    for began, stopped, occupancy in parts:
        stats = TrafficStats(
            site=node.site,
            node=node.node,
            camera="cam-a",
            minute_start=MINUTE,
            counted_from=MINUTE + timedelta(seconds=began) if began else None,
            counted_until=None if stopped is None else MINUTE + timedelta(seconds=stopped),
            lanes=[LaneFlow(lane="lane-1", counts={VehicleClass.CAR: 1}, occupancy=occupancy)],
        )
        sent.append(
            Message(node.topic("cam-a", CameraTopic.TRAFFIC), to_wire(sign(stats, node.key)))
        )
    with transaction(session_factory(central_db.engine)) as s:
        assert record_batch(s, sent, KeyCache()).quarantined == {}
    assert _occupancy(api, accounts, node) == pytest.approx(mean, abs=1e-4)


def test_a_minute_split_by_a_restart_weighs_each_part_by_the_time_it_counted(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """The node counts a minute from its start, a car in its lane all the while, and
    stops 20 s in; started again 50 s in, it counts an empty lane to the minute's end.
    The lane was held 20 s of the 30 s counted: two thirds, not the third that weighing
    the first part to the minute's end would make of it."""
    node = make_node()

    def aggregator() -> TrafficAggregator:
        return TrafficAggregator(site=node.site, node=node.node, camera="cam-a", lanes=["l1"])

    def frames(agg: TrafficAggregator, first: float, last: float, held: bool) -> None:
        at = first
        while at <= last:
            seen = [LaneObservation("l1", 7, VehicleClass.CAR)] if held else []
            out = agg.add_frame(MINUTE + timedelta(seconds=at), seen)
            assert out == []
            at += 0.5

    before = aggregator()
    frames(before, 0.0, 20.0, held=True)
    [stopped] = before.flush()  # (the node stops)
    after = aggregator()  # (started again)
    frames(after, 50.0, 59.5, held=False)
    [counted] = after.add_frame(MINUTE + timedelta(minutes=1, seconds=1), [])
    topic = node.topic("cam-a", CameraTopic.TRAFFIC)
    sent = [Message(topic, to_wire(sign(p, node.key))) for p in (stopped, counted)]
    with transaction(session_factory(central_db.engine)) as s:
        assert record_batch(s, sent, KeyCache()).quarantined == {}
    assert _occupancy(api, accounts, node) == pytest.approx(20 / 30, abs=1e-3)


def test_minutes_stored_before_parts_upgrade_as_whole_minutes(empty_database: str) -> None:
    """Migration 0012: each row stored before is a whole minute, its part begun with it;
    downgrading keeps each minute's earliest part, the one the code before kept."""
    from alembic import command

    cfg = alembic_config(empty_database)
    command.upgrade(cfg, "0011_login_failures")
    before = table(
        "traffic",
        *(column(name) for name in ("site", "node", "camera", "lane", "vehicles")),
        *(column(name) for name in ("counts_json", "mean_speed_kmh", "occupancy")),
        column("minute_start", UtcDateTime()),
    )
    row = {"site": "s", "node": "n", "camera": "c", "lane": "l", "minute_start": MINUTE}
    row |= {"vehicles": 7, "counts_json": "{}", "mean_speed_kmh": None, "occupancy": 0.5}
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.execute(insert(before), [row])
        command.upgrade(cfg, "head")
        with engine.begin() as conn:
            assert conn.execute(select(TrafficMinute.part_start)).scalar_one() == MINUTE
            later = row | {"vehicles": 4, "part_start": MINUTE + timedelta(seconds=30)}
            conn.execute(insert(TrafficMinute), [later])
            assert conn.execute(select(func.sum(TrafficMinute.vehicles))).scalar_one() == 11
        command.downgrade(cfg, "0011_login_failures")
        with engine.begin() as conn:
            assert conn.execute(select(before.c.vehicles)).scalars().all() == [7]
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def test_minutes_stored_before_part_ends_ran_to_their_minutes_end(empty_database: str) -> None:
    """Migration 0017: a part stored before says no end (it ran to its minute's end, as
    the code before weighed it); downgrading keeps every row."""
    from alembic import command

    cfg = alembic_config(empty_database)
    command.upgrade(cfg, "0016_status_wills_replayed")
    before = table(
        "traffic",
        *(column(name) for name in ("site", "node", "camera", "lane", "vehicles")),
        *(column(name) for name in ("counts_json", "mean_speed_kmh", "occupancy")),
        column("minute_start", UtcDateTime()),
        column("part_start", UtcDateTime()),
    )
    row = {"site": "s", "node": "n", "camera": "c", "lane": "l", "minute_start": MINUTE}
    row |= {"vehicles": 7, "counts_json": "{}", "mean_speed_kmh": None, "occupancy": 0.5}
    row |= {"part_start": MINUTE}
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.execute(insert(before), [row])
        command.upgrade(cfg, "head")
        with engine.begin() as conn:
            assert conn.execute(select(TrafficMinute.part_end)).scalar_one() is None
            ended = row | {"part_start": MINUTE + timedelta(seconds=30)}
            conn.execute(insert(TrafficMinute), [ended | {"part_end": MINUTE + 40 * SECOND}])
            assert conn.execute(select(func.count()).select_from(before)).scalar_one() == 2
        command.downgrade(cfg, "0016_status_wills_replayed")
        with engine.begin() as conn:
            assert conn.execute(select(before.c.vehicles)).scalars().all() == [7, 7]
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
