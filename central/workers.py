"""HTTP worker processes, each with its own listening socket.

With one listening socket shared by every worker (uvicorn's ``--workers``), the worker
that wakes first accepts every connection waiting: clients that keep their connections
open (browsers, a reverse proxy's pool, the IOC's dashboards) all land on one process
while the others idle. Here each worker listens on its own socket bound with
SO_REUSEPORT to the same address, and the kernel spreads new connections over them.

The parent holds the sockets: a worker that dies is replaced on the same socket, and the
connections the kernel queued for it meanwhile wait for the replacement. SIGTERM or
SIGINT stops every worker gracefully (uvicorn's own shutdown, ``graceful_s``), then kills
what is left; the parent returns within ``graceful_s`` + 5 s.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from typing import Any

from roadwatch.errors import UserError

log = logging.getLogger("central.workers")

multiprocessing.allow_connection_pickling()  # sockets travel to spawned workers
_spawn = multiprocessing.get_context("spawn")

APP_FACTORY = "central.app:app_from_environment"
RESTART_BACKOFF_S = 1.0  # a worker that keeps dying is restarted at most this often


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to (host, port) with SO_REUSEPORT, listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


def _serve(sock: socket.socket, options: dict[str, Any]) -> None:
    """A worker: uvicorn serving the app built from the environment on ``sock``."""
    import uvicorn

    config = uvicorn.Config(APP_FACTORY, factory=True, **options)
    # Ctrl-C reaches the whole process group: uvicorn stops gracefully, then re-raises it.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


@dataclass
class _Slot:
    sock: socket.socket
    process: SpawnProcess | None = None
    started: float = 0.0


@dataclass
class Workers:
    """``count`` uvicorn workers on ``host``:``port``; ``run`` blocks until told to stop."""

    host: str
    port: int
    count: int
    graceful_s: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        slots = [_Slot(sock) for sock in listening_sockets(self.host, self.port, self.count)]
        options = {
            **self.options,
            "host": self.host,
            "port": self.port,
            "timeout_graceful_shutdown": self.graceful_s,
        }
        try:
            while not self.stopping.is_set():
                for slot in slots:
                    self._keep_alive(slot, options)
                self.stopping.wait(0.25)
        finally:
            self._stop(slots)
            for slot in slots:
                slot.sock.close()

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_a: self.stopping.set())

    def _keep_alive(self, slot: _Slot, options: dict[str, Any]) -> None:
        process = slot.process
        if process is not None:
            if process.is_alive():
                return
            process.join()
            log.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
            slot.process = None
        if time.monotonic() - slot.started < RESTART_BACKOFF_S:
            return  # it died at once: wait a little before the next try
        slot.process = _spawn.Process(target=_serve, args=(slot.sock, options), daemon=False)
        slot.process.start()
        slot.started = time.monotonic()

    def _stop(self, slots: list[_Slot]) -> None:
        running = [s.process for s in slots if s.process is not None and s.process.is_alive()]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + self.graceful_s + 5.0
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in running:
            if process.is_alive():
                log.warning("worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join(5.0)
