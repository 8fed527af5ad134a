"""Traffic minutes in parts: a minute a node began counting within it (after a restart)
is kept beside the part sent before, each part once, and the flow statistics add them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import column, create_engine, func, insert, select, table

from central.db import alembic_config, session_factory, transaction
from central.intake import Message
from central.models import TrafficMinute, UtcDateTime
from central.records import KeyCache, record_batch
from roadwatch.contract import CameraTopic, LaneFlow, TrafficStats, VehicleClass, to_wire
from roadwatch.contract.signing import sign
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import Account, CentralDb, NodeIdentity, postgres_schema_url

pytestmark = pytest.mark.integration

MINUTE = datetime(2026, 11, 23, 7, 3, tzinfo=UTC)
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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    urls = postgres_schema_url()
    yield next(urls)
    for _ in urls:  # drops the schema
        pass


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
