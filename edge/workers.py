"""A node's cameras shared out over worker processes (``processes`` in the site config).

One pipeline thread does the host work of every camera in its process (tracking, the
rules, the evidence rings): about 1,000 frames/s on the GPU path, some 30 cameras at 30
fps (docs/edge-perception.md, "Stream density"). With ``processes: N`` the node starts N
workers, each running its share of the cameras end to end as a node of its own would
(readers and decoders, a detector session, trackers, enforcement, evidence built on its own
threads), and keeps delivery in its own process: the workers send their finished evidence
packages (signed with the node key), traffic minutes and camera health over one queue, and
the node stores, publishes and reports them as it does its own.

- Cameras are dealt by frame rate, the busiest first, each to the least loaded worker.
- A config push is checked by the node, then handed to every worker (its own cameras
  only) with the scenes, calibrations and reference views the node read to check it;
  each camera switches at its next frame, as in one process. A worker that cannot take
  it (its plate models) runs on as it was and says why (``refused``).
- Each violation a worker's rules find is sent to the node as found (``Fired``), before
  its evidence is built, and the node records it in the outbox.
- A signal controller's message reaches the node's publisher and goes on to the worker
  that runs its camera.
- A worker that dies (killed for memory, a crash in a driver) is started again, at once
  or, after a quick death, after a growing wait; its cameras show ``down`` meanwhile. The
  evidence it was building is lost, but not the violations: the node stores those it
  was told of and never received as events without evidence. Each start tells the worker
  the latest traffic minute the node's outbox holds of its cameras (a worker opens no
  outbox): after a clock set back, the minutes up to it are counted as parts, as in a
  node started again (``edge.traffic_stats``); and the fined no-stopping places the
  outbox keeps of them, which its rules start with (``Places`` keep them there as they
  change), so that a worker started again does not fine again a vehicle still standing
  where it was fined. One that dies soon after its start
  ``crash_limit`` times in a row stops the node, as does a worker's error (a missing
  model, NVDEC without PyNvVideoCodec), with the worker's own message.
- A worker whose pipeline stays stuck (a driver, the device) ends itself, as a node in one
  process does, and is started again. One that stops reporting at all for as long
  (frozen whole) is killed and started again.
- Stopping the node stops every worker, which finishes its evidence first; a worker still
  running ``stop_wait_s`` later is terminated, then killed.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from edge.config import CameraConfig, SiteConfig
from edge.detections import ObjectClass
from edge.enforcement import EVIDENCE_WAIT_S
from edge.evidence.package import EvidencePackage
from edge.pipeline import HUNG_EXIT_CODE, PIPELINE_HUNG_S, RunSummary
from edge.rules.no_stopping import FinedPlace
from roadwatch.contract import (
    CameraHealth,
    CameraState,
    SignalPhase,
    TrafficStats,
    ViolationEvent,
)
from roadwatch.errors import UserError
from roadwatch.processes import die_with_parent
from roadwatch.said_once import SaidOnce

if TYPE_CHECKING:
    from edge.node import CameraFiles, EdgeNode

log = logging.getLogger(__name__)

_spawn = multiprocessing.get_context("spawn")

NOMINAL_FPS = 30.0  # the load of a camera without a target_fps
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)  # waits before restarts after quick deaths
QUICK_DEATH_S = 60.0  # a worker that dies sooner than this after its start "crashed"
CRASH_LIMIT = 5  # crashes in a row of one worker that stop the node
# A stopping worker's time to end: its evidence (``EVIDENCE_WAIT_S`` at most), then its
# readers and what it still sends.
STOP_MARGIN_S = 30.0
STOP_WAIT_S = EVIDENCE_WAIT_S + STOP_MARGIN_S
HEALTH_EVERY_S = 2.0  # how often a worker reports its cameras' health
STOP = "stop"  # to a worker: finish and end

Deliver = Callable[[list[EvidencePackage], list[TrafficStats]], None]


# -- which worker runs which camera ------------------------------------------------------


def camera_load(camera: CameraConfig) -> float:
    """Frames per second a camera brings to its worker."""
    return camera.target_fps or NOMINAL_FPS


def deal_cameras(cameras: Sequence[CameraConfig], processes: int) -> list[list[str]]:
    """The enabled cameras' ids per worker: the busiest camera first, each to the least
    loaded worker (the lower index on a tie); a worker's cameras in config order. No
    worker is left without cameras, so there may be fewer than ``processes``."""
    enabled = [c for c in cameras if c.enabled]
    count = max(1, min(processes, len(enabled)))
    loads = [0.0] * count
    dealt: list[list[int]] = [[] for _ in range(count)]
    for i in sorted(range(len(enabled)), key=lambda i: -camera_load(enabled[i])):
        worker = min(range(count), key=lambda k: (loads[k], k))
        dealt[worker].append(i)
        loads[worker] += camera_load(enabled[i])
    return [[enabled[i].id for i in sorted(group)] for group in dealt if group]


def worker_config(
    config: SiteConfig, cameras: Sequence[str], cpus: int | None = None
) -> SiteConfig:
    """The configuration a worker runs: the node's, with only its cameras. Where the
    inference threads are left to onnxruntime (one per core in every process), the
    workers share the ``cpus`` cores (default: this machine's) instead."""
    keep = set(cameras)
    chosen = [c for c in config.cameras if c.id in keep]
    detector = config.detector
    if not detector.threads:
        share = max(1, (cpus or os.cpu_count() or 1) // config.processes)
        detector = detector.model_copy(update={"threads": share})
    return config.model_copy(update={"cameras": chosen, "processes": 1, "detector": detector})


def _files_of(files: dict[str, CameraFiles], cameras: Sequence[str]) -> dict[str, CameraFiles]:
    return {c: files[c] for c in cameras if c in files}


def merge_summaries(summaries: Sequence[RunSummary], seconds: float) -> RunSummary:
    """The workers' run summaries as one (track ids are the workers' own, so each
    worker's tracks count apart)."""
    out = RunSummary(seconds=seconds)
    classes: list[ObjectClass] = []
    for summary in summaries:
        out.frames += summary.frames
        out.corrupt += summary.corrupt
        out.riders_merged += summary.riders_merged
        out.persons_promoted += summary.persons_promoted
        classes += summary.track_classes.values()
        for camera, frames in summary.frames_by_camera.items():
            out.frames_by_camera[camera] = out.frames_by_camera.get(camera, 0) + frames
    out.track_classes = dict(enumerate(classes, start=1))
    return out


# -- what workers and the node say to each other -----------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    config: SiteConfig  # the worker's cameras only
    files: dict[str, CameraFiles]  # their scenes, calibrations and reference views
    key: bytes  # the node key (raw Ed25519): the worker signs evidence as the node
    model_version: str
    parent_pid: int  # the node's process
    log_level: int = logging.WARNING
    health_every_s: float = HEALTH_EVERY_S
    evidence_wait_s: float = EVIDENCE_WAIT_S  # at the stop (see ``EdgeNode.run_live``)
    # Per camera, the latest traffic minute the node's outbox held at the worker's start
    # (see ``EdgeNode.traffic_sent``).
    traffic_sent: dict[str, datetime] = field(default_factory=dict)
    # Per camera, the fined no-stopping places the node's outbox held at the worker's
    # start (see ``EdgeNode.stored_places``).
    fined_places: dict[str, list[FinedPlace]] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    worker: int
    packages: list[EvidencePackage]
    traffic: list[TrafficStats]


@dataclass(frozen=True)
class Fired:
    """A violation as the worker's rules found it (its package follows in an ``Output``)."""

    worker: int
    event: ViolationEvent  # unsigned, no evidence


@dataclass(frozen=True)
class Places:
    """A camera's fined no-stopping places as they are now (see ``CameraEnforcement``),
    for the node to keep in its outbox."""

    worker: int
    camera: str
    places: tuple[FinedPlace, ...]


@dataclass(frozen=True)
class Status:
    worker: int
    health: list[CameraHealth]
    violations: int = 0
    packages: int = 0
    processed: dict[str, int] = field(default_factory=dict)  # frames tracked, per camera
    at: float = 0.0  # time.monotonic() when taken (one clock for every process)
    config_version: str = ""  # the configuration the worker last took (see reconfigure)


@dataclass(frozen=True)
class Ended:
    worker: int
    summary: RunSummary
    status: Status


@dataclass(frozen=True)
class Failed:
    worker: int
    message: str
    user_error: bool  # bad input or environment (exit status 2), not a fault


@dataclass(frozen=True)
class Refused:
    """A worker could not take a configuration the node took (it runs on the one before)."""

    worker: int
    version: str
    reason: str


@dataclass(frozen=True)
class Reconfigure:
    config: SiteConfig  # the worker's cameras only
    files: dict[str, CameraFiles]  # as the node read them when it checked the config


Message = Output | Fired | Places | Status | Ended | Failed | Refused


# -- in the worker -----------------------------------------------------------------------


def run_worker(spec: WorkerSpec, out: Connection, control: Connection) -> None:
    """A worker process: its cameras through a node of their own until the node says stop
    (or its files end), everything it delivers sent to the node over ``out``."""
    # Without the node nothing it makes can be delivered: it ends at once. (The signal
    # comes when the thread that started it ends: ``Workers.run``'s, which outlives it.)
    die_with_parent(signal.SIGKILL)
    if os.getppid() != spec.parent_pid:  # the node ended before the line above
        return
    stop = threading.Event()
    # Ctrl-C reaches the whole process group, and a service manager may signal every
    # process: either way the worker finishes its evidence, as the node's own process does.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: stop.set())
    logging.basicConfig(
        level=spec.log_level,
        format=f"%(asctime)s %(levelname)s worker {spec.index} %(name)s: %(message)s",
    )
    # Up to 16 messages (packages of a few MB each) wait for the node.
    sender = _Sender(out, f"worker-{spec.index}-send", close_wait_s=60.0, max_queued=16)
    try:
        _work(spec, sender, control, stop)
    except UserError as exc:
        sender.put(Failed(spec.index, str(exc), user_error=True))
    except Exception as exc:
        log.exception("worker %d failed", spec.index)
        first = str(exc).splitlines()[0] if str(exc) else ""
        sender.put(Failed(spec.index, f"{type(exc).__name__}: {first}", user_error=False))
    finally:
        sender.close()


class _Sender:
    """Messages over a pipe on a thread of their own, so that whoever sends does not wait
    for the other side to read (a worker's pipeline, a large package; the node's config
    push, a worker still loading its model). One thread per pipe keeps messages whole.

    With ``max_queued``, ``put`` waits while that many messages are queued: a node that
    stores packages slower than a worker makes them slows that worker's pipeline (its
    cameras drop frames), as delivery does in one process, instead of filling memory."""

    def __init__(
        self, connection: Connection, name: str, *, close_wait_s: float, max_queued: int = 0
    ) -> None:
        self._connection = connection
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queued)
        self._close_wait_s = close_wait_s
        # A daemon: one blocked on a process stuck in a driver must not hold up the exit.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, message: object) -> None:
        self._queue.put(message)

    def offer(self, message: object) -> None:
        """Queue ``message`` unless the queue is full (a report that the next replaces)."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(message)

    def close(self) -> None:
        """Send what is queued (waiting up to ``close_wait_s``); the thread closes the pipe."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_CLOSE, timeout=self._close_wait_s)
        self._thread.join(self._close_wait_s)
        if self._thread.is_alive():
            log.warning("%s: the other process reads nothing; what is unsent is dropped",
                        self._thread.name)  # fmt: skip

    def _run(self) -> None:
        broken = False
        try:
            while (message := self._queue.get()) is not _CLOSE:
                if broken:
                    continue  # emptied, so that no ``put`` waits on a queue nobody sends
                try:
                    self._connection.send(message)
                except Exception as exc:  # OSError: the other process is gone
                    broken = True
                    log.info("%s: %s; messages dropped", self._thread.name, exc)
        finally:
            self._connection.close()


_CLOSE = object()


def _work(spec: WorkerSpec, sender: _Sender, control: Connection, stop: threading.Event) -> None:
    from edge.node import EdgeNode
    from edge.pipeline import LivePipeline

    config = spec.config
    node = EdgeNode.for_worker(
        config,
        key=Ed25519PrivateKey.from_private_bytes(spec.key),
        model_version=spec.model_version,
        forward=lambda packages, traffic: sender.put(Output(spec.index, packages, traffic)),
        forward_fired=lambda event: sender.put(Fired(spec.index, event)),
        files=spec.files,
        traffic_sent=spec.traffic_sent,
        forward_places=lambda camera, places: sender.put(Places(spec.index, camera, places)),
        fined_places=spec.fined_places,
    )
    pipeline = LivePipeline(config)

    def status() -> Status:
        processed = dict(pipeline.summary.frames_by_camera)
        return Status(
            spec.index, node.health(), node.violations, node.packages, processed,
            time.monotonic(), node.config.version,
        )  # fmt: skip

    done = threading.Event()

    def listen() -> None:
        """The node's messages (stop, a new config), and the health every few seconds."""
        next_status = time.monotonic() + spec.health_every_s
        while not done.is_set():
            try:
                message = (
                    control.recv()
                    if control.poll(min(0.5, max(0.0, next_status - time.monotonic())))
                    else None
                )
            except Exception as exc:  # EOFError: the node's process is gone
                log.error("worker %d: the node's messages ended (%r); stopping", spec.index, exc)
                stop.set()
                return
            try:
                if message == STOP:
                    stop.set()
                elif isinstance(message, SignalPhase):
                    node.on_signal(message)
                elif isinstance(message, Reconfigure) and (why := _reconfigure(node, message)):
                    sender.put(Refused(spec.index, message.config.version, why))
                if time.monotonic() >= next_status:
                    sender.offer(status())
                    next_status = time.monotonic() + spec.health_every_s
            except Exception:  # one bad message or report; the next may go through
                log.exception("worker %d: control message or report failed", spec.index)

    listener = threading.Thread(target=listen, name=f"worker-{spec.index}-control")
    listener.start()
    try:
        summary = node.run_live(stop, pipeline=pipeline, evidence_wait_s=spec.evidence_wait_s)
    finally:
        done.set()
        listener.join(5.0)
    sender.put(Ended(spec.index, summary, status()))


def _reconfigure(node: EdgeNode, message: Reconfigure) -> str | None:
    """Take the node's new configuration; why not, where it cannot be taken.

    Built from the files the node read and checked: nothing on disk is read again. What
    is left to fail is what the node leaves to its workers: the plate reader's models,
    loaded where a push gives the first camera of a worker reading plates a scene."""
    try:
        node.reconfigure(message.config, node.prepare(message.config, files=message.files))
    except UserError as exc:
        log.error("config %s not taken: %s", message.config.version, exc)
        return str(exc)
    except Exception as exc:  # a fault, not the config's: still, the node must hear it
        log.exception("config %s not taken", message.config.version)
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


# -- in the node -------------------------------------------------------------------------


class WorkerError(UserError):
    """A worker failed, or kept dying: the node stops."""


@dataclass
class _Worker:
    index: int
    cameras: list[str]
    process: SpawnProcess | None = None
    output: Connection | None = None  # from this process; None once it is closed
    control: _Sender | None = None  # to this process
    started: float = 0.0
    crashes: int = 0  # quick deaths in a row
    restart_at: float | None = None
    status: Status | None = None
    summary: RunSummary | None = None
    done: bool = False  # ended, failed, or gone while the node stops
    # Counts of the processes before a restart.
    violations: int = 0
    packages: int = 0
    # Violations it found whose package has not come yet, by event id.
    in_flight: dict[str, ViolationEvent] = field(default_factory=dict)
    killed_why: str | None = None  # why the node killed it (silent), for its restart


@dataclass
class Workers:
    """The node's cameras over ``config.processes`` workers: ``run`` until ``stop`` is set
    or every camera's source has ended; what the workers deliver goes to ``deliver`` on the
    calling thread.

    ``target(spec, output, control)`` is what a worker runs (a node of its own)."""

    config: SiteConfig
    key: Ed25519PrivateKey
    model_version: str
    deliver: Deliver
    # The cameras' files as the node read them (``EdgeNode.files``): workers build from
    # these, so a file changed on disk after the node's check reaches none of them.
    files: dict[str, CameraFiles]
    target: Callable[[WorkerSpec, Connection, Connection], None] = run_worker
    stop_wait_s: float = STOP_WAIT_S
    evidence_wait_s: float = EVIDENCE_WAIT_S  # a stopping worker's wait for its evidence
    health_every_s: float = HEALTH_EVERY_S
    crash_limit: int = CRASH_LIMIT
    backoff_s: tuple[float, ...] = RESTART_BACKOFF_S
    quick_death_s: float = QUICK_DEATH_S
    kill_after_s: float = 10.0  # a terminated worker's time to end before it is killed
    hung_s: float = PIPELINE_HUNG_S  # a running worker silent this long is killed
    # Told (config version, why) when a worker cannot take a configuration the node took.
    refused: Callable[[str, str], None] | None = None
    # Told of each violation as a worker finds it, and of those a worker found and never
    # delivered when it ends (they are to be stored without evidence).
    fired: Callable[[ViolationEvent], None] | None = None
    lost: Callable[[list[ViolationEvent]], None] | None = None
    # Asked at each worker's start (a restart too: what the worker before delivered is
    # stored by then) for the latest traffic minute the outbox holds of each of its
    # cameras: the worker counts the minutes up to it as parts, as a node started again.
    traffic_sent: Callable[[Sequence[str]], dict[str, datetime]] | None = None
    # Likewise for the fined no-stopping places the outbox keeps of them; ``places`` is
    # told each camera's as a worker's rules change them.
    fined_places: Callable[[Sequence[str]], dict[str, list[FinedPlace]]] | None = None
    places: Callable[[str, tuple[FinedPlace, ...]], None] | None = None
    _workers: list[_Worker] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _failure: Failed | None = field(default=None, init=False)
    _signals_refused: SaidOnce = field(default_factory=SaidOnce, init=False)

    def __post_init__(self) -> None:
        dealt = deal_cameras(self.config.cameras, self.config.processes)
        if any(c.enabled for c in self.config.cameras):
            self._workers = [_Worker(i, cams) for i, cams in enumerate(dealt)]

    @property
    def cameras(self) -> list[list[str]]:
        """Each worker's cameras."""
        return [w.cameras for w in self._workers]

    def run(self, stop: threading.Event) -> RunSummary:
        started = time.monotonic()
        stop_by: float | None = None
        try:
            for worker in self._workers:
                self._start(worker)
            while not all(w.done for w in self._workers):
                now = time.monotonic()
                if stop_by is None and (stop.is_set() or self._failure is not None):
                    stop_by = now + self.stop_wait_s
                    for worker in self._workers:
                        self._tell(worker, STOP)
                if stop_by is not None and now > stop_by:
                    log.warning("workers still running %g s after the stop", self.stop_wait_s)
                    break
                self._read(wait_s=0.25)
                if stop_by is None:
                    self._kill_silent()
                for worker in self._workers:
                    if worker.process is not None and worker.output is None:
                        self._reap(worker, stopping=stop_by is not None)
                self._restart_due(stopping=stop_by is not None)
        finally:
            self._shut_down()
        if (failure := self._failure) is not None:
            cams = ", ".join(self.cameras[failure.worker])
            message = f"worker {failure.worker} (cameras {cams}): {failure.message}"
            raise WorkerError(message, exit_code=2 if failure.user_error else 1)
        summaries = [w.summary for w in self._workers if w.summary is not None]
        return merge_summaries(summaries, time.monotonic() - started)

    # -- read from any thread ----------------------------------------------------------

    def health(self) -> list[CameraHealth]:
        """Each camera's health as its worker last reported it; ``down`` while its worker
        starts, and when a running worker has not reported for 5 report periods."""
        now = time.monotonic()
        with self._lock:
            out: list[CameraHealth] = []
            for worker in self._workers:
                status = worker.status
                if status is None:
                    out += [_down(c, "worker process starting") for c in worker.cameras]
                elif status.at and now - status.at > 5 * self.health_every_s and not worker.done:
                    silent = f"worker process not reporting for {now - status.at:.0f} s"
                    out += [_down(c, silent) for c in worker.cameras]
                else:
                    out += status.health
            return out

    @property
    def violations(self) -> int:
        """Violations the rules found, over every worker."""
        with self._lock:
            return sum(
                w.violations + (w.status.violations if w.status else 0) for w in self._workers
            )

    @property
    def packages(self) -> int:
        """Evidence packages built, over every worker."""
        with self._lock:
            return sum(w.packages + (w.status.packages if w.status else 0) for w in self._workers)

    def progress(self) -> list[tuple[float, dict[str, int]]]:
        """Per worker that has reported: when, and the frames tracked per camera by then."""
        with self._lock:
            return [(w.status.at, w.status.processed) for w in self._workers if w.status]

    def config_versions(self) -> list[str]:
        """The configuration version each worker last reported taking ("" before it
        reported); its cameras switch to it at their next frame."""
        with self._lock:
            return [w.status.config_version if w.status else "" for w in self._workers]

    def reconfigure(self, config: SiteConfig, files: dict[str, CameraFiles]) -> None:
        """A checked new configuration, and the files the node checked it with, to every
        worker (each gets its own cameras'); a worker started later starts with it."""
        with self._lock:
            self.config, self.files = config, files
            for worker in self._workers:
                self._tell(worker, self._reconfigure_message(worker))

    def signal(self, message: SignalPhase) -> None:
        """A signal controller's message (from the publisher's thread), to the worker of
        its camera once that worker runs (one starting, or started again, would only take
        them stale after its model loads)."""
        with self._lock:
            for worker in self._workers:
                if message.camera in worker.cameras:
                    status = worker.status  # (its own report, since this process started)
                    if status is not None and status.at >= worker.started > 0:
                        self._tell(worker, message)
                    return
        if self._signals_refused.due(message.camera):
            log.warning("signal messages for camera %s, which no worker runs; ignored",
                        message.camera)  # fmt: skip

    # -- the node's thread -------------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        with self._lock:
            config, files = self.config, self.files
        spec = WorkerSpec(
            index=worker.index,
            config=worker_config(config, worker.cameras),
            files=_files_of(files, worker.cameras),
            key=self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            model_version=self.model_version,
            parent_pid=os.getpid(),
            log_level=logging.getLogger().getEffectiveLevel(),
            health_every_s=self.health_every_s,
            evidence_wait_s=self.evidence_wait_s,
            traffic_sent=self.traffic_sent(worker.cameras) if self.traffic_sent else {},
            fined_places=self.fined_places(worker.cameras) if self.fined_places else {},
        )
        output, their_output = _spawn.Pipe(duplex=False)
        their_control, control = _spawn.Pipe(duplex=False)
        process = _spawn.Process(
            target=self.target,
            args=(spec, their_output, their_control),
            name=f"roadwatch-worker-{worker.index}",
        )
        process.start()  # (outside the lock: a large config waits for the child to read it)
        # Only the worker holds its ends now: its output reads as ended once it is gone.
        their_output.close()
        their_control.close()
        # Closed once the process is gone, when a send fails at once.
        sender = _Sender(control, f"worker-{worker.index}-control", close_wait_s=5.0)
        with self._lock:
            worker.process, worker.output, worker.control = process, output, sender
            worker.started, worker.restart_at = time.monotonic(), None
            if self.config is not config:  # a push came while it started
                self._tell(worker, self._reconfigure_message(worker))
        log.info("worker %d (pid %s): cameras %s", worker.index, process.pid,
                 ", ".join(worker.cameras))  # fmt: skip

    def _reconfigure_message(self, worker: _Worker) -> Reconfigure:
        return Reconfigure(
            worker_config(self.config, worker.cameras), _files_of(self.files, worker.cameras)
        )

    def _tell(self, worker: _Worker, message: Reconfigure | SignalPhase | str) -> None:
        """Never waits: a worker busy loading its model reads its messages later."""
        if worker.control is not None and not worker.done:
            worker.control.put(message)

    def _read(self, wait_s: float, stopping: bool = False) -> None:
        """Everything the workers sent by now (waiting up to ``wait_s`` for the first).
        While ``stopping`` after a fault, what cannot be delivered is logged and dropped."""
        outputs = {w.output: w for w in self._workers if w.output is not None}
        if not outputs:
            time.sleep(wait_s)
            return
        for ready in wait(list(outputs), wait_s):
            worker = outputs[ready]  # type: ignore[index]
            while (connection := worker.output) is not None:
                try:
                    if not connection.poll():
                        break
                    message = connection.recv()
                except Exception as exc:  # EOFError: the process is gone (or going)
                    if not isinstance(exc, EOFError | OSError):
                        log.error("worker %d: its output broke off: %r", worker.index, exc)
                    connection.close()
                    worker.output = None
                    break
                if not stopping:
                    self._handle(message)
                    continue
                try:
                    self._handle(message)
                except Exception:
                    log.exception("worker %d: a message lost while stopping", worker.index)

    def _handle(self, message: Message) -> None:
        worker = self._workers[message.worker]
        if isinstance(message, Fired):
            worker.in_flight[message.event.event_id] = message.event
            if self.fired is not None:
                self.fired(message.event)
            return
        if isinstance(message, Places):
            if self.places is not None and message.camera in worker.cameras:
                self.places(message.camera, message.places)
            return
        if isinstance(message, Output):
            for package in message.packages:
                worker.in_flight.pop(package.event.event_id, None)
            self.deliver(message.packages, message.traffic)
            return
        if isinstance(message, Refused):
            cams = ", ".join(worker.cameras)
            why = f"worker {worker.index} (cameras {cams}) runs on without it: {message.reason}"
            log.error("config %s: %s", message.version, why)
            if self.refused is not None:
                self.refused(message.version, why)
            return
        with self._lock:
            if isinstance(message, Status):
                worker.status = message
            elif isinstance(message, Ended):
                worker.status, worker.summary, worker.done = message.status, message.summary, True
            else:
                worker.done = True
                if self._failure is None:
                    self._failure = message
                log.error("worker %d failed: %s", message.worker, message.message)

    def _reap(self, worker: _Worker, stopping: bool) -> None:
        """A worker whose output has ended: its exit, and a restart where one is due."""
        process = worker.process
        assert process is not None
        process.join(5.0)
        if process.is_alive():  # it closed its output and went on: it cannot report
            process.kill()
            process.join(5.0)
        ended = _ended(process.exitcode)
        if worker.killed_why is not None:
            ended, worker.killed_why = f"{ended} ({worker.killed_why})", None
        now = time.monotonic()
        if worker.control is not None:
            worker.control.close()  # a send to a process that is gone fails at once
        self._deliver_lost(worker)
        with self._lock:
            worker.process, worker.control = None, None
            if worker.done:
                return
            lost = f"worker {worker.index} {ended}"
            if stopping:
                worker.done = True
                log.warning("%s while stopping; evidence it was building is lost", lost)
                return
            quick = now - worker.started < self.quick_death_s
            worker.crashes = worker.crashes + 1 if quick else 0
            if worker.status is not None:  # its counts so far; the next process starts at 0
                worker.violations += worker.status.violations
                worker.packages += worker.status.packages
            if worker.crashes >= self.crash_limit:
                worker.done = True
                message = (
                    f"ended {worker.crashes} times in a row within {self.quick_death_s:g} s"
                    f" of its start (last: {ended})"
                )
                self._failure = self._failure or Failed(worker.index, message, user_error=False)
                reason = f"worker process {ended}; not started again ({message})"
                worker.status = Status(worker.index, [_down(c, reason) for c in worker.cameras])
                log.error("worker %d %s", worker.index, message)
                return
            reason = f"worker process {ended}; starting another"
            worker.status = Status(worker.index, [_down(c, reason) for c in worker.cameras])
            backoff = self.backoff_s[min(worker.crashes, len(self.backoff_s)) - 1] if quick else 0
            worker.restart_at = now + backoff
        log.warning("%s; starting another in %.1f s (evidence it was building is lost)",
                    lost, backoff)  # fmt: skip

    def _kill_silent(self) -> None:
        """Kills each running worker that has reported before and not for ``hung_s``
        (frozen whole: its own watch cannot end it); it is started again as one that
        died. One still starting (loading its models) is left to start."""
        now = time.monotonic()
        for worker in self._workers:
            status, process = worker.status, worker.process
            if worker.done or worker.killed_why is not None or process is None:
                continue
            if status is None or not status.at or now - status.at <= self.hung_s:
                continue
            worker.killed_why = f"not reporting for {now - status.at:.0f} s"
            log.error("worker %d %s: killing it", worker.index, worker.killed_why)
            process.kill()

    def _deliver_lost(self, worker: _Worker) -> None:
        """The violations ``worker`` (whose output has ended) found and never delivered."""
        events = list(worker.in_flight.values())
        worker.in_flight.clear()
        if events and self.lost is not None:
            self.lost(events)

    def _restart_due(self, stopping: bool) -> None:
        for worker in self._workers:
            if worker.restart_at is None:
                continue
            if stopping:
                worker.restart_at, worker.done = None, True
            elif time.monotonic() >= worker.restart_at:
                self._start(worker)

    def _shut_down(self) -> None:
        """Every worker gone within a bounded time, what they still send delivered where it
        can be, every pipe and thread closed, whatever fails on the way.
        (Only a worker past its stop's wait, or any after a fault here, is still running.)"""
        try:
            for worker in self._workers:
                if not worker.done and worker.process is not None and worker.process.is_alive():
                    self._tell(worker, STOP)
                    worker.process.terminate()  # a worker takes SIGTERM as "finish and end"
            deadline = time.monotonic() + self.kill_after_s
            while any(_alive(w) for w in self._workers) and time.monotonic() < deadline:
                self._read(wait_s=0.1, stopping=True)
        finally:
            try:
                for worker in self._workers:
                    if worker.process is None:
                        continue
                    if worker.process.is_alive():
                        log.warning("worker %d did not end; killing it", worker.index)
                        worker.process.kill()
                    worker.process.join(5.0)
                self._read(wait_s=0.0, stopping=True)
                for worker in self._workers:
                    self._deliver_lost(worker)
            finally:
                for worker in self._workers:
                    _close(worker.output)
                    if worker.control is not None:
                        worker.control.close()
                    worker.process, worker.output, worker.control = None, None, None


def _ended(code: int | None) -> str:
    """How a worker process ended, in words."""
    if code is None:
        return "ended"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == HUNG_EXIT_CODE:
        return f"exited with status {code} (its pipeline was stuck)"
    return f"exited with status {code}"


def _alive(worker: _Worker) -> bool:
    return worker.process is not None and worker.process.is_alive()


def _down(camera: str, reason: str) -> CameraHealth:
    return CameraHealth(camera=camera, state=CameraState.DOWN, reason=reason)


def _close(connection: Connection | None) -> None:
    if connection is not None:
        connection.close()
