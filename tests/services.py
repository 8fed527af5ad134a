"""Where the real test services are, and whether their absence fails or skips a test.

With ROADWATCH_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the test;
otherwise it is skipped with the reason, so a laptop without PostgreSQL can still run
the unit tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def services_required() -> bool:
    return os.environ.get("ROADWATCH_REQUIRE_SERVICES") == "1"


def missing(reason: str) -> None:
    """Fail (CI) or skip (elsewhere) because a real service or file is not there."""
    if services_required():
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int


def mqtt_address() -> BrokerAddress:
    host, _, port = os.environ.get("ROADWATCH_TEST_MQTT", "127.0.0.1:1883").rpartition(":")
    return BrokerAddress(host or "127.0.0.1", int(port))


def postgres_url() -> str:
    return os.environ.get("ROADWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
        raise AssertionError  # unreachable: missing() fails or skips
    return path


def require_shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        missing(f"sample media {path} is not there")
    return path


@contextmanager
def serving_process(
    args: list[str], port: int, log: Path, start_s: float = 10.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends: up once ``port`` answers, always
    stopped within seconds (terminate, then kill), its output in ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_s
        while not tcp_open("127.0.0.1", port, timeout=0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
