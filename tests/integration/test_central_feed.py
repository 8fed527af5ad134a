"""The live feed loses nothing that commits: violations whose ids commit out of order,
health changes stamped before a late commit, a reconnect with ``Last-Event-ID``; and a
disabled account's stream ends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.api import feed
from central.api.schemas import time_text
from central.db import read_session_factory, session_factory, transaction
from central.health import SILENT_AFTER
from central.intake import Message
from central.models import Camera, HealthChange, Node, User, utcnow
from central.records import HEALTH_KEPT, KeyCache, create_user, record_batch
from central.security import issue_access_token
from central.workflow import Role
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
from tests.central_fixtures import (
    PASSWORD,
    SECRET,
    Account,
    CentralDb,
    NodeIdentity,
    signed_event,
    sse_events,
    store_events,
)
from tests.factories import T0, status_position

pytestmark = pytest.mark.integration


def _status(node: NodeIdentity, state: CameraState, place: str | None = None) -> Message:
    status = NodeStatus(
        site=node.site,
        node=node.node,
        state=NodeState.ONLINE,
        sent_at=T0,
        cameras=[CameraHealth(camera="cam-01", state=state, fps=25.0, place=place)],
        **status_position(),
    )
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    return Message(topic, to_wire(sign(status, node.key)))


def violations(events: list[feed.FeedEvent]) -> list[int]:
    return [int(d["id"]) for kind, d in events if kind == "violation"]


def _out_of_order(
    central_db: CentralDb, slow: Session, node: NodeIdentity, other: NodeIdentity
) -> tuple[int, int]:
    """One ingest (``slow``, not committed) takes an id for ``node``'s violation, another
    takes the next for ``other``'s and commits: the two ids, the first not committed."""
    first = record_batch(
        slow, [Message(node.topic("cam-01"), to_wire(signed_event(node)))], KeyCache()
    )
    [second] = store_events(central_db, other, [signed_event(other)])
    [early] = first.new_violation_ids
    return early, second


# (PostgreSQL only: SQLite has one writer at a time, so its ids commit in order)
@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
def test_violations_committed_out_of_id_order_are_all_sent(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """Two ingest processes: the first takes its id, the second takes the next and commits
    first. The feed sends the second, then the first once it commits."""
    node, other = make_node(), make_node()  # (each process holds its own node's rows)
    readers = read_session_factory(central_db.engine)
    with readers() as s:
        cursor = feed.start(s, None, None)
    slow = session_factory(central_db.engine)()
    try:
        early, second = _out_of_order(central_db, slow, node, other)
        assert early < second
        with readers() as s:
            assert violations(feed.poll(s, cursor)) == [second]
        resumed_after, _at = feed.parse_resume_token(cursor.resume_token())
        assert resumed_after < early  # (a reconnect now would ask for it too)
        slow.commit()
    finally:
        slow.close()
    with readers() as s:
        assert violations(feed.poll(s, cursor)) == [early]
        assert violations(feed.poll(s, cursor)) == []
    assert early not in cursor.gaps


# (PostgreSQL only, as above)
@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("from_newest", [False, True], ids=["from now", "after the newest seen"])
def test_a_violation_whose_id_came_before_the_stream_and_commit_after_is_sent(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity], from_newest: bool
) -> None:
    """An ingest takes its id, another takes the next and commits, then a stream starts
    from now, or after the newest id the page has listed (as the IOC page asks): the
    first, committed after, is still sent."""
    node, other = make_node(), make_node()
    readers = read_session_factory(central_db.engine)
    slow = session_factory(central_db.engine)()
    try:
        early, second = _out_of_order(central_db, slow, node, other)
        with readers() as s:
            cursor = feed.start(s, second if from_newest else None, None)
            assert violations(feed.poll(s, cursor)) == []
        slow.commit()
    finally:
        slow.close()
    with readers() as s:
        assert violations(feed.poll(s, cursor)) == [early]
    assert early < second


def test_a_health_change_stamped_before_a_late_commit_is_sent(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    node = make_node()
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.UP)], KeyCache())
    readers = read_session_factory(central_db.engine)
    with readers() as s:
        cursor = feed.start(s, None, None)
    slow = session_factory(central_db.engine)()
    try:
        record_batch(slow, [_status(node, CameraState.STALLED)], KeyCache())
        slow.flush()  # stamped now; the batch commits after the feed's next poll
        with readers() as s:
            assert [k for k, d in feed.poll(s, cursor) if d.get("site") == node.site] == []
        slow.commit()
    finally:
        slow.close()
    with readers() as s:
        sent = [(k, d["state"]) for k, d in feed.poll(s, cursor) if d.get("site") == node.site]
        assert ("camera", "stalled") in sent
        assert [k for k, d in feed.poll(s, cursor) if d.get("site") == node.site] == []


@pytest.mark.parametrize("ahead", [timedelta(minutes=10), timedelta(days=365)])
def test_a_since_ahead_of_centrals_clock_starts_the_stream_now(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity], ahead: timedelta
) -> None:
    """The IOC page asks for the changes since its own clock's "a minute ago": a
    workstation's clock ahead of central's must not hide the changes of that time, nor
    keep them from every resumed stream after (the resume token took the time asked for)."""
    node = make_node()
    readers = read_session_factory(central_db.engine)
    # A change just before the stream starts (after the page read its cameras) is sent too.
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.STALLED)], KeyCache())
    with readers() as s:
        cursor = feed.start(s, None, utcnow() + ahead)
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.DOWN)], KeyCache())
    with readers() as s:
        sent = [(k, d["state"]) for k, d in feed.poll(s, cursor) if d.get("site") == node.site]
    assert ("camera", "stalled") in sent
    assert ("camera", "down") in sent
    _after, at = feed.parse_resume_token(cursor.resume_token())
    assert at <= utcnow()
    # A resume token naming a time ahead is taken the same way.
    with readers() as s:
        resumed = feed.start(s, 0, utcnow() + ahead, resumed=True)
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.UP)], KeyCache())
    with readers() as s:
        sent = [(k, d["state"]) for k, d in feed.poll(s, resumed) if d.get("site") == node.site]
    assert ("camera", "up") in sent


@pytest.mark.parametrize("resumed", [False, True])
def test_an_after_id_past_the_newest_violation_starts_at_the_next_one(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity], resumed: bool
) -> None:
    """A resume token from before central's database was restored from a backup names an
    id the ids have not reached again: the violations that come next are still sent."""
    node = make_node()
    readers = read_session_factory(central_db.engine)
    with readers() as s:
        cursor = feed.start(s, 10**9, None, resumed=resumed)
    [vid] = store_events(central_db, node, [signed_event(node)])
    with readers() as s:
        assert violations(feed.poll(s, cursor)) == [vid]
    after, _at = feed.parse_resume_token(cursor.resume_token())
    assert after == vid


def test_a_camera_event_says_where_the_camera_is(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A camera's health event names its place as the camera list does (the IOC map puts
    it there): the place shown, the one set on central and the one its node names."""
    node = make_node()
    readers = read_session_factory(central_db.engine)
    with readers() as s:
        cursor = feed.start(s, None, None)

    def camera_events() -> list[dict[str, object]]:
        with readers() as s:
            return [d for k, d in feed.poll(s, cursor) if k == "camera" and d["site"] == node.site]

    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.DOWN, "QL13 Km 22+300")], KeyCache())
    [down] = camera_events()
    where = ("place", "registered_place", "node_place")
    assert (down["state"], *(down[k] for k in where)) == (
        "down", "QL13 Km 22+300", "", "QL13 Km 22+300",
    )  # fmt: skip
    [cam] = [c for c in api.get("/api/v1/cameras", headers=accounts["ioc"].headers).json()
             if c["site"] == node.site]  # fmt: skip
    assert {k: down[k] for k in where} == {k: cam[k] for k in where}
    here = "QL13 Km 22+300, Thuận An"
    patched = api.patch(
        f"/api/v1/cameras/{cam['id']}",
        headers=accounts["supervisor"].headers,
        json={"registered_place": here},
    )
    assert patched.status_code == 200, patched.text
    [placed] = camera_events()
    assert [placed[k] for k in where] == [here, here, "QL13 Km 22+300"]


def test_a_reconnect_with_last_event_id_gets_what_happened_meanwhile(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    ioc = accounts["ioc"].headers
    [before] = store_events(central_db, node, [signed_event(node)])
    first = sse_events(
        api.get(
            "/api/v1/feed",
            headers=ioc,
            params={"after_id": before - 1, "max_events": 1, "max_seconds": 5},
        ).text
    )
    [(token, kind, data)] = first
    assert kind == "violation" and data["id"] == before and token is not None
    # Disconnected: a violation and a camera going down.
    [meanwhile] = store_events(central_db, node, [signed_event(node)])
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.DOWN)], KeyCache())
    again = api.get(  # (as EventSource reconnects: its first query, and the token)
        "/api/v1/feed",
        headers={**ioc, "Last-Event-ID": token},
        params={"after_id": before - 1, "max_seconds": 1},
    )
    assert again.status_code == 200
    events = sse_events(again.text)
    assert [d["id"] for _i, k, d in events if k == "violation"] == [meanwhile]
    assert ("camera", "down") in [(k, d.get("state")) for _i, k, d in events]
    assert "retry: 2000" in again.text
    bad = api.get("/api/v1/feed", headers={**ioc, "Last-Event-ID": "not-mine"})
    assert bad.status_code == 422 and "resume token" in bad.text


def last_event_id(text: str) -> str | None:
    """The id an EventSource holds after reading ``text``: the last ``id:`` field, of an
    event or of a block with no data (which sets it too)."""
    ids = [line[3:].strip() for line in text.splitlines() if line.startswith("id:")]
    return ids[-1] if ids else None


@pytest.mark.parametrize("quiet", ["ends", "keeps alive"])
def test_a_stream_that_sent_no_event_still_says_where_to_resume(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    monkeypatch: pytest.MonkeyPatch,
    quiet: str,
) -> None:
    """A stream from now on a quiet road ends (or drops) before any event: it has still
    given a resume token, and the reconnect with it gets the violation that came in
    between (without one, EventSource would reconnect from a new "now" and lose it)."""
    node = make_node()
    ioc = accounts["ioc"].headers
    if quiet == "keeps alive":
        monkeypatch.setattr(feed, "KEEPALIVE_S", 0.1)
    first = api.get("/api/v1/feed", headers=ioc, params={"max_seconds": 0.5})
    assert sse_events(first.text) == []
    token = last_event_id(first.text)
    assert token is not None, "a stream that sent no event gave no resume token"
    if quiet == "keeps alive":
        keep_alives = [b for b in first.text.split("\n\n") if b.startswith(": keep-alive")]
        assert keep_alives and all("\nid: " in b for b in keep_alives), first.text
    [meanwhile] = store_events(central_db, node, [signed_event(node)])
    again = api.get(
        "/api/v1/feed", headers={**ioc, "Last-Event-ID": token}, params={"max_seconds": 1}
    )
    assert again.status_code == 200
    assert meanwhile in [d["id"] for _i, k, d in sse_events(again.text) if k == "violation"]


def test_a_stream_that_ends_inside_a_poll_resumes_without_a_loss(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """Five violations in the first poll and ``max_events=2``: the second event carries a
    resume token, and the reconnect sends the other three (it may repeat the first two)."""
    node = make_node()
    ioc = accounts["ioc"].headers
    ids = store_events(central_db, node, [signed_event(node) for _ in range(5)])
    query = {"after_id": ids[0] - 1, "max_events": 2, "max_seconds": 5}
    first = sse_events(api.get("/api/v1/feed", headers=ioc, params=query).text)
    assert [d["id"] for _i, _k, d in first] == ids[:2]
    token = first[-1][0]
    assert token is not None, "the stream ended without a resume token"
    again = api.get(
        "/api/v1/feed",
        headers={**ioc, "Last-Event-ID": token},
        params={"after_id": ids[0] - 1, "max_seconds": 1},
    )
    sent = [d["id"] for _i, k, d in sse_events(again.text) if k == "violation"]
    assert set(ids[2:]) <= set(sent), sent


def test_a_disabled_account_stream_ends_at_once(
    api: TestClient, central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    node = make_node()
    name = f"ioc-{uuid.uuid4().hex[:8]}"
    with transaction(session_factory(central_db.engine)) as s:
        create_user(s, username=name, password=PASSWORD, role=Role.IOC)
    token = issue_access_token(name, Role.IOC, SECRET, 15)
    with api.stream(
        "GET",
        "/api/v1/feed",
        headers={"Authorization": f"Bearer {token}"},
        params={"max_seconds": 30},
    ) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith(": roadwatch live feed")
        with transaction(session_factory(central_db.engine)) as s:
            user = s.query(User).filter_by(username=name).one()
            user.active = False
        store_events(central_db, node, [signed_event(node)])
        rest = "\n".join(lines)  # (ends: the stream closes at the next poll)
    assert "event: violation" not in rest


def _mine(events: list[tuple[str | None, str, dict[str, Any]]], node: NodeIdentity) -> list[Any]:
    return [(k, d.get("state")) for _i, k, d in events if d.get("site") == node.site]


def test_a_reconnect_gets_the_health_changes_it_missed_in_order(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A camera down and up again while the client was away: the reconnect is sent both
    changes, in order, each with its own time and the camera's place, not only the state
    now (which would say it was up all along)."""
    node = make_node()
    ioc = accounts["ioc"].headers
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.UP, "QL13 Km 22")], KeyCache())
    first = api.get("/api/v1/feed", headers=ioc, params={"max_seconds": 0.5})
    token = last_event_id(first.text)
    assert token is not None
    # Away: the camera goes down, then up again.
    for state in (CameraState.DOWN, CameraState.UP):
        with transaction(session_factory(central_db.engine)) as s:
            record_batch(s, [_status(node, state, "QL13 Km 22")], KeyCache())
    again = api.get(
        "/api/v1/feed", headers={**ioc, "Last-Event-ID": token}, params={"max_seconds": 1}
    )
    assert again.status_code == 200
    events = [d for _i, k, d in sse_events(again.text) if d.get("site") == node.site]
    assert [(d["camera"], d["state"]) for d in events] == [("cam-01", "down"), ("cam-01", "up")]
    assert events[0]["updated_at"] < events[1]["updated_at"]
    assert {d["place"] for d in events} == {"QL13 Km 22"}
    # (a stream from now starts from now, as before: no history)
    fresh = api.get("/api/v1/feed", headers=ioc, params={"max_seconds": 0.5})
    assert _mine(sse_events(fresh.text), node) == []


def test_a_silence_that_ended_while_the_client_was_away_is_replayed(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """A node silent for a while (no status past the silent limit), heard again before
    the client came back: the client is sent the silence, from when it began, and the
    return."""
    node = make_node()
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.UP)], KeyCache())
    now = utcnow()
    heard = now - SILENT_AFTER - timedelta(seconds=30)  # (silent from 30 s ago)
    with transaction(session_factory(central_db.engine)) as s:
        s.execute(update(Node).where(Node.site == node.site).values(status_received_at=heard))
        s.execute(update(Camera).where(Camera.site == node.site).values(seen_at=heard))
        s.execute(update(HealthChange).where(HealthChange.site == node.site).values(at=heard))
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.UP)], KeyCache())  # (heard again)
    readers = read_session_factory(central_db.engine)
    with readers() as s:
        cursor = feed.start(s, None, now - timedelta(seconds=50), resumed=True)
        events = [(k, d) for k, d in feed.poll(s, cursor) if d.get("site") == node.site]
    assert [(k, d["state"]) for k, d in events] == [
        ("camera", "unknown"), ("node", "silent"), ("camera", "up"), ("node", "online"),
    ]  # fmt: skip
    assert events[0][1]["updated_at"] == time_text(heard + SILENT_AFTER)


def test_a_replay_too_long_is_cut_and_says_where(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More changes missed than a replay sends: the latest are sent, in order, after a
    ``health_cut`` event naming the span left out; a client away longer than a replay
    reaches back is told so too."""
    node = make_node()
    readers = read_session_factory(central_db.engine)
    start = utcnow()
    states = [CameraState.DOWN, CameraState.UP, CameraState.STALLED, CameraState.UP]
    for state in states:
        with transaction(session_factory(central_db.engine)) as s:
            record_batch(s, [_status(node, state)], KeyCache())
    monkeypatch.setattr(feed, "REPLAY_MAX", 2)
    with readers() as s:
        cursor = feed.start(s, None, start, resumed=True)
        events = [(k, d) for k, d in feed.poll(s, cursor) if k == "health_cut" or
                  d.get("site") == node.site]  # fmt: skip
        # (the node's state now follows the cut: its change to online was left out)
        assert [d.get("state", k) for k, d in events] == ["health_cut", "online", "stalled", "up"]
        cut = events[0][1]
        assert (cut["why"], cut["to"]) == ("count", events[2][1]["updated_at"])
        assert cut["from"] == time_text(start)
        assert [k for k, d in feed.poll(s, cursor) if d.get("site") == node.site] == []
    monkeypatch.setattr(feed, "REPLAY_MAX", 1000)
    monkeypatch.setattr(feed, "REPLAY_SPAN", timedelta(hours=1))
    long_ago = start - timedelta(hours=3)
    with readers() as s:
        cursor = feed.start(s, None, long_ago, resumed=True)
        events = [(k, d) for k, d in feed.poll(s, cursor) if k == "health_cut" or
                  d.get("site") == node.site]  # fmt: skip
    # (every change, the node's first status with its camera's: a node after its cameras)
    assert [d.get("state", k) for k, d in events] == [
        "health_cut", "down", "online", "up", "stalled", "up",
    ]  # fmt: skip
    assert (events[0][1]["why"], events[0][1]["from"]) == ("span", time_text(long_ago))


def test_health_changes_older_than_kept_are_let_go(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """A node's changes are kept two days (a replay reaches back one): its next change
    lets the older ones go, and leaves other nodes' alone."""
    node, other = make_node(), make_node()
    for who in (node, other):
        with transaction(session_factory(central_db.engine)) as s:
            record_batch(s, [_status(who, CameraState.UP)], KeyCache())
    old = utcnow() - HEALTH_KEPT - timedelta(minutes=1)
    with transaction(session_factory(central_db.engine)) as s:
        s.execute(
            update(HealthChange)
            .values(at=old)
            .where(HealthChange.site.in_([node.site, other.site]))
        )

    def kept(who: NodeIdentity) -> list[str]:
        with session_factory(central_db.engine)() as s:
            rows = s.scalars(
                select(HealthChange).where(HealthChange.site == who.site).order_by(HealthChange.id)
            )
            return [r.state for r in rows]

    assert kept(node) == ["online", "up"]
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [_status(node, CameraState.DOWN)], KeyCache())
    assert kept(node) == ["down"]
    assert kept(other) == ["online", "up"]
