"""Camera and node health as the IOC reads it: a camera its node no longer reports and
a node that has gone silent are not shown as they last were."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from central.api import feed
from central.db import read_session_factory, session_factory, transaction
from central.intake import Message
from central.models import Camera, HealthChange, Node, utcnow
from central.records import KeyCache, record_batch
from roadwatch.contract import (
    CameraHealth,
    CameraState,
    NodeState,
    NodeStatus,
    NodeTopic,
    node_topic,
    to_wire,
)
from roadwatch.contract.signing import sign
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import Account, CentralDb, NodeIdentity, sse_events
from tests.factories import T0, status_position

pytestmark = pytest.mark.integration

SILENT_AFTER = timedelta(seconds=120)  # (central's default)


def report(
    db: CentralDb,
    node: NodeIdentity,
    cameras: list[str],
    *,
    sent_at: datetime = T0,
    awaiting_key: int = 0,
    state: CameraState = CameraState.UP,
) -> None:
    status = NodeStatus(
        site=node.site,
        node=node.node,
        state=NodeState.ONLINE,
        sent_at=sent_at,
        cameras=[CameraHealth(camera=c, state=state, fps=25.0) for c in cameras],
        awaiting_key=awaiting_key,
        **status_position(),
    )
    message = Message(
        node_topic(node.site, node.node, NodeTopic.STATUS), to_wire(sign(status, node.key))
    )
    with transaction(session_factory(db.engine)) as s:
        assert not record_batch(s, [message], KeyCache()).quarantined


def heard_last(db: CentralDb, node: NodeIdentity, at: datetime) -> None:
    """As if the node's last status had come at ``at`` (and nothing since)."""
    with transaction(session_factory(db.engine)) as s:
        s.execute(
            update(Node)
            .where(Node.site == node.site, Node.node == node.node)
            .values(status_received_at=at)
        )
        s.execute(update(Camera).where(Camera.site == node.site).values(seen_at=at, updated_at=at))
        # (and the changes it made, then)
        s.execute(update(HealthChange).where(HealthChange.site == node.site).values(at=at))


def cameras(api: TestClient, who: Account, node: NodeIdentity) -> dict[str, tuple[str, str]]:
    r = api.get("/api/v1/cameras", headers=who.headers)
    assert r.status_code == 200, r.text
    return {c["camera"]: (c["state"], c["reason"]) for c in r.json() if c["site"] == node.site}


def test_a_camera_its_node_no_longer_reports_is_unknown(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    report(central_db, node, ["cam-01", "cam-02"])
    report(central_db, node, ["cam-01"])  # cam-02 taken out of the node's configuration
    got = cameras(api, accounts["ioc"], node)
    assert got["cam-01"] == ("up", "")
    assert got["cam-02"][0] == "unknown" and "not in the node's status" in got["cam-02"][1]
    report(central_db, node, ["cam-01", "cam-02"])  # and put back
    assert cameras(api, accounts["ioc"], node)["cam-02"] == ("up", "")


def test_a_node_that_stops_sending_status_is_silent_and_its_cameras_unknown(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    ioc = accounts["ioc"]
    report(central_db, node, ["cam-01"])
    assert cameras(api, ioc, node) == {"cam-01": ("up", "")}
    [listed] = [c for c in api.get("/api/v1/cameras", headers=ioc.headers).json()
                if c["site"] == node.site]  # fmt: skip
    assert listed["seen_at"] is not None
    heard_last(central_db, node, utcnow() - timedelta(minutes=10))
    state, reason = cameras(api, ioc, node)["cam-01"]
    assert state == "unknown" and reason.startswith("no status from the node for")
    nodes = {
        (n["site"], n["node"]): n for n in api.get("/api/v1/nodes", headers=ioc.headers).json()
    }
    assert nodes[(node.site, node.node)]["state"] == "silent"
    geo = api.get("/api/v1/cameras.geojson", headers=ioc.headers).json()
    [feature] = [f for f in geo["features"] if f["properties"]["site"] == node.site]
    assert feature["properties"]["state"] == "unknown"
    report(central_db, node, ["cam-01"])  # heard again
    assert cameras(api, ioc, node) == {"cam-01": ("up", "")}
    nodes = {
        (n["site"], n["node"]): n for n in api.get("/api/v1/nodes", headers=ioc.headers).json()
    }
    assert nodes[(node.site, node.node)]["state"] == "online"


def test_the_live_feed_says_when_a_node_falls_silent_and_when_it_is_heard_again(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    node = make_node()
    report(central_db, node, ["cam-01"])
    # Its last status came 130 s ago: it fell silent 10 s ago, after the stream's start.
    now = utcnow()
    heard_last(central_db, node, now - SILENT_AFTER - timedelta(seconds=10))
    with session_factory(central_db.engine)() as s:
        cursor = feed.start(s, None, now - timedelta(seconds=20))
        events = [(k, d) for k, d in feed.poll(s, cursor) if d.get("site") == node.site]
        assert [(k, d["state"]) for k, d in events] == [("camera", "unknown"), ("node", "silent")]
        assert [d for k, d in feed.poll(s, cursor) if d.get("site") == node.site] == []
    report(central_db, node, ["cam-01"])
    with session_factory(central_db.engine)() as s:
        events = [(k, d) for k, d in feed.poll(s, cursor) if d.get("site") == node.site]
    assert sorted((k, d["state"]) for k, d in events) == [("camera", "up"), ("node", "online")]


def test_the_node_list_shows_the_violations_a_node_holds_awaiting_its_key(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A node started with a key central lacks keeps the violations central refused as
    forged, awaiting the key's registration, and its status counts them: the admin's node
    list shows the count with the rest of the status."""
    node = make_node()
    report(central_db, node, ["cam-01"], awaiting_key=3)
    [mine] = [
        n for n in api.get("/api/v1/nodes", headers=accounts["ioc"].headers).json()
        if n["site"] == node.site
    ]  # fmt: skip
    assert (mine["status"]["awaiting_key"], mine["status"]["awaiting_receipt"]) == (3, 0)


def test_every_read_of_health_spells_its_times_alike(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """The camera list, the node list, the GeoJSON and the live feed give a camera's (and a
    node's) times in one spelling, UTC with ``Z`` as every other response does, so a client
    that compares or parses them strictly reads one format."""
    node = make_node()
    ioc = accounts["ioc"].headers
    since = (utcnow() - timedelta(seconds=5)).isoformat()
    report(central_db, node, ["cam-01"])
    [listed] = [c for c in api.get("/api/v1/cameras", headers=ioc).json()
                if c["site"] == node.site]  # fmt: skip
    [mine] = [n for n in api.get("/api/v1/nodes", headers=ioc).json() if n["site"] == node.site]
    geo = api.get("/api/v1/cameras.geojson", headers=ioc).json()
    [feature] = [f["properties"] for f in geo["features"] if f["properties"]["site"] == node.site]
    streamed = sse_events(
        api.get("/api/v1/feed", headers=ioc, params={"since": since, "max_seconds": 0.5}).text
    )
    [camera] = [d for _i, k, d in streamed if k == "camera" and d["site"] == node.site]
    [node_event] = [d for _i, k, d in streamed if k == "node" and d["site"] == node.site]
    assert listed["updated_at"].endswith("Z") and listed["seen_at"].endswith("Z")
    assert feature["updated_at"] == listed["updated_at"]
    assert feature["seen_at"] == listed["seen_at"]
    assert camera["updated_at"] == listed["updated_at"]
    assert node_event["updated_at"] == mine["updated_at"]


@pytest.mark.parametrize(
    ("sent_ago_s", "offset_near", "off"),
    [(0, 0, False), (-600, 600, True), (3600, -3600, True)],
)
def test_a_nodes_clock_off_centrals_is_flagged_in_the_node_list(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    sent_ago_s: float,
    offset_near: float,
    off: bool,
) -> None:
    """A node whose clock is off stamps its evidence as much off: the node list gives the
    offset at its last status (its time less central's on receipt) and flags one over the
    tolerance, which a little network delay stays well inside."""
    node = make_node()
    ioc = accounts["ioc"].headers
    [before] = [n for n in api.get("/api/v1/nodes", headers=ioc).json() if n["site"] == node.site]
    assert (before["clock_offset_s"], before["clock_off"]) == (None, False)
    report(central_db, node, ["cam-01"], sent_at=utcnow() - timedelta(seconds=sent_ago_s))
    [mine] = [n for n in api.get("/api/v1/nodes", headers=ioc).json() if n["site"] == node.site]
    assert abs(mine["clock_offset_s"] - offset_near) < 5
    assert mine["clock_off"] is off


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    "edit",
    [
        {"name": "Cổng KCN Sóng Thần"},
        {"registered_place": "QL13 Km 22+300, Thuận An"},
        {"latitude": 10.9046, "longitude": 106.7047},
    ],
)
def test_naming_or_placing_a_camera_leaves_since_when_it_is_in_its_state(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    edit: dict[str, object],
) -> None:
    """A camera down since T, named or placed on central 5 minutes later: the camera list,
    the GeoJSON and the live feed still say down since T, and the feed sends the camera
    again for the edit (once)."""
    node = make_node()
    report(central_db, node, ["cam-01"], state=CameraState.DOWN)
    down_since = utcnow() - timedelta(minutes=5)
    with transaction(session_factory(central_db.engine)) as s:
        s.execute(update(Camera).where(Camera.site == node.site).values(updated_at=down_since))
        s.execute(update(HealthChange).where(HealthChange.site == node.site).values(at=down_since))
    readers = read_session_factory(central_db.engine)
    with readers() as s:
        cursor = feed.start(s, None, None)
    ioc = accounts["ioc"].headers
    [cam] = [c for c in api.get("/api/v1/cameras", headers=ioc).json() if c["site"] == node.site]
    patched = api.patch(
        f"/api/v1/cameras/{cam['id']}", headers=accounts["supervisor"].headers, json=edit
    )
    assert patched.status_code == 200, patched.text

    [listed] = [c for c in api.get("/api/v1/cameras", headers=ioc).json()
                if c["site"] == node.site]  # fmt: skip
    assert {k: listed[k] for k in edit} == edit
    assert (listed["state"], _time(listed["updated_at"])) == ("down", down_since)
    geo = api.get("/api/v1/cameras.geojson", headers=ioc).json()
    [feature] = [f["properties"] for f in geo["features"] if f["properties"]["site"] == node.site]
    assert feature["updated_at"] == listed["updated_at"]
    with readers() as s:
        [sent] = [d for k, d in feed.poll(s, cursor) if k == "camera" and d["site"] == node.site]
        assert (sent["state"], _time(sent["updated_at"])) == ("down", down_since)
        assert [d for k, d in feed.poll(s, cursor) if d.get("site") == node.site] == []


def test_a_camera_stored_before_migration_0020_keeps_since_when_it_is_in_its_state(
    empty_database: str,
) -> None:
    """Migration 0020: a camera stored before keeps its state's time and has no edit time;
    downgrading keeps the camera and its state's time."""
    from alembic import command
    from sqlalchemy import column, create_engine, insert, select, table

    from central.db import alembic_config
    from central.models import UtcDateTime

    cfg = alembic_config(empty_database)
    command.upgrade(cfg, "0019_status_received_at")
    cameras = table(
        "cameras",
        *(column(name) for name in ("id", "site", "node", "camera", "name", "place")),
        *(column(name) for name in ("state", "reason")),
        column("updated_at", UtcDateTime()),
    )
    row = {"id": 1, "site": "s", "node": "n", "camera": "cam-01", "name": "", "place": "",
           "state": "down", "reason": "no frames", "updated_at": T0}  # fmt: skip
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.execute(insert(cameras), [row])
        command.upgrade(cfg, "head")
        with session_factory(engine)() as s:
            cam = s.scalars(select(Camera)).one()
            assert (cam.state, cam.updated_at, cam.edited_at) == ("down", T0, None)
        command.downgrade(cfg, "0019_status_received_at")
        with engine.begin() as conn:
            assert conn.execute(select(cameras.c.state, cameras.c.updated_at)).all() == [
                ("down", T0)
            ]
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
