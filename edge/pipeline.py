"""Frames -> batched detection -> per-camera tracks, for live cameras and for files.

``LivePipeline`` takes the newest frame of every camera into a batch scheduler (one
waiting frame per camera, a batch sent when full or when its oldest frame has waited the
latency bound), runs each batch through the detector in one call per model, and tracks
each camera on its own. ``process_file`` reads
a video frame by frame without dropping, for offline runs and evaluation.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge.config import CameraConfig, SiteConfig
from edge.detections import Detections, ObjectClass
from edge.detector import Detector, DetectorConfig, FrameDetections, FrameError
from edge.evidence.packets import Codec
from edge.nvdec import CaptureOpener, PacketSink, capture_factory
from edge.scheduler import BatchScheduler
from edge.sources import (
    Arrivals,
    CameraReader,
    Capture,
    Frame,
    ReadCounters,
    SourceError,
    is_stream,
    probe_file,
    read_file,
)
from edge.tracking import Tracker
from roadwatch.contract import CameraHealth, CameraState

log = logging.getLogger(__name__)


class StopSignal(Protocol):
    """What ends a live run: a ``threading.Event``, or one that waits on more."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    frame: Frame
    tracks: Detections


Sink = Callable[[TrackedFrame], None]


@dataclass
class RunSummary:
    frames: int = 0
    corrupt: int = 0
    seconds: float = 0.0
    track_classes: dict[int, ObjectClass] = field(default_factory=dict)
    frames_by_camera: dict[str, int] = field(default_factory=dict)
    riders_merged: int = 0
    persons_promoted: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def observe(self, tracks: Detections) -> None:
        if tracks.tracker_id is None:
            return
        for tid, cls in zip(tracks.tracker_id.tolist(), tracks.class_id.tolist(), strict=True):
            self.track_classes[tid] = ObjectClass(cls)

    def describe(self) -> str:
        by_class = Counter(c.label for c in self.track_classes.values())
        classes = ", ".join(f"{k} {v}" for k, v in sorted(by_class.items()))
        return (
            f"{self.frames} frames ({self.corrupt} corrupt skipped) in {self.seconds:.1f} s"
            f" ({self.fps:.1f} frames/s); {len(self.track_classes)} tracks: {classes};"
            f" riders merged {self.riders_merged}, person tracks promoted to two-wheelers"
            f" {self.persons_promoted}"
        )


class DetectorPool:
    """One loaded detector per (model, thresholds) the cameras ask for."""

    def __init__(self, load: Callable[[DetectorConfig], Detector] = Detector.from_manifest) -> None:
        self._load = load
        self._by_config: dict[str, Detector] = {}

    def get(self, config: DetectorConfig) -> Detector:
        key = config.model_dump_json()
        if key not in self._by_config:
            self._by_config[key] = self._load(config)
        return self._by_config[key]

    @property
    def riders_merged(self) -> int:
        return sum(d.riders_merged for d in self._by_config.values())


def track_frame(tracker: Tracker, found: FrameDetections, t: float) -> Detections:
    """One frame's detections (``Detector.detect_for_tracking``) through its camera's
    tracker at ``t`` seconds, as every run of the node tracks: the confident boxes continue
    and start tracks, the low ones only continue them. Benches and evaluations track
    through this too, so that they measure the tracking the node does."""
    return tracker.update(found.confident, t, found.low)


def process_file(
    path: Path,
    config: SiteConfig,
    sinks: list[Sink],
    *,
    detectors: DetectorPool | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int, int, RunSummary], None] | None = None,
) -> RunSummary:
    """Every frame of a video file through detection and tracking, in order."""
    info = probe_file(path)
    camera = config.cameras[0]
    detector = (detectors or DetectorPool()).get(config.detector_for(camera))
    tracker = Tracker(config.tracker, fps=info.fps)
    counters = ReadCounters()
    summary = RunSummary()
    started = time.monotonic()
    frames: Iterator[Frame] = read_file(path, camera.id, counters)
    for frame in frames:
        if stop is not None and stop.is_set():
            break
        try:
            found = detector.detect_for_tracking([frame.image])[0]
        except FrameError as exc:
            log.warning("%s: frame %d skipped as corrupt: %s", path.name, frame.index, exc)
            counters.frames -= 1
            counters.corrupt += 1
            continue
        tracks = track_frame(tracker, found, frame.index / info.fps)
        summary.observe(tracks)
        item = TrackedFrame(frame, tracks)
        for sink in sinks:
            sink(item)
        summary.frames = counters.frames
        summary.seconds = time.monotonic() - started
        if progress is not None:
            progress(summary.frames, info.frame_count, summary)
    summary.corrupt = counters.corrupt
    summary.frames = counters.frames
    summary.seconds = time.monotonic() - started
    summary.riders_merged = detector.riders_merged
    summary.persons_promoted = tracker.stats.persons_promoted
    return summary


# The longest a live run's loop may take to come round (one batch through the detector
# and the sinks) before its cameras are reported stalled.
PIPELINE_STALL_S = 30.0
# The longest it may stay stuck before the process ends, so that what runs it (the
# service manager, or for a worker process the node) starts it again: nothing inside the
# process can free a thread stuck in a driver or a device call.
PIPELINE_HUNG_S = 180.0
HUNG_EXIT_CODE = 70  # (EX_SOFTWARE)


def end_hung_process(stuck_s: float) -> None:
    """Ends this process at once with ``HUNG_EXIT_CODE``, its pipeline stuck for
    ``stuck_s``. What the outbox holds is safe (it survives a kill); the violations found
    whose evidence was being built are stored without evidence at the next start."""
    log.critical(
        "the pipeline has not come round for %.0f s (the detector or a sink stuck): ending"
        " the process (exit %d) for it to be started again", stuck_s, HUNG_EXIT_CODE,
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(HUNG_EXIT_CODE)


class LivePipeline:
    """All cameras of a node: one reader thread each, one batched inference per model.

    The readers decode where ``decode`` says (NVDEC or OpenCV; ``opener`` replaces that
    choice, named by ``decoder``); ``decoder`` tells which one runs."""

    def __init__(
        self,
        config: SiteConfig,
        detectors: DetectorPool | None = None,
        *,
        opener: CaptureOpener | None = None,
        decoder: str = "custom",
    ) -> None:
        self.config = config
        self.cameras: list[CameraConfig] = check_sources(config.cameras)
        if opener is None:
            opener, self.decoder = capture_factory(config.decode.decoder)
        else:
            self.decoder = decoder
        log.info("cameras decoded by %s", self.decoder)
        self._arrivals = Arrivals()
        # Where a camera's capture hands its packets (an evidence ring that keeps the
        # stream); filled before ``run`` by the node, for a decoder that has packets.
        self.packet_sinks: dict[str, PacketSink] = {}
        self.readers = {
            c.id: _reader(c, opener, self._arrivals, self.packet_sinks) for c in self.cameras
        }
        # A batch cannot hold more frames than there are cameras: a node with fewer cameras
        # than max_batch sends its batch once each has a frame, without waiting the bound.
        self.scheduler: BatchScheduler[Frame] = BatchScheduler(
            max(1, min(config.detector.max_batch, len(self.cameras))),
            config.detector.batch_wait_ms / 1000,
        )
        self.detectors = detectors or DetectorPool()
        self.trackers = {
            c.id: Tracker(config.tracker, fps=c.target_fps or 25.0) for c in self.cameras
        }
        self.summary = RunSummary()
        self._turned: float | None = None  # when the run's loop last came round
        # Frames the detector could not take (a camera sending greyscale or tiny frames),
        # per camera: counted as corrupt, said once per camera and reason.
        self.refused: Counter[str] = Counter()
        self._refusals_said: set[tuple[str, str]] = set()
        # Per camera, from a frame's arrival to its detections (waiting for its batch and
        # the detector's call), smoothed: the status's inference_latency_ms.
        self.latency_ms: dict[str, float] = {}

    def health(self) -> list[CameraHealth]:
        """Each reader's health; frames replaced while waiting for a batch count as dropped.
        A camera that streams is reported stalled while the run's loop has not come round
        for ``PIPELINE_STALL_S`` (inference or a sink stuck): frames arrive, none is seen."""
        stuck = self.stuck_s()
        out = []
        for reader in self.readers.values():
            health = reader.health()
            if extra := self.scheduler.dropped[reader.camera]:
                dropped = health.frames_dropped + extra
                health = health.model_copy(update={"frames_dropped": dropped})
            if refused := self.refused[reader.camera]:
                corrupt = health.frames_corrupt + refused
                health = health.model_copy(update={"frames_corrupt": corrupt})
            if (latency := self.latency_ms.get(reader.camera)) is not None:
                latency = round(min(latency, 600_000.0), 1)
                health = health.model_copy(update={"inference_latency_ms": latency})
            if stuck > PIPELINE_STALL_S and health.state is CameraState.UP:
                why = f"frames not processed for {stuck:.0f} s: the pipeline is stuck"
                health = health.model_copy(update={"state": CameraState.STALLED, "reason": why})
            out.append(health)
        return out

    def stuck_s(self) -> float:
        """How long the run's loop has not come round (0 before the end of its first
        turn, which loads the detectors, and after the run)."""
        turned = self._turned
        return 0.0 if turned is None else time.monotonic() - turned

    def step(self, wait_s: float = 0.05) -> list[TrackedFrame]:
        """The next batch: the newest frame of each camera, sent when ``max_batch`` cameras
        have one or the oldest has waited ``batch_wait_ms``; waits up to ``wait_s`` for
        that, and returns nothing when it has not come."""
        deadline = time.monotonic() + wait_s
        cameras = self._arrivals.take()
        while True:
            self._collect(cameras)
            now = time.monotonic()
            if self.scheduler.ready(now) or now >= deadline:
                return self._process([p.item for p in self.scheduler.take(now)])
            due = self.scheduler.deadline()
            cameras = self._arrivals.take(
                max(0.0, min(deadline, due if due is not None else deadline) - now)
            )

    def flush(self) -> list[TrackedFrame]:
        """The frames still waiting, processed now (at the end of the sources)."""
        self._collect(self.readers)
        out: list[TrackedFrame] = []
        while batch := self.scheduler.take(time.monotonic(), force=True):
            out.extend(self._process([p.item for p in batch]))
        return out

    def _collect(self, cameras: Iterable[str]) -> None:
        """These cameras' newest frames into the scheduler (replacing ones still waiting)."""
        for camera in cameras:
            if (newest := self.readers[camera].newest()) is not None:
                frame, since = newest
                self.scheduler.offer(frame.camera, frame, since)

    def _process(self, frames: list[Frame]) -> list[TrackedFrame]:
        """Detection in one call per model, then each camera's tracker."""
        by_model: dict[str, tuple[DetectorConfig, list[Frame]]] = {}
        cams = {c.id: c for c in self.cameras}
        for frame in frames:
            det_config = self.config.detector_for(cams[frame.camera])
            key = det_config.model_dump_json()
            by_model.setdefault(key, (det_config, []))[1].append(frame)
        out: list[TrackedFrame] = []
        for det_config, group in by_model.values():
            detected = self._detect(self.detectors.get(det_config), group)
            done = time.monotonic()
            for frame, found in detected:
                took = max(0.0, done - frame.monotonic) * 1000
                before = self.latency_ms.get(frame.camera)
                self.latency_ms[frame.camera] = (
                    took if before is None else 0.8 * before + 0.2 * took
                )
                tracks = track_frame(self.trackers[frame.camera], found, frame.monotonic)
                self.summary.observe(tracks)
                self.summary.frames += 1
                counts = self.summary.frames_by_camera
                counts[frame.camera] = counts.get(frame.camera, 0) + 1
                out.append(TrackedFrame(frame, tracks))
        return out

    def _detect(
        self, detector: Detector, frames: list[Frame]
    ) -> list[tuple[Frame, FrameDetections]]:
        """Each frame with its detections; a frame the detector cannot take is counted as
        its camera's corrupt frame and left out, and the batch goes on without it."""
        try:
            found = detector.detect_for_tracking([f.pixels for f in frames])
            return list(zip(frames, found, strict=True))
        except FrameError as exc:
            refused = exc.problems
        for i, why in refused.items():
            frame = frames[i]
            self.refused[frame.camera] += 1
            self.summary.corrupt += 1
            if (frame.camera, why) not in self._refusals_said:
                self._refusals_said.add((frame.camera, why))
                log.warning(
                    "camera %s: frame %d skipped as corrupt, the detector cannot take it: %s"
                    " (more such frames of this camera are counted, not logged)",
                    frame.camera, frame.index, why,
                )  # fmt: skip
        good = [f for i, f in enumerate(frames) if i not in refused]
        return list(zip(good, detector.detect_for_tracking([f.pixels for f in good]), strict=True))

    def run(
        self,
        stop: StopSignal,
        sinks: list[Sink],
        health_every_s: float = 30.0,
        on_hung: Callable[[float], None] | None = None,
    ) -> RunSummary:
        """Every camera until ``stop`` is set or every source has ended. ``on_hung`` is told
        (once) when the loop has not come round for ``PIPELINE_HUNG_S``."""
        started = time.monotonic()
        last_health = started
        for reader in self.readers.values():
            reader.start()
        watch = _HungWatch(self.stuck_s, on_hung) if on_hung is not None else None
        try:
            while not stop.is_set():
                ended = all(r.ended for r in self.readers.values())
                for item in self.flush() if ended else self.step():
                    for sink in sinks:
                        sink(item)
                # (from the end of the first turn: that one loads the detectors, which
                # may take longer, a TensorRT engine being built, say)
                self._turned = time.monotonic()
                if ended:
                    break
                now = time.monotonic()
                if now - last_health >= health_every_s:
                    last_health = now
                    for h in self.health():
                        # (a camera that is up is news only with -v; one that is not, always)
                        # The attempts too: "reconnects 0" alone read as a camera down that
                        # was not being retried.
                        attempts = self.readers[h.camera].counts().reconnect_attempts
                        log.log(
                            logging.INFO if h.state is CameraState.UP else logging.WARNING,
                            "camera %s: %s fps %.1f dropped %d corrupt %d reconnects %d"
                            " (%d attempts)",
                            h.camera, h.state.value, h.fps, h.frames_dropped,
                            h.frames_corrupt, h.reconnects, attempts,
                        )  # fmt: skip
        finally:
            self._turned = None
            if watch is not None:
                watch.stop()
            self.close()
            self.summary.seconds = time.monotonic() - started
            self.summary.riders_merged = self.detectors.riders_merged
            self.summary.persons_promoted = sum(
                t.stats.persons_promoted for t in self.trackers.values()
            )
        return self.summary

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop every reader within ``timeout_s`` in all (not each)."""
        for reader in self.readers.values():
            reader.request_stop()
        deadline = time.monotonic() + timeout_s
        for reader in self.readers.values():
            if not reader.stop(max(0.0, deadline - time.monotonic())):
                log.warning("camera %s: reader did not stop within %g s", reader.camera, timeout_s)


class _HungWatch:
    """A thread that tells ``on_hung`` (once) when ``stuck_s()`` passes
    ``PIPELINE_HUNG_S``; ``stop`` ends it within a bounded time."""

    def __init__(self, stuck_s: Callable[[], float], on_hung: Callable[[float], None]) -> None:
        self._stuck_s, self._on_hung = stuck_s, on_hung
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pipeline-hung-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        every = min(1.0, PIPELINE_HUNG_S / 10)
        while not self._done.wait(every):
            if (stuck := self._stuck_s()) > PIPELINE_HUNG_S:
                self._on_hung(stuck)
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5.0)


class CameraPackets:
    """Where a camera's capture hands its packets: the camera's entry in ``sinks`` as it is
    at each packet (none: the packets are dropped). The node fills it before the cameras
    start, and changes it when a config push gives a camera a scene or takes it away."""

    def __init__(self, sinks: dict[str, PacketSink], camera: str) -> None:
        self._sinks = sinks
        self._camera = camera

    def add_packet(self, session: int, codec: Codec, pts: int, data: bytes, mono_s: float) -> None:
        if (sink := self._sinks.get(self._camera)) is not None:
            sink.add_packet(session, codec, pts, data, mono_s)


def check_sources(cameras: Iterable[CameraConfig]) -> list[CameraConfig]:
    """The enabled cameras, once each file source is known to exist and to hold a video
    (SourceError): a file never becomes readable by retrying it, as a camera might."""
    enabled = [c for c in cameras if c.enabled]
    for cam in enabled:
        if not is_stream(cam.url):
            try:
                probe_file(Path(cam.url.removeprefix("file://")))
            except SourceError as exc:
                raise SourceError(f"camera {cam.id}: {exc}") from None
    return enabled


def check_detectors(config: SiteConfig, cameras: Iterable[CameraConfig]) -> None:
    """Each model ``cameras`` detect with is a model of the manifest, there and matching
    it (``ModelError``), and onnxruntime offers one of the detector's providers
    (``DetectorError``): a start is refused for them before it creates anything, where
    loading the detector finds them only at the first frame (never, for a camera that is
    down)."""
    import onnxruntime as ort

    from edge.detector import choose_providers
    from models.registry import model_entry, model_path

    for name in sorted({config.detector_for(c).model for c in cameras}):
        model_entry(name)
        model_path(name)
    choose_providers(config.detector.providers, ort.get_available_providers())


def _reader(
    camera: CameraConfig,
    opener: CaptureOpener,
    arrivals: Arrivals,
    sinks: dict[str, PacketSink],
) -> CameraReader:
    packets = CameraPackets(sinks, camera.id)

    def capture(url: str) -> Capture:
        return opener(url, camera.stall_timeout_s, packets)

    return CameraReader(
        camera.id, camera.url, target_fps=camera.target_fps, loop=camera.loop,
        stall_timeout_s=camera.stall_timeout_s, capture=capture, arrivals=arrivals,
    )  # fmt: skip
