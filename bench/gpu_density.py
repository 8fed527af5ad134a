"""Stream density: how many 1080p30 H.264 cameras one edge box processes in real time.

End to end means the node's own live run: one reader thread per camera decoding its
stream at 30 fps, the cameras' newest frames batched by the scheduler (up to ``--batch``
per detector call, ``--batch-wait-ms`` latency bound), ByteTrack per camera, the scene's
rules per camera (speeding and wrong way on the demo road, with a calibrated projector),
the evidence rings (the stream itself on NVDEC) and the violation events. A camera keeps
up when at least 90 % of its frames are processed. The stream count is doubled while all
cameras keep up, then bisected; each trial runs ``--seconds``.

Measured in the same run, as the peers of the end-to-end figure:
- the decode ceiling: frames/s that the decoder threads alone sustain on the same clip;
- the inference ceiling: images/s of the detector alone (letterbox included) at the
  configured batch, on frames already decoded.

    .venv/bin/python bench/gpu_density.py                      # the providers in edge order
    .venv/bin/python bench/gpu_density.py --providers CPUExecutionProvider --seconds 10

Where a GPU provider (the default order has two) or NVDEC is asked for, the bench stops
with exit 2 unless the detector runs on that GPU provider, its device pipeline on the GPU
with NVDEC (``--no-require-gpu`` measures whatever runs). ``--deadline-s`` ends the search
in time to print its best count, and a trial waits ``--evidence-wait-s`` (5 s) for the
evidence built after its window.

The clip is the demo road rendered at 1920x1080, 30 fps (seeded, about a minute, once,
into var/bench/density/). The end-to-end path decodes as the node's camera readers do
(``--decoder``: NVDEC where PyNvVideoCodec, CuPy and a GPU are usable, else OpenCV);
where PyNvVideoCodec is installed the NVDEC decode ceiling (the cameras' own NVDEC capture,
BGR frames left in GPU memory) is measured too, with ``--nvdec-threads`` decoders.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from calibration.camera import PinholeCamera  # noqa: E402
from edge.detector import DEFAULT_PROVIDERS, Detector, DetectorConfig  # noqa: E402
from edge.pipeline import DetectorPool, LivePipeline, TrackedFrame  # noqa: E402
from roadwatch.errors import UserError  # noqa: E402

if TYPE_CHECKING:
    from edge.node import EdgeNode

FPS = 30.0
KEEP_UP = 0.9
CLIP_SECONDS = 20.0
SCENE_VERSION = "density-1080p30/1"


def density_camera() -> PinholeCamera:
    """The demo's road camera at full HD: same pose, twice the focal length in pixels."""
    return PinholeCamera(
        height_m=8.0, tilt_deg=14.0, focal_px=1800.0, width=1920, height=1080, pan_deg=0.0,
        offset_m=0.0,
    )  # fmt: skip


def prepare(folder: Path, data_dir: Path) -> tuple[Path, dict[str, Any], Path]:
    """The 1080p30 clip, its scene document and its calibration (rendered once)."""
    from calibration.scene_render import load_assets, write_scene
    from calibration.speed_eval import surveyed_calibration
    from calibration.store import save_calibration
    from roadwatch.demo.scene import demo_spec, scene_document

    folder.mkdir(parents=True, exist_ok=True)
    camera = density_camera()
    spec = dataclasses.replace(
        demo_spec(fps=FPS), name="density", camera=camera, frames=int(CLIP_SECONDS * FPS)
    )
    video, marker = folder / "density.mp4", folder / "density.json"
    wanted = {"version": SCENE_VERSION, "frames": spec.frames}
    if not video.is_file() or not marker.is_file() or json.loads(marker.read_text()) != wanted:
        print("rendering the 1080p30 clip once (about a minute)...", file=sys.stderr)
        write_scene(spec, load_assets(data_dir), folder)
        marker.write_text(json.dumps(wanted))
    calibration = folder / "density.calib.yaml"
    if not calibration.is_file():
        save_calibration(
            surveyed_calibration(
                camera, 7, _now(), camera_id="cam-0001", calibrated_by="density bench"
            ),
            calibration,
        )
    return video, scene_document(camera), calibration


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def decode_ceiling(video: Path, threads: int, seconds: float) -> float:
    """Frames/s that ``threads`` decoder threads sustain, each looping over the clip."""
    stop = threading.Event()
    counts = [0] * threads

    def work(i: int) -> None:
        cap = cv2.VideoCapture(str(video))
        try:
            while not stop.is_set():
                ok, _ = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                counts[i] += 1
        finally:
            cap.release()

    return _threads_rate(work, counts, stop, seconds, warm_up_s=1.0)


FIRST_COUNT_WAIT_S = 60.0


def _threads_rate(
    work: Callable[[int], None],
    counts: list[int],
    stop: threading.Event,
    seconds: float,
    *,
    warm_up_s: float,
) -> float:
    """Run ``work(i)`` in ``len(counts)`` threads, each adding to ``counts[i]``; after the
    warm-up (and once every thread has counted, within ``FIRST_COUNT_WAIT_S``: on a busy
    machine opening may take longer), the sum's rate over ``seconds``; then ``stop`` and
    join."""
    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(counts))]
    for w in workers:
        w.start()
    time.sleep(warm_up_s)
    deadline = time.monotonic() + FIRST_COUNT_WAIT_S
    while min(counts) == 0 and time.monotonic() < deadline and all(w.is_alive() for w in workers):
        time.sleep(0.05)
    before, started = sum(counts), time.monotonic()
    time.sleep(seconds)
    rate = (sum(counts) - before) / (time.monotonic() - started)
    stop.set()
    for w in workers:
        w.join(10.0)
    return rate


def nvdec_ceiling(video: Path, threads: int, seconds: float) -> float:
    """Frames/s that ``threads`` NVDEC captures sustain, each looping over the clip and read
    as fast as it decodes. They are the camera readers' own (``NvdecCapture``: the decoder
    made as theirs is, RGB at low latency, each picture copied into a BGR array of its own
    on the GPU, a new capture at each loop), so the end-to-end ratio compares like with
    like; ``NvdecUnavailableError`` where NVDEC cannot run."""
    from edge.nvdec import NvdecCapture, load_cupy, load_nvc

    nvc, xp = load_nvc(), load_cupy(0)
    stop = threading.Event()
    counts = [0] * threads
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            while not stop.is_set():
                cap = NvdecCapture(str(video), nvc=nvc, xp=xp)
                try:
                    while not stop.is_set():
                        ok, frame = cap.read()
                        if not ok:
                            if cap.error is not None:
                                raise RuntimeError(cap.error)
                            break  # the clip's end: open it again, as a looping camera does
                        counts[i] += frame is not None
                finally:
                    cap.release()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    rate = _threads_rate(work, counts, stop, seconds, warm_up_s=2.0)  # sessions open first
    if errors:
        raise RuntimeError(f"NVDEC decoding failed: {errors[0]!r}")
    return rate


def inference_ceiling(detector: Detector, video: Path, seconds: float) -> float:
    """Images/s of the detector alone (letterbox, inference, decoding of the output into
    the confident and the low boxes, as the node's pipeline detects), on frames where the
    cameras' frames are when it gets them: in GPU memory where the device pipeline runs on
    the GPU (as NVDEC leaves them), else in host memory."""
    cap = cv2.VideoCapture(str(video))
    frames: list[Any] = []
    while len(frames) < detector.config.max_batch:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if detector.backend is not None:  # copied up once, not at every call
        frames = [detector.backend.asarray(f) for f in frames]
    detector.detect_for_tracking(frames)
    done, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        detector.detect_for_tracking(frames)
        done += len(frames)
    return done / (time.monotonic() - started)


@dataclasses.dataclass(frozen=True)
class HostCosts:
    """Milliseconds per frame of the host work that runs on the one pipeline thread."""

    tracking_ms: float
    enforcement_ms: float  # rules, lamp and integrity checks, the evidence ring
    ring_ms: float  # of which the ring (a JPEG of the frame)
    stream_enforcement_ms: float  # the same with the ring that keeps the stream (NVDEC)
    case_frames: int  # frames of a case's 2 s stretch
    case_jpeg_ms: float  # taking them from the JPEG ring
    case_stream_ms: float  # decoding them from the stream ring (and making their JPEGs)

    @property
    def ceiling(self) -> float:
        """Frames/s the pipeline thread can serve with no time left for detection."""
        return 1000.0 / (self.tracking_ms + self.enforcement_ms)

    @property
    def stream_ceiling(self) -> float:
        return 1000.0 / (self.tracking_ms + self.stream_enforcement_ms)


class _Deferred(Executor):
    """Runs what is submitted only when asked to (``run_all``), and from then on at once:
    the end of the timing (``finish``) submits the cases still waiting for their
    after-frames, which no thread would ever run."""

    def __init__(self) -> None:
        self._jobs: list[tuple[Future[Any], Callable[[], Any]]] = []
        self._at_once = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.append((future, lambda: fn(*args, **kwargs)))
        if self._at_once:
            self.run_all()
        return future

    def run_all(self) -> None:
        self._at_once = True
        while self._jobs:
            jobs, self._jobs = self._jobs, []
            for future, job in jobs:
                try:
                    future.set_result(job())
                except Exception as exc:  # handed to whoever waits for it
                    future.set_exception(exc)


def _timed_enforcement(node: EdgeNode, items: list[TrackedFrame]) -> float:
    """Seconds the node's enforcement takes over ``items`` on the pipeline thread. Evidence
    is built beside that thread in live runs; here it waits until the timing is over (its
    cost per case is measured apart)."""
    later = _Deferred()
    for camera in node.enforcement.values():
        camera.build_pool = later
    started = time.perf_counter()
    for item in items:
        node.on_tracked(item)
    elapsed = time.perf_counter() - started
    later.run_all()
    node.finish()
    return float(elapsed)


def host_costs(
    video: Path, scene: dict[str, Any], calibration: Path, folder: Path, detector: Detector,
    frames: int = 150,
) -> HostCosts:  # fmt: skip
    """Tracking and enforcement of one camera on ``frames`` frames of the clip, timed
    apart from decoding and detection (done first, as the node's pipeline detects and
    tracks: confident and low boxes)."""
    from datetime import UTC, datetime, timedelta

    from edge.config import parse_site_config
    from edge.delivery_config import EvidenceSettings
    from edge.evidence.packets import PacketRing
    from edge.evidence.ring import FrameRing
    from edge.node import EdgeNode, camera_ring
    from edge.pipeline import track_frame
    from edge.sources import Frame, SourceTag
    from edge.tracking import Tracker

    cap = cv2.VideoCapture(str(video))
    images: list[Any] = []
    while len(images) < frames:
        ok, image = cap.read()
        if not ok:
            break
        images.append(np.asarray(image, np.uint8))
    cap.release()
    detections = detector.detect_for_tracking(images)
    scene_file = folder / "scenes" / "host.yaml"
    scene_file.parent.mkdir(exist_ok=True)
    scene_file.write_text(yaml.safe_dump({**scene, "camera": "cam-0001"}, allow_unicode=True))
    config = parse_site_config(
        {"site": "bench", "node": "host", "plates": False, "cameras": [
            {"id": "cam-0001", "url": str(video), "scene": str(scene_file),
             "calibration": str(calibration)}]}
    )  # fmt: skip
    node = EdgeNode.from_config(config, model_version="bench")
    tracker = Tracker(config.tracker, fps=FPS)
    t0, mono0 = datetime.now(UTC), time.monotonic()
    started = time.perf_counter()
    tracks = [track_frame(tracker, d, i / FPS) for i, d in enumerate(detections)]
    tracking = time.perf_counter() - started
    items = [
        TrackedFrame(Frame("cam-0001", i, mono0 + i / FPS, t0 + timedelta(seconds=i / FPS), im), tr)
        for i, (im, tr) in enumerate(zip(images, tracks, strict=True))
    ]
    enforcing = _timed_enforcement(node, items)
    ring = FrameRing("cam-0001", seconds=60.0, max_bytes=1 << 40)
    started = time.perf_counter()
    for item in items:
        ring.push(item.frame.index, item.frame.monotonic, item.frame.captured_at, item.frame.image)
    ringing = time.perf_counter() - started
    # The same frames on a node whose ring keeps the stream: the clip's own packets go in
    # as the NVDEC capture would hand them over, and each frame carries its time stamp.
    streaming = EdgeNode.from_config(config, model_version="bench")
    packets = camera_ring(PacketRing, "cam-0001", EvidenceSettings())
    streaming.enforcement["cam-0001"].ring = packets
    raw = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    stamps = []
    for seq in range(len(items) + 16):
        ok, data = raw.read()
        if not ok:
            break
        stamps.append(int(raw.get(cv2.CAP_PROP_PTS)))
        packets.add_packet(1, "h264", stamps[-1], data.tobytes(), mono0 + seq / FPS)
    raw.release()
    tagged = [
        TrackedFrame(dataclasses.replace(item.frame, source=SourceTag(1, pts)), item.tracks)
        for item, pts in zip(items, sorted(stamps), strict=False)
    ]
    stream_enforcing = _timed_enforcement(streaming, tagged)
    # Frames of a case: the last 2 s, from each ring (the stream one decodes them from the
    # clip's keyframe, 3 s before them).
    last = tagged[-1].frame.monotonic
    started = time.perf_counter()
    from_jpegs = ring.window(last - 2.0, last)
    jpeg_window = time.perf_counter() - started
    started = time.perf_counter()
    from_stream = packets.window(last - 2.0, last)
    stream_window = time.perf_counter() - started
    assert len(from_stream) == len(from_jpegs), (len(from_stream), len(from_jpegs))
    n = len(items)
    return HostCosts(
        1000 * tracking / n, 1000 * enforcing / n, 1000 * ringing / n,
        1000 * stream_enforcing / len(tagged), len(from_jpegs), 1000 * jpeg_window,
        1000 * stream_window,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Trial:
    streams: int
    seconds: float
    processed: dict[str, int]
    violations: int
    failure: str = ""  # why the trial measured nothing (it counts as falling behind)
    ended: bool = True  # False: its run did not end, and may still hold the machine

    @property
    def slowest_fps(self) -> float:
        return min(self.processed.values(), default=0) / self.seconds

    @property
    def total_fps(self) -> float:
        return sum(self.processed.values()) / self.seconds

    @property
    def keeps_up(self) -> bool:
        return (
            not self.failure
            and len(self.processed) == self.streams
            and self.slowest_fps >= KEEP_UP * FPS
        )


# A trial's live run ends at its stop within this margin after its evidence wait (readers,
# the last batch; with workers, their stop margin and their kill after it).
END_MARGIN_S = 30.0
EVIDENCE_WAIT_S = 5.0  # the bench's evidence wait at a trial's end (the node's is 300 s)
START_WAIT_S = 60.0  # for every camera of a worker trial to be reported (detectors loaded)


class TrialStuckError(RuntimeError):
    """A trial's live run did not end: its threads or workers may still hold the machine."""


def trial(
    streams: int, video: Path, scene: dict[str, Any], calibration: Path, folder: Path,
    pool: DetectorPool, seconds: float, model: DetectorConfig, decoder: str, processes: int = 1,
    *, evidence_wait_s: float = EVIDENCE_WAIT_S, start_wait_s: float = START_WAIT_S,
) -> Trial:  # fmt: skip
    """``streams`` cameras through the node's path for ``seconds`` (after a warm-up); with
    ``processes`` above 1, the node's worker processes (each loads its own detector).

    The evidence still being built when the trial stops gets ``evidence_wait_s`` (it is
    built after the measuring window: the trial does not wait for all of it, and what is
    not built is stored without evidence); a run that does not end within a margin after
    that raises ``TrialStuckError``."""
    from calibration.store import load_calibration, save_calibration
    from edge.config import parse_site_config
    from edge.node import EdgeNode

    surveyed = load_calibration(calibration)
    cameras = []
    for n in range(streams):
        cam = f"cam-{n + 1:04d}"
        scene_file = folder / "scenes" / f"{cam}.yaml"
        scene_file.parent.mkdir(exist_ok=True)
        scene_file.write_text(yaml.safe_dump({**scene, "camera": cam}, allow_unicode=True))
        calib_file = folder / "scenes" / f"{cam}.calib.yaml"  # the same survey, its own camera
        if not calib_file.is_file():
            save_calibration(surveyed.model_copy(update={"camera": cam}), calib_file)
        cameras.append(
            {"id": cam, "url": str(video), "loop": True, "scene": str(scene_file),
             "calibration": str(calib_file)}
        )  # fmt: skip
    config = parse_site_config(
        {"site": "bench", "node": "density", "cameras": cameras, "plates": False,
         "detector": model.model_dump(mode="json"), "decode": {"decoder": decoder},
         "processes": processes}
    )  # fmt: skip
    node = EdgeNode.from_config(config, model_version=model.model)
    if processes > 1:
        return _workers_trial(node, streams, seconds, evidence_wait_s, start_wait_s)
    pipeline = LivePipeline(config, pool)
    counts: Counter[str] = Counter()
    counting = threading.Event()

    def count(item: TrackedFrame) -> None:
        if counting.is_set():
            counts[item.frame.camera] += 1

    # The node's own live run: rings that keep the stream on NVDEC, evidence threads.
    run = _LiveRun(node, pipeline=pipeline, sinks=[count], evidence_wait_s=evidence_wait_s)
    time.sleep(min(5.0, seconds / 2))  # readers open, tracks form
    counting.set()
    started = time.monotonic()
    time.sleep(seconds)
    counting.clear()
    elapsed = time.monotonic() - started
    run.end(evidence_wait_s + END_MARGIN_S)
    return Trial(streams, elapsed, dict(counts), node.violations)


class _LiveRun:
    """``node.run_live`` on a thread of its own; ``end`` stops it and raises its error."""

    def __init__(self, node: EdgeNode, **options: Any) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(node, options), daemon=True)
        self.thread.start()

    def _run(self, node: EdgeNode, options: dict[str, Any]) -> None:
        try:
            node.run_live(self.stop, **options)
        except BaseException as exc:
            self.error = exc

    def end(self, timeout_s: float) -> None:
        self.stop.set()
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise TrialStuckError(f"the trial's run did not end within {timeout_s:g} s")
        if self.error is not None:
            raise self.error


def _workers_trial(
    node: EdgeNode, streams: int, seconds: float, evidence_wait_s: float, start_wait_s: float
) -> Trial:
    """A trial through worker processes, counted from the frames each worker reports it
    tracked, between two of its reports (time-stamped on the clock all processes share).
    Every camera has to be reported within ``start_wait_s`` (the workers started, their
    detectors loaded, their cameras open), else the trial fails saying so."""
    from edge.node import after_frames_wait_s
    from edge.workers import STOP_MARGIN_S

    run = _LiveRun(node, evidence_wait_s=evidence_wait_s)
    ending_s = after_frames_wait_s(node.config) + evidence_wait_s + STOP_MARGIN_S + END_MARGIN_S
    while (workers := node.workers) is None and run.thread.is_alive():
        time.sleep(0.05)
    if workers is None:
        run.end(ending_s)  # raises what ended it
        raise RuntimeError("the run ended before its workers started")

    def reported() -> dict[str, tuple[float, int]]:
        return {cam: (at, n) for at, counts in workers.progress() for cam, n in counts.items()}

    deadline = time.monotonic() + start_wait_s
    while len(reported()) < streams and time.monotonic() < deadline and run.thread.is_alive():
        time.sleep(0.5)
    if (seen := len(reported())) < streams:
        run.end(ending_s)
        why = f"{seen} of {streams} cameras reported within {start_wait_s:g} s of the start"
        return Trial(streams, seconds, {}, node.violations, failure=why)
    time.sleep(min(5.0, seconds / 2))
    first = reported()
    time.sleep(seconds)
    last = reported()
    run.end(ending_s)
    # A camera no worker reported on counts as none processed.
    processed = {cam.id: 0 for cam in node.config.cameras}
    for cam, (at, n) in last.items():
        if cam in first and at > first[cam][0]:
            # Each camera's rate over its worker's own window, as frames in ``seconds``.
            processed[cam] = round((n - first[cam][1]) * seconds / (at - first[cam][0]))
    return Trial(streams, seconds, processed, node.violations)


def guarded(run: Callable[[int], Trial], seconds: float) -> Callable[[int], Trial]:
    """``run``, with a trial that raises recorded as failed (one whose run did not end as
    not ended) instead of ending the bench before its figures are printed."""

    def attempt(n: int) -> Trial:
        try:
            return run(n)
        except TrialStuckError as exc:
            return Trial(n, seconds, {}, 0, failure=str(exc), ended=False)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            return Trial(n, seconds, {}, 0, failure=f"{type(exc).__name__}: {first}")

    return attempt


@dataclasses.dataclass(frozen=True)
class Search:
    best: Trial | None  # the largest count that kept up
    trials: list[Trial]
    stopped: str = ""  # why the search ended before it knew the count to ``within``


def search(
    run: Callable[[int], Trial], limit: int, start: int = 1, within: int = 1, *,
    deadline: float | None = None, expected_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> Search:  # fmt: skip
    """Largest stream count that keeps up: doubling from ``start``, then bisection until
    the count is known to ``within`` streams (the best trial that kept up is returned).

    With a ``deadline`` (on ``clock``), no trial starts that would end after it, taking a
    trial to last as long as the longest so far (``expected_s`` before the first); a
    trial whose run did not end stops the search too. Each trial's line is printed as
    it ends."""
    trials: list[Trial] = []
    longest = [expected_s]

    class _SearchStoppedError(Exception):
        pass

    def attempt(n: int) -> Trial:
        if deadline is not None and clock() + longest[0] > deadline:
            raise _SearchStoppedError(
                f"--deadline-s: no time for another trial (one takes {longest[0]:.0f} s)"
            )
        started = clock()
        t = run(n)
        longest[0] = max(longest[0], clock() - started)
        trials.append(t)
        if t.failure:
            verdict = f"failed: {t.failure}"
        else:
            verdict = "keeps up" if t.keeps_up else "falls behind"
        print(
            f"  {n:4d} streams: slowest {t.slowest_fps:5.1f} fps, total {t.total_fps:7.1f}"
            f" frames/s, {t.violations} violations -> {verdict}",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        if not t.ended:
            raise _SearchStoppedError(f"the trial at {n} streams did not end")
        return t

    best: Trial | None = None
    try:
        n = max(1, min(start, limit))
        while True:
            t = attempt(n)
            if not t.keeps_up:
                high = n
                break
            best = t
            if n >= limit:
                high = limit + 1
                break
            n = min(2 * n, limit)
        low = best.streams if best else 0
        while high - low > (max(1, within) if best else 1):  # (to 1 stream until one keeps up)
            mid = (low + high) // 2
            t = attempt(mid)
            if t.keeps_up:
                best, low = t, mid
            else:
                high = mid
    except _SearchStoppedError as stop:
        return Search(best, trials, str(stop))
    return Search(best, trials)


def versions(detector: Detector) -> str:
    import onnxruntime as ort

    gpu = ""
    try:
        import subprocess

        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        pass
    try:
        from importlib.metadata import version

        nvc = f"; PyNvVideoCodec {version('pynvvideocodec')}"
    except ImportError:
        nvc = ""
    return (
        f"device: {gpu or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs;"
        f" onnxruntime {ort.__version__} on {detector.providers[0]};"
        f" OpenCV {cv2.__version__}; NumPy {np.__version__}{nvc}"
    )


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def gpu_refusal(asked: Sequence[str], detector: Detector, decoder: str) -> str | None:
    """Why this run would not measure the GPU it was asked to (None: it will).

    onnxruntime runs on the CPU without a word where a GPU provider cannot load (a CUDA or
    cuDNN library missing: the detector skips what onnxruntime does not offer, and its
    session logs only errors), and NVDEC's frames would each be copied to the host where
    the detector's device pipeline is not on the GPU."""
    wanted = [p for p in asked if p in GPU_PROVIDERS]
    running = detector.providers[0] if detector.providers else "none"
    if wanted and running not in GPU_PROVIDERS:
        return (
            f"the GPU provider did not load: asked {', '.join(wanted)}, the detector runs on"
            f" {running} (onnxruntime offers {', '.join(_available())}; a CUDA or cuDNN"
            " library it cannot load is the usual cause, which onnxruntime printed above)"
        )
    backend = detector.backend
    if decoder == "nvdec" and (backend is None or backend.xp is np):
        return (
            "the cameras decode on NVDEC into GPU memory, but the detector's device pipeline"
            f" is not on the GPU (detector on {running}, CuPy missing or device_pipeline off):"
            " every frame would be copied to the host, which is not the path measured"
        )
    return None


def _available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def main() -> int:
    began = time.monotonic()
    if isinstance(sys.stdout, io.TextIOWrapper):  # each figure line out as it is found
        sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per trial")
    parser.add_argument("--max-streams", type=int, default=256)
    parser.add_argument(
        "--start-streams", type=int, default=1,
        help="the search's first count (doubled while all keep up, then bisected)",
    )  # fmt: skip
    parser.add_argument(
        "--within", type=int, default=1,
        help="stop bisecting once the largest count is known to this many streams",
    )  # fmt: skip
    parser.add_argument(
        "--deadline-s", type=float, default=None,
        help="seconds from the start after which no trial begins: the search ends and the"
        " best count so far is printed (a trial is taken to last as long as the longest yet)",
    )  # fmt: skip
    parser.add_argument(
        "--evidence-wait-s", type=float, default=EVIDENCE_WAIT_S,
        help="how long a trial's end waits for the evidence still being built (the node's"
        " own run waits 300 s; what is not built is stored without evidence)",
    )  # fmt: skip
    parser.add_argument(
        "--start-wait-s", type=float, default=START_WAIT_S,
        help="how long a worker trial waits for every camera to be reported, else it fails",
    )  # fmt: skip
    parser.add_argument("--model", default="yolov8n-coco-dynamic")
    parser.add_argument("--batch", type=int, default=64, help="most frames per inference")
    parser.add_argument(
        "--batch-wait-ms", type=float, default=20.0, help="latency bound of a live batch"
    )
    parser.add_argument(
        "--providers", default=",".join(DEFAULT_PROVIDERS), help="comma-separated, preferred first"
    )
    parser.add_argument(
        "--require-gpu", action=argparse.BooleanOptionalAction, default=None,
        help="exit 2 unless the detector runs on the GPU provider asked for and, with"
        " --decoder nvdec, its device pipeline on the GPU (default: on when a GPU provider"
        " or NVDEC is asked for)",
    )  # fmt: skip
    parser.add_argument("--decode-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--decoder", choices=("auto", "opencv", "nvdec"), default="auto",
        help="the camera readers' decoder end to end (auto: NVDEC where it runs)",
    )  # fmt: skip
    parser.add_argument(
        "--nvdec-threads", type=int, nargs="*", default=[8, 16],
        help="NVDEC decoder counts to measure (when PyNvVideoCodec is installed)",
    )  # fmt: skip
    parser.add_argument(
        "--streams", type=int, default=0,
        help="one trial at this many streams instead of the search (with --processes above 1,"
        " the same trial in one process as its peer)",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=int, default=1,
        help="worker processes end to end (the site config's processes; each its own detector)",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench" / "density")
    args = parser.parse_args()
    if min(args.max_streams, args.start_streams, args.within, args.processes) < 1:
        parser.error("--max-streams, --start-streams, --within and --processes must be at least 1")

    from edge.nvdec import NvdecUnavailableError, capture_factory

    try:
        decoder = capture_factory(args.decoder)[1]  # what auto chooses
    except NvdecUnavailableError as exc:
        print(f"gpu_density: {exc}", file=sys.stderr)
        return 2
    providers = tuple(p for p in args.providers.split(",") if p)
    model = DetectorConfig(
        model=args.model, max_batch=args.batch, batch_wait_ms=args.batch_wait_ms,
        providers=providers,
    )  # fmt: skip
    try:
        detector = Detector.from_manifest(model)
    except UserError as exc:  # a model not pulled, a provider that refused to start
        print(f"gpu_density: {exc}", file=sys.stderr)
        return 2
    require_gpu = args.require_gpu
    if require_gpu is None:
        require_gpu = args.decoder == "nvdec" or any(p in GPU_PROVIDERS for p in providers)
    if require_gpu and (why := gpu_refusal(providers, detector, decoder)) is not None:
        print(f"gpu_density: {why}; nothing measured (--no-require-gpu measures anyway)",
              file=sys.stderr)  # fmt: skip
        return 2
    video, scene, calibration = prepare(args.workdir, args.data)
    pool = DetectorPool(load=lambda _cfg: detector)
    print(versions(detector))
    print(f"clip: {video.name}, 1920x1080, {FPS:.0f} fps, H.264; {args.seconds:.0f} s per trial")

    def run(n: int, processes: int = args.processes) -> Trial:
        return trial(
            n, video, scene, calibration, args.workdir, pool, args.seconds, model,
            args.decoder, processes, evidence_wait_s=args.evidence_wait_s,
            start_wait_s=args.start_wait_s,
        )  # fmt: skip

    if args.streams:  # (no ceilings: the peer is the same trial in one process)
        return _workers_against_one_process(
            guarded(run, args.seconds), guarded(lambda n: run(n, 1), args.seconds),
            args.streams, args.processes,
        )  # fmt: skip
    decode = decode_ceiling(video, args.decode_threads, args.seconds)
    print(
        f"decode ceiling:     {decode:8.1f} frames/s ({args.decode_threads} OpenCV threads;"
        f" {decode / FPS:.1f} streams at {FPS:.0f} fps)"
    )
    nvdec_ceilings = []
    for threads in args.nvdec_threads:
        try:
            nvdec = nvdec_ceiling(video, threads, args.seconds)
        except (NvdecUnavailableError, RuntimeError) as exc:
            print(f"NVDEC decode ceiling: not measured ({exc})")
            break
        nvdec_ceilings.append(nvdec)
        print(
            f"NVDEC decode ceiling: {nvdec:6.1f} frames/s ({threads} NVDEC captures as the"
            f" cameras', BGR frames kept on the GPU; {nvdec / FPS:.1f} streams at {FPS:.0f} fps)"
        )
    host = host_costs(video, scene, calibration, args.workdir, detector)
    print(
        f"pipeline thread:    {host.ceiling:8.1f} frames/s at most (host work per frame:"
        f" tracking {host.tracking_ms:.2f} ms, enforcement {host.enforcement_ms:.2f} ms of"
        f" which the evidence ring's JPEG {host.ring_ms:.2f} ms; {host.ceiling / FPS:.1f}"
        f" streams at {FPS:.0f} fps)"
    )
    print(
        f"  with the stream ring (NVDEC): {host.stream_ceiling:8.1f} frames/s at most"
        f" (enforcement {host.stream_enforcement_ms:.2f} ms per frame;"
        f" {host.stream_ceiling / FPS:.1f} streams at {FPS:.0f} fps)"
    )
    print(
        f"  a case's {host.case_frames} frames (2 s): {host.case_jpeg_ms:.1f} ms from the JPEG"
        f" ring, {host.case_stream_ms:.1f} ms decoded from the stream ring"
    )
    infer = inference_ceiling(detector, video, args.seconds)
    on_gpu = detector.backend is not None and detector.backend.xp is not np
    print(
        f"inference ceiling:  {infer:8.1f} images/s ({args.model}, batch up to {args.batch},"
        f" frames in {'GPU' if on_gpu else 'host'} memory; {infer / FPS:.1f} streams at"
        f" {FPS:.0f} fps)"
    )
    print(
        f"end to end (decode on {decoder} -> detect -> track -> rules -> events,"
        f" {args.processes} process{'es' * (args.processes > 1)}):",
        file=sys.stderr,
    )
    # A trial: its warm-up and window, its evidence wait, the start of its workers.
    expected_s = min(5.0, args.seconds / 2) + args.seconds + args.evidence_wait_s + 10.0
    found = search(
        guarded(run, args.seconds), args.max_streams, args.start_streams, args.within,
        deadline=None if args.deadline_s is None else began + args.deadline_s,
        expected_s=expected_s + (20.0 if args.processes > 1 else 0.0),
    )  # fmt: skip
    # The peer is the ceiling of the decoder the cameras used end to end.
    ceiling, of = (
        (max(nvdec_ceilings), "NVDEC") if decoder == "nvdec" and nvdec_ceilings else (decode, "")
    )
    print(end_to_end_line(found, decoder, args.processes, ceiling, of))
    return 0


def end_to_end_line(found: Search, decoder: str, processes: int, ceiling: float, of: str) -> str:
    """The bench's last line: the largest count that kept up and the widest trial's total
    against the decode ceiling, or why there is none; where the search was cut short,
    why (the count is then a lower bound)."""
    workers = f"{processes} worker process{'es' * (processes > 1)}"
    cut = f"; search ended early: {found.stopped}" if found.stopped else ""
    measured = [t for t in found.trials if not t.failure]
    if not measured:
        return f"end to end:         not measured, decoded by {decoder}, {workers}{cut}"
    widest = max(measured, key=lambda t: t.total_fps)
    streams = found.best.streams if found.best else 0
    fell = min(
        (t.streams for t in found.trials if not t.keeps_up and t.streams > streams), default=0
    )
    at_least = "at least " if found.stopped and found.best else ""
    return (
        f"end to end:         {at_least}{streams} streams at {FPS:.0f} fps"
        f"{f' ({fell} fell behind)' if fell else ''}, decoded by {decoder}, {workers}"
        f" (largest total {widest.total_fps:.1f} frames/s at {widest.streams} streams;"
        f" ratio to the {of + ' ' if of else ''}decode ceiling {widest.total_fps / ceiling:.2f})"
        f"{cut}"
    )


def _workers_against_one_process(
    run: Callable[[int], Trial], peer_run: Callable[[int], Trial], streams: int, processes: int
) -> int:
    """One trial at ``streams`` through ``processes`` workers, and its peer in one process."""
    ours = run(streams)
    peer = peer_run(streams) if processes > 1 and ours.ended else ours
    for label, t in ((f"{processes} worker processes", ours), ("one process", peer)):
        failed = f" (failed: {t.failure})" if t.failure else ""
        print(
            f"{streams} streams, {label + ':':22s} {t.total_fps:7.1f} frames/s in all, slowest"
            f" camera {t.slowest_fps:5.1f} fps, {t.violations} violations{failed}"
        )
    if processes > 1 and peer.total_fps > 0 and not ours.failure:
        print(f"ratio, workers to one process: {ours.total_fps / peer.total_fps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
