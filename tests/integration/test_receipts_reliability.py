"""End-to-end receipts under failure: a real Mosquitto of the test's own running with its
DEFAULT queue limit (1,000 messages per client), the real central ingest as a subprocess
(SQLite), and the real edge publisher and outbox.

During one stream of 10,000 violations the consumer (central) is frozen so that the broker
drops what overflows its queue, the broker is killed with kill -9 and restarted (no
persistence: it loses every queued message and session), and central is killed with
kill -9 while it ingests and restarted. Every event must end up committed exactly once
and receipted at the edge; the test prints how many were re-sent.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from select import select as wait_readable
from typing import IO

import pytest
from sqlalchemy import func, select

from central.db import make_engine, migrate, session_factory, transaction
from central.models import Violation
from central.records import register_node
from edge.delivery_config import DeliveryConfig
from edge.identity import write_key_pair
from edge.outbox import Outbox
from edge.publisher import Publisher
from roadwatch.contract.signing import public_key_pem
from roadwatch.net import free_port
from tests.delivery_support import BIG_BUDGET, KEY, REPO, PrivateBroker, signed_event
from tests.integration.test_delivery_reliability import mosquitto_binary

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

EVENTS = 10_000
PUT_BATCH = 250


class DefaultQueueBroker(PrivateBroker):
    """Mosquitto with its default queue limit and no persistence, set explicitly."""

    def write_config(self) -> Path:
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            # Mosquitto's defaults, on purpose: at most 1,000 QoS 1 messages queued per
            # client (the rest are dropped although the publisher got its PUBACK), and no
            # persistence (a kill -9 loses every queued message and session). End-to-end
            # receipts must recover both.
            "max_queued_messages 1000\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 20\n"
            "persistence false\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"log_dest file {self.directory}/mosquitto.log\n",
            encoding="utf-8",
        )
        return conf

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DefaultQueueBroker]:
    directory = tmp_path / "broker"
    directory.mkdir()
    own = DefaultQueueBroker(directory=directory, port=free_port(), binary=mosquitto_binary())
    own.start()
    try:
        yield own
    finally:
        if own.process is not None and own.process.poll() is None:
            own.process.send_signal(signal.SIGCONT)
        own.stop()


class Central:
    """``roadwatch central ingest`` as a subprocess that the test may freeze or kill."""

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadwatch", "-v", "central", "ingest"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"subscribed" not in seen:
            ready, _w, _x = wait_readable([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        self.proc = proc
        assert b"subscribed" in seen, f"ingest did not subscribe: {seen!r}"

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        assert self.proc is not None
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()
        return self.proc.returncode


def _wait(what: str, check: object, timeout: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_receipts_recover_what_a_dropping_and_crashing_broker_and_central_lose(
    tmp_path: Path, broker: DefaultQueueBroker
) -> None:
    started = time.monotonic()
    site = "e" + uuid.uuid4().hex[:10]
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        key_pem = public_key_pem(KEY.public_key()).decode()
        register_node(session, site=site, node="node-01", public_key_pem=key_pem)

    def committed() -> int:
        with session_factory(engine)() as s:
            return int(
                s.scalar(select(func.count()).select_from(Violation).where(Violation.site == site))
                or 0
            )

    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ROADWATCH_DATABASE_URL": db_url,
        "ROADWATCH_DATA_DIR": str(tmp_path),
        "ROADWATCH_MQTT_HOST": "127.0.0.1",
        "ROADWATCH_MQTT_PORT": str(broker.port),
        "ROADWATCH_MQTT_SITE": site,
        "ROADWATCH_MQTT_CLIENT_ID": f"central-{site}",
        "ROADWATCH_MQTT_SESSION_EXPIRY_S": "300",
        "ROADWATCH_INGEST_BATCH": "500",
        # A small window: what central has not taken yet waits in the broker's queue.
        "ROADWATCH_INGEST_RECEIVE_MAXIMUM": "100",
    }
    central_log = (tmp_path / "central.log").open("wb")
    central = Central(env, central_log)
    central.start()

    write_key_pair(tmp_path / "node")
    config = DeliveryConfig.model_validate(
        {
            "site": site,
            "node": "node-01",
            "key_path": str(tmp_path / "node.key"),
            "broker": {
                "port": broker.port,
                "keepalive_s": 2,
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 1.0,
                "ack_timeout_s": 10,
            },
            "outbox": {
                "path": str(tmp_path / "outbox"),
                "retry_base_s": 0.2,
                "retry_cap_s": 2,
                "receipt_timeout_s": 4,
                "receipt_timeout_cap_s": 8,
                "receipted_retention_s": 3600,
            },
            "status_interval_s": 1.0,
        }
    )
    outbox = Outbox(
        config.outbox.path,
        BIG_BUDGET,
        receipt_timeout_s=config.outbox.receipt_timeout_s,
        receipt_timeout_cap_s=config.outbox.receipt_timeout_cap_s,
    )
    publisher = Publisher(config, outbox, key=KEY)  # (the key central has registered)
    expected: list[str] = []
    produced = threading.Event()
    stop = threading.Event()

    def produce() -> None:
        # A steady stream: batches of signed events, one transaction (one fsync) each.
        while len(expected) < EVENTS and not stop.is_set():
            items = [signed_event([], site=site) for _ in range(PUT_BATCH)]
            outbox.put_violations(items)
            expected.extend(e.event_id for e, _b in items)
            stop.wait(0.25)
        produced.set()

    producer = threading.Thread(target=produce, name="producer")
    returncode: int | None = None
    try:
        publisher.start()
        producer.start()
        # 1. The consumer stops taking messages: the broker queues 1,000, then drops.
        _wait("a first share committed", lambda: committed() >= 1000, 60)
        central.signal(signal.SIGSTOP)
        broker_log = broker.directory / "mosquitto.log"
        _wait("the broker dropping messages", lambda: "dropped" in broker_log.read_text(), 60)
        central.signal(signal.SIGCONT)
        # 2. The broker dies without warning mid-stream and comes back empty.
        _wait("half the stream produced", lambda: len(expected) >= EVENTS // 2, 60)
        broker.kill()
        time.sleep(0.5)
        broker.start()
        # 3. Central dies while it ingests, then comes back.
        _wait("three quarters produced", lambda: len(expected) >= EVENTS * 3 // 4, 60)
        before = committed()
        _wait("central ingesting again", lambda: committed() > before, 60)
        central.kill()
        at_kill = committed()
        central.start()
        producer.join(timeout=60)
        assert produced.is_set()
        assert at_kill < EVENTS, "the stream was over before central was killed"
        _wait("every event committed", lambda: committed() >= EVENTS, 120)
        _wait(
            "every event receipted at the edge",
            lambda: outbox.stats().receipted >= EVENTS,
            60,
        )
        with session_factory(engine)() as s:
            rows = list(s.scalars(select(Violation.event_id).where(Violation.site == site)))
        stats = outbox.stats()
        counters = publisher.counters()
        assert publisher.stop(timeout_s=10)
        returncode = central.stop()
        central_log.flush()
        log_text = (tmp_path / "central.log").read_text(errors="replace")
        duplicates = sum(
            int(n) for n in re.findall(r"ingest: (\d+) duplicate event\(s\) dropped", log_text)
        )
        print(
            f"\nreceipts: {len(expected)} events, {counters.resent} re-sent without a receipt, "
            f"{counters.republished} re-published without PUBACK, "
            f"duplicates dropped by central: {duplicates}, "
            f"wall time {time.monotonic() - started:.1f} s"
        )
        assert len(expected) == EVENTS
        assert len(rows) == EVENTS, "an event was committed twice or not at all"
        assert set(rows) == set(expected)
        assert stats.receipted == EVENTS and stats.published == 0 and stats.pending == 0
        assert stats.awaiting_receipt == 0
        assert counters.resent > 0, "nothing was re-sent"
    finally:
        stop.set()
        if producer.is_alive():
            producer.join(timeout=30)
        publisher.stop(timeout_s=5)
        outbox.close()
        if returncode is None:
            central.stop()
        central_log.close()
        engine.dispose()
    assert returncode == 0, "central did not stop cleanly on SIGTERM"
