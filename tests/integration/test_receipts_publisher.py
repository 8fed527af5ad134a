"""The publisher's side of receipts over the shared Mosquitto: receipts mark events
receipted, a receipt for another node is ignored, and the node status reports what
still awaits a receipt."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.delivery_config import DeliveryConfig
from edge.outbox import MessageState, Outbox
from edge.publisher import Publisher
from roadwatch.contract import NodeTopic, node_topic, to_wire
from roadwatch.contract.models import Receipt, ReceiptBatch
from tests.delivery_support import BIG_BUDGET, KEY, Consumer, signed_event
from tests.services import BrokerAddress

pytestmark = pytest.mark.integration


def _wait(what: str, check: object, timeout: float = 15.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_receipts_mark_events_and_the_status_counts_the_rest(
    tmp_path: Path, mqtt_broker: BrokerAddress
) -> None:
    site = "t" + uuid.uuid4().hex[:12]
    cfg = DeliveryConfig.model_validate(
        {
            "site": site,
            "node": "node-01",
            "key_path": str(tmp_path / "node.key"),
            "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port, "keepalive_s": 5},
            "outbox": {"path": str(tmp_path / "outbox")},
            "status_interval_s": 0.2,
        }
    )
    status_topic = node_topic(site, "node-01", NodeTopic.STATUS)
    consumer = Consumer(mqtt_broker.host, mqtt_broker.port, [status_topic], f"c-{site}")
    central = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"central-{site}")
    central.connect(mqtt_broker.host, mqtt_broker.port)
    central.loop_start()
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    events = [signed_event([], site=site)[0] for _ in range(5)]
    try:
        for event in events:
            outbox.put_violation(event, [])
        publisher.start()
        _wait("all published", lambda: outbox.stats().awaiting_receipt == 5)
        time.sleep(0.3)  # the receipt subscription is in place once connected

        def receipt(node: str, ids: list[str]) -> bytes:
            now = datetime.now(UTC)
            return to_wire(
                ReceiptBatch(
                    site=site,
                    node=node,
                    sent_at=now,
                    receipts=[
                        Receipt(event_id=i, committed_at=now, evidence_complete=True) for i in ids
                    ],
                )
            )

        topic = node_topic(site, "node-01", NodeTopic.RECEIPT)
        # Addressed to another node (wrong payload on this topic): ignored.
        central.publish(topic, receipt("node-02", [events[4].event_id]), qos=1)
        central.publish(topic, b"not json", qos=1)
        central.publish(topic, receipt("node-01", [e.event_id for e in events[:3]]), qos=1)
        _wait("three receipted", lambda: outbox.stats().receipted == 3)
        assert outbox.message_state(events[3].event_id) is MessageState.PUBLISHED
        assert outbox.message_state(events[4].event_id) is MessageState.PUBLISHED
        assert publisher.counters().receipted == 3

        def status_counts() -> bool:
            raw = consumer.retained.get(status_topic)
            if raw is None:
                return False
            status = json.loads(raw)
            return bool(
                status["awaiting_receipt"] == 2 and status["oldest_unacked_age_s"] is not None
            )

        _wait("status with 2 awaiting a receipt", status_counts)
    finally:
        assert publisher.stop(timeout_s=5)
        outbox.close()
        consumer.close()
        central.disconnect()
        central.loop_stop()
