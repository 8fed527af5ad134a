"""The real services CI provides: a QoS 1 round trip through Mosquitto, a schema in PostgreSQL."""

from __future__ import annotations

import queue
import uuid

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from roadwatch.contract import CameraTopic, ViolationEvent, camera_topic, parse_payload, to_wire
from tests.factories import violation_event
from tests.services import BrokerAddress

pytestmark = pytest.mark.integration


def _client(name: str) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )


def test_qos1_publish_subscribe_round_trip(mqtt_broker: BrokerAddress) -> None:
    site = f"t{uuid.uuid4().hex[:10]}"
    topic = camera_topic(site, "node-01", "cam-01", CameraTopic.VIOLATION)
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()

    sub = _client("sub")
    sub.on_message = lambda _c, _u, msg: received.put(msg)
    sub.on_subscribe = lambda *_a: subscribed.put(True)
    sub.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    pub = _client("pub")
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.loop_start()
    try:
        subscribed.get(timeout=10)
        pub.connect(mqtt_broker.host, mqtt_broker.port)
        pub.loop_start()
        try:
            event = violation_event(site=site)
            info = pub.publish(topic, to_wire(event), qos=1)
            info.wait_for_publish(timeout=10)
            assert info.is_published(), "no PUBACK from the broker"
            msg = received.get(timeout=10)
        finally:
            pub.disconnect()
            pub.loop_stop()
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert msg.topic == topic
    assert msg.qos == 1
    assert parse_payload(ViolationEvent, bytes(msg.payload)) == event


def test_create_and_drop_a_schema(postgres: str) -> None:
    schema = f"rw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            conn.execute(f'CREATE TABLE "{schema}".events (event_id uuid PRIMARY KEY, body jsonb)')
            event = violation_event()
            conn.execute(
                f'INSERT INTO "{schema}".events VALUES (%s, %s)',
                (event.event_id, to_wire(event).decode()),
            )
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(
                    f'INSERT INTO "{schema}".events VALUES (%s, %s)', (event.event_id, "{}")
                )
            row = conn.execute(f"SELECT body->>'site' FROM \"{schema}\".events").fetchone()
            assert row == (event.site,)
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        gone = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    assert gone == (0,)
