"""A node started again (a power cut, an update, a watchdog's restart) while a car it
fined for no stopping still stands where it was fined: the new process does not fine
it again, however its tracker numbers it, and fines a vehicle seen arriving there.

The node's first process runs live (tracked frames scripted in place of the cameras and
the detector, on the node's clock) and is killed with SIGKILL, as a power cut would end
it; the next runs on the same outbox, in the node's own process or in a worker process's
node. A recording run (``run_file``) neither takes the places nor keeps its own."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from calibration.store import save_calibration
from edge.config import load_site_config
from edge.detections import Detections, ObjectClass
from edge.enforcement import PLACES_EVERY_S
from edge.identity import write_key_pair
from edge.node import EdgeNode
from edge.outbox import Outbox
from edge.pipeline import RunSummary, TrackedFrame
from edge.rules.geometry import Point
from edge.rules.no_stopping import FinedPlace
from edge.sources import Frame
from roadwatch.contract import ViolationEvent, ViolationType
from roadwatch.demo.scene import CAMERA_ID, demo_camera, scene_document, surveyed_calibration
from tests.delivery_support import BIG_BUDGET, subprocess_env
from tests.rules_tracks import hold, line_path

PICTURE = np.zeros((540, 960, 3), np.uint8)  # (the scene's size)
# A no-stopping zone over the near end of the demo road's three lanes (about 14-20 m
# from the camera), dwell 3 s; the parked car's ground point, in it.
ZONE = [[300, 380], [880, 380], [880, 530], [300, 530]]
PARKED = (600.0, 480.0)
UP_THE_ROAD = (600.0, 250.0)  # (about 35 m from the camera, outside the zone)
Samples = list[tuple[float, float, float]]  # (s from the start, x, y) of a ground point


def site_file(folder: Path) -> Path:
    """A node with one calibrated camera on the demo road with a no-stopping zone (its
    other rules off), delivering to an outbox in ``folder`` (to no broker)."""
    write_key_pair(folder / "node")
    scene = scene_document(demo_camera())
    scene["no_stopping_zones"] = [{"id": "kerb", "polygon": ZONE}]
    scene["rules"] = {
        rule: {"enabled": False}
        for rule in ("speeding", "red_light", "wrong_way", "forbidden_lane", "solid_line")
    } | {"no_stopping": {"dwell_s": 3.0}}
    (folder / "cam.scene.yaml").write_text(yaml.safe_dump(scene))
    calibration = surveyed_calibration(demo_camera(), 3, datetime.now(UTC))
    save_calibration(calibration, folder / "cam.calib.yaml")
    doc = {
        "site": "ql13", "node": "node-01", "plates": False, "integrity": {"enabled": False},
        "cameras": [{"id": CAMERA_ID, "url": "rtsp://127.0.0.1:1/cam", "scene": "cam.scene.yaml",
                     "calibration": "cam.calib.yaml"}],
        "delivery": {"key_path": "node.key", "outbox": {"path": "outbox"},
                     "broker": {"host": "127.0.0.1", "port": 1}},
    }  # fmt: skip
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def tracked(start: float, vehicles: dict[int, Samples]) -> list[TrackedFrame]:
    """The camera's tracked frames: each vehicle (by track id) a car's box whose ground
    point is at its samples, 10 frames a second from ``start`` (epoch seconds)."""
    at: dict[float, list[tuple[int, float, float]]] = {}
    for track, samples in vehicles.items():
        for s, x, y in samples:
            at.setdefault(round(s, 6), []).append((track, x, y))
    frames = []
    for index, (s, seen) in enumerate(sorted(at.items())):
        boxes = np.array([[x - 40, y - 50, x + 40, y] for _, x, y in seen], np.float32)
        cars = np.full(len(seen), int(ObjectClass.CAR), np.int64)
        tracks = Detections(
            boxes, np.full(len(seen), 0.9, np.float32), cars,
            tracker_id=np.array([t for t, _, _ in seen], np.int64),
        )  # fmt: skip
        captured_at = datetime.fromtimestamp(start + s, UTC)
        frames.append(TrackedFrame(Frame(CAMERA_ID, index, s, captured_at, PICTURE), tracks))
    return frames


class Script:
    """In place of the live pipeline (its cameras, detector and tracker): hands the node
    the scripted frames, then does ``then``."""

    decoder = "scripted"

    def __init__(self, frames: Sequence[TrackedFrame], then: Callable[[], None] = lambda: None):
        self.frames, self.then = frames, then

    def health(self) -> list[Any]:
        return []

    def run(self, stop: threading.Event, sinks: Sequence[Any], **_: Any) -> RunSummary:
        for item in self.frames:
            for sink in sinks:
                sink(item)
        self.then()
        return RunSummary(frames=len(self.frames))


def parked(s0: float, s1: float) -> Samples:
    return [(s0, *PARKED), *hold(PARKED, s0, s1)]


def first_process(folder: Path, start: float) -> None:
    """The node's first process, live: car 1 parks in the zone at ``start`` and is fined
    3 s on; 40 s on, standing still, it waits to be killed (in a process of its own)."""
    node = EdgeNode.from_config(load_site_config(folder / "site.yaml"), model_version="m@1")

    def wait_for_the_kill() -> None:
        (folder / "fed").write_text("")
        threading.Event().wait()

    script = Script(tracked(start, {1: parked(0, 40)}), wait_for_the_kill)
    node.run_live(threading.Event(), pipeline=script)  # type: ignore[arg-type]


def killed_after_a_fine(folder: Path) -> float:
    """The first process run and killed with SIGKILL; when its frames began."""
    start = time.time() - 100.0  # (its frames on the node's clock, before this moment)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.unit.test_edge_no_stopping_restart import first_process\n"
        "first_process(Path(sys.argv[1]), float(sys.argv[2]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(folder), repr(start)], env=subprocess_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (folder / "fed").exists():
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"the first process ended: {process.stderr.read().decode()[-3000:]}")
            assert time.monotonic() < deadline, "the first process never took its frames"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        if process.stderr is not None:
            process.stderr.close()
    return start


def fined(folder: Path) -> list[ViolationEvent]:
    """The no-stopping violations the outbox holds (stored, or recorded as found), in
    the order they were decided."""
    with contextlib.closing(sqlite3.connect(folder / "outbox" / "outbox.sqlite3")) as db:
        rows = db.execute("SELECT payload FROM messages WHERE kind = 'violation'").fetchall()
        rows += db.execute("SELECT payload FROM fired").fetchall()
    events = [ViolationEvent.model_validate_json(payload) for (payload,) in rows]
    found = [e for e in events if e.type is ViolationType.NO_STOPPING]
    return sorted(found, key=lambda e: e.occurred_at)


def in_the_nodes_process(node: EdgeNode) -> EdgeNode:
    return node


def in_a_worker(node: EdgeNode) -> EdgeNode:
    """A worker process's node, built as ``edge.workers`` builds one: told the places the
    node's outbox held at its start, handing what it finds and keeps to the node's."""
    assert node._parts is not None
    return EdgeNode.for_worker(
        node.config, key=node._parts.key, model_version="m@1", files=node.files,
        forward=node._deliver, forward_fired=node._record_fired,
        forward_places=node._record_places, fined_places=node.stored_places([CAMERA_ID]),
    )  # fmt: skip


@pytest.mark.parametrize("runs_in", [in_the_nodes_process, in_a_worker], ids=lambda f: f.__name__)
def test_a_car_parked_through_a_restart_is_not_fined_again(
    tmp_path: Path, runs_in: Callable[[EdgeNode], EdgeNode]
) -> None:
    """Car 1 is fined and killed in on 40 s later; the node started again sees it still
    standing there (the tracker starting its ids afresh) for 20 s, then driving off, and
    car 2 arriving from up the road and parking on the same spot: car 2 alone is fined."""
    path = site_file(tmp_path)
    start = killed_after_a_fine(tmp_path)
    [first] = fined(tmp_path)
    assert first.track_id == 1 and start < first.occurred_at.timestamp() < start + 4
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:  # (as the kill left it)
        [kept] = outbox.fined_places("ql13", "node-01", CAMERA_ID)
    assert (kept.px, kept.image_size) == (Point(*PARKED), (960, 540))
    assert start + 40 - PLACES_EVERY_S <= kept.last_t <= start + 40  # (its last sightings)

    node = EdgeNode.from_config(load_site_config(path), model_version="m@1")
    again = time.time()
    later = {
        1: parked(0, 20) + line_path(PARKED, UP_THE_ROAD, 20, 22)[1:],
        2: line_path(UP_THE_ROAD, PARKED, 22, 25) + hold(PARKED, 25, 35),
    }
    runner = runs_in(node)
    try:
        script = Script(tracked(again, later))
        runner.run_live(threading.Event(), pipeline=script, drain_s=0.0)  # type: ignore[arg-type]
    finally:
        if runner is not node:  # (the node's own live run stops its delivery)
            assert node.delivery is not None
            node.delivery.stop()
    assert [(e.track_id, e.occurred_at.timestamp() >= again) for e in fined(tmp_path)] == [
        (1, False),
        (2, True),
    ], [e.explanation for e in fined(tmp_path)]


def test_a_recording_neither_takes_the_places_kept_nor_keeps_its_own(tmp_path: Path) -> None:
    """``edge run --source`` replays a file on a clock of its own (from now, by default):
    a place kept from the live cameras would take a vehicle of the recording, parked on
    it, for the one fined there. It is fined; and the live places are left as they were."""
    path = site_file(tmp_path)
    node = EdgeNode.from_config(load_site_config(path), model_version="m@1")
    assert node.delivery is not None
    now = time.time()
    live = FinedPlace(Point(*PARKED), (960, 540), now - 10)
    node.delivery.outbox.put_fined_places("ql13", "node-01", CAMERA_ID, [live])
    try:
        for item in tracked(now, {1: parked(0, 10)}):  # (as ``run_file`` feeds a recording)
            node.on_tracked(item, mono_s=item.frame.monotonic, at=item.frame.captured_at)
        node.finish()
        assert node.delivery.outbox.fined_places("ql13", "node-01", CAMERA_ID) == [live]
    finally:
        node.delivery.stop()
    assert [e.track_id for e in fined(tmp_path)] == [1]


def test_the_places_are_kept_as_a_car_is_fined_then_at_most_every_few_seconds(
    tmp_path: Path,
) -> None:
    """A car parked 40 s at 10 frames a second: its place goes to the outbox as it is
    fined (right after the violation is recorded), then as it is seen standing on, at
    most every ``PLACES_EVERY_S`` (not at each of the 400 frames), and at the end."""
    node = EdgeNode.from_config(load_site_config(site_file(tmp_path)), model_version="m@1")
    told: list[tuple[FinedPlace, ...]] = []
    recorded_first: list[int] = []

    def keep(camera: str, places: tuple[FinedPlace, ...]) -> None:
        assert camera == CAMERA_ID
        recorded_first.append(len(fined(tmp_path)))  # (the violation's record is there)
        told.append(places)

    node._record_places = keep  # type: ignore[method-assign]
    start = time.time() - 100.0
    script = Script(tracked(start, {1: parked(0, 40)}))
    node.run_live(threading.Event(), pipeline=script, drain_s=0.0)  # type: ignore[arg-type]
    assert recorded_first[0] == 1
    sightings = [places[0].last_t - start for places in told]
    assert all(len(places) == 1 and places[0].px == Point(*PARKED) for places in told)
    assert 3.0 < sightings[0] < 3.5 and sightings[-1] == pytest.approx(40.0)
    gaps = [b - a for a, b in itertools.pairwise(sightings[:-1])]
    assert len(told) <= 2 + 40 / PLACES_EVERY_S and min(gaps) >= PLACES_EVERY_S - 1e-6, sightings


@pytest.mark.parametrize("after_id", [1, 2], ids=["same track id", "a new track id"])
def test_a_car_parked_through_frames_of_another_size_is_not_fined_again(
    tmp_path: Path, after_id: int
) -> None:
    """Car 1 is fined 3 s after it parks; from 20 s to 25 s the camera's frames come at
    half the scene's size (nothing is enforced), then at its size again: the rules start
    afresh with the fined place, so the car, standing on (under its id or a new one), is
    not fined again, and the place is still kept in the outbox at the end."""
    node = EdgeNode.from_config(load_site_config(site_file(tmp_path)), model_version="m@1")
    start = time.time() - 100.0
    vehicles = {1: parked(0, 25)}
    vehicles[after_id] = vehicles.get(after_id, []) + hold(PARKED, 25, 60)
    small = np.zeros((270, 480, 3), np.uint8)
    frames = [
        TrackedFrame(dataclasses.replace(item.frame, pixels=small), item.tracks)
        if 20 < item.frame.captured_at.timestamp() - start <= 25
        else item
        for item in tracked(start, vehicles)
    ]
    node.run_live(threading.Event(), pipeline=Script(frames), drain_s=0.0)  # type: ignore[arg-type]
    assert node.enforcement[CAMERA_ID].counters.paused_frames == 50
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [kept] = outbox.fined_places("ql13", "node-01", CAMERA_ID)
    assert kept.px == Point(*PARKED) and kept.last_t == pytest.approx(start + 60)
    assert [e.track_id for e in fined(tmp_path)] == [1], [e.explanation for e in fined(tmp_path)]


def test_a_live_start_lets_go_the_places_of_cameras_removed_from_the_configuration(
    tmp_path: Path,
) -> None:
    """The outbox holds places of the node's camera and of one removed from its
    configuration (a restart removes a camera: a push cannot): the live start lets the
    removed camera's go and keeps its camera's (and another node's)."""
    path = site_file(tmp_path)
    now = time.time()
    place = FinedPlace(Point(*PARKED), (960, 540), now - 10)
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        outbox.put_fined_places("ql13", "node-01", CAMERA_ID, [place])
        outbox.put_fined_places("ql13", "node-01", "cam-removed", [place])
        outbox.put_fined_places("ql13", "node-02", "cam-removed", [place])
    node = EdgeNode.from_config(load_site_config(path), model_version="m@1")
    node.run_live(threading.Event(), pipeline=Script([]), drain_s=0.0)  # type: ignore[arg-type]
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        assert outbox.fined_places("ql13", "node-01", "cam-removed") == []
        assert outbox.fined_places("ql13", "node-01", CAMERA_ID) == [place]
        assert outbox.fined_places("ql13", "node-02", "cam-removed") == [place]
