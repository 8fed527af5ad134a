from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.delivery_config import DeliveryConfig
from edge.outbox import MessageState, Outbox
from edge.publisher import Publisher
from roadwatch.contract import CameraHealth, CameraState, NodeStatus, TrafficStats
from roadwatch.contract.signing import verify
from tests.delivery_support import BIG_BUDGET, KEY, Consumer, signed_event
from tests.services import BrokerAddress

pytestmark = pytest.mark.integration


def config(tmp_path: Path, broker: BrokerAddress, site: str) -> DeliveryConfig:
    return DeliveryConfig.model_validate(
        {
            "site": site,
            "node": "node-01",
            "key_path": str(tmp_path / "node.key"),
            "broker": {"host": broker.host, "port": broker.port, "keepalive_s": 5},
            "outbox": {"path": str(tmp_path / "outbox")},
            "status_interval_s": 0.2,
        }
    )


def test_events_are_marked_published_only_after_puback(
    tmp_path: Path, mqtt_broker: BrokerAddress
) -> None:
    site = "t" + uuid.uuid4().hex[:12]
    cfg = config(tmp_path, mqtt_broker, site)
    prefix = f"roadwatch/v1/{site}/node-01"
    consumer = Consumer(
        mqtt_broker.host,
        mqtt_broker.port,
        [f"{prefix}/+/violation", f"{prefix}/+/traffic", f"{prefix}/status"],
        f"consumer-{site}",
    )
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    health = [CameraHealth(camera="cam-01", state=CameraState.UP, fps=25.0, frames_dropped=3)]
    publisher = Publisher(cfg, outbox, key=KEY, cameras=lambda: health)
    try:
        time.sleep(0.3)  # the consumer's subscription is in place
        events = [signed_event([], site=site)[0] for _ in range(50)]
        for event in events:
            outbox.put_violation(event, [])
        minute = datetime(2026, 11, 23, 7, 3, tzinfo=UTC)
        outbox.put_traffic(TrafficStats(site=site, node="node-01", camera="c", minute_start=minute))
        assert all(outbox.message_state(e.event_id) is MessageState.PENDING for e in events)
        publisher.start()
        expected = {e.event_id for e in events} | {"2026-11-23T07:03:00.000000Z"}
        assert consumer.wait_for(expected, 20) == set()
        deadline = time.monotonic() + 10
        while outbox.stats().pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.stats().pending == 0
        assert all(outbox.message_state(e.event_id) is MessageState.PUBLISHED for e in events)
        status = NodeStatus.model_validate_json(consumer.retained[f"{prefix}/status"])
        assert status.state == "online"
        assert status.cameras == health
        verify(status, KEY.public_key())  # signed by the node, as central checks it
        assert publisher.stop(timeout_s=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = json.loads(consumer.retained[f"{prefix}/status"])
            if data["state"] == "offline":
                break
            time.sleep(0.05)
        assert data["state"] == "offline"
        verify(NodeStatus.model_validate(data), KEY.public_key())
    finally:
        publisher.stop(timeout_s=5)
        consumer.close()
        outbox.close()


@pytest.mark.parametrize(
    "fault", [OSError("disk I/O error"), sqlite3.OperationalError("disk I/O error")]
)
def test_a_failing_disk_does_not_end_publishing(
    tmp_path: Path, mqtt_broker: BrokerAddress, monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    """A fault other than a full disk when PUBACKs are recorded: publishing starts over on a
    new connection, and what was not recorded is published again."""
    site = "t" + uuid.uuid4().hex[:12]
    cfg = config(tmp_path, mqtt_broker, site)
    consumer = Consumer(
        mqtt_broker.host,
        mqtt_broker.port,
        [f"roadwatch/v1/{site}/node-01/+/violation"],
        f"consumer-{site}",
    )
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    real_mark = outbox.mark_published
    failures: list[list[str]] = []

    def flaky_mark(ids: list[str]) -> int:
        if not failures:
            failures.append(ids)
            raise fault
        return real_mark(ids)

    monkeypatch.setattr(outbox, "mark_published", flaky_mark)
    try:
        time.sleep(0.3)
        events = [signed_event([], site=site)[0] for _ in range(20)]
        for event in events:
            outbox.put_violation(event, [])
        publisher.start()
        assert consumer.wait_for({e.event_id for e in events}, 20) == set()
        deadline = time.monotonic() + 15
        while outbox.stats().pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failures, "the failure was injected"
        # The batch whose PUBACKs could not be recorded was published again.
        assert outbox.stats().pending == 0
        assert publisher.counters().connects == 2
    finally:
        assert publisher.stop(timeout_s=5)
        consumer.close()
        outbox.close()


def test_a_full_disk_keeps_the_connection_and_sends_nothing_twice(
    tmp_path: Path, mqtt_broker: BrokerAddress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PUBACKs the outbox cannot record (its disk full, as another program filled it) are
    kept until it can: the connection stays, and no event goes out twice meanwhile."""
    site = "t" + uuid.uuid4().hex[:12]
    cfg = config(tmp_path, mqtt_broker, site)
    consumer = Consumer(
        mqtt_broker.host,
        mqtt_broker.port,
        [f"roadwatch/v1/{site}/node-01/+/violation"],
        f"consumer-{site}",
    )
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    real_mark = outbox.mark_published
    full = [True]
    refused: list[int] = []

    def mark_when_room(ids: list[str]) -> int:
        if full[0]:
            refused.append(len(ids))
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise error
        return real_mark(ids)

    monkeypatch.setattr(outbox, "mark_published", mark_when_room)
    try:
        time.sleep(0.3)
        events = [signed_event([], site=site)[0] for _ in range(20)]
        for event in events:
            outbox.put_violation(event, [])
        publisher.start()
        assert consumer.wait_for({e.event_id for e in events}, 20) == set()
        time.sleep(2.0)  # (turns enough to have published everything again, before)
        assert len(refused) > 1, "the full disk was met on more than one turn"
        assert outbox.stats().pending == 20
        full[0] = False
        deadline = time.monotonic() + 10
        while outbox.stats().pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.stats().pending == 0
        assert sorted(consumer.ids()) == sorted(e.event_id for e in events)
        assert publisher.counters().connects == 1
    finally:
        assert publisher.stop(timeout_s=5)
        consumer.close()
        outbox.close()


def local_broker_config(tmp_path: Path, port: int, *, reconnect_min_s: float) -> DeliveryConfig:
    """A node of a site of its own delivering to a broker on this machine at ``port``."""
    return DeliveryConfig.model_validate(
        {
            "site": "t" + uuid.uuid4().hex[:12],
            "node": "node-01",
            "key_path": str(tmp_path / "node.key"),
            "broker": {"host": "127.0.0.1", "port": port, "reconnect_min_s": reconnect_min_s},
            "outbox": {"path": str(tmp_path / "outbox")},
        }
    )


def test_a_broker_refusing_the_login_is_tried_again_with_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A CONNACK that refuses (a wrong password, a revoked node) is not followed at once
    by the next try: the tries spread out as for a broker out of reach. The refusal is
    said once, with what to check, not at every try."""
    import logging
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    port = server.getsockname()[1]
    tries: list[float] = []
    done = threading.Event()

    def refuse() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                tries.append(time.monotonic())
                conn.recv(4096)
                conn.sendall(bytes([0x20, 0x02, 0x00, 0x05]))  # CONNACK: not authorised
                time.sleep(0.05)

    refusing = threading.Thread(target=refuse, name="refusing-broker")
    refusing.start()
    cfg = local_broker_config(tmp_path, port, reconnect_min_s=0.5)
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    try:
        publisher.start()
        time.sleep(3.0)
    finally:
        publisher.stop(timeout_s=5)
        done.set()
        refusing.join(5)
        server.close()
        outbox.close()
    assert 2 <= len(tries) <= 6, f"{len(tries)} tries in 3 s"
    assert publisher.counters().connects == 0
    said = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.ERROR], caplog.text
    assert said[0].getMessage().startswith(f"broker 127.0.0.1:{port} refused the connection of")
    assert "check delivery.broker's username and password" in said[0].getMessage()


def test_a_broker_out_of_reach_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker nobody answers at (a wrong host or port in the site file, the broker
    down) is said in the log at the default level, once for the outage, not at every
    try: `edge run` and `edge deliver` went on without a word."""
    import logging

    from roadwatch.net import free_port

    port = free_port()  # (nobody listens on it)
    cfg = local_broker_config(tmp_path, port, reconnect_min_s=0.2)
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    caplog.set_level(logging.WARNING, logger="edge.publisher")
    try:
        publisher.start()
        time.sleep(2.0)  # (several tries)
    finally:
        publisher.stop(timeout_s=2)
        outbox.close()
    said = [r.getMessage() for r in caplog.records if "cannot reach the broker" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert f"127.0.0.1:{port}" in said[0]


def test_signal_controller_messages_for_the_nodes_cameras_are_handed_on(
    tmp_path: Path, mqtt_broker: BrokerAddress
) -> None:
    """A controller publishes each head's phase on its camera's ``signal`` topic: the node
    takes those for its own cameras that name the camera of their topic, and only those."""
    import threading

    from roadwatch.contract import LampColour, SignalPhase, SignalSource, to_wire
    from tests.central_fixtures import Publisher as Controller

    site = "t" + uuid.uuid4().hex[:12]
    cfg = config(tmp_path, mqtt_broker, site)
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    taken: list[SignalPhase] = []
    arrived = threading.Event()

    def on_signal(message: SignalPhase) -> None:
        taken.append(message)
        if message.phase is LampColour.GREEN:
            arrived.set()

    publisher.on_signal = on_signal
    controller = Controller(mqtt_broker)
    at = datetime(2026, 11, 23, 7, 3, tzinfo=UTC)

    def phase(colour: LampColour, camera: str = "cam-01", node: str = "node-01") -> bytes:
        return to_wire(SignalPhase(site=site, node=node, camera=camera, phase=colour,
                                   changed_at=at, sent_at=at))  # fmt: skip

    topic = f"roadwatch/v1/{site}/node-01/cam-01/signal"
    try:
        publisher.start()
        assert publisher.connected.wait(10)
        deadline = time.monotonic() + 10
        while not taken and time.monotonic() < deadline:  # (until the subscription holds)
            controller.publish(topic, phase(LampColour.RED))
            time.sleep(0.1)
        assert taken and taken[0].phase is LampColour.RED
        controller.publish(topic, b"{not json")
        controller.publish(topic, phase(LampColour.YELLOW, camera="cam-02"))  # (topic: cam-01)
        read_off_a_lamp = SignalPhase.model_validate_json(phase(LampColour.YELLOW))
        lamp = read_off_a_lamp.model_copy(update={"source": SignalSource.LAMP})
        controller.publish(topic, to_wire(lamp))  # (the topic is the controller's)
        controller.publish(f"roadwatch/v1/{site}/node-02/cam-01/signal",
                           phase(LampColour.YELLOW, node="node-02"))  # fmt: skip
        controller.publish(topic, phase(LampColour.GREEN))
        assert arrived.wait(10)
        assert {m.phase for m in taken} == {LampColour.RED, LampColour.GREEN}
        counters = publisher.counters()
        assert counters.signals_refused == 3  # (node-02's never reaches this node)
        assert counters.signals == len(taken)
    finally:
        publisher.stop(timeout_s=5)
        controller.close()
        outbox.close()


def test_the_broker_back_after_an_outage_is_said_at_the_outage_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A technician reads the log at its default level (warnings): a broker out of reach,
    or lost, and then back must end with a line saying it is back, or the last word in the
    log is "cannot reach the broker" while events flow again."""
    import logging
    import re
    import shutil

    from roadwatch.net import free_port
    from tests.delivery_support import PrivateBroker
    from tests.services import missing

    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        missing("the mosquitto binary is not installed")
        raise AssertionError  # unreachable
    (tmp_path / "broker").mkdir()
    broker = PrivateBroker(directory=tmp_path / "broker", port=free_port(), binary=binary)
    cfg = local_broker_config(tmp_path, broker.port, reconnect_min_s=0.2)
    outbox = Outbox(cfg.outbox.path, BIG_BUDGET)
    publisher = Publisher(cfg, outbox, key=KEY)
    caplog.set_level(logging.WARNING, logger="edge.publisher")

    def connects(n: int) -> None:
        deadline = time.monotonic() + 20
        while publisher.counters().connects < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert publisher.counters().connects == n, caplog.text

    try:
        publisher.start()
        time.sleep(1.0)  # (out of reach: the broker is not started yet)
        broker.start()
        connects(1)
        broker.stop()  # (lost)
        time.sleep(1.0)
        broker.start()
        connects(2)
    finally:
        publisher.stop(timeout_s=2)
        broker.stop()
        outbox.close()
    said = [re.sub(r"\d+ s", "N s", r.getMessage()) for r in caplog.records]
    again = "connected to the broker again after N s; what waited in the outbox is sent now"
    assert said[0].startswith("cannot reach the broker at 127.0.0.1") and said[1] == again, said
    assert said[2].startswith("disconnected from the broker"), said
    assert said[-1] == again and said.count(again) == 2, said
