"""Shared helpers for the delivery tests: signed events with real blobs, a private broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.delivery_policy import DiskBudget
from edge.outbox import EvidenceBlob, sha256_hex
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType, ViolationEvent
from roadwatch.contract.signing import sign
from tests.factories import violation_event

REPO = Path(__file__).resolve().parents[1]
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BIG_BUDGET = DiskBudget(limit_bytes=1 << 30, event_reserve_bytes=1 << 20)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
