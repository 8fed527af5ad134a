"""Ingest throughput: MQTT -> verified, deduplicated, committed PostgreSQL rows.

Compared, in the same run and on the same broker, with the raw Mosquitto QoS 1 rate: a
plain paho subscriber draining the same backlog with automatic acknowledgements. Both
drain N signed events queued for a persistent session, so the figure is what the
consumer sustains, not how fast one publisher can push. The ingest's clock stops when
central's end-to-end receipts (sent after each commit) cover every event; the rows are
then counted once.

    .venv/bin/python bench/ingest.py --events 20000
    (PostgreSQL: ROADWATCH_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from select import select as wait_readable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from central.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from central.models import Violation  # noqa: E402
from central.records import register_node  # noqa: E402
from roadwatch.contract import (  # noqa: E402
    CameraTopic,
    NodeTopic,
    ReceiptBatch,
    ViolationEvent,
    camera_topic,
    node_topic,
    parse_payload,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign  # noqa: E402
from roadwatch.net import free_port  # noqa: E402
from tests.factories import violation_event  # noqa: E402

BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages {inflight}
message_size_limit 1048576
log_dest stderr
log_type error
"""


def start_broker(folder: Path, inflight: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(BROKER_CONF.format(port=port, inflight=inflight))
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def client(client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )


def session_props(receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = receive_maximum
    return props


def publish_backlog(port: int, messages: list[tuple[str, bytes]]) -> float:
    pub = client(f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    t0 = time.perf_counter()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    elapsed = time.perf_counter() - t0
    pub.disconnect()
    pub.loop_stop()
    return elapsed


def raw_drain(port: int, topic_filter: str, messages: list[tuple[str, bytes]]) -> float:
    """A plain subscriber with automatic acks drains the same backlog."""
    cid = f"bench-raw-{uuid.uuid4().hex[:6]}"
    done = threading.Event()
    got = 0
    first: list[float] = []

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal got
        if not first:
            first.append(time.perf_counter())
        got += 1
        if got >= len(messages):
            done.set()

    subscribed = threading.Event()
    sub = client(cid)
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.connect("127.0.0.1", port, clean_start=True, properties=session_props(1000))
    sub.loop_start()
    sub.subscribe(topic_filter, qos=1)
    subscribed.wait(10)
    sub.disconnect()
    sub.loop_stop()
    publish_backlog(port, messages)
    sub = client(cid)
    sub.on_message = on_message
    t0 = time.perf_counter()
    sub.connect("127.0.0.1", port, clean_start=False, properties=session_props(1000))
    sub.loop_start()
    if not done.wait(300):
        raise SystemExit(f"raw subscriber got {got} of {len(messages)}")
    elapsed = time.perf_counter() - t0
    sub.disconnect()
    sub.loop_stop()
    return elapsed


def start_ingest(env: dict[str, str], client_id: str) -> tuple[subprocess.Popen[bytes], float]:
    """Start one `roadwatch central ingest` replica; returns it and when it subscribed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadwatch", "central", "ingest"],
        env={**env, "ROADWATCH_MQTT_CLIENT_ID": client_id},
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 60
    while b"subscribed" not in seen:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("ingest did not subscribe")
        ready, _w, _x = wait_readable([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise SystemExit("ingest exited on start")
            seen += chunk
    return proc, time.perf_counter()


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
        if p.stdout is not None:
            p.stdout.close()


class ReceiptCounter:
    """Counts the events central's receipts report committed (receipts go out after
    commit), so the clock stops without polling the database from beside the ingest."""

    def __init__(self, port: int, site: str) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Condition()
        self.client = client(f"bench-receipts-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(node_topic(site, "node-01", NodeTopic.RECEIPT), qos=1)
        if not subscribed.wait(10):
            raise SystemExit("receipt subscription not acknowledged")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        batch = parse_payload(ReceiptBatch, msg.payload)
        with self.lock:
            self.seen.update(r.event_id for r in batch.receipts)
            self.lock.notify_all()

    def wait_for(self, ids: set[str], deadline: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: ids <= self.seen, deadline - time.monotonic())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ingest_drain(
    env: dict[str, str], replicas: int, url: str, messages: list[tuple[str, bytes]]
) -> float:
    """Replicas in one shared-subscription group drain the backlog into PostgreSQL."""
    ids = [f"bench-central-{i}" for i in range(replicas)]
    stop_all([start_ingest(env, cid)[0] for cid in ids])  # sessions exist, then go away
    port = int(env["ROADWATCH_MQTT_PORT"])
    publish_backlog(port, messages)
    engine = make_engine(url)
    sessions = session_factory(engine)

    def count() -> int:
        with sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Violation)) or 0)

    wanted = {ViolationEvent.model_validate_json(payload).event_id for _t, payload in messages}
    before = count()
    receipts = ReceiptCounter(port, env["ROADWATCH_MQTT_SITE"])
    started = [start_ingest(env, cid) for cid in ids]
    t0 = min(t for _p, t in started)
    try:
        if not receipts.wait_for(wanted, time.monotonic() + 600):
            raise SystemExit(f"receipts for {len(wanted & receipts.seen)} of {len(wanted)}")
        elapsed = time.perf_counter() - t0
        stored = count() - before
        if stored != len(messages):
            raise SystemExit(f"receipts for every event, but {stored} rows of {len(messages)}")
    finally:
        receipts.close()
        stop_all([p for p, _t in started])
        engine.dispose()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500, help="ingest batch (commit) size")
    parser.add_argument("--inflight", type=int, default=1000, help="broker max_inflight_messages")
    parser.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 2], help="ingest processes to compare"
    )
    args = parser.parse_args()

    base = os.environ.get("ROADWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"rw_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = base.replace("postgresql://", "postgresql+psycopg://", 1)
    url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-"))
    broker, port = start_broker(folder, args.inflight)
    try:
        engine = make_engine(url)
        migrate(engine)
        key = generate_private_key()
        site = "bench-site"
        with transaction(session_factory(engine)) as s:
            register_node(
                s,
                site=site,
                node="node-01",
                public_key_pem=public_key_pem(key.public_key()).decode(),
            )
        engine.dispose()

        def fresh() -> list[tuple[str, bytes]]:
            events = [
                sign(violation_event(site=site, camera=f"cam-{i % 8:02d}"), key)
                for i in range(args.events)
            ]
            return [
                (camera_topic(site, "node-01", e.camera, CameraTopic.VIOLATION), to_wire(e))
                for e in events
            ]

        messages = fresh()
        raw_s = raw_drain(port, f"roadwatch/v1/{site}/+/+/violation", messages)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ROADWATCH_DATABASE_URL": url,
            "ROADWATCH_DATA_DIR": str(folder),
            "ROADWATCH_MQTT_PORT": str(port),
            "ROADWATCH_MQTT_SITE": site,
            "ROADWATCH_MQTT_SHARE_GROUP": "central",
            "ROADWATCH_INGEST_BATCH": str(args.batch),
            "ROADWATCH_INGEST_RECEIVE_MAXIMUM": str(args.inflight),
        }
        # new event ids for every run: a re-sent event is a duplicate, not a new row
        ingest_s = {r: ingest_drain(env, r, url, fresh()) for r in args.replicas}
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    n = args.events
    raw_rate = n / raw_s
    print(f"events:              {n} signed ViolationEvents ({len(messages[0][1])} bytes each)")
    print(
        f"broker:              mosquitto, max_inflight_messages {args.inflight}; "
        f"{os.cpu_count()} cores"
    )
    print(f"raw QoS 1 drain:     {raw_rate:8.0f} msg/s    ({raw_s:.2f} s, one paho subscriber)")
    for replicas, seconds in ingest_s.items():
        rate = n / seconds
        print(
            f"central ingest x{replicas}:   {rate:8.0f} events/s ({seconds:.2f} s; verified, "
            f"committed to PostgreSQL; ratio to raw {rate / raw_rate:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
