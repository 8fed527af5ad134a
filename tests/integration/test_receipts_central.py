"""Central's side of end-to-end receipts on both databases: receipts after commit over the
real Mosquitto (duplicates included), and reconciliation of a node's outbox through the
real ``POST /api/v1/events/known``."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from central.app import create_app
from central.ingest import IngestService
from central.settings import Settings
from edge.outbox import MessageState, Outbox
from edge.reconcile import reconcile
from roadwatch.contract import (
    NodeTopic,
    ViolationEvent,
    node_topic,
    parse_payload,
    to_wire,
)
from roadwatch.contract.models import ReceiptBatch
from roadwatch.contract.signing import generate_private_key, sign
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import (
    CentralDb,
    NodeIdentity,
    Publisher,
    ingest_settings,
    jpeg_blob,
    signed_event,
    store_events,
    wait_for,
)
from tests.delivery_support import BIG_BUDGET
from tests.factories import violation_event
from tests.services import BrokerAddress

pytestmark = pytest.mark.integration


class ReceiptListener:
    """Subscribes to one node's receipt topic and keeps every batch it gets."""

    def __init__(self, broker: BrokerAddress, topic: str) -> None:
        self.batches: list[ReceiptBatch] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"node-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.batches.append(parse_payload(ReceiptBatch, bytes(message.payload)))

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for b in self.batches for r in b.receipts]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_receipts_follow_the_commit_and_repeat_for_a_resent_event(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
) -> None:
    node = make_node()
    other = make_node(site=node.site, node="node-02")
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    listener = ReceiptListener(mqtt_broker, node_topic(node.site, node.node, NodeTopic.RECEIPT))
    theirs = ReceiptListener(mqtt_broker, node_topic(node.site, other.node, NodeTopic.RECEIPT))
    events = [signed_event(node) for _ in range(3)]
    try:
        with IngestService(settings, central_db.engine) as ingest:
            assert ingest.wait_ready(10), "ingest did not subscribe"
            for event in events:
                publisher.publish(node.topic(), to_wire(event))
            wait_for("three receipts", lambda: len(listener.event_ids()) >= 3)
            # The edge never saw its receipt and sends the event again: central holds it
            # already, stores nothing new, and answers with a receipt again.
            publisher.publish(node.topic(), to_wire(events[0]))
            wait_for("a second receipt", lambda: len(listener.event_ids()) >= 4)
            theirs_event = signed_event(other)
            publisher.publish(other.topic(), to_wire(theirs_event))
            wait_for("the other node's receipt", lambda: len(theirs.event_ids()) >= 1)
        ids = listener.event_ids()
        assert sorted(ids) == sorted([e.event_id for e in events] + [events[0].event_id])
        assert theirs.event_ids() == [theirs_event.event_id]
        batch = listener.batches[0]
        assert (batch.site, batch.node) == (node.site, node.node)
        # Signed events from the fixture list evidence central does not hold yet.
        assert all(not r.evidence_complete for b in listener.batches for r in b.receipts)
    finally:
        listener.close()
        theirs.close()


class _ApiAnswer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class ApiKnownClient:
    """The edge's reconciliation call, made against the real central application."""

    def __init__(self, api: TestClient, headers: dict[str, str]) -> None:
        self.api = api
        self.headers = headers
        self.calls = 0

    def known(self, event_ids: list[str]) -> _ApiAnswer:
        self.calls += 1
        r = self.api.post(
            "/api/v1/events/known", json={"event_ids": event_ids}, headers=self.headers
        )
        return _ApiAnswer(r.status_code, r.content)


def _publish_all(outbox: Outbox, events: list[ViolationEvent]) -> None:
    for event in events:
        outbox.put_violation(event, [])
    outbox.mark_published([e.event_id for e in events])


def test_reconcile_marks_held_events_receipted_and_resends_the_rest(
    api: TestClient,
    central_db: CentralDb,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    node = make_node()
    events = [signed_event(node, evidence=[]) for _ in range(1205)]
    held = events[:700]
    store_events(central_db, node, held)
    clock = [1_000_000.0]
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=lambda: clock[0]) as outbox:
        _publish_all(outbox, events)
        client = ApiKnownClient(api, node.headers)
        assert reconcile(outbox, client, older_than_s=600).asked == 0  # none old enough yet
        clock[0] += 3600
        done = reconcile(outbox, client, older_than_s=600)
        assert (done.asked, done.held, done.resent) == (1205, 700, 505)
        assert client.calls == 2  # at most 1,000 ids a call
        assert outbox.message_state(held[0].event_id) is MessageState.RECEIPTED
        due = {m.id for m in outbox.due_resends(2000)}
        assert due == {e.event_id for e in events[700:]}
        assert outbox.stats().awaiting_receipt == 505


def test_reconcile_leaves_everything_when_central_refuses(
    api: TestClient, make_node: Callable[..., NodeIdentity], tmp_path: Path
) -> None:
    node = make_node()
    events = [signed_event(node, evidence=[])]
    clock = [1_000_000.0]
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=lambda: clock[0]) as outbox:
        _publish_all(outbox, events)
        clock[0] += 3600
        bad = ApiKnownClient(api, {"Authorization": "Bearer rwn_not-a-token"})
        assert reconcile(outbox, bad, older_than_s=600).asked == 0
        assert outbox.message_state(events[0].event_id) is MessageState.PUBLISHED
        assert outbox.stats().awaiting_receipt == 1


def test_receipt_batches_are_valid_json_on_the_wire() -> None:
    # Guard for the wire form the edge parses (kept here next to its producer's tests).
    from datetime import UTC, datetime

    from central.receipts import HeldEvent, receipt_messages
    from roadwatch.contract.ids import new_event_id

    now = datetime(2026, 1, 1, tzinfo=UTC)
    held = [HeldEvent("s1", "n1", new_event_id(), now, True) for _ in range(2500)]
    held += [HeldEvent("s1", "n2", new_event_id(), now, False)]
    messages = receipt_messages(held, now)
    assert [(m.topic, m.count) for m in messages] == [
        ("roadwatch/v1/s1/n1/receipt", 1000),
        ("roadwatch/v1/s1/n1/receipt", 1000),
        ("roadwatch/v1/s1/n1/receipt", 500),
        ("roadwatch/v1/s1/n2/receipt", 1),
    ]
    first = json.loads(messages[0].payload)
    assert first["site"] == "s1" and first["node"] == "n1"


def test_a_receipt_follows_when_evidence_becomes_complete(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
) -> None:
    node = make_node()
    frame, ref = jpeg_blob()
    sha = ref.sha256
    event = signed_event(node, evidence=[ref])
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    listener = ReceiptListener(mqtt_broker, node_topic(node.site, node.node, NodeTopic.RECEIPT))
    app = create_app(settings, engine=central_db.engine, with_ingest=True)
    try:
        with TestClient(app) as client:
            assert app.state.ingest.wait_ready(10)
            publisher.publish(node.topic(), to_wire(event))
            wait_for("the first receipt", lambda: len(listener.event_ids()) >= 1)
            headers = {**node.headers, "Content-Type": "image/jpeg"}
            r = client.put(f"/api/v1/evidence/{sha}", content=frame, headers=headers)
            assert r.status_code == 201, r.text
            wait_for("the completion receipt", lambda: len(listener.event_ids()) >= 2)
        flags = [r.evidence_complete for b in listener.batches for r in b.receipts]
        assert listener.event_ids() == [event.event_id] * 2
        assert flags == [False, True]
    finally:
        listener.close()


@dataclass
class _Reply:
    status: int
    body: bytes


@pytest.mark.parametrize(
    "body",
    [b"{", b"[" * 5000, b'{"known": 5}', b"[]", b'{"other": []}'],
    ids=["truncated", "nested", "not-a-list", "not-an-object", "no-known"],
)
def test_reconcile_leaves_everything_when_the_answer_is_unreadable(
    body: bytes, tmp_path: Path
) -> None:
    events = [sign(violation_event(evidence=[]), generate_private_key())]
    clock = [1_000_000.0]

    class Garbled:
        def known(self, event_ids: list[str]) -> _Reply:
            return _Reply(200, body)

    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=lambda: clock[0]) as outbox:
        _publish_all(outbox, events)
        clock[0] += 3600
        assert reconcile(outbox, Garbled(), older_than_s=600).asked == 0
        assert outbox.message_state(events[0].event_id) is MessageState.PUBLISHED
