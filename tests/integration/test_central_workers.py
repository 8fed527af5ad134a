"""The HTTP worker supervisor (``central/workers.py``) with stand-in workers: it refuses a
port another server holds, takes one free port for all its sockets, and stops with exit
status 1, its sockets closed, when a worker keeps crashing at start."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from central.workers import Workers, listening_sockets
from roadwatch.errors import UserError

pytestmark = pytest.mark.integration


def _crash(_sock: socket.socket, _options: dict[str, Any]) -> None:
    raise SystemExit(3)  # as a worker whose app cannot start


def test_a_port_another_server_holds_is_refused_not_shared() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            listening_sockets("127.0.0.1", port, 2)


def test_port_zero_gives_every_worker_the_same_free_port() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(ports) == 1 and ports != {0}
    finally:
        for s in sockets:
            s.close()


def test_a_worker_that_keeps_crashing_stops_the_server_with_status_1() -> None:
    workers = Workers("127.0.0.1", 0, 2, target=_crash, crash_limit=3, backoff_s=(0.2,))
    port = workers.bind()
    started = time.monotonic()
    assert workers.run() == 1
    assert time.monotonic() - started < 60
    with socket.socket() as probe:  # the sockets are closed: the port is free again
        probe.bind(("127.0.0.1", port))
