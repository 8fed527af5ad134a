"""A private Mosquitto process for tests that configure, stop or kill their own broker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services import require_binary, serving_process

REPO = Path(__file__).resolve().parents[1]


def local_docker_config(tmp: Path, port: int) -> Path:
    """docker/mosquitto/mosquitto.conf with its container paths moved into ``tmp``:
    ``tmp/config/{passwd,acl}``, ``tmp/certs/*``, ``tmp/data/``, listening on ``port``."""
    text = (REPO / "docker" / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 8883\n" in text
    text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    text = text.replace("/mosquitto/", f"{tmp}/")
    (tmp / "data").mkdir(exist_ok=True)
    conf = tmp / "mosquitto.conf"
    conf.write_text(text + "\nuser root\n")  # the test process owns the files it wrote
    return conf


@contextmanager
def mosquitto_process(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``mosquitto -c config`` until the block ends; always stopped within seconds."""
    binary = require_binary("mosquitto")
    with serving_process([binary, "-c", str(config)], port, log) as proc:
        yield proc
