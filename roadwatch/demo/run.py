"""``roadwatch demo``: central, an MQTT broker and one edge node on the sample scene.

Central (SQLite and a local evidence folder) and the broker (a local Mosquitto) run as
child processes; the edge node runs in this process, replaying the sample scene in a loop
as its camera. A summary line shows events produced (stored in the node's outbox),
delivered (acknowledged by the broker) and recorded (committed in central's database).
Ctrl-C, or the end of ``--run-for``, stops the camera, waits for what is in flight to be
recorded, and stops everything within bounded time.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from roadwatch.errors import UserError
from roadwatch.net import free_port

log = logging.getLogger(__name__)

# An officer, a supervisor and the IOC's read-only account (live feed, statistics, health).
DEMO_USERS = (
    ("canbo", "officer", "Cán bộ CSGT"),
    ("giamsat", "supervisor", "Giám sát"),
    ("ioc", "ioc", "Trung tâm IOC"),
)


@dataclass
class DemoCounts:
    produced: int = 0
    delivered: int = 0
    recorded: int = 0
    complete: int = 0
    plates_read: int = 0  # complete cases whose plate the node read (format checked)

    def line(self, elapsed_s: float) -> str:
        return (
            f"[{elapsed_s:5.0f} s] events produced {self.produced}, delivered {self.delivered},"
            f" recorded {self.recorded} (evidence complete {self.complete},"
            f" plate read {self.plates_read})"
        )


RUN_MARK = ".roadwatch-demo-run"  # in every run folder the demo makes
# What a run leaves in its folder; anything else there is someone else's.
RUN_ENTRIES = {RUN_MARK, "broker", "central", "outbox", "central.log", "mosquitto.log"}


def _fresh_run_dir(run_dir: Path) -> Path:
    """The run's folder, emptied: the last run's is replaced; a folder holding anything a
    run does not leave is refused (those files are not the demo's to delete)."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise UserError(f"{run_dir} is not a folder; move it away or give another --workdir")
        foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_ENTRIES)
        if foreign:
            raise UserError(
                f"{run_dir} holds files the demo did not make ({', '.join(foreign[:3])});"
                " move them away or give another --workdir"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / RUN_MARK).write_text("made by roadwatch demo; replaced by the next run\n")
    return run_dir


def _port_free(port: int) -> None:
    """Refuse a port another program holds: its answers would be taken for central's."""
    with socket.socket() as sock:
        # As the server binds: closed connections waiting out TIME_WAIT do not hold it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UserError(f"port {port} is in use ({exc.strerror}); give another --port") from exc


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log_file: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-1500:]
            raise UserError(f"{what} exited at start (code {proc.returncode}):\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise UserError(f"{what} did not open port {port} within 60 s")


@contextmanager
def child(
    args: list[str], *, env: dict[str, str] | None, log_file: Path, port: int, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is always stopped: SIGTERM, then SIGKILL after 15 s."""
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_port(port, proc, what, log_file)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def broker_config(folder: Path, port: int) -> Path:
    """A Mosquitto configuration for one machine: loopback only, limits set explicitly."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    conf = folder / "mosquitto.conf"
    user = os.environ.get("USER") or "root"
    conf.write_text(
        "\n".join(
            [
                "# Demo broker: loopback only, no accounts (see docker/mosquitto for production).",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "per_listener_settings false",
                "# The default (1000) drops QoS 1 messages for a slow subscriber silently.",
                "max_queued_messages 100000",
                "max_inflight_messages 100",
                "message_size_limit 1048576",
                "persistence true",
                f"persistence_location {data}/",
                "autosave_interval 30",
                f"user {user}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return conf


def _token_from(output: str) -> str:
    for line in output.splitlines():
        if "token" in line and ":" in line:
            return line.rsplit(":", 1)[1].strip()
    raise UserError(f"central did not print an upload token:\n{output}")


class CentralClient:
    """The few central calls the demo makes (login and counts)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base.rstrip("/")
        self._auth = {"username": username, "password": password}
        self._token: str | None = None
        self._http = httpx.Client(timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            r = self._http.post(f"{self.base}/api/v1/auth/token", data=self._auth)
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def _get(self, path: str, params: dict[str, str | int]) -> Any:
        r = self._http.get(f"{self.base}{path}", params=params, headers=self._headers())
        if r.status_code == 401:  # the access token expired: log in again
            self._token = None
            r = self._http.get(f"{self.base}{path}", params=params, headers=self._headers())
        r.raise_for_status()
        return r.json()

    def recorded(self) -> tuple[int, int, int]:
        """(violations recorded, of which evidence complete, of those with a plate read)."""
        total = int(self._get("/api/v1/stats/violations", {"by": "type"})["total"])
        complete, read, offset = 0, 0, 0
        while True:
            page = self._get(
                "/api/v1/violations", {"complete": "true", "limit": 200, "offset": offset}
            )
            complete += len(page["items"])
            read += sum(1 for item in page["items"] if item.get("plate_valid") is True)
            if not page["has_more"]:
                return total, complete, read
            offset += len(page["items"])


def run_demo(
    *,
    workdir: Path,
    data_dir: Path,
    port: int,
    run_for_s: float | None,
    drain_s: float = 90.0,
    stop: threading.Event | None = None,
    out: Any = sys.stdout,
) -> DemoCounts:
    """Run the demo until ``stop`` is set or ``run_for_s`` has passed; return the counts."""
    from edge.config import parse_site_config
    from edge.node import EdgeNode
    from roadwatch.demo.prepare import prepare_demo

    stop = stop or threading.Event()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is None:
        # An embedded Python broker cannot stand in: central's ingest needs MQTT 5 shared
        # subscriptions, which the pure-Python brokers do not offer.
        raise UserError("the demo needs Mosquitto (installed by scripts/setup)")
    _port_free(port)
    assets = prepare_demo(workdir, data_dir)
    run_dir = _fresh_run_dir(workdir / "run")
    broker_port = free_port()
    password = "roadwatch-demo"
    env = {
        **os.environ,
        "ROADWATCH_ENVIRONMENT": "development",
        "ROADWATCH_DATA_DIR": str(run_dir / "central"),
        "ROADWATCH_SECRET_KEY": secrets.token_urlsafe(48),
        "ROADWATCH_MQTT_HOST": "127.0.0.1",
        "ROADWATCH_MQTT_PORT": str(broker_port),
        "ROADWATCH_MQTT_SITE": "demo",
    }
    cli = [sys.executable, "-m", "roadwatch", "central"]

    def central(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*cli, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise UserError(f"roadwatch central {args[0]} failed: {_why(done)}")
        return done.stdout

    central("migrate")
    central("case", "keygen")  # (a fresh run folder: cases exported from the demo are signed)
    for username, role, full_name in DEMO_USERS:
        central(
            "create-user", "--username", username, "--role", role, "--full-name", full_name,
            "--password-stdin", stdin=password + "\n",
        )  # fmt: skip
    token = _token_from(
        central("node", "add", "--site", "demo", "--node", "node-01",
                "--public-key", str(assets.public_key))
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    config = parse_site_config(
        {
            "site": "demo",
            "node": "node-01",
            "version": "demo/1",
            "cameras": [
                {
                    "id": assets.camera,
                    "url": str(assets.video),
                    "loop": True,
                    "scene": str(assets.scene),
                    "calibration": str(assets.calibration),
                    "place": "QL13 Km 22+300, Thuận An, Bình Dương",
                }
            ],
            "delivery": {
                "key_path": str(assets.private_key),
                "broker": {"host": "127.0.0.1", "port": broker_port},
                "outbox": {"path": str(run_dir / "outbox")},
                "central": {"url": base, "upload_token": token},
                "status_interval_s": 10,
            },
            # One camera replaying a clip: plate reading is on, the guard too.
            "plates": True,
        },
        "demo",
    )
    counts = DemoCounts()
    with ExitStack() as stack:
        stack.enter_context(
            child(
                [mosquitto, "-c", str(broker_config(run_dir / "broker", broker_port))],
                env=None,
                log_file=run_dir / "mosquitto.log",
                port=broker_port,
                what="mosquitto",
            )
        )
        stack.enter_context(
            child(
                [*cli, "serve", "--port", str(port), "--with-ingest"],
                env=env,
                log_file=run_dir / "central.log",
                port=port,
                what="central",
            )
        )
        client = CentralClient(base, DEMO_USERS[0][0], password)
        stack.callback(client.close)
        node = EdgeNode.from_config(config, model_version=assets.model_version)
        camera_stop = threading.Event()
        edge = threading.Thread(
            target=node.run_live,
            args=(camera_stop,),
            kwargs={"drain_s": drain_s},
            name="demo-edge",
            daemon=True,
        )
        print(f"Roadwatch demo: review UI {base}/  (log in as {DEMO_USERS[0][0]} /"
              f" {password}; supervisor {DEMO_USERS[1][0]} / {password}; IOC"
              f" {DEMO_USERS[2][0]} / {password})", file=out)  # fmt: skip
        print(f"API docs {base}/docs; logs in {run_dir}; stop with Ctrl-C", file=out)
        started = time.monotonic()
        edge.start()
        try:
            while not stop.is_set() and edge.is_alive():
                if run_for_s is not None and time.monotonic() - started >= run_for_s:
                    break
                stop.wait(5.0)
                _count(node, client, counts)
                print(counts.line(time.monotonic() - started), file=out, flush=True)
        finally:
            camera_stop.set()
            edge.join(timeout=drain_s + 60)
        # The camera is stopped; the outbox and the publisher were flushed by the node.
        # Central records what the broker holds: wait for it, bounded.
        _drain(node, client, counts, drain_s)
        print(counts.line(time.monotonic() - started), file=out, flush=True)
        if edge.is_alive():
            log.error("the edge node did not stop within 60 s")
    return counts


def _count(node: Any, client: CentralClient, counts: DemoCounts) -> None:
    counts.produced = node.counters.stored
    if node.delivery is not None:
        counts.delivered = node.delivery.delivered_violations()
    try:
        counts.recorded, counts.complete, counts.plates_read = client.recorded()
    except httpx.HTTPError as exc:
        log.warning("central not answering: %s", exc)


def _drain(node: Any, client: CentralClient, counts: DemoCounts, drain_s: float) -> None:
    deadline = time.monotonic() + drain_s
    while True:
        _count(node, client, counts)
        done = counts.recorded >= counts.produced and counts.complete >= counts.recorded
        if done or time.monotonic() >= deadline:
            return
        time.sleep(1.0)


def summary_json(counts: DemoCounts) -> str:
    return json.dumps({**asdict(counts), "finished_at": datetime.now(UTC).isoformat()})


def _why(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed command said, or how it ended when it said nothing (stopped by a
    signal, an interrupt say)."""
    if said := done.stderr.strip():
        return said
    if done.returncode < 0:
        try:
            return f"stopped by {signal.Signals(-done.returncode).name}"
        except ValueError:
            return f"stopped by signal {-done.returncode}"
    return f"exit status {done.returncode}, nothing said"
