"""Traffic minutes in parts: a minute a node began counting within it (after a restart)
is kept beside the part sent before, each part once, and the flow statistics add them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import column, create_engine, func, insert, select, table
from starlette.requests import ClientDisconnect
from starlette.types import Message as AsgiMessage

from central.api import csv_out, ioc
from central.api.csv_out import ROWS_PER_CHUNK
from central.db import alembic_config, session_factory, transaction
from central.intake import Message
from central.models import TrafficMinute, UtcDateTime
from central.records import KeyCache, record_batch
from edge.traffic_stats import LaneObservation, TrafficAggregator
from roadwatch.contract import CameraTopic, LaneFlow, TrafficStats, VehicleClass, to_wire
from roadwatch.contract.signing import sign
from tests.asgi import get_scope
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import Account, CentralDb, NodeIdentity

pytestmark = pytest.mark.integration

MINUTE = datetime(2026, 11, 23, 7, 3, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z"}
# The CSV's columns of the vehicles of each class: every class, in the contract's order.
CLASS_COLUMNS = ["car", "motorcycle", "bus", "truck", "bicycle", "unknown"]


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
        params={"site": node.site, "by": "hour", "classes": "true", **DAY},
    ).json()
    [bucket] = flow["buckets"]
    assert bucket["vehicles"] == 3 * 3 + 3 * 2  # both parts, each once
    assert bucket["counts"] == {"car": 3 + 2, "motorcycle": 2 * 3 + 2 * 2}  # (likewise)
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
    _taken(central_db, sent)
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
    _taken(central_db, sent)
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
    _taken(central_db, sent)
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


_LANE_CLASS = {1: VehicleClass.CAR, 2: VehicleClass.MOTORCYCLE}


def _minute_parts(node: NodeIdentity, camera: str = "cam-a") -> list[Message]:
    """Two minutes of two lanes, cars in lane-1 and motorcycles in lane-2: the first
    whole; the second counted until 20 s in, and again from 50 s in (a restart)."""
    second = MINUTE + timedelta(minutes=1)
    # (minute, counted from, counted until, lane-1's cars, speed and occupancy, lane-2's)
    parts = [
        (MINUTE, None, None, (3, 40.0, 0.2), (6, None, 0.6)),
        (second, None, second + 20 * SECOND, (2, 50.0, 0.9), (0, None, 0.0)),
        (second, second + 50 * SECOND, None, (1, 20.0, 0.3), (4, None, 0.6)),
    ]
    sent = []
    for start, began, stopped, *lanes in parts:
        stats = TrafficStats(
            site=node.site,
            node=node.node,
            camera=camera,
            minute_start=start,
            counted_from=began,
            counted_until=stopped,
            lanes=[
                LaneFlow(
                    lane=f"lane-{n}",
                    counts={_LANE_CLASS[n]: cars} if cars else {},
                    mean_speed_kmh=speed,
                    occupancy=occupancy,
                )
                for n, (cars, speed, occupancy) in enumerate(lanes, 1)
            ],
        )
        sent.append(
            Message(node.topic(camera, CameraTopic.TRAFFIC), to_wire(sign(stats, node.key)))
        )
    return sent


def _taken(central_db: CentralDb, messages: list[Message]) -> None:
    """Record ``messages`` as the ingest does, every one of them taken."""
    with transaction(session_factory(central_db.engine)) as s:
        assert record_batch(s, messages, KeyCache()).quarantined == {}


def _flow(api: TestClient, accounts: dict[str, Account], **params: str) -> list[dict[str, Any]]:
    r = api.get("/api/v1/stats/traffic", headers=accounts["ioc"].headers, params=params)
    assert r.status_code == 200, r.text
    buckets = list(r.json()["buckets"])
    if params.get("classes") == "true":  # (a bucket's vehicles are its counts by class)
        assert [b["vehicles"] for b in buckets] == [sum(b["counts"].values()) for b in buckets]
    else:  # (not asked for, not counted)
        assert all("counts" not in b for b in buckets)
    return buckets


def test_flow_by_minute_and_per_lane_weighs_each_lanes_parts_by_the_time_they_ran(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    _taken(central_db, _minute_parts(node))
    site = {"site": node.site, **DAY}

    def shown(buckets: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (
                b["bucket"],
                b.get("lane"),
                b["vehicles"],
                b["mean_speed_kmh"],
                round(b["mean_occupancy"], 4),
                b["minutes"],
            )
            for b in buckets
        ]

    first, second = "2026-11-23T14:03:00+07:00", "2026-11-23T14:04:00+07:00"
    # The camera's lanes together, a bucket a minute; the second minute's lanes ran 20 s
    # and 10 s each.
    assert shown(_flow(api, accounts, by="minute", **site)) == [
        (first, None, 9, 40.0, 0.4, 1),
        (second, None, 7, 40.0, round((0.9 * 20 + 0.3 * 10 + 0.6 * 10) / 60, 4), 1),
    ]
    assert all("lane" not in b for b in _flow(api, accounts, by="minute", **site))
    # Each lane apart: its own parts alone weigh its occupancy and speed.
    assert shown(_flow(api, accounts, by="minute", per="lane", **site)) == [
        (first, "lane-1", 3, 40.0, 0.2, 1),
        (first, "lane-2", 6, None, 0.6, 1),
        (second, "lane-1", 3, 40.0, round((0.9 * 20 + 0.3 * 10) / 30, 4), 1),
        (second, "lane-2", 4, None, round((0.6 * 10) / 30, 4), 1),
    ]
    hour = "2026-11-23T14:00:00+07:00"
    assert shown(_flow(api, accounts, by="hour", per="lane", **site)) == [
        (hour, "lane-1", 6, 40.0, round((0.2 * 60 + 0.9 * 20 + 0.3 * 10) / 90, 4), 2),
        (hour, "lane-2", 10, None, round((0.6 * 60 + 0.6 * 10) / 90, 4), 2),
    ]
    [day] = _flow(api, accounts, by="day", per="lane", camera="cam-a", **site)[:1]
    assert (day["bucket"], day["lane"], day["minutes"]) == (
        "2026-11-23T00:00:00+07:00",
        "lane-1",
        2,
    )
    # Minutes are named at the offset asked for, as hours are.
    utc = _flow(api, accounts, by="minute", utc_offset="+00:00", **site)
    assert [b["bucket"] for b in utc] == ["2026-11-23T07:03:00Z", "2026-11-23T07:04:00Z"]


CAR, MOTORCYCLE, BUS, TRUCK, BICYCLE, UNKNOWN = VehicleClass
# Two minutes of two lanes, the first in two parts (a restart 40 s in): each lane's
# vehicles by class; a class said with none (a bicycle) was not counted.
_BY_CLASS = [
    (0, None, {CAR: 2, MOTORCYCLE: 5, BUS: 1}, {MOTORCYCLE: 7, BICYCLE: 0}),
    (0, 40, {MOTORCYCLE: 3}, {}),
    (1, None, {TRUCK: 1, UNKNOWN: 2}, {CAR: 4, BICYCLE: 1}),
]


@pytest.mark.parametrize(
    ("params", "buckets"),
    [
        # (each bucket's lane, if per lane, and its counts in the order the answer gives)
        (
            {"by": "hour"},
            [(None, {"car": 6, "motorcycle": 15, "bus": 1, "truck": 1, "bicycle": 1,
                     "unknown": 2})],
        ),
        (
            {"by": "minute"},
            [(None, {"car": 2, "motorcycle": 15, "bus": 1}),
             (None, {"car": 4, "truck": 1, "bicycle": 1, "unknown": 2})],
        ),
        (
            {"by": "minute", "per": "lane"},
            [("lane-1", {"car": 2, "motorcycle": 8, "bus": 1}), ("lane-2", {"motorcycle": 7}),
             ("lane-1", {"truck": 1, "unknown": 2}), ("lane-2", {"car": 4, "bicycle": 1})],
        ),
        (
            {"by": "day", "per": "lane"},
            [("lane-1", {"car": 2, "motorcycle": 8, "bus": 1, "truck": 1, "unknown": 2}),
             ("lane-2", {"car": 4, "motorcycle": 7, "bicycle": 1})],
        ),
    ],
)  # fmt: skip
def test_flow_counts_each_vehicle_class_summing_to_its_vehicles(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    params: dict[str, str],
    buckets: list[tuple[str | None, dict[str, int]]],
) -> None:
    node = make_node()
    sent = []
    for minute, began, *lanes in _BY_CLASS:
        start = MINUTE + timedelta(minutes=minute)
        stats = TrafficStats(
            site=node.site,
            node=node.node,
            camera="cam-a",
            minute_start=start,
            counted_from=None if began is None else start + timedelta(seconds=began),
            lanes=[LaneFlow(lane=f"lane-{n}", counts=c) for n, c in enumerate(lanes, 1)],
        )
        sent.append(
            Message(node.topic("cam-a", CameraTopic.TRAFFIC), to_wire(sign(stats, node.key)))
        )
    _taken(central_db, sent)
    asked = {"site": node.site, "classes": "true", **DAY, **params}
    flow = _flow(api, accounts, **asked)
    assert [(b.get("lane"), list(b["counts"].items())) for b in flow] == [
        (lane, list(counts.items())) for lane, counts in buckets
    ]
    assert [b["vehicles"] for b in flow] == [sum(c.values()) for _, c in buckets]
    # The CSV: a column per class, the same numbers, 0 for a class not counted.
    r = api.get(
        "/api/v1/stats/traffic", headers=accounts["ioc"].headers, params={**asked, "format": "csv"}
    )
    header, rows = _csv(r)
    assert header[-len(CLASS_COLUMNS) :] == CLASS_COLUMNS
    assert [[int(row[c]) for c in CLASS_COLUMNS] for row in rows] == [
        [counts.get(c, 0) for c in CLASS_COLUMNS] for _, counts in buckets
    ]
    assert [int(row["vehicles"]) for row in rows] == [sum(c.values()) for _, c in buckets]
    # Not asked for: the same buckets without them, and no column of a class.
    del asked["classes"]
    assert _flow(api, accounts, **asked) == [
        {k: v for k, v in b.items() if k != "counts"} for b in flow
    ]
    r = api.get(
        "/api/v1/stats/traffic", headers=accounts["ioc"].headers, params={**asked, "format": "csv"}
    )
    header, rows = _csv(r)
    assert header[-1] == "minutes" and not set(header) & set(CLASS_COLUMNS)


def test_flow_by_minute_spans_at_most_a_day_and_refuses_odd_parameters(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    h = accounts["ioc"].headers

    def flow(**params: str) -> Any:
        return api.get("/api/v1/stats/traffic", headers=h, params={"site": node.site, **params})

    day = {"from": "2026-11-23T07:00:00Z", "to": "2026-11-24T07:00:00Z"}
    assert flow(by="minute", **day).status_code == 200
    # Without `from`: the first whole minute within the 24 hours before `to`.
    r = flow(by="minute", to="2026-11-24T07:03:30Z")
    assert (r.json()["from"], r.json()["to"]) == ("2026-11-23T07:04:00Z", "2026-11-24T07:03:30Z")
    r = flow(by="minute", **{"from": "2026-11-23T07:00:00Z"})
    assert r.json()["to"] == "2026-11-24T07:00:00Z"
    for by, too_long, limit in (
        ("minute", "2026-11-24T07:00:01Z", "at most 24 hours by minute in one request"),
        ("hour", "2026-12-24T07:00:01Z", "at most 31 days by hour in one request"),
    ):
        r = flow(by=by, **{"from": day["from"], "to": too_long})
        assert r.status_code == 422, r.text
        [problem] = r.json()["detail"]
        assert (problem["loc"], problem["msg"]) == (["query", "to"], limit)
    for params, name in (
        ({"by": "week"}, "by"),
        ({"by": "minute", "per": "direction"}, "per"),
        ({"by": "hour", "per": "lanes"}, "per"),
        ({"by": "hour", "lanes": "true"}, "lanes"),
    ):
        r = flow(**params)
        assert r.status_code == 422, params
        assert [p["loc"] for p in r.json()["detail"]] == [["query", name]], r.text


def test_flow_of_one_node_leaves_out_another_nodes_camera_of_the_same_id(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    one = make_node()
    two = make_node(site=one.site, node="node-02")
    sent = _minute_parts(one) + _minute_parts(one, "cam-b") + _minute_parts(two)
    _taken(central_db, sent)
    asked = {"site": one.site, "camera": "cam-a", "by": "hour", **DAY}
    both = _flow(api, accounts, **asked)
    assert [(b["node"], b["camera"]) for b in both] == [("node-01", "cam-a"), ("node-02", "cam-a")]
    [only] = _flow(api, accounts, node="node-02", **asked)
    assert (only["node"], only["camera"], only["vehicles"]) == ("node-02", "cam-a", 16)
    lanes = _flow(api, accounts, node="node-01", per="lane", **{**asked, "camera": "cam-b"})
    assert [(b["node"], b["camera"], b["lane"]) for b in lanes] == [
        ("node-01", "cam-b", "lane-1"),
        ("node-01", "cam-b", "lane-2"),
    ]
    h = accounts["ioc"].headers
    # A node's name is its site's: without the site it could be any site's node-02.
    r = api.get("/api/v1/stats/traffic", headers=h, params={"node": "node-02", "by": "hour"})
    assert r.status_code == 422, r.text
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["query", "node"] and "`site`" in problem["msg"]
    # A node or camera central never heard of there is a 404 naming it, not a quiet road.
    r = api.get("/api/v1/stats/traffic", headers=h, params={**asked, "node": "node-09"})
    assert r.status_code == 404 and f"no node 'node-09' at site '{one.site}'" in r.text
    r = api.get(
        "/api/v1/stats/traffic", headers=h, params={**asked, "node": "node-02", "camera": "cam-b"}
    )
    assert r.status_code == 404 and "no camera 'cam-b'" in r.text and "'node-02'" in r.text
    # Known, with nothing in the range: an empty answer.
    later = {"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"}
    assert _flow(api, accounts, **{**asked, **later, "node": "node-02"}) == []


def test_the_flows_schema_names_its_new_parameters_and_a_lane_never_null(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/api/v1/stats/traffic"]["get"]["parameters"]}
    assert params["by"]["schema"]["enum"] == ["minute", "hour", "day"]
    assert params["per"]["schema"]["enum"] == ["camera", "lane"]
    assert "24 hours" in params["by"]["description"]
    assert "`site`" in params["node"]["description"]
    bucket = spec["components"]["schemas"]["FlowBucket"]
    assert bucket["properties"]["lane"]["type"] == "string"  # (absent, never null)
    assert "lane" not in bucket["required"]
    # A bucket's counts by class (with `classes=true`: absent, never null, without),
    # named by the contract's classes.
    counts = bucket["properties"]["counts"]
    assert "counts" not in bucket["required"] and counts["type"] == "object"
    classes = counts["propertyNames"]["$ref"].removeprefix("#/components/schemas/")
    assert spec["components"]["schemas"][classes]["enum"] == CLASS_COLUMNS
    assert counts["additionalProperties"]["type"] == "integer"


def _as_json_cells(buckets: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The JSON's buckets as CSV writes them: every field text, null an empty cell, the
    counts if any a column per class (0 for a class not counted)."""
    return [
        {k: "" if v is None else str(v) for k, v in b.items() if k != "counts"}
        | {c: str(b["counts"].get(c, 0)) for c in CLASS_COLUMNS if "counts" in b}
        for b in buckets
    ]


def _csv(r: Any) -> tuple[list[str], list[dict[str, str]]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    lines = r.content.decode("utf-8").splitlines(keepends=True)
    assert all(line.endswith("\r\n") for line in lines)
    reader = csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


@pytest.mark.parametrize("chunk", [ROWS_PER_CHUNK, 1])
def test_flow_as_csv_is_the_json_answer_row_for_row(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    # (a chunk of one row: the rows after the first are read from the database as the
    # download is sent, and each is a chunk of the body)
    monkeypatch.setattr(ioc, "ROWS_PER_CHUNK", chunk)
    monkeypatch.setattr(csv_out, "ROWS_PER_CHUNK", chunk)
    node = make_node()
    sent = _minute_parts(node) + _minute_parts(node, "cam-b")
    _taken(central_db, sent)
    h = accounts["ioc"].headers
    lane_fields = ["bucket", "site", "node", "camera", "lane", "vehicles"]
    lane_fields += ["mean_speed_kmh", "mean_occupancy", "minutes"]
    for params, fields, filename in (
        (
            {"by": "minute", "per": "lane", "classes": "true"},
            [*lane_fields, *CLASS_COLUMNS],
            f"traffic_by-minute_per-lane_{node.site}_2026-11-23T0700+0700_2026-11-24T0700+0700",
        ),
        (
            {"by": "minute", "per": "lane"},
            lane_fields,
            f"traffic_by-minute_per-lane_{node.site}_2026-11-23T0700+0700_2026-11-24T0700+0700",
        ),
        (
            {"by": "hour", "camera": "cam-b", "classes": "true"},
            [f for f in [*lane_fields, *CLASS_COLUMNS] if f != "lane"],
            f"traffic_by-hour_{node.site}_cam-b_2026-11-23T0700+0700_2026-11-24T0700+0700",
        ),
        (
            {"by": "minute", "utc_offset": "+00:00", "to": "2026-11-23T07:05:30Z"},
            [f for f in lane_fields if f != "lane"],
            f"traffic_by-minute_{node.site}_2026-11-22T0706Z_2026-11-23T070530Z",
        ),
    ):
        asked = {"site": node.site, **DAY, **params}
        if "to" in params:
            del asked["from"]
        answer = api.get("/api/v1/stats/traffic", headers=h, params=asked)
        assert answer.status_code == 200, answer.text
        r = api.get("/api/v1/stats/traffic", headers=h, params={**asked, "format": "csv"})
        header, rows = _csv(r)
        assert header == fields
        assert rows == _as_json_cells(answer.json()["buckets"])
        assert rows
        assert r.headers["content-disposition"] == f'attachment; filename="{filename}.csv"'
        assert "content-length" not in r.headers  # (sent as it is read)
    # Times as in the JSON, at the offset asked for; a null speed an empty cell.
    asked = {"site": node.site, "by": "minute", "per": "lane", "classes": "true", **DAY}
    _, rows = _csv(api.get("/api/v1/stats/traffic", headers=h, params={**asked, "format": "csv"}))
    assert (rows[0]["bucket"], rows[0]["camera"], rows[0]["lane"]) == (
        "2026-11-23T14:03:00+07:00",
        "cam-a",
        "lane-1",
    )
    assert rows[1]["lane"] == "lane-2" and rows[1]["mean_speed_kmh"] == ""
    # A class counted in the bucket its number, every other class 0.
    assert [(r["car"], r["motorcycle"], r["bus"]) for r in rows[:2]] == [
        ("3", "0", "0"),
        ("0", "6", "0"),
    ]


def test_flow_as_csv_is_refused_and_limited_as_the_json_is(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    h = accounts["ioc"].headers

    def flow(**params: str) -> Any:
        asked = {"site": node.site, "format": "csv", **params}
        return api.get("/api/v1/stats/traffic", headers=h, params=asked)

    # Known, with nothing in the range: the header alone (a column per class if asked).
    fields = ["bucket", "site", "node", "camera", "vehicles", "mean_speed_kmh",
              "mean_occupancy", "minutes"]  # fmt: skip
    assert _csv(flow(by="hour", **DAY)) == (fields, [])
    assert _csv(flow(by="hour", classes="true", **DAY)) == ([*fields, *CLASS_COLUMNS], [])
    # A camera never heard of: a 404 in JSON, as without format.
    r = flow(by="hour", camera="cam-z", **DAY)
    assert r.status_code == 404 and "no camera 'cam-z'" in r.json()["detail"]
    # The limits and refusals of the JSON, in JSON.
    r = flow(by="minute", **{"from": "2026-11-23T07:00:00Z", "to": "2026-11-24T07:00:01Z"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "at most 24 hours by minute in one request"
    asked = {"node": "node-01", "by": "hour", "format": "csv"}
    r = api.get("/api/v1/stats/traffic", headers=h, params=asked)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "node"]
    for bad in ("xml", "CSV", ""):
        r = flow(by="hour", **{"format": bad})
        assert r.status_code == 422, bad
        assert [p["loc"] for p in r.json()["detail"]] == [["query", "format"]]
    # The same permissions: none without logging in.
    r = api.get("/api/v1/stats/traffic", params={"format": "csv", "by": "hour", **DAY})
    assert r.status_code == 401


def test_the_statistics_schema_offers_csv(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    for path in ("/api/v1/stats/traffic", "/api/v1/stats/violations"):
        op = spec["paths"][path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        assert params["format"]["schema"]["enum"] == ["json", "csv"]
        content = op["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/csv"}, path
        assert content["text/csv"]["example"].startswith(("bucket,site,", "key,count"))


# The flow's JSON as central wrote it whole, before it was streamed (the site "SITE"):
# the same data must give the same bytes, on either database, unless asked for the
# vehicles by class.
_MINUTE_PER_LANE = (
    '{"by":"minute","from":"2026-11-23T00:00:00Z","to":"2026-11-24T00:00:00Z","buckets":['
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.2,"minutes":1},'
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-2","vehicles":6,"mean_speed_kmh":null,"mean_occupancy":0.6,"minutes":1},'
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.2,"minutes":1},'
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-2","vehicles":6,"mean_speed_kmh":null,"mean_occupancy":0.6,"minutes":1},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.7,"minutes":1},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-2","vehicles":4,"mean_speed_kmh":null,"mean_occupancy":0.2,"minutes":1},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.7,"minutes":1},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-2","vehicles":4,"mean_speed_kmh":null,"mean_occupancy":0.2,"minutes":1}]}'
)
_GOLDEN_FLOWS = [
    ({"by": "minute", "per": "lane"}, _MINUTE_PER_LANE),
    (
        {"by": "hour"},
        '{"by":"hour","from":"2026-11-23T00:00:00Z","to":"2026-11-24T00:00:00Z","buckets":['
        '{"bucket":"2026-11-23T14:00:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
        '"vehicles":16,"mean_speed_kmh":40.0,"mean_occupancy":0.4167,"minutes":2},'
        '{"bucket":"2026-11-23T14:00:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
        '"vehicles":16,"mean_speed_kmh":40.0,"mean_occupancy":0.4167,"minutes":2}]}',
    ),
    (
        {"by": "day", "utc_offset": "+00:00", "camera": "cam-b"},
        '{"by":"day","from":"2026-11-23T00:00:00Z","to":"2026-11-24T00:00:00Z","buckets":['
        '{"bucket":"2026-11-23T00:00:00Z","site":"SITE","node":"node-01","camera":"cam-b",'
        '"vehicles":16,"mean_speed_kmh":40.0,"mean_occupancy":0.4167,"minutes":2}]}',
    ),
    (
        {"by": "hour", "from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"},
        '{"by":"hour","from":"2026-11-25T00:00:00Z","to":"2026-11-26T00:00:00Z","buckets":[]}',
    ),
]


# With `classes=true`, each bucket's counts by class after the fields it had before.
_MINUTE_PER_LANE_BY_CLASS = (
    '{"by":"minute","from":"2026-11-23T00:00:00Z","to":"2026-11-24T00:00:00Z","buckets":['
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.2,"minutes":1,'
    '"counts":{"car":3}},'
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-2","vehicles":6,"mean_speed_kmh":null,"mean_occupancy":0.6,"minutes":1,'
    '"counts":{"motorcycle":6}},'
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.2,"minutes":1,'
    '"counts":{"car":3}},'
    '{"bucket":"2026-11-23T14:03:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-2","vehicles":6,"mean_speed_kmh":null,"mean_occupancy":0.6,"minutes":1,'
    '"counts":{"motorcycle":6}},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.7,"minutes":1,'
    '"counts":{"car":3}},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
    '"lane":"lane-2","vehicles":4,"mean_speed_kmh":null,"mean_occupancy":0.2,"minutes":1,'
    '"counts":{"motorcycle":4}},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-1","vehicles":3,"mean_speed_kmh":40.0,"mean_occupancy":0.7,"minutes":1,'
    '"counts":{"car":3}},'
    '{"bucket":"2026-11-23T14:04:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
    '"lane":"lane-2","vehicles":4,"mean_speed_kmh":null,"mean_occupancy":0.2,"minutes":1,'
    '"counts":{"motorcycle":4}}]}'
)
_GOLDEN_FLOWS += [
    ({"by": "minute", "per": "lane", "classes": "true"}, _MINUTE_PER_LANE_BY_CLASS),
    (
        {"by": "hour", "classes": "true"},
        '{"by":"hour","from":"2026-11-23T00:00:00Z","to":"2026-11-24T00:00:00Z","buckets":['
        '{"bucket":"2026-11-23T14:00:00+07:00","site":"SITE","node":"node-01","camera":"cam-a",'
        '"vehicles":16,"mean_speed_kmh":40.0,"mean_occupancy":0.4167,"minutes":2,'
        '"counts":{"car":6,"motorcycle":10}},'
        '{"bucket":"2026-11-23T14:00:00+07:00","site":"SITE","node":"node-01","camera":"cam-b",'
        '"vehicles":16,"mean_speed_kmh":40.0,"mean_occupancy":0.4167,"minutes":2,'
        '"counts":{"car":6,"motorcycle":10}}]}',
    ),
    (
        {"by": "day", "utc_offset": "+00:00", "camera": "cam-b", "classes": "true"},
        '{"by":"day","from":"2026-11-23T00:00:00Z","to":"2026-11-24T00:00:00Z","buckets":['
        '{"bucket":"2026-11-23T00:00:00Z","site":"SITE","node":"node-01","camera":"cam-b",'
        '"vehicles":16,"mean_speed_kmh":40.0,"mean_occupancy":0.4167,"minutes":2,'
        '"counts":{"car":6,"motorcycle":10}}]}',
    ),
]


@pytest.mark.parametrize("chunk", [ROWS_PER_CHUNK, 3, 1])
def test_flow_as_json_is_streamed_with_the_bytes_of_the_whole_answer(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    # (chunks of 3 rows and of 1: the buckets of one chunk and the next are joined as
    # the whole list joins them)
    monkeypatch.setattr(ioc, "ROWS_PER_CHUNK", chunk)
    node = make_node()
    sent = _minute_parts(node) + _minute_parts(node, "cam-b")
    _taken(central_db, sent)
    for params, golden in _GOLDEN_FLOWS:
        r = api.get(
            "/api/v1/stats/traffic",
            headers=accounts["ioc"].headers,
            params={"site": node.site, **DAY, **params},
        )
        assert r.status_code == 200, r.text
        assert r.content == golden.replace("SITE", node.site).encode(), params
        assert r.headers["content-type"] == "application/json"
        if '"buckets":[]' in golden:
            # (nothing to stream: the whole answer, said to be that long)
            assert r.headers["content-length"] == str(len(r.content))
        else:
            assert "content-length" not in r.headers, params  # (sent as it is read)


class _ClientGoneError(OSError):
    """The client went away (a send to it fails, as ASGI 2.4 servers say it)."""


def _drop_after_first_chunk(
    api: TestClient, params: dict[str, str], headers: dict[str, str], how: str
) -> list[bytes]:
    """Asks the app for ``params`` as a server would and drops the download once its
    first chunk is sent: the server says the client left (``how`` "disconnect", as
    ASGI 2.3 servers such as uvicorn do) or its next send fails (``how`` "send fails").
    The chunks of the body sent before it ends, its last chunk not among them."""
    query = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in params.items())
    spec = "2.4" if how == "send fails" else "2.3"
    scope = get_scope("/api/v1/stats/traffic", query, headers, spec_version=spec)
    sent: list[bytes] = []

    async def drive() -> None:
        gone = anyio.Event()
        asked = False

        async def receive() -> AsgiMessage:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: AsgiMessage) -> None:
            if message["type"] != "http.response.body":
                assert message["status"] == 200
                return
            if gone.is_set():
                if how == "send fails":
                    raise _ClientGoneError("the client went away")
                return  # (a server after a disconnect drops what is sent)
            sent.append(message["body"])
            assert message.get("more_body"), "the answer was sent whole, not streamed"
            gone.set()

        try:
            await api.app(scope, receive, send)
        except Exception as e:
            if how != "send fails":
                raise
            assert isinstance(e, ClientDisconnect | _ClientGoneError), e

    api.portal.call(drive)  # type: ignore[union-attr]
    return sent


@pytest.mark.parametrize("how", ["disconnect", "send fails"])
@pytest.mark.parametrize("answer", ["json", "csv"])
def test_a_flow_download_dropped_part_way_gives_its_database_connection_back(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    how: str,
) -> None:
    monkeypatch.setattr(ioc, "ROWS_PER_CHUNK", 1)
    monkeypatch.setattr(csv_out, "ROWS_PER_CHUNK", 1)
    node = make_node()
    sent = _minute_parts(node) + _minute_parts(node, "cam-b")
    _taken(central_db, sent)
    pool = central_db.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    params = {"site": node.site, "by": "minute", "per": "lane", "format": answer, **DAY}
    chunks = _drop_after_first_chunk(api, params, accounts["ioc"].headers, how)
    assert chunks and chunks[0].startswith(b'{"by":"minute"' if answer == "json" else b"bucket")
    # Given back as the download ended, not when the garbage collector finds its body.
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    # ... and the next download reads from the pool as before.
    r = api.get("/api/v1/stats/traffic", headers=accounts["ioc"].headers, params=params)
    assert r.status_code == 200 and r.content.startswith(chunks[0])
