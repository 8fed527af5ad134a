"""Shared helpers for the delivery tests: signed events with real blobs, a private broker."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.delivery_policy import DiskBudget
from edge.outbox import EvidenceBlob, sha256_hex
from roadwatch.cli import main
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType, ViolationEvent
from roadwatch.contract.signing import sign
from tests.factories import violation_event

REPO = Path(__file__).resolve().parents[1]
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BIG_BUDGET = DiskBudget(limit_bytes=1 << 30, event_reserve_bytes=1 << 20)


def outbox_state(outbox_dir: Path) -> tuple[object, ...]:
    """Everything in the outbox at ``outbox_dir``: its rows and its files (to see that a
    command changed nothing)."""
    with sqlite3.connect(outbox_dir / "outbox.sqlite3") as db:
        tables = tuple(
            db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("messages", "refused", "blobs", "event_blobs", "refused_actions", "usage")
        )
    files = sorted(p.relative_to(outbox_dir) for p in (outbox_dir / "blobs").rglob("*"))
    return (*tables, files)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``roadwatch ARGV`` in this process: its exit status, stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def outbox_site_file(tmp_path: Path) -> Path:
    """A site file whose delivery section names a node key and an outbox under
    ``tmp_path``, for the outbox commands (``edge outbox``)."""
    path = tmp_path / "site.yaml"
    path.write_text(
        "delivery:\n"
        "  site: ql13-km22\n"
        "  node: node-01\n"
        f"  key_path: {tmp_path / 'node.key'}\n"
        "  outbox:\n"
        f"    path: {tmp_path / 'outbox'}\n",
        encoding="utf-8",
    )
    return path


def blob(role: EvidenceRole, data: bytes, media: MediaType = MediaType.JPEG) -> EvidenceBlob:
    ref = EvidenceRef(role=role, media_type=media, sha256=sha256_hex(data), size=len(data))
    return EvidenceBlob(ref=ref, data=data)


def signed_event(
    blobs: list[EvidenceBlob] | None = None, **overrides: Any
) -> tuple[ViolationEvent, list[EvidenceBlob]]:
    """A signed violation listing ``blobs`` (default: two small distinct blobs)."""
    if blobs is None:
        tag = os.urandom(8)
        blobs = [
            blob(EvidenceRole.FRAME_AT, b"frame-" + tag),
            blob(EvidenceRole.CLIP, b"clip-" + tag * 4, MediaType.MP4),
        ]
    event = violation_event(evidence=[b.ref for b in blobs], **overrides)
    return sign(event, KEY), blobs


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class PrivateBroker:
    """A Mosquitto process of the test's own, on a free port, that the test may kill."""

    directory: Path
    port: int
    binary: str
    process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Run as the current user (as root Mosquitto would switch to 'mosquitto',
            # which cannot write the persistence file into the test's folder).
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.directory}/\n"
            "autosave_interval 1\n"
            # Explicit queue limits: the default 1,000 would drop QoS 1 messages.
            "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 100\n"
            f"log_dest file {self.directory}/mosquitto.log\n",
            encoding="utf-8",
        )
        return conf

    def start(self) -> None:
        conf = self.write_config()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("mosquitto exited at start") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start in 10 s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its persistence file."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class Consumer:
    """A persistent-session QoS 1 subscriber that records every event id it receives."""

    def __init__(self, host: str, port: int, topic_filters: list[str], client_id: str) -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.received: list[str] = []
        self.payloads: dict[str, bytes] = {}
        self.retained: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._filters = topic_filters
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe([(f, 1) for f in self._filters])

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        import json

        with self._lock:
            if message.topic.endswith("/status"):
                self.retained[message.topic] = message.payload
            else:
                data = json.loads(message.payload)
                key = data.get("event_id") or data["minute_start"]
                self.received.append(key)
                self.payloads[key] = message.payload

    def ids(self) -> list[str]:
        with self._lock:
            return list(self.received)

    def wait_for(self, expected: set[str], timeout_s: float) -> set[str]:
        """Wait until every expected id arrived; returns the ones still missing."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            missing = expected - set(self.ids())
            if not missing:
                return set()
            time.sleep(0.05)
        return expected - set(self.ids())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
