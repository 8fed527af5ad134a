"""The live pipeline's batches: cameras' newest frames under the scheduler's bounds."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.config import parse_site_config
from edge.detections import Detections
from edge.detector import FrameDetections
from edge.pipeline import DetectorPool, LivePipeline
from tests.edge_support import hanoi_clip, shared_detector


class Camera:
    """A capture that yields a small frame every ``period_s`` (forever, or ``count``);
    a silent one reads nothing it can decode (every 50 ms)."""

    def __init__(
        self,
        period_s: float,
        count: int | None = None,
        silent: bool = False,
        shape: tuple[int, int, int] = (24, 32, 3),
    ) -> None:
        self.period_s, self.count, self.silent, self.read_n = period_s, count, silent, 0
        self.shape = shape
        self.released = threading.Event()

    def read(self) -> tuple[bool, Any]:
        if self.count is not None and self.read_n >= self.count:
            return False, None
        self.released.wait(self.period_s)
        if self.silent:
            return True, None
        self.read_n += 1
        return True, np.full(self.shape, self.read_n % 256, np.uint8)

    def release(self) -> None:
        self.released.set()

    @property
    def fps(self) -> float:
        return 0.0


def SILENT() -> Camera:  # noqa: N802 (reads like the camera kind it makes)
    return Camera(0.05, silent=True)


class BatchRecorder:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.riders_merged = 0

    def detect_for_tracking(self, frames: list[Any]) -> list[FrameDetections]:
        self.batches.append(len(frames))
        return [FrameDetections(Detections.empty(), Detections.empty()) for _ in frames]


def run_until(pipe: LivePipeline, frames: int) -> list[Any]:
    stop = threading.Event()
    seen: list[Any] = []
    runner = threading.Thread(target=pipe.run, args=(stop, [seen.append]))
    runner.start()
    deadline = time.monotonic() + 20
    while len(seen) < frames and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join(15)
    assert not runner.is_alive()
    return seen


def build(
    tmp_path: Path, cams: dict[str, Camera], max_batch: int, wait_ms: float, detector: Any = None
) -> tuple[LivePipeline, Any]:
    # Each camera has a file of its own (a link to the clip) for its reader to open; the
    # captures above stand in for what a decoder would read from it.
    urls = {}
    for cam in cams:
        urls[cam] = tmp_path / f"{cam}.mp4"
        urls[cam].symlink_to(hanoi_clip())
    config = parse_site_config(
        {
            "site": "s1", "node": "n1",
            "detector": {"max_batch": max_batch, "batch_wait_ms": wait_ms},
            "cameras": [{"id": cam, "url": str(urls[cam]), "loop": True} for cam in cams],
        }
    )  # fmt: skip
    recorder = detector or BatchRecorder()
    pipe = LivePipeline(
        config,
        DetectorPool(load=lambda _cfg: recorder),  # type: ignore[arg-type, return-value]
        opener=lambda url, stall_s, packets: cams[Path(url).stem],
    )
    return pipe, recorder


def test_cameras_at_the_same_rate_share_full_batches(tmp_path: Path) -> None:
    cams = {f"cam{i}": Camera(0.02) for i in range(3)}
    pipe, recorder = build(tmp_path, cams, max_batch=3, wait_ms=1000)
    seen = run_until(pipe, 30)
    # A batch leaves when all three cameras have a frame waiting, long before the bound.
    full = [b for b in recorder.batches[:-1] if b == 3]
    assert len(full) >= 8 and max(recorder.batches) == 3
    assert {item.frame.camera for item in seen} == set(cams)


def test_a_lone_camera_is_served_at_the_latency_bound(tmp_path: Path) -> None:
    # Two cameras never deliver: the third's frames go alone, once they have waited.
    cams = {"cam0": Camera(0.01), "cam1": SILENT(), "cam2": SILENT()}
    pipe, recorder = build(tmp_path, cams, max_batch=3, wait_ms=30)
    seen = run_until(pipe, 5)
    assert len(seen) >= 5 and set(recorder.batches) == {1}
    assert {item.frame.camera for item in seen} == {"cam0"}


def test_a_frame_replaced_while_waiting_counts_as_dropped(tmp_path: Path) -> None:
    # One camera, a bound far longer than its frame period, a batch it cannot fill alone:
    # each frame waits the bound, and the newer ones replace it meanwhile.
    cams = {"cam0": Camera(0.005), "cam1": SILENT()}
    pipe, _ = build(tmp_path, cams, max_batch=2, wait_ms=200)
    seen = run_until(pipe, 2)
    assert seen and pipe.scheduler.dropped["cam0"] > 0
    health = {h.camera: h for h in pipe.health()}
    assert health["cam0"].frames_dropped >= pipe.scheduler.dropped["cam0"]


def test_a_frame_the_detector_cannot_take_is_corrupt_and_the_run_goes_on(tmp_path: Path) -> None:
    """A camera sending frames one pixel high (cv2.resize failed on them, and with it the
    whole loop): its frames count as corrupt, and the other camera in its batches is
    still tracked."""
    cams = {"good": Camera(0.02, shape=(48, 64, 3)), "thin": Camera(0.02, shape=(1, 2000, 3))}
    pipe, _ = build(tmp_path, cams, max_batch=2, wait_ms=50, detector=shared_detector())
    seen = run_until(pipe, 5)
    assert len(seen) >= 5 and {item.frame.camera for item in seen} == {"good"}
    health = {h.camera: h for h in pipe.health()}
    assert health["thin"].frames_corrupt >= pipe.refused["thin"] > 0
    assert health["good"].frames_corrupt == 0
    assert pipe.summary.corrupt == pipe.refused["thin"]


def test_a_file_frame_the_detector_cannot_take_is_skipped_as_corrupt(tmp_path: Path) -> None:
    from edge.detector import FrameError
    from edge.pipeline import process_file

    video = _six_frames(tmp_path)

    class EveryOtherRefused:
        riders_merged, calls = 0, 0

        def detect_for_tracking(self, frames: list[Any]) -> list[FrameDetections]:
            self.calls += 1
            if self.calls % 2 == 0:
                raise FrameError({0: "greyscale, shape (48, 64)"})
            return [FrameDetections(Detections.empty(), Detections.empty()) for _ in frames]

    config = parse_site_config(
        {"site": "s1", "node": "n1", "cameras": [{"id": "cam", "url": str(video)}]}
    )
    seen: list[Any] = []
    pool = DetectorPool(load=lambda _cfg: EveryOtherRefused())  # type: ignore[arg-type, return-value]
    summary = process_file(video, config, [seen.append], detectors=pool)
    assert (summary.frames, summary.corrupt, len(seen)) == (3, 3, 3)


def test_a_file_s_low_boxes_reach_the_tracker(tmp_path: Path) -> None:
    """A car confident on the first frames, then only low: its track goes on with it."""
    from edge.pipeline import process_file

    video = _six_frames(tmp_path)
    car = Detections(np.array([[10, 10, 40, 30]], np.float32), np.array([0.9]), np.array([0]))
    unsure = Detections(car.xyxy, np.array([0.15], np.float32), car.class_id)

    class FadingCar:
        riders_merged, calls = 0, 0

        def detect_for_tracking(self, frames: list[Any]) -> list[FrameDetections]:
            self.calls += 1
            sure = self.calls <= 3
            return [FrameDetections(car if sure else Detections.empty(), unsure) for _ in frames]

    config = parse_site_config(
        {"site": "s1", "node": "n1", "cameras": [{"id": "cam", "url": str(video)}]}
    )
    seen: list[Any] = []
    pool = DetectorPool(load=lambda _cfg: FadingCar())  # type: ignore[arg-type, return-value]
    process_file(video, config, [seen.append], detectors=pool)
    assert [item.tracks.tracker_id.tolist() for item in seen] == [[1]] * 6


def _six_frames(tmp_path: Path) -> Path:
    import cv2

    video = tmp_path / "six.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return video


def test_frames_left_when_the_files_end_are_processed(tmp_path: Path) -> None:
    count = 7
    cams = {"cam0": Camera(0.001, count=count)}
    pipe, _ = build(tmp_path, cams, max_batch=8, wait_ms=1000)
    pipe.readers["cam0"].loop = False
    stop = threading.Event()
    seen: list[Any] = []
    pipe.run(stop, [seen.append])  # returns once the only source has ended
    assert seen and seen[-1].frame.index == count - 1


def test_cameras_are_reported_stalled_while_the_pipeline_is_stuck(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A sink (or the detector) that never returns: the camera still streams, yet nothing
    is seen; the status says so once the loop has not come round for PIPELINE_STALL_S."""
    from roadwatch.contract import CameraState

    monkeypatch.setattr("edge.pipeline.PIPELINE_STALL_S", 0.3)
    pipe, _ = build(tmp_path, {"cam0": Camera(0.01)}, max_batch=1, wait_ms=10)
    stuck, stop = threading.Event(), threading.Event()
    seen: list[Any] = []

    def sink(item: Any) -> None:  # (stuck from the third frame on)
        seen.append(item)
        if len(seen) >= 3:
            stuck.wait(20)

    runner = threading.Thread(target=pipe.run, args=(stop, [sink]))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            [health] = pipe.health()
            if health.state is CameraState.STALLED:
                break
            time.sleep(0.05)
        assert health.state is CameraState.STALLED
        assert health.reason.endswith("the pipeline is stuck"), health.reason
    finally:
        stop.set()
        stuck.set()
        runner.join(15)
    assert not runner.is_alive()
    assert pipe.health()[0].state is not CameraState.STALLED  # (the run is over)


def test_loading_the_detector_is_not_a_stuck_pipeline(tmp_path: Path, monkeypatch: Any) -> None:
    """The first turn loads the detector (a TensorRT engine may take minutes to build):
    the cameras are not reported stalled meanwhile."""
    from roadwatch.contract import CameraState

    monkeypatch.setattr("edge.pipeline.PIPELINE_STALL_S", 0.2)
    pipe, recorder = build(tmp_path, {"cam0": Camera(0.01)}, max_batch=1, wait_ms=10)
    loaded = threading.Event()

    def slow_load(_cfg: Any) -> Any:
        loaded.wait(1.0)
        return recorder

    pipe.detectors = DetectorPool(load=slow_load)
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop, [lambda _item: None]))
    runner.start()
    try:
        states = []
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            states.append(pipe.health()[0].state)
            time.sleep(0.05)
        assert CameraState.STALLED not in states, states
    finally:
        loaded.set()
        stop.set()
        runner.join(15)
    assert not runner.is_alive()


def test_a_pipeline_stuck_for_long_is_told_once(tmp_path: Path, monkeypatch: Any) -> None:
    """Stuck past PIPELINE_HUNG_S (a sink or the detector never returns): ``on_hung`` is
    told once, with how long; a run that comes round, or has ended, is never told."""
    monkeypatch.setattr("edge.pipeline.PIPELINE_HUNG_S", 0.4)
    pipe, _ = build(tmp_path, {"cam0": Camera(0.01)}, max_batch=1, wait_ms=10)
    stuck, stop = threading.Event(), threading.Event()
    seen: list[Any] = []
    told: list[float] = []

    def sink(item: Any) -> None:  # (stuck from the fifth frame on)
        seen.append(item)
        if len(seen) >= 5:
            stuck.wait(20)

    runner = threading.Thread(target=pipe.run, args=(stop, [sink]), kwargs={"on_hung": told.append})
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not told and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # (no second call)
    finally:
        stop.set()
        stuck.set()
        runner.join(15)
    assert not runner.is_alive()
    assert len(told) == 1 and told[0] > 0.4, told
    assert not [t for t in threading.enumerate() if t.name == "pipeline-hung-watch"]

    steady: list[float] = []
    (tmp_path / "steady").mkdir()
    pipe, _ = build(tmp_path / "steady", {"cam0": Camera(0.01)}, max_batch=1, wait_ms=10)
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop, [lambda _i: None]),
                              kwargs={"on_hung": steady.append})  # fmt: skip
    runner.start()
    time.sleep(1.2)
    stop.set()
    runner.join(15)
    assert steady == []


def test_a_stuck_pipeline_ends_its_process_for_it_to_be_started_again(tmp_path: Path) -> None:
    """The node's ``on_hung``: the process ends at once with HUNG_EXIT_CODE, saying why,
    though the stuck thread never returns."""
    import subprocess
    import sys

    from edge.pipeline import HUNG_EXIT_CODE
    from tests.delivery_support import subprocess_env

    script = (
        "import logging, sys, threading\n"
        "from pathlib import Path\n"
        "import edge.pipeline\n"
        "from edge.node import EdgeNode\n"
        "from tests.unit.test_edge_pipeline_batching import Camera, build\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "edge.pipeline.PIPELINE_HUNG_S = 0.5\n"
        "pipe, _ = build(Path(sys.argv[1]), {'cam0': Camera(0.01)}, max_batch=1, wait_ms=10)\n"
        "on_hung = EdgeNode.__dataclass_fields__['on_hung'].default\n"
        "seen = []\n"
        "def sink(item):\n"
        "    seen.append(item)\n"
        "    if len(seen) >= 3:\n"
        "        threading.Event().wait()\n"
        "pipe.run(threading.Event(), [sink], on_hung=on_hung)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=subprocess_env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == HUNG_EXIT_CODE, done.stderr[-2000:]
    assert "the pipeline has not come round for" in done.stderr, done.stderr[-2000:]
    assert f"ending the process (exit {HUNG_EXIT_CODE})" in done.stderr


def test_a_nodes_live_run_ends_its_process_when_stuck(tmp_path: Path, monkeypatch: Any) -> None:
    """The node runs its pipeline with its ``on_hung`` (by default, ending the process)."""
    from edge.node import EdgeNode

    monkeypatch.setattr("edge.pipeline.PIPELINE_HUNG_S", 0.4)
    pipe, _ = build(tmp_path, {"cam0": Camera(0.01)}, max_batch=1, wait_ms=10)
    node = EdgeNode(pipe.config, {}, None)
    told: list[float] = []
    stop, released = threading.Event(), threading.Event()
    seen: list[Any] = []

    def sink(item: Any) -> None:
        seen.append(item)
        if len(seen) >= 3 and not told:
            released.wait(20)

    def hung(stuck_s: float) -> None:
        told.append(stuck_s)
        stop.set()
        released.set()

    node.on_hung = hung
    node.run_live(stop, pipeline=pipe, sinks=[sink])
    assert len(told) == 1 and told[0] > 0.4


def test_a_live_runs_end_waits_for_evidence_as_long_as_it_is_told(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The node's own stop waits up to 300 s for the evidence still being built; a run told
    less (the density bench's trials) waits that long."""
    from edge.enforcement import EVIDENCE_WAIT_S
    from edge.node import EdgeNode

    waits: list[float] = []
    for told in (2.5, None):
        folder = tmp_path / f"run{len(waits)}"
        folder.mkdir()
        pipe, _ = build(folder, {"cam0": Camera(0.01)}, max_batch=1, wait_ms=10)
        node = EdgeNode(pipe.config, {}, None)
        monkeypatch.setattr(node, "finish", lambda wait_s=-1.0: waits.append(wait_s))
        stop = threading.Event()
        stop.set()
        if told is None:
            node.run_live(stop, pipeline=pipe)
        else:
            node.run_live(stop, pipeline=pipe, evidence_wait_s=told)
    assert waits == [2.5, EVIDENCE_WAIT_S] and EVIDENCE_WAIT_S == 300.0


def test_the_health_summary_warns_only_of_cameras_that_are_not_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each camera's health every health_every_s: one that is up at INFO (shown with -v),
    one that is not at WARNING. A healthy camera's line read as an alarm."""
    import logging

    cams = {"steady": Camera(0.01), "silent": SILENT()}
    pipe, _ = build(tmp_path, cams, max_batch=1, wait_ms=10)
    caplog.set_level(logging.INFO, logger="edge.pipeline")
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop, []), kwargs={"health_every_s": 0.05})
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            "camera steady: up fps" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    levels = {
        r.getMessage().split(":")[0]: r.levelno
        for r in caplog.records
        if " fps " in r.getMessage() and " dropped " in r.getMessage()
    }
    assert levels["camera steady"] == logging.INFO and levels["camera silent"] == logging.WARNING


def test_the_health_summary_says_the_reconnect_attempts_of_a_camera_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera down: "reconnects 0" (successful ones; a camera refused has none) alone
    read as a node that was not retrying; the line says the attempts made."""
    import logging
    import re

    # (a camera that gives no frame at all: dropped, and opened again after its back-off)
    pipe, _ = build(tmp_path, {"gone": Camera(0.01, count=0)}, max_batch=1, wait_ms=10)
    caplog.set_level(logging.WARNING, logger="edge.pipeline")
    line = re.compile(
        r"^camera gone: down fps 0\.0 dropped 0 corrupt 0 reconnects \d+ \((\d+) attempts\)$"
    )

    def attempts() -> int:
        found = [int(m.group(1)) for r in caplog.records if (m := line.match(r.getMessage()))]
        return max(found, default=0)

    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop, []), kwargs={"health_every_s": 0.05})
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and attempts() < 2:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    assert attempts() >= 2, [r.getMessage() for r in caplog.records]


def test_the_health_carries_each_cameras_inference_latency(tmp_path: Path) -> None:
    """The status's inference_latency_ms was never filled: a node's health said nothing
    of how long its frames wait for their detections. A camera that never sent a frame
    has none."""
    cams = {"cam0": Camera(0.01), "cam1": SILENT()}
    pipe, _ = build(tmp_path, cams, max_batch=2, wait_ms=30)
    assert run_until(pipe, 5)
    health = {h.camera: h for h in pipe.health()}
    latency = health["cam0"].inference_latency_ms
    assert latency is not None and latency > 0
    assert health["cam1"].inference_latency_ms is None
