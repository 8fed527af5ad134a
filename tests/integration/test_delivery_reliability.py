"""Failure injection against a real Mosquitto that each test starts on its own port:
the broker stopped and restarted mid-stream, the edge process killed with kill -9 with
1,000 events pending, and the uplink cut (broker frozen with SIGSTOP) and restored.
Every event must reach the consumer; after dedupe by id none may be missing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.delivery_config import DeliveryConfig
from edge.delivery_service import load_node_key
from edge.identity import write_key_pair
from edge.outbox import Outbox
from edge.publisher import Publisher
from roadwatch.contract import NodeStatus, parse_payload
from roadwatch.contract.signing import verify
from roadwatch.net import free_port
from tests.delivery_support import (
    BIG_BUDGET,
    REPO,
    Consumer,
    PrivateBroker,
    signed_event,
    subprocess_env,
)
from tests.services import missing

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None
    )
    if found is None:
        missing("the mosquitto binary is not installed")
        raise AssertionError  # unreachable
    return found


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    directory = tmp_path / "broker"
    directory.mkdir()
    own = PrivateBroker(directory=directory, port=free_port(), binary=mosquitto_binary())
    own.start()
    try:
        yield own
    finally:
        if own.process is not None and own.process.poll() is None:
            own.resume()  # in case a test left it frozen
        own.stop()


def edge_config(tmp_path: Path, port: int, site: str) -> DeliveryConfig:
    if not (tmp_path / "node.key").exists():
        write_key_pair(tmp_path / "node")
    return DeliveryConfig.model_validate(
        {
            "site": site,
            "node": "node-01",
            "key_path": str(tmp_path / "node.key"),
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "keepalive_s": 2,
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 1.0,
                "ack_timeout_s": 15,
            },
            "outbox": {"path": str(tmp_path / "outbox"), "retry_base_s": 0.2, "retry_cap_s": 2},
            "status_interval_s": 1.0,
        }
    )


def consumer_for(broker: PrivateBroker, site: str) -> Consumer:
    consumer = Consumer(
        "127.0.0.1",
        broker.port,
        [f"roadwatch/v1/{site}/node-01/+/violation", f"roadwatch/v1/{site}/node-01/status"],
        f"central-{site}",
    )
    deadline = time.monotonic() + 5
    while not consumer.client.is_connected():
        assert time.monotonic() < deadline, "consumer did not connect"
        time.sleep(0.02)
    time.sleep(0.2)  # SUBACK
    return consumer


def enqueue(outbox: Outbox, site: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        event, _ = signed_event([], site=site)
        outbox.put_violation(event, [])
        ids.append(event.event_id)
    return ids


def report(name: str, expected: set[str], consumer: Consumer) -> None:
    received = consumer.ids()
    counts = Counter(received)
    unique = set(received)
    print(
        f"\n{name}: sent {len(expected)}, received {len(received)} messages, "
        f"{len(unique & expected)} distinct, missing {len(expected - unique)}, "
        f"duplicates {sum(c - 1 for c in counts.values())}"
    )
    assert expected - unique == set(), "events lost"
    assert unique <= expected


def test_broker_stopped_and_restarted_mid_stream(tmp_path: Path, broker: PrivateBroker) -> None:
    site = "r" + uuid.uuid4().hex[:10]
    config = edge_config(tmp_path, broker.port, site)
    consumer = consumer_for(broker, site)
    outbox = Outbox(config.outbox.path, BIG_BUDGET)
    publisher = Publisher(config, outbox, key=load_node_key(config))
    expected: set[str] = set()
    try:
        publisher.start()
        expected |= set(enqueue(outbox, site, 300))
        deadline = time.monotonic() + 20
        while len(consumer.ids()) < 100:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        broker.stop()  # mid-stream
        expected |= set(enqueue(outbox, site, 300))  # stored while the broker is away
        time.sleep(1.0)
        assert outbox.stats().pending >= 300
        broker.start()
        expected |= set(enqueue(outbox, site, 300))
        missing_ids = consumer.wait_for(expected, 40)
        report("broker restart", expected, consumer)
        assert not missing_ids
        deadline = time.monotonic() + 10
        while outbox.stats().pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.stats().pending == 0
        assert publisher.counters().connects >= 2
    finally:
        assert publisher.stop(timeout_s=5)
        consumer.close()
        outbox.close()


def test_edge_killed_with_1000_events_pending_then_restarted(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    site = "k" + uuid.uuid4().hex[:10]
    config = edge_config(tmp_path, broker.port, site)
    config_file = tmp_path / "site.yaml"
    config_file.write_text(
        json.dumps({"delivery": config.model_dump(mode="json")}), encoding="utf-8"
    )
    with Outbox(config.outbox.path, BIG_BUDGET) as outbox:
        expected = set(enqueue(outbox, site, 1000))
    consumer = consumer_for(broker, site)
    command = [sys.executable, "-m", "roadwatch", "edge", "deliver", "--config", str(config_file)]

    def start_edge() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    edge = start_edge()
    try:
        deadline = time.monotonic() + 30
        while not consumer.ids():
            assert edge.poll() is None, edge.stderr.read().decode() if edge.stderr else ""
            assert time.monotonic() < deadline, "the edge published nothing"
            time.sleep(0.002)
        edge.send_signal(signal.SIGKILL)
        edge.wait(timeout=10)
        with Outbox(config.outbox.path, BIG_BUDGET) as outbox:
            pending_at_kill = outbox.stats().pending
        print(f"\nkill -9 with {pending_at_kill} of 1000 events still pending")
        assert pending_at_kill > 0
        # The broker noticed the dead connection and published the last will.
        status_topic = f"roadwatch/v1/{site}/node-01/status"
        deadline = time.monotonic() + 10
        while json.loads(consumer.retained.get(status_topic, b"{}")).get("state") != "offline":
            assert time.monotonic() < deadline, "no offline last will"
            time.sleep(0.05)
        # Signed by the node when it set the will, at connect: central takes it.
        will = parse_payload(NodeStatus, consumer.retained[status_topic])
        verify(will, load_node_key(config).public_key(), wire=consumer.retained[status_topic])

        edge = start_edge()
        missing_ids = consumer.wait_for(expected, 40)
        report("kill -9 and restart", expected, consumer)
        assert not missing_ids
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(timeout=15) == 0
        with Outbox(config.outbox.path, BIG_BUDGET) as outbox:
            assert outbox.stats().pending == 0
            assert outbox.stats().published == 1000
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait(timeout=10)
        if edge.stderr is not None:
            edge.stderr.close()
        consumer.close()


def test_uplink_cut_and_restored(tmp_path: Path, broker: PrivateBroker) -> None:
    site = "u" + uuid.uuid4().hex[:10]
    config = edge_config(tmp_path, broker.port, site)
    consumer = consumer_for(broker, site)
    outbox = Outbox(config.outbox.path, BIG_BUDGET)
    publisher = Publisher(config, outbox, key=load_node_key(config))
    expected: set[str] = set()
    stop = threading.Event()

    def produce() -> None:
        # A steady trickle of violations, as a busy junction would give.
        while not stop.is_set():
            expected.update(enqueue(outbox, site, 5))
            stop.wait(0.02)

    producer = threading.Thread(target=produce, name="producer")
    try:
        publisher.start()
        producer.start()
        time.sleep(1.0)
        broker.pause()  # the link goes silent: no RST, no FIN
        time.sleep(5.0)  # longer than 1.5 keep-alives
        assert not publisher.connected.is_set(), "the silent uplink was not noticed"
        broker.resume()
        time.sleep(1.0)
        stop.set()
        producer.join(timeout=10)
        missing_ids = consumer.wait_for(set(expected), 40)
        report("uplink cut", set(expected), consumer)
        assert not missing_ids
        assert publisher.counters().connects >= 2
    finally:
        stop.set()
        if producer.is_alive():
            producer.join(timeout=10)
        assert publisher.stop(timeout_s=5)
        consumer.close()
        outbox.close()
