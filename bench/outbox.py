"""Sustained events/s through the durable outbox to Mosquitto at QoS 1, against
``mosquitto_pub``'s raw QoS 1 rate measured in the same run on the same broker.

Run: .venv/bin/python bench/outbox.py [--events N]

It starts its own Mosquitto on a free port (never the shared one), then measures:
  raw       mosquitto_pub -q 1 -l: N event payloads, one per line, until it exits
  outbox    N signed events stored one by one (one fsynced commit each, as the pipeline
            stores them) while the publisher drains them; until the last PUBACK is recorded
  recorded  as outbox, each event first recorded as its rule found it (put_fired, its own
            fsynced commit), as the node records every violation before its evidence
  batched   the same, storing 50 events per commit (put_violations), for bursts
  drain     the publisher alone emptying an outbox pre-filled with N events
and prints events/s for each and the ratios to raw.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.delivery_config import DeliveryConfig
from edge.delivery_policy import DiskBudget
from edge.outbox import Outbox
from edge.publisher import Publisher
from roadwatch.contract import ViolationEvent, new_event_id, to_wire
from roadwatch.contract.signing import sign
from roadwatch.net import free_port

SAMPLE = {
    "type": "speeding",
    "site": "bench",
    "node": "node-01",
    "camera": "cam-01",
    "lane": "lane-2",
    "occurred_at": "2026-11-23T07:03:05.120000Z",
    "vehicle_class": "car",
    "track_id": 17,
    "plate": {"text": "51F-123.45", "confidence": 0.93, "valid": True, "colour": "white"},
    "measured": {"speed_kmh": 92.4, "speed_uncertainty_kmh": 1.1, "speed_limit_kmh": 80.0},
    "explanation": "Đo tốc độ 92.4 ± 1.1 km/h trên 18 m ở làn 2; giới hạn 80 km/h.",
    "place": "QL13 Km 22+300, Thuận An",
    "model_version": "yolov8n-coco@75cc3648",
    "rule_version": "speeding@1",
    "config_version": "cam-01@2026-11-20",
}
KEY = Ed25519PrivateKey.generate()


def event() -> ViolationEvent:
    return sign(ViolationEvent.model_validate({**SAMPLE, "event_id": new_event_id()}), KEY)


def start_broker(folder: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n",
        encoding="utf-8",
    )
    broker = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker
        except OSError:
            time.sleep(0.05)
    broker.kill()
    raise SystemExit("mosquitto did not start")


def raw_rate(port: int, n: int) -> float:
    lines = b"".join(to_wire(event()) + b"\n" for _ in range(n))
    start = time.perf_counter()
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-l",
         "-t", "roadwatch/v1/bench/raw/cam-01/violation", "-i", "bench-raw"],
        input=lines, check=True, timeout=600,
    )  # fmt: skip
    return n / (time.perf_counter() - start)


def config(folder: Path, port: int) -> DeliveryConfig:
    return DeliveryConfig.model_validate(
        {
            "site": "bench",
            "node": "node-01",
            "key_path": str(folder / "unused.key"),
            "broker": {"host": "127.0.0.1", "port": port},
            "outbox": {"path": str(folder / "outbox")},
        }
    )


def wait_drained(outbox: Outbox, n: int) -> None:
    while outbox.stats().published < n:
        time.sleep(0.005)


def outbox_rate(folder: Path, port: int, n: int, batch: int, recorded: bool = False) -> float:
    cfg = config(folder / f"live-{batch}-{recorded}", port)
    outbox = Outbox(cfg.outbox.path, DiskBudget(limit_bytes=1 << 34, event_reserve_bytes=0))
    publisher = Publisher(cfg, outbox, key=KEY)
    events = [event() for _ in range(n)]
    publisher.start()
    publisher.connected.wait(10)
    start = time.perf_counter()
    for i in range(0, n, batch):
        if recorded:
            for e in events[i : i + batch]:
                outbox.put_fired(e.model_copy(update={"signature": None}))
        outbox.put_violations([(e, []) for e in events[i : i + batch]])
    wait_drained(outbox, n)
    elapsed = time.perf_counter() - start
    publisher.stop(10)
    outbox.close()
    return n / elapsed


def drain_rate(folder: Path, port: int, n: int) -> float:
    cfg = config(folder / "drain", port)
    outbox = Outbox(cfg.outbox.path, DiskBudget(limit_bytes=1 << 34, event_reserve_bytes=0))
    events = [event() for _ in range(n)]
    for i in range(0, n, 100):
        outbox.put_violations([(e, []) for e in events[i : i + 100]])
    publisher = Publisher(cfg, outbox, key=KEY)
    start = time.perf_counter()
    publisher.start()
    wait_drained(outbox, n)
    elapsed = time.perf_counter() - start
    publisher.stop(10)
    outbox.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = args.events
    with tempfile.TemporaryDirectory(prefix="roadwatch-bench-") as tmp:
        folder = Path(tmp)
        port = free_port()
        broker = start_broker(folder, port)
        try:
            raw = raw_rate(port, n)
            live = outbox_rate(folder, port, n, 1)
            recorded = outbox_rate(folder, port, n, 1, recorded=True)
            batched = outbox_rate(folder, port, n, 50)
            drain = drain_rate(folder, port, n)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    size = len(to_wire(event()))
    print(f"{n} events of {size} bytes, QoS 1, one private Mosquitto on 127.0.0.1")
    print(f"mosquitto_pub -q 1 -l (raw)          {raw:9.0f} events/s")
    print(f"outbox -> MQTT (store + publish)     {live:9.0f} events/s  ratio {live / raw:.3f}")
    print(
        f"outbox -> MQTT, recorded when found  {recorded:9.0f} events/s  ratio {recorded / raw:.3f}"
        f"  ({recorded / live:.2f} x store + publish)"
    )
    print(
        f"outbox -> MQTT, 50 events a commit   {batched:9.0f} events/s  ratio {batched / raw:.3f}"
    )
    print(f"outbox drain (pre-stored, publish)   {drain:9.0f} events/s  ratio {drain / raw:.3f}")


if __name__ == "__main__":
    main()
