"""HTTP worker processes, each with its own listening socket.

With one listening socket shared by every worker (uvicorn's ``--workers``), the worker
that wakes first accepts every connection waiting: clients that keep their connections
open (browsers, a reverse proxy's pool, the IOC's dashboards) all land on one process
while the others idle. Here each worker listens on its own socket bound with
SO_REUSEPORT to the same address, and the kernel spreads new connections over them.

The parent holds the sockets: a worker that dies is replaced on the same socket, and the
connections the kernel queued for it meanwhile wait for the replacement. A worker that
keeps dying soon after its start (``CRASH_LIMIT`` times in a row) stops the whole server
with exit status 1, so a service manager sees the failure instead of a restart loop.
SIGTERM or SIGINT stops every worker gracefully (uvicorn's own shutdown, ``graceful_s``),
then kills what is left; the parent returns within ``graceful_s`` + 5 s. A worker whose
parent dies (SIGKILL) is sent SIGTERM by the kernel (Linux), so none serves on alone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from central.metrics import MULTIPROCESS_ENV
from roadwatch.errors import UserError
from roadwatch.processes import die_with_parent

log = logging.getLogger("central.workers")

multiprocessing.allow_connection_pickling()  # sockets travel to spawned workers
_spawn = multiprocessing.get_context("spawn")

APP_FACTORY = "central.app:app_from_environment"
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)  # waits before restarts after quick deaths
QUICK_DEATH_S = 20.0  # a worker that dies sooner than this after its start "crashed"
CRASH_LIMIT = 5  # crashes in a row of one worker that stop the server


def listenable_port(host: str, port: int) -> int:
    """``port`` (or, for 0, a free one) once (host, port) has been bound without
    SO_REUSEPORT and let go: a port another server holds, or an address not on this
    machine, is refused in one line before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            return int(probe.getsockname()[1])
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to (host, port) with SO_REUSEPORT, listening.

    The address is first bound once without SO_REUSEPORT, so a port another server holds
    (with or without SO_REUSEPORT) is refused with a clear error instead of shared. Port 0
    takes a free port, the same for every socket.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise UserError("--workers above 1 needs SO_REUSEPORT (Linux); serve with one worker")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = listenable_port(host, port)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


@contextlib.contextmanager
def shared_metrics() -> Iterator[Path]:
    """A folder of their own where the workers started meanwhile write their metrics, so
    that ``/metrics`` on any of them serves the sum (``central.metrics``); made empty,
    named to them through the environment (they are spawned, so they read it at their
    start), and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="roadwatch-metrics-"))
    before = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


def _serve(sock: socket.socket, options: dict[str, Any]) -> None:
    """A worker: uvicorn serving the app built from the environment on ``sock``."""
    die_with_parent()
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
    crashes: int = 0  # quick deaths in a row
    restart_at: float = 0.0


@dataclass
class Workers:
    """``count`` workers on ``host``:``port``: ``bind``, then ``run`` until told to stop.

    ``target(sock, options)`` is what a worker runs (uvicorn serving the app).
    """

    host: str
    port: int
    count: int
    graceful_s: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)
    target: Callable[[socket.socket, dict[str, Any]], None] = _serve
    crash_limit: int = CRASH_LIMIT
    backoff_s: tuple[float, ...] = RESTART_BACKOFF_S
    _stopping: bool = field(default=False, init=False)  # a plain flag: takes no lock
    _slots: list[_Slot] = field(default_factory=list, init=False)

    def bind(self) -> int:
        """Bind the sockets; returns the port (the one chosen, for port 0)."""
        self._slots = [_Slot(s) for s in listening_sockets(self.host, self.port, self.count)]
        self.port = self._slots[0].sock.getsockname()[1]
        return self.port

    def run(self) -> int:
        """Serve until stopped (0) or until a worker keeps crashing (1)."""
        if not self._slots:
            self.bind()
        options = {
            **self.options,
            "host": self.host,
            "port": self.port,
            "timeout_graceful_shutdown": self.graceful_s,
        }
        status = 0
        try:
            while not self._stopping:
                if not all(self._keep_alive(slot, options) for slot in self._slots):
                    status = 1
                    break
                time.sleep(0.25)
        finally:
            self._stop()
            for slot in self._slots:
                slot.sock.close()
        return status

    def stop(self) -> None:
        self._stopping = True

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_a: self.stop())

    def _keep_alive(self, slot: _Slot, options: dict[str, Any]) -> bool:
        """Start or restart the slot's worker; False once it has crashed too often."""
        now = time.monotonic()
        process = slot.process
        if process is not None:
            if process.is_alive():
                if now - slot.started >= QUICK_DEATH_S:
                    slot.crashes = 0  # it has been up a while
                return True
            process.join()
            slot.process = None
            quick = now - slot.started < QUICK_DEATH_S
            slot.crashes = slot.crashes + 1 if quick else 0
            if slot.crashes >= self.crash_limit:
                log.error(
                    "worker %s exited with %s, %d times in a row soon after starting; "
                    "stopping the server",
                    process.pid, process.exitcode, slot.crashes,
                )  # fmt: skip
                return False
            wait = self.backoff_s[min(slot.crashes, len(self.backoff_s)) - 1] if quick else 0.0
            log.warning(
                "worker %s exited with %s; starting another in %.1f s",
                process.pid, process.exitcode, wait,
            )  # fmt: skip
            slot.restart_at = now + wait
        if now < slot.restart_at:
            return True
        slot.process = _spawn.Process(target=self.target, args=(slot.sock, options))
        slot.process.start()
        slot.started = time.monotonic()
        return True

    def _stop(self) -> None:
        running = [s.process for s in self._slots if s.process is not None]
        running = [p for p in running if p.is_alive()]
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
