"""A whole edge node on a generated, calibrated scene with known violations: the real
detector, tracker, calibration, speed, rules and evidence, as `edge run` runs a file."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calibration.scene_render import load_assets, write_scene
from calibration.scenes import LANES, Effects, SceneSpec, VehiclePath
from calibration.store import save_calibration
from edge.config import SiteConfig, parse_site_config
from edge.evidence.packets import PacketRing
from edge.node import EdgeNode
from edge.nvdec import NvdecSessions
from edge.pipeline import DetectorPool, LivePipeline, RunSummary, TrackedFrame
from roadwatch.contract import EvidenceRole, ViolationEvent, ViolationType, parse_payload
from roadwatch.demo.scene import CAMERA_ID, demo_camera, surveyed_calibration, write_scene_file
from tests.edge_support import shared_detector
from tests.nvdec_standin import FAKE_XP, GpuArray, StreamNvc
from tests.services import SHARED_DATA, require_shared_file

# (serial: live nodes are paced at the scene's frame rate and must keep up)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

SPEEDER_KMH = 100.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared_file("kraten_cars.mp4")
    folder = tmp_path_factory.mktemp("scene")
    spec = SceneSpec(
        name="enforcement",
        seed=11,
        camera=demo_camera(),
        fps=10.0,
        frames=60,
        vehicles=(
            VehiclePath(1, 2, (LANES[1], 13.0), (0.0, SPEEDER_KMH), 0.0),
            VehiclePath(2, 5, (LANES[0], 14.0), (0.0, 45.0), 0.0),  # within the limit
            VehiclePath(3, 1, (LANES[2], 60.0), (0.0, -40.0), 0.5),  # against the traffic
        ),
        effects=Effects(noise_sigma=2.0, crf=23),
    )
    write_scene(spec, load_assets(SHARED_DATA), folder)
    write_scene_file(folder / "scene.yaml", spec.camera)
    save_calibration(
        surveyed_calibration(spec.camera, 3, datetime.now(UTC)), folder / "cam.calib.yaml"
    )
    return folder


def site(scene: Path) -> SiteConfig:
    return parse_site_config(
        {
            "site": "test",
            "node": "node-01",
            "cameras": [
                {"id": CAMERA_ID, "url": str(scene / "enforcement.mp4"),
                 "scene": str(scene / "scene.yaml"),
                 "calibration": str(scene / "cam.calib.yaml"), "place": "QL13 Km 22+300"},
            ],
            "plates": False,
        }
    )  # fmt: skip


def test_a_node_finds_the_known_violations_with_checkable_evidence(scene: Path) -> None:
    config = site(scene)
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic", violations_out=out)
    pool = DetectorPool(load=lambda _cfg: shared_detector())
    node.run_file(scene / "enforcement.mp4", detectors=pool)

    events = [parse_payload(ViolationEvent, line) for line in out.getvalue().splitlines()]
    by_type = {e.type: e for e in events}
    assert set(by_type) == {ViolationType.SPEEDING, ViolationType.WRONG_WAY}, [
        (e.type, e.lane, e.explanation) for e in events
    ]
    assert len(events) == 2, "each violating vehicle is reported once"
    speeding = by_type[ViolationType.SPEEDING]
    assert speeding.lane == "lane-2"
    assert speeding.measured.speed_kmh == pytest.approx(SPEEDER_KMH, abs=5.0)
    assert speeding.measured.speed_limit_kmh == 60.0
    assert by_type[ViolationType.WRONG_WAY].lane == "lane-3"
    for event in events:
        roles = {e.role for e in event.evidence}
        assert {EvidenceRole.FRAME_BEFORE, EvidenceRole.FRAME_AT, EvidenceRole.FRAME_AFTER,
                EvidenceRole.VEHICLE_CROP, EvidenceRole.CLIP} <= roles  # fmt: skip
        assert event.signature is not None
        assert event.place == "QL13 Km 22+300"
        assert event.explanation
    assert node.counters.traffic_minutes >= 1
    assert json.loads(out.getvalue().splitlines()[0])["site"] == "test"


class CountingXp:
    """The CuPy stand-in, keeping every "GPU" frame it made so their copies can be counted."""

    def __init__(self) -> None:
        self.made: list[GpuArray] = []
        self.from_dlpack = FAKE_XP.from_dlpack

    def ascontiguousarray(self, array: Any) -> GpuArray:
        made = GpuArray(np.ascontiguousarray(array))
        self.made.append(made)
        return made


class OnTheGpu:
    """The CPU detector reading the "GPU" frames where they are, as the device pipeline
    reads CuPy arrays on a GPU (so only the node's own copies to the host are counted)."""

    riders_merged = 0

    def detect_for_tracking(self, frames: list[Any]) -> Any:
        return shared_detector().detect_for_tracking(
            [f.on_gpu if isinstance(f, GpuArray) else f for f in frames]
        )


def test_on_the_gpu_path_evidence_comes_from_the_kept_stream(scene: Path) -> None:
    """The same scene live through NVDEC (a stand-in playing the clip's real packets): the
    rings keep the stream, the evidence is rebuilt from it, frames stay on the "GPU"."""
    config = site(scene)
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic", violations_out=out)
    xp = CountingXp()
    pipeline = LivePipeline(
        config,
        DetectorPool(load=lambda _cfg: OnTheGpu()),  # type: ignore[arg-type, return-value]
        # At half its rate, so that the CPU detector keeps up on a busy machine too.
        opener=NvdecSessions(0, StreamNvc(pace=0.5), xp),
        decoder="nvdec",
    )
    summary = node.run_live(threading.Event(), pipeline=pipeline)
    assert isinstance(node.enforcement[CAMERA_ID].ring, PacketRing)

    assert summary.frames >= 20 and len(xp.made) >= summary.frames
    assert node.violations >= 1 and node.packages == node.violations, out.getvalue()
    for line in out.getvalue().splitlines():
        event = parse_payload(ViolationEvent, line)
        assert EvidenceRole.CLIP in {e.role for e in event.evidence}
    # Copied to the host only for the integrity guard's checks (one every 5 s).
    assert sum(a.copies_down for a in xp.made) <= 3


def test_on_the_gpu_path_a_camera_given_a_scene_by_a_push_keeps_its_stream(
    scene: Path, tmp_path: Path
) -> None:
    """A push gives a camera its scene while the node runs on NVDEC: from the stream's next
    keyframe on, its evidence ring keeps the stream, as the rings of a start do."""
    import subprocess

    import imageio_ffmpeg

    clip = tmp_path / "keyframes.mp4"  # the scene with a keyframe every 10 frames
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(scene / "enforcement.mp4"),
         "-c:v", "libx264", "-g", "10", "-bf", "0", "-crf", "23", str(clip)],
        check=True, timeout=120,
    )  # fmt: skip
    camera = site(scene).cameras[0].model_copy(update={"url": str(clip)})
    with_scene = site(scene).model_copy(update={"cameras": [camera], "version": "v2"})
    bare = with_scene.model_copy(
        update={"cameras": [camera.model_copy(update={"scene": None, "calibration": None})],
                "version": "v1"}
    )  # fmt: skip
    out = io.StringIO()
    node = EdgeNode.from_config(bare, model_version="yolov8n-coco-dynamic", violations_out=out)
    assert node.enforcement == {}
    pipeline = LivePipeline(
        bare,
        DetectorPool(load=lambda _cfg: OnTheGpu()),  # type: ignore[arg-type, return-value]
        opener=NvdecSessions(0, StreamNvc(pace=0.5), FAKE_XP),
        decoder="nvdec",
    )
    pushed: list[int] = []
    kept: dict[str, Any] = {}

    def push(item: TrackedFrame) -> None:
        if item.frame.index >= 2 and not pushed:
            pushed.append(item.frame.index)
            node.reconfigure(with_scene, node.prepare(with_scene))
        elif item.frame.index >= 50 and len(pushed) == 1:
            # Near the end, a push takes the scene away again.
            kept["ring"], kept["sinks"] = (
                node.enforcement[CAMERA_ID].ring,
                {**pipeline.packet_sinks},
            )
            pushed.append(item.frame.index)
            node.reconfigure(bare, node.prepare(bare))

    node.run_live(threading.Event(), pipeline=pipeline, sinks=[push])
    ring = kept["ring"]
    assert isinstance(ring, PacketRing)
    assert kept["sinks"] == {CAMERA_ID: ring}
    assert ring._seen, "no frame was placed in the kept stream"
    first = min(s.index for s in ring._seen)
    assert first > pushed[0]
    # The frames processed between the push and that keyframe were kept as pictures.
    pictures = [f.index for f in ring._jpegs.frames()]
    assert pictures and all(pushed[0] < i < first for i in pictures), (pictures, first)
    # Once the scene was gone, the camera's packets were no longer kept.
    assert node.enforcement == {} and pipeline.packet_sinks == {}
    events = [parse_payload(ViolationEvent, line) for line in out.getvalue().splitlines()]
    assert events, "no violation found"
    for event in events:
        assert EvidenceRole.CLIP in {e.role for e in event.evidence}


def test_a_stop_right_after_a_violation_waits_for_the_frames_after_it(scene: Path) -> None:
    """Stopped at the very frame its first violation was found in, a live node runs on
    for the frames after it: the violation gets its evidence, not stored without it.
    Those frames look for no new violation (one found on the last of them would have none
    after it)."""
    config = site(scene)
    looped = [c.model_copy(update={"loop": True}) for c in config.cameras]
    config = config.model_copy(update={"cameras": looped})
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic", violations_out=out)
    stop = threading.Event()
    stopped_at: list[int] = []

    found_at_stop: list[int] = []

    def at_the_first_violation(item: TrackedFrame) -> None:
        if node.violations and not stop.is_set():
            stopped_at.append(item.frame.index)
            found_at_stop.append(node.violations)
            stop.set()

    summary = node.run_live(
        stop, DetectorPool(load=lambda _cfg: shared_detector()), sinks=[at_the_first_violation]
    )
    assert stopped_at, "no violation was found"
    camera = node.enforcement[CAMERA_ID]
    assert camera.counters.evidence_failures == 0
    assert node.violations == found_at_stop[0] and node.packages == node.violations
    assert summary.frames > stopped_at[0] + 1  # (ran on past the stop)
    for line in out.getvalue().splitlines():
        roles = {e.role for e in parse_payload(ViolationEvent, line).evidence}
        assert {EvidenceRole.FRAME_AFTER, EvidenceRole.CLIP} <= roles


def test_evidence_is_built_beside_the_frames_not_between_them(
    scene: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a build pool (as in live runs), frames go on while evidence is built: here no
    package can be finished before the last frame, yet every violation gets its package."""
    out = io.StringIO()
    node = EdgeNode.from_config(
        site(scene), model_version="yolov8n-coco-dynamic", violations_out=out
    )
    camera = node.enforcement[CAMERA_ID]
    gate = threading.Event()
    build = camera._package

    def held(pending: Any) -> Any:
        assert gate.wait(60), "the last frame never came"
        return build(pending)

    monkeypatch.setattr(camera, "_package", held)
    seen_building: list[int] = []

    def at_last_frame(item: TrackedFrame) -> None:
        if item.frame.index == 59:
            seen_building.append(len(camera._building))
            assert node.packages == 0  # nothing was built in the pipeline's way
            gate.set()

    with ThreadPoolExecutor(1) as pool:
        camera.build_pool = pool
        node.run_file(
            scene / "enforcement.mp4",
            sinks=[at_last_frame],
            detectors=DetectorPool(load=lambda _cfg: shared_detector()),
        )
    assert seen_building and seen_building[0] >= 1
    assert node.violations == 2 and node.packages == 2
    assert len(out.getvalue().splitlines()) == 2


def test_a_worker_builds_from_what_the_node_checked_even_after_it_expired(scene: Path) -> None:
    """A worker restarted after its camera's calibration expired runs on, as the camera
    would in the node's own process: it builds from the files and the check the node made
    (never from the disk or the clock)."""
    from calibration.errors import CalibrationExpiredError
    from edge.node import read_camera_files
    from roadwatch.contract.signing import generate_private_key

    config = site(scene)
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic")
    years_on = datetime.now(UTC) + timedelta(days=3650)
    with pytest.raises(CalibrationExpiredError, match="expired"):
        read_camera_files(config, years_on)
    worker = EdgeNode.for_worker(
        config, key=generate_private_key(), model_version="yolov8n-coco-dynamic",
        forward=lambda packages, traffic: None, forward_fired=lambda event: None,
        files=node.files, now=years_on,
    )  # fmt: skip
    built, checked = worker.enforcement[CAMERA_ID], node.enforcement[CAMERA_ID]
    assert built.projector is checked.projector and built.projector is not None
    assert built.scene is checked.scene


def test_a_node_with_worker_processes_delivers_every_cameras_evidence(scene: Path) -> None:
    """Two cameras on the scene, each in a worker process of its own (a node with
    ``processes: 2``): a push reaches both, built from the files the node checked; the
    node's process receives, writes and counts what they find, and the evidence carries
    the node's signature."""
    import multiprocessing

    import yaml

    from calibration.speed_eval import surveyed_calibration as survey
    from roadwatch.contract.signing import verify

    second = "cam-02"
    document = yaml.safe_load((scene / "scene.yaml").read_text(encoding="utf-8"))
    (scene / "scene-2.yaml").write_text(yaml.safe_dump({**document, "camera": second}))
    save_calibration(
        survey(demo_camera(), 3, datetime.now(UTC), camera_id=second), scene / "cam-2.calib.yaml"
    )
    first = site(scene).cameras[0]
    other = first.model_copy(
        update={"id": second, "scene": scene / "scene-2.yaml",
                "calibration": scene / "cam-2.calib.yaml"}
    )  # fmt: skip
    cameras = [c.model_copy(update={"loop": True}) for c in (first, other)]
    config = site(scene).model_copy(update={"cameras": cameras, "processes": 2})
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic", violations_out=out)
    assert node._parts is not None
    public = node._parts.key.public_key()

    result: list[RunSummary] = []
    stop = threading.Event()
    runner = threading.Thread(target=lambda: result.append(node.run_live(stop)))
    runner.start()

    def until(done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120
        while not done():
            assert runner.is_alive(), f"the run ended before {what}"
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.1)

    try:
        until(lambda: node.workers is not None, "its workers started")
        workers = node.workers
        assert workers is not None
        until(lambda: len({c for _, n in workers.progress() for c in n}) == 2, "both ran")
        # A push (a live field) reaches each worker, which takes it.
        pushed = config.model_copy(
            update={"version": "v2",
                    "cameras": [c.model_copy(update={"place": "QL13 Km 22+400"})
                                for c in config.cameras]}
        )  # fmt: skip
        built = node.prepare(pushed)
        # A file changed on disk after the node's check reaches no worker: the workers
        # build from what the node read and checked.
        (scene / "scene-2.yaml").unlink()
        (scene / "cam-2.calib.yaml").write_text("not: a calibration\n")
        node.reconfigure(pushed, built)
        until(lambda: workers.config_versions() == ["v2", "v2"], "both took the push")
        until(
            lambda: (
                {json.loads(line)["camera"] for line in out.getvalue().splitlines()}
                == {CAMERA_ID, second}
            ),
            "both cameras' violations came",
        )
    finally:
        stop.set()
        runner.join(120)
    assert not runner.is_alive()
    [summary] = result

    assert multiprocessing.active_children() == []
    assert set(summary.frames_by_camera) == {CAMERA_ID, second}
    assert min(summary.frames_by_camera.values()) >= 20, summary.frames_by_camera
    events = [parse_payload(ViolationEvent, line) for line in out.getvalue().splitlines()]
    assert {e.camera for e in events} == {CAMERA_ID, second}, [(e.camera, e.type) for e in events]
    assert node.violations == node.packages == len(events)
    for event in events:
        verify(event, public)
        assert EvidenceRole.CLIP in {e.role for e in event.evidence}
    assert node.counters.traffic_minutes >= 2
    assert {h.camera for h in node.health()} == {CAMERA_ID, second}


def test_a_blank_picture_at_start_is_tried_for_a_reference_view_at_the_guards_pace(
    scene: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera that starts dark or capped gives no reference view: the guard tries again
    every second (not at every frame, each a full-frame feature search) and says so once;
    the first try on a frame that shows the scene takes it as the reference."""

    from edge.detections import Detections
    from edge.integrity import ReferenceView
    from edge.sources import Frame

    tried: list[float] = []
    take = ReferenceView.from_frame

    def counted(image: Any) -> Any:
        tried.append(seen[-1])
        return take(image)

    monkeypatch.setattr(ReferenceView, "from_frame", counted)
    node = EdgeNode.from_config(site(scene), model_version="test")
    camera = node.enforcement[CAMERA_ID]
    road = first_frame(scene)
    blank = np.zeros_like(road)
    none = Detections(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64))
    t0, seen = datetime.now(UTC), [0.0]
    caplog.set_level("INFO", logger="edge.enforcement")
    for i in range(120):  # 12 s at 10 fps: blank for the first 6.5 s
        s = i / 10
        seen.append(s)
        image = blank if s < 6.5 else road
        frame = Frame(CAMERA_ID, i, 100.0 + s, t0 + timedelta(seconds=s), image)
        node.on_tracked(TrackedFrame(frame, none))
        assert (camera.guard is not None) == (s >= 7.0), s
    node.finish()
    assert tried == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    said = [r.getMessage() for r in caplog.records if "reference view" in r.getMessage()]
    assert said == [
        f"camera {CAMERA_ID}: no reference view yet: reference frame has only 0 features;"
        " pick a frame with the road in clear view; trying again every 1 s",
        f"camera {CAMERA_ID}: reference view taken",
    ]


def test_frames_of_another_size_than_the_scene_pause_enforcement_until_they_fit(
    scene: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera's lines and zones are pixels of its scene's size: on frames of another size
    (a camera re-configured to another resolution) nothing is enforced or counted, the
    health says why, and enforcement comes back with frames of the scene's size."""
    import cv2

    from edge.sources import Frame

    node = EdgeNode.from_config(site(scene), model_version="test")
    camera = node.enforcement[CAMERA_ID]
    road = first_frame(scene)
    height, width = road.shape[:2]
    small = np.ascontiguousarray(cv2.resize(road, (width // 2, height // 2)))
    # A track crossing the frame, which would count in the traffic lanes if enforced.
    tracks = tracked_box(np.array([[width * 0.4, height * 0.5, width * 0.5, height * 0.7]]))
    caplog.set_level("INFO", logger="edge.enforcement")
    t0 = datetime.now(UTC)
    for i in range(30):
        image = small if 5 <= i < 25 else road
        frame = Frame(CAMERA_ID, i, 100.0 + i / 10, t0 + timedelta(seconds=i / 10), image)
        node.on_tracked(TrackedFrame(frame, tracks))
        if i == 24:
            reason = f"frames are {width // 2}x{height // 2} but the scene is drawn for"
            assert not camera.enforcing
            state, why = camera.health_override() or (None, "")
            assert state is not None and state.value == "paused" and reason in why
            assert camera.counters.paused_frames == 20
            assert len(camera._tracks[7].boxes) == 5  # nothing added while paused
    assert camera.enforcing and camera.health_override() is None
    assert camera.counters.paused_frames == 20 and list(camera._tracks) == [7]
    # What was known before the gap is not carried across it: the track starts again.
    assert len(camera._tracks[7].boxes) == 5  # only what was seen after the gap
    node.finish()
    said = [r.getMessage() for r in caplog.records if "frames are" in r.getMessage()]
    assert len(said) == 2 and "nothing is enforced" in said[0] and "again" in said[1]


def test_a_calibration_for_another_size_than_the_scene_is_refused(
    scene: Path, tmp_path: Path
) -> None:
    from calibration.store import load_calibration
    from roadwatch.errors import UserError

    calibration = load_calibration(scene / "cam.calib.yaml")
    w, h = calibration.image_size
    other = tmp_path / "other.calib.yaml"
    save_calibration(calibration.model_copy(update={"image_size": (w * 2, h * 2)}), other)
    config = site(scene)
    camera = config.cameras[0].model_copy(update={"calibration": other})
    with pytest.raises(UserError, match=f"the calibration is for {w * 2}x{h * 2}, the scene"):
        EdgeNode.from_config(config.model_copy(update={"cameras": [camera]}), model_version="t")


def tracked_box(xyxy: np.ndarray) -> Any:
    from edge.detections import Detections

    n = len(xyxy)
    return Detections(
        xyxy.astype(np.float32), np.full(n, 0.9, np.float32), np.full(n, 2, np.int64),
        tracker_id=np.arange(7, 7 + n, dtype=np.int64),
    )  # fmt: skip


def first_frame(scene: Path) -> Any:
    import cv2

    capture = cv2.VideoCapture(str(scene / "enforcement.mp4"))
    ok, road = capture.read()
    capture.release()
    assert ok
    return road


def test_a_violation_found_before_a_kill_is_stored_without_evidence_at_the_next_start(
    scene: Path, tmp_path: Path
) -> None:
    """`edge run` is killed (SIGKILL, as a power cut) while a violation's evidence is being
    built: the violation was recorded in the outbox as its rule found it, and the next
    start of delivery stores it, signed by the node, with no evidence and saying why."""
    import signal
    import socket
    import sqlite3
    import subprocess
    import sys

    import yaml

    from edge.config import load_site_config
    from edge.delivery_service import DeliveryService
    from edge.identity import write_key_pair
    from edge.outbox import MessageKind
    from roadwatch.contract.signing import verify
    from tests.delivery_support import subprocess_env

    write_key_pair(tmp_path / "node")
    with socket.socket() as s:  # a port nobody listens on: nothing is sent
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [camera] = site(scene).model_dump(mode="json")["cameras"]
    doc = {
        "site": "test", "node": "node-01", "plates": False,
        "cameras": [{k: camera[k] for k in ("id", "url", "scene", "calibration", "place")}],
        "delivery": {"key_path": "node.key", "outbox": {"path": "outbox"},
                     "broker": {"host": "127.0.0.1", "port": port}},
    }  # fmt: skip
    config_path = tmp_path / "site.yaml"
    config_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    script = (
        "import sys, threading\n"
        "from edge.enforcement import CameraEnforcement\n"
        # Evidence that never finishes: the kill always comes while it is being built.
        "CameraEnforcement._package = lambda self, pending: threading.Event().wait()\n"
        "from roadwatch.cli import main\n"
        "sys.exit(main(['edge', 'run', '--config', sys.argv[1]]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(config_path)], env=subprocess_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    outbox_db = tmp_path / "outbox" / "outbox.sqlite3"

    def fired() -> int:
        if not outbox_db.exists():
            return 0
        with contextlib.closing(sqlite3.connect(outbox_db, timeout=5)) as db:
            try:
                return int(db.execute("SELECT COUNT(*) FROM fired").fetchone()[0])
            except sqlite3.OperationalError:  # (the table is not made yet)
                return 0

    try:
        deadline = time.monotonic() + 120
        while fired() < 2:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the rules never fired"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        if process.stderr is not None:
            process.stderr.close()

    config = load_site_config(config_path)
    assert config.delivery is not None
    service = DeliveryService.from_config(config.delivery)
    try:
        service.start()
        stored = [
            parse_payload(ViolationEvent, m.payload)
            for m in service.outbox.due_messages(10)
            if m.kind is MessageKind.VIOLATION
        ]
        assert service.outbox.fired() == []
    finally:
        service.stop(timeout_s=2)
    assert {e.type for e in stored} == {ViolationType.SPEEDING, ViolationType.WRONG_WAY}
    for event in stored:
        verify(event, service.key.public_key())
        assert event.evidence == []
        assert "No evidence: the node stopped" in event.explanation
        assert event.camera == CAMERA_ID and event.place == "QL13 Km 22+300"


def test_each_violation_is_recorded_as_found_and_one_without_evidence_is_still_stored(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a violation's evidence is built, the outbox already holds the violation as
    its rule found it. One whose evidence cannot be built is stored all the same, signed,
    with no evidence and saying why; the record goes once each is stored."""
    from edge.delivery_config import DeliveryConfig
    from edge.evidence.package import EvidenceError
    from edge.identity import write_key_pair
    from edge.outbox import MessageKind
    from roadwatch.contract.signing import verify

    write_key_pair(tmp_path / "node")
    delivery = DeliveryConfig.model_validate(
        {"site": "test", "node": "node-01", "key_path": str(tmp_path / "node.key"),
         "outbox": {"path": str(tmp_path / "outbox")}}
    )  # fmt: skip
    config = site(scene).model_copy(update={"delivery": delivery})
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic", violations_out=out)
    assert node.delivery is not None
    outbox = node.delivery.outbox
    camera = node.enforcement[CAMERA_ID]
    build = camera._package
    recorded: list[list[str]] = []

    def first_fails(pending: Any) -> Any:
        recorded.append([f.event.event_id for f in outbox.fired()])
        assert pending.event.event_id in recorded[-1]  # on disk before its evidence
        if len(recorded) == 1:
            raise EvidenceError("the ring of cam-01 holds no frame near the violation")
        return build(pending)

    monkeypatch.setattr(camera, "_package", first_fails)
    try:
        node.run_file(
            scene / "enforcement.mp4", detectors=DetectorPool(load=lambda _cfg: shared_detector())
        )
        assert len(recorded) == 2
        stored = [
            parse_payload(ViolationEvent, m.payload)
            for m in outbox.due_messages(10)
            if m.kind is MessageKind.VIOLATION
        ]
        assert outbox.fired() == []
        assert len(stored) == 2 and node.violations == 2
        assert node.packages == 1 and camera.counters.evidence_failures == 1
        bare = next(e for e in stored if not e.evidence)
        assert bare.explanation.endswith(
            "No evidence: its evidence could not be built: the ring of cam-01 holds no frame"
            " near the violation"
        )
        for event in stored:
            verify(event, node.delivery.key.public_key())
        assert len(out.getvalue().splitlines()) == 2
    finally:
        node.delivery.stop(timeout_s=1)
