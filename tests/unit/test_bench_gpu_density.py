"""The stream-density bench's own checks and peers, run without a GPU (stand-ins for
PyNvVideoCodec and CuPy where the GPU path is measured)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge import nvdec
from edge.config import parse_site_config
from edge.detections import Detections, ObjectClass
from edge.detector import FrameDetections
from edge.nvdec import NvdecCapture
from tests.bench_support import load_bench
from tests.edge_support import hanoi_clip, require_model
from tests.nvdec_standin import FAKE_XP, StreamDecoder, StreamNvc


@pytest.fixture(scope="module")
def density() -> ModuleType:
    return load_bench("gpu_density")


class RecordingNvc(StreamNvc):
    """The stand-in, recording how each decoder was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.decoders: list[dict[str, Any]] = []

    def CreateDecoder(self, **kwargs: Any) -> StreamDecoder:  # noqa: N802
        self.decoders.append(kwargs)
        return super().CreateDecoder(**kwargs)


def test_the_nvdec_ceiling_decodes_as_the_camera_readers_do(
    density: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ceiling's decoders are made as a camera's capture makes its own (RGB, low
    latency) and each picture is copied into a BGR array of its own, as a camera's is: a
    ceiling of NV12 pictures left in the decoder's surface would flatter the ratio."""
    copies = [0]

    def copy(array: Any) -> Any:
        copies[0] += 1
        return FAKE_XP.ascontiguousarray(array)

    xp = SimpleNamespace(from_dlpack=FAKE_XP.from_dlpack, ascontiguousarray=copy)
    ceiling, camera = RecordingNvc(), RecordingNvc()
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", ceiling)
    monkeypatch.setattr(nvdec, "load_cupy", lambda gpu: xp)
    rate = density.nvdec_ceiling(hanoi_clip(), 2, 1.0)
    assert rate > 0 and copies[0] > 0
    cap = NvdecCapture(str(hanoi_clip()), nvc=camera, xp=FAKE_XP)
    cap.release()
    assert ceiling.decoders and all(d == camera.decoders[0] for d in ceiling.decoders)


def _trial(density: ModuleType, n: int, fps: float = 30.0, **extra: Any) -> Any:
    return density.Trial(n, 10.0, {f"cam-{i}": round(fps * 10) for i in range(n)}, 0, **extra)


def test_the_search_ends_at_its_deadline_with_the_best_count_so_far(density: ModuleType) -> None:
    """No trial starts that would end after the deadline (each taken to last as long as the
    longest yet): the best count so far is the figure, said to be a lower bound."""
    now = [0.0]

    def run(n: int) -> Any:
        now[0] += 100.0  # every trial takes 100 s; all keep up
        return _trial(density, n)

    found = density.search(run, 256, 8, 1, deadline=450.0, expected_s=60.0, clock=lambda: now[0])
    assert [t.streams for t in found.trials] == [8, 16, 32, 64]  # a fifth would end at 500
    assert found.best.streams == 64 and "--deadline-s" in found.stopped
    line = density.end_to_end_line(found, "nvdec", 6, 3000.0, "NVDEC")
    assert line.startswith("end to end:         at least 64 streams at 30 fps")
    assert "search ended early: --deadline-s" in line
    none = density.search(
        run, 256, 8, 1, deadline=now[0] + 10, expected_s=60.0, clock=lambda: now[0]
    )
    assert none.trials == [] and none.best is None
    assert "not measured" in density.end_to_end_line(none, "nvdec", 6, 3000.0, "NVDEC")

    def slow(n: int) -> Any:
        now[0] += 100.0
        return _trial(density, n, fps=20.0)  # none keeps up

    behind = density.search(
        slow, 256, 8, 1, deadline=now[0] + 150.0, expected_s=100.0, clock=lambda: now[0]
    )
    line = density.end_to_end_line(behind, "nvdec", 6, 3000.0, "NVDEC")
    assert [t.streams for t in behind.trials] == [8] and behind.stopped
    assert line.startswith("end to end:         0 streams at 30 fps (8 fell behind)")


def test_a_trial_that_fails_is_recorded_and_one_that_does_not_end_stops_the_search(
    density: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(n: int) -> Any:
        if n == 32:
            raise RuntimeError("worker 2 (cameras cam-0003): NVDEC session limit\nmore")
        if n == 24:
            raise density.TrialStuckError("the trial's run did not end within 65 s")
        return _trial(density, n)

    found = density.search(density.guarded(run, 10.0), 256, 16, 1)
    assert [(t.streams, t.failure[:12]) for t in found.trials] == [
        (16, ""), (32, "RuntimeError"), (24, "the trial's ")
    ]  # fmt: skip
    assert found.best.streams == 16 and "at 24 streams did not end" in found.stopped
    assert "failed: RuntimeError: worker 2 (cameras cam-0003): NVDEC session limit" in (
        capsys.readouterr().err
    )
    line = density.end_to_end_line(found, "nvdec", 6, 3000.0, "NVDEC")
    assert line.startswith("end to end:         at least 16 streams at 30 fps (24 fell behind)")


class FakeWorkers:
    def progress(self) -> list[tuple[float, dict[str, int]]]:
        return [(1.0, {"cam-0001": 30})]  # one camera of two ever reported


class FakeNode:
    """A node whose worker reports only one of its two cameras."""

    def __init__(self) -> None:
        self.workers = FakeWorkers()
        self.violations = 0
        self.stopped_after: float | None = None
        camera = {"id": "cam-01", "url": "rtsp://cam-01/stream"}
        self.config = parse_site_config({"site": "s", "node": "n", "cameras": [camera]})

    def run_live(self, stop: Any, evidence_wait_s: float) -> None:
        stop.wait(30)
        self.evidence_wait_s = evidence_wait_s


def test_a_worker_trial_whose_cameras_are_not_all_reported_fails_within_its_start_wait(
    density: ModuleType,
) -> None:
    node = FakeNode()
    started = time.monotonic()
    t = density._workers_trial(node, 2, 8.0, evidence_wait_s=3.0, start_wait_s=1.0)
    assert time.monotonic() - started < 10
    assert t.failure == "1 of 2 cameras reported within 1 s of the start" and not t.keeps_up
    assert node.evidence_wait_s == 3.0  # the trial's run waits that long for evidence


def _detector(providers: list[str], xp: Any = None) -> Any:
    backend = SimpleNamespace(xp=xp) if xp is not None else None
    return SimpleNamespace(providers=providers, backend=backend)


@pytest.mark.parametrize(
    ("asked", "running", "xp", "decoder", "refused"),
    [
        ("CUDA,CPU", "CPU", None, "opencv", "the GPU provider did not load: asked CUDA"),
        ("TensorRT,CUDA,CPU", "CPU", None, "nvdec", "the GPU provider did not load"),
        ("CUDA,CPU", "CUDA", "cupy", "nvdec", None),
        ("CUDA,CPU", "CUDA", None, "nvdec", "device pipeline is not on the GPU"),
        ("CUDA,CPU", "CUDA", np, "nvdec", "device pipeline is not on the GPU"),
        ("CUDA,CPU", "CUDA", None, "opencv", None),  # host frames: host pre-processing
        ("CPU", "CPU", None, "opencv", None),
    ],
)  # fmt: skip
def test_what_keeps_a_run_from_measuring_the_gpu(
    density: ModuleType, asked: str, running: str, xp: Any, decoder: str, refused: str | None
) -> None:
    name = {"CUDA": "CUDAExecutionProvider", "CPU": "CPUExecutionProvider",
            "TensorRT": "TensorrtExecutionProvider"}  # fmt: skip
    providers = [name[p] for p in asked.split(",")]
    detector = _detector([name[running]], "a CuPy module" if xp == "cupy" else xp)
    why = density.gpu_refusal(providers, detector, decoder)
    assert (why is None) if refused is None else (why is not None and refused in why)


def test_the_bench_stops_when_the_gpu_provider_did_not_load(
    density: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On this machine onnxruntime has no CUDA provider: the detector runs on the CPU, and
    the bench says so and measures nothing (exit 2) rather than a CPU figure for a GPU's."""
    require_model("yolov8n-coco-dynamic")

    def measured(*args: Any) -> Any:
        raise AssertionError("the bench went on to measure on the CPU")

    monkeypatch.setattr(density, "prepare", measured)
    argv = ["gpu_density.py", "--providers", "CUDAExecutionProvider,CPUExecutionProvider"]
    monkeypatch.setattr(sys, "argv", argv)
    assert density.main() == 2
    err = capsys.readouterr().err
    assert "gpu_density: the GPU provider did not load: asked CUDAExecutionProvider, the" in err
    assert "runs on CPUExecutionProvider" in err and "--no-require-gpu" in err


class DeferringCamera:
    build_pool: Any = None


class CaseAtTheEnd:
    """A node whose last case waits for after-frames that never come: ``finish`` hands it
    to the camera's build pool and waits for it, as the node's own does."""

    def __init__(self) -> None:
        self.enforcement = {"cam-0001": DeferringCamera()}
        self.built: list[str] = []

    def on_tracked(self, item: Any) -> None:
        pass

    def finish(self, wait_s: float = 300.0) -> None:
        from concurrent.futures import wait

        pool = self.enforcement["cam-0001"].build_pool
        done, _ = wait([pool.submit(self.built.append, "case")], timeout=wait_s)
        assert done, f"the last case was not built within {wait_s} s"


def test_the_host_timing_builds_the_cases_its_end_hands_over(density: ModuleType) -> None:
    """The timing's deferred pool runs what ``finish`` submits at once: it waited the whole
    300 s evidence wait for a case nothing would build (5 minutes of a GPU lease)."""
    node = CaseAtTheEnd()
    started = time.monotonic()
    node_finish = node.finish
    node.finish = lambda wait_s=300.0: node_finish(min(wait_s, 5.0))  # type: ignore[method-assign]
    density._timed_enforcement(node, [])
    assert node.built == ["case"] and time.monotonic() - started < 2.0


class TrackingFeed:
    """A detector stand-in that tells which of its calls was made: each frame's one car,
    confident on the first frames and a low box after them (where the node's tracker still
    continues its track)."""

    backend = None

    def __init__(self, sure_frames: int) -> None:
        from edge.detector import DetectorConfig

        self.config = DetectorConfig(max_batch=4)
        self.sure_frames = sure_frames
        self.frames = 0
        self.calls: Counter[str] = Counter()

    def detect_for_tracking(self, frames: Sequence[Any]) -> list[FrameDetections]:
        self.calls["detect_for_tracking"] += 1
        return [self._frame() for _ in frames]

    def detect(self, frames: Sequence[Any]) -> list[Detections]:
        self.calls["detect"] += 1
        return [self._frame().confident for _ in frames]

    def _frame(self) -> FrameDetections:
        i, self.frames = self.frames, self.frames + 1
        car = Detections(
            np.array([[100.0 + 4 * i, 500.0, 300.0 + 4 * i, 640.0]], np.float32),
            np.array([0.9 if i < self.sure_frames else 0.15], np.float32),
            np.array([ObjectClass.CAR.value]),
        )
        if i < self.sure_frames:
            return FrameDetections(car, Detections.empty())
        return FrameDetections(Detections.empty(), car)


def _clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A short H.264 clip of the bench's size (as the bench's own, 30 fps)."""
    import subprocess

    import imageio_ffmpeg

    picture = np.random.default_rng(3).integers(0, 256, (height, width, 3), np.uint8)
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo",
         "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", "30", "-i", "-", "-an",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        input=b"".join(np.roll(picture, 8 * i, axis=1).tobytes() for i in range(frames)),
        check=True, timeout=60,
    )  # fmt: skip
    return path


def test_the_inference_ceiling_times_the_detection_the_node_runs(density: ModuleType) -> None:
    """The node's pipeline detects with the low boxes beside the confident ones (a second,
    lower candidate search and NMS): the ceiling timed the confident boxes alone."""
    feed = TrackingFeed(sure_frames=0)
    assert density.inference_ceiling(feed, hanoi_clip(), 0.2) > 0
    assert feed.calls["detect_for_tracking"] >= 2 and feed.calls["detect"] == 0


def test_the_host_timing_tracks_the_low_boxes_as_the_node_does(
    density: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking timed on the pipeline thread is the node's: a car seen confidently on
    its first frames and by low boxes after them keeps its track on every frame. The host
    timing tracked the confident boxes alone, so its tracker saw no low box at all."""
    from calibration.speed_eval import surveyed_calibration
    from calibration.store import save_calibration
    from edge.tracking import Tracker
    from roadwatch.demo.scene import scene_document

    camera = density.density_camera()
    calibration = tmp_path / "cam.calib.yaml"
    save_calibration(
        surveyed_calibration(camera, 7, datetime.now(UTC), camera_id="cam-0001"), calibration
    )
    tracked: list[Detections] = []
    update = Tracker.update

    def recorded(self: Tracker, *args: Any, **kwargs: Any) -> Detections:
        out = update(self, *args, **kwargs)
        tracked.append(out)
        return out

    monkeypatch.setattr(Tracker, "update", recorded)
    feed = TrackingFeed(sure_frames=4)
    costs = density.host_costs(
        _clip(tmp_path / "road.mp4", camera.width, camera.height, 12),
        scene_document(camera), calibration, tmp_path, feed, frames=12,
    )  # fmt: skip
    assert costs.tracking_ms > 0 and len(tracked) == 12
    ids = [t.tracker_id.tolist() if t.tracker_id is not None else [] for t in tracked]
    assert ids[1:] == [[ids[1][0]]] * 11  # confirmed on its second frame, then kept


def test_a_ceilings_window_opens_once_every_thread_has_counted(density: ModuleType) -> None:
    """Threads that take longer than the warm-up to open (a busy machine) are waited for:
    the window counts their frames, not their opening."""
    import threading

    stop = threading.Event()
    counts = [0, 0]

    def work(i: int) -> None:
        if stop.wait(0.3 * (i + 1)):  # (opening)
            return
        while not stop.is_set():
            counts[i] += 1
            time.sleep(0.001)

    rate = density._threads_rate(work, counts, stop, 0.2, warm_up_s=0.0)
    assert rate > 0 and min(counts) > 0
