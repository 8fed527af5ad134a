"""Cameras over worker processes: which worker runs which camera (tables), and the node's
side of real spawned workers that follow a script (tests/scripted_workers.py)."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edge.config import SiteConfig, parse_site_config
from edge.detections import ObjectClass
from edge.evidence.package import EvidencePackage
from edge.node import CameraFiles
from edge.pipeline import RunSummary
from edge.rules.no_stopping import FinedPlace
from edge.workers import WorkerError, Workers, deal_cameras, merge_summaries, worker_config
from roadwatch.contract import CameraState, TrafficStats, ViolationEvent
from roadwatch.contract.signing import generate_private_key
from tests.rules_tracks import scene_config
from tests.scripted_workers import PLACE, scripted


def site(*cameras: str | tuple[str, float | None, bool], processes: int = 2) -> SiteConfig:
    listed = []
    for cam in cameras:
        cam_id, fps, enabled = cam if isinstance(cam, tuple) else (cam, None, True)
        listed.append({"id": cam_id, "url": f"/v/{cam_id}.mp4", "target_fps": fps,
                       "enabled": enabled})  # fmt: skip
    return parse_site_config(
        {"site": "s", "node": "n", "cameras": listed, "processes": processes, "version": "v1"}
    )


@pytest.mark.parametrize(
    ("cameras", "processes", "dealt"),
    [
        (["a", "b", "c", "d", "e"], 2, [["a", "c", "e"], ["b", "d"]]),
        (["a", "b"], 4, [["a"], ["b"]]),  # never a worker without cameras
        (["a", "b", "c"], 1, [["a", "b", "c"]]),
        # The busiest first, each to the least loaded worker.
        ([("a", 30.0, True), ("b", 10.0, True), ("c", 10.0, True), ("d", 10.0, True)], 2,
         [["a"], ["b", "c", "d"]]),
        ([("a", 5.0, True), ("b", None, True), ("c", 25.0, True)], 2, [["b"], ["a", "c"]]),
        ([("a", None, False), "b", "c"], 2, [["b"], ["c"]]),  # disabled cameras run nowhere
        ([("a", None, False)], 2, []),
    ],
)  # fmt: skip
def test_cameras_are_dealt_by_load(cameras: list[Any], processes: int, dealt: Any) -> None:
    assert deal_cameras(site(*cameras).cameras, processes) == dealt


def test_a_workers_config_holds_only_its_cameras_and_its_share_of_the_cores() -> None:
    config = site("a", "b", "c", processes=3)
    mine = worker_config(config, ["c", "a"], cpus=16)
    assert [c.id for c in mine.cameras] == ["a", "c"]
    assert mine.processes == 1
    assert mine.detector.threads == 5  # 16 cores over 3 workers
    assert mine.model_dump(exclude={"cameras", "processes", "detector"}) == config.model_dump(
        exclude={"cameras", "processes", "detector"}
    )
    assert worker_config(config, ["a"], cpus=2).detector.threads == 1
    threads = config.model_copy(
        update={"detector": config.detector.model_copy(update={"threads": 4})}
    )
    assert worker_config(threads, ["a"], cpus=2).detector.threads == 4  # as configured


def test_summaries_merge_with_each_workers_tracks_apart() -> None:
    one = RunSummary(frames=10, corrupt=1, riders_merged=2, frames_by_camera={"a": 10})
    one.track_classes = {1: ObjectClass.CAR, 2: ObjectClass.BUS}
    two = RunSummary(frames=5, persons_promoted=1, frames_by_camera={"b": 5})
    two.track_classes = {1: ObjectClass.MOTORCYCLE}  # the same id, another worker's track
    merged = merge_summaries([one, two], seconds=2.0)
    assert (merged.frames, merged.corrupt, merged.fps) == (15, 1, 7.5)
    assert (merged.riders_merged, merged.persons_promoted) == (2, 1)
    assert merged.frames_by_camera == {"a": 10, "b": 5}
    assert sorted(c.label for c in merged.track_classes.values()) == ["bus", "car", "motorcycle"]


# -- real worker processes ----------------------------------------------------------------


class Delivered:
    def __init__(self) -> None:
        self.traffic: list[TrafficStats] = []
        self.packages: list[EvidencePackage] = []

    def __call__(self, packages: list[EvidencePackage], traffic: list[TrafficStats]) -> None:
        self.packages += packages
        self.traffic += traffic


@pytest.fixture(autouse=True)
def script_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SCRIPT_DIR", str(tmp_path))
    yield tmp_path
    assert multiprocessing.active_children() == [], "a worker process outlived its node"


def workers(config: SiteConfig, delivered: Delivered, **options: Any) -> Workers:
    return Workers(
        config, generate_private_key(), "m@1", delivered, {}, target=scripted,
        health_every_s=0.2, **options,
    )  # fmt: skip


class Running:
    """``Workers.run`` on a thread of its own, for a test to look at it while it runs."""

    def __init__(self, subject: Workers) -> None:
        self.subject, self.stop = subject, threading.Event()
        self.result: RunSummary | BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.subject.run(self.stop)
        except BaseException as exc:
            self.result = exc

    def until(self, condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"never: {what}"
            assert self.thread.is_alive(), f"ended before: {what} ({self.result!r})"
            time.sleep(0.05)

    def end(self, timeout_s: float = 60.0) -> RunSummary | BaseException | None:
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive()
        return self.result


def states(subject: Workers) -> dict[str, tuple[CameraState, str]]:
    return {h.camera: (h.state, h.reason) for h in subject.health()}


def test_workers_run_their_cameras_take_a_push_and_stop() -> None:
    config = site("steady-a", "steady-b", "steady-c")
    thresholds = {ObjectClass.CAR: 0.4, ObjectClass.MOTORCYCLE: 0.2}  # class-keyed mapping
    detector = config.detector.model_copy(update={"class_confidence": thresholds})
    config = config.model_copy(update={"detector": detector})
    delivered = Delivered()
    subject = workers(config, delivered)
    assert subject.cameras == [["steady-a", "steady-c"], ["steady-b"]]
    assert {s for s, _ in states(subject).values()} == {CameraState.DOWN}  # not started yet
    running = Running(subject)
    running.until(lambda: len(delivered.traffic) == 3, "every camera's traffic delivered")
    running.until(
        lambda: {s for s, _ in states(subject).values()} == {CameraState.UP}, "all cameras up"
    )
    assert subject.violations == 3 and subject.packages == 3  # one per camera, in script

    # The files the node read travel with the push, each worker getting its cameras'.
    files = {c: CameraFiles(scene_config(camera=c)) for c in ("steady-a", "steady-b")}
    subject.reconfigure(config.model_copy(update={"version": "v2"}), files)
    took = {"steady-a": "config v2 files steady-a", "steady-b": "config v2 files steady-b",
            "steady-c": "config v2 files steady-a"}  # fmt: skip
    running.until(
        lambda: {c: r for c, (_, r) in states(subject).items()} == took, "each took the push"
    )
    assert len(subject.health()) == 3  # each camera from its own worker only
    summary = running.end()
    assert isinstance(summary, RunSummary), summary
    # 10 frames each, plus the 2 thresholds each worker got (its config came whole).
    assert summary.frames_by_camera == {"steady-a": 12, "steady-b": 12, "steady-c": 12}
    assert sorted(t.camera for t in delivered.traffic) == ["steady-a", "steady-b", "steady-c"]


def test_a_worker_that_cannot_take_a_push_is_reported_and_runs_on() -> None:
    """The node took the push; the worker that could not (its plate models) says why,
    which reaches ``refused`` (the node's status to central), and runs on as it was."""
    refusals: list[tuple[str, str]] = []
    subject = workers(
        site("refuses-a", "steady-b"), Delivered(), refused=lambda v, why: refusals.append((v, why))
    )
    running = Running(subject)
    running.until(
        lambda: {s for s, _ in states(subject).values()} == {CameraState.UP}, "all cameras up"
    )
    subject.reconfigure(subject.config.model_copy(update={"version": "v2"}), {})
    running.until(lambda: bool(refusals), "the refusal reported")
    running.until(lambda: states(subject)["steady-b"][1] == "config v2 files ", "b took it")
    assert refusals == [
        ("v2", "worker 0 (cameras refuses-a) runs on without it: OCR model "
               "ch_PP-OCRv4_det_infer.onnx is missing from the rapidocr package")
    ]  # fmt: skip
    assert states(subject)["refuses-a"] == (CameraState.UP, "")  # still on the config before
    assert isinstance(running.end(), RunSummary)


def test_a_signal_controllers_message_goes_to_the_worker_of_its_camera() -> None:
    from datetime import UTC, datetime

    from roadwatch.contract import LampColour, SignalPhase

    subject = workers(site("steady-a", "steady-b"), Delivered())
    running = Running(subject)
    running.until(
        lambda: {s for s, _ in states(subject).values()} == {CameraState.UP}, "all cameras up"
    )
    at = datetime.now(UTC)
    subject.signal(SignalPhase(site="s", node="n", camera="steady-b",
                               phase=LampColour.RED, changed_at=at, sent_at=at))  # fmt: skip
    running.until(lambda: states(subject)["steady-b"][1] == "signal steady-b red", "b told")
    assert states(subject)["steady-a"][1] == ""  # (the other worker's camera)
    assert isinstance(running.end(), RunSummary)


def test_signal_messages_for_a_camera_no_worker_runs_are_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import UTC, datetime

    from roadwatch.contract import LampColour, SignalPhase

    subject = workers(site("steady-a", "steady-b"), Delivered())
    at = datetime.now(UTC)
    for camera in ("steady-a", "cam-z", "cam-z"):  # (steady-a's worker is not started)
        subject.signal(SignalPhase(site="s", node="n", camera=camera,
                                   phase=LampColour.RED, changed_at=at, sent_at=at))  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [
        "signal messages for camera cam-z, which no worker runs; ignored"
    ]


def test_workers_whose_sources_end_end_the_run() -> None:
    delivered = Delivered()
    result = workers(site("ends-a", "ends-b"), delivered).run(threading.Event())
    assert result.frames_by_camera == {"ends-a": 10, "ends-b": 10}
    assert len(delivered.traffic) == 2


def test_a_worker_that_dies_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge.workers")
    subject = workers(site("crash2-a", "steady-b"), Delivered(), backoff_s=(0.1, 0.2))
    running = Running(subject)
    running.until(lambda: states(subject)["crash2-a"][0] is CameraState.UP, "a restarted")
    assert isinstance(running.end(), RunSummary)
    restarts = [r.getMessage() for r in caplog.records if "starting another" in r.getMessage()]
    assert restarts == [
        f"worker 0 exited with status 3; starting another in {wait} s (evidence it was"
        " building is lost)"
        for wait in ("0.1", "0.2")
    ]


def test_violations_a_dead_worker_found_and_never_delivered_are_handed_on() -> None:
    """Each violation a worker finds reaches ``fired`` as found; when the worker dies,
    those whose package never came reach ``lost`` (the node stores them without
    evidence), and those delivered do not."""
    fired: list[ViolationEvent] = []
    lost: list[ViolationEvent] = []
    delivered = Delivered()
    subject = workers(
        site("fires-a", "steady-b"), delivered, backoff_s=(0.1,), fired=fired.append,
        lost=lost.extend,
    )  # fmt: skip
    running = Running(subject)
    running.until(lambda: bool(lost), "the undelivered violation handed on")
    assert isinstance(running.end(), RunSummary)
    assert [e.track_id for e in fired] == [1, 2]
    assert [p.event.track_id for p in delivered.packages] == [1]
    assert lost == [fired[1]]


def test_a_worker_started_again_is_told_the_traffic_minutes_its_cameras_sent_before() -> None:
    """Asked at each start, the node's outbox (here, what was delivered) tells a worker
    the latest traffic minute of its cameras: one started again after its first process
    delivered a minute knows of it (and counts it again as a part, should the clock have
    been set back), as a node started again does."""
    delivered = Delivered()
    asked: list[list[str]] = []

    def traffic_sent(cameras: Sequence[str]) -> dict[str, datetime]:
        asked.append(list(cameras))
        return {t.camera: t.minute_start for t in delivered.traffic if t.camera in cameras}

    subject = workers(
        site("once-a", "steady-b"), delivered, backoff_s=(0.1,), traffic_sent=traffic_sent
    )
    running = Running(subject)
    running.until(lambda: states(subject)["once-a"][1] == "traffic sent up to 08:00", "a told")
    assert isinstance(running.end(), RunSummary)
    assert sorted(asked) == [["once-a"], ["once-a"], ["steady-b"]]  # (a's two starts)
    assert states(subject)["steady-b"][1] == ""  # (its minute came after its start)


def test_a_worker_started_again_is_told_the_fined_places_its_cameras_kept() -> None:
    """A worker's cameras' fined no-stopping places go to the node as they change, to be
    kept in its outbox (here, a dict); a worker started again is given them, as a node
    started again reads them, so that it does not fine again a car still parked."""
    kept: dict[str, tuple[FinedPlace, ...]] = {}

    def fined_places(cameras: Sequence[str]) -> dict[str, list[FinedPlace]]:
        return {c: list(kept[c]) for c in cameras if c in kept}

    subject = workers(
        site("parks-a", "steady-b"), Delivered(), backoff_s=(0.1,), fined_places=fined_places,
        places=kept.__setitem__,
    )  # fmt: skip
    running = Running(subject)
    told = f"fined places parks-a 600,480 (960, 540) {PLACE.last_t:g}"
    running.until(lambda: states(subject)["parks-a"][1] == told, "a told its place")
    assert isinstance(running.end(), RunSummary)
    assert kept == {"parks-a": (PLACE,)}
    assert states(subject)["steady-b"][1] == ""  # (it kept none)


def test_a_worker_that_keeps_dying_stops_the_node() -> None:
    subject = workers(site("crash9-a", "steady-b"), Delivered(), backoff_s=(0.05,), crash_limit=3)
    with pytest.raises(WorkerError) as failed:
        subject.run(threading.Event())
    assert str(failed.value) == (
        "worker 0 (cameras crash9-a): ended 3 times in a row within 60 s of its start"
        " (last: exited with status 3)"
    )
    assert failed.value.exit_code == 1
    state, reason = states(subject)["crash9-a"]
    assert state is CameraState.DOWN and "not started again" in reason


def test_a_worker_that_stops_reporting_shows_its_cameras_down() -> None:
    subject = workers(site("deaf-a", "steady-b"), Delivered(), stop_wait_s=0.5, kill_after_s=0.5)
    running = Running(subject)
    running.until(lambda: states(subject)["deaf-a"][0] is CameraState.UP, "a reported once")
    running.until(lambda: states(subject)["deaf-a"][0] is CameraState.DOWN, "a silent")
    assert states(subject)["deaf-a"][1].startswith("worker process not reporting for")
    assert states(subject)["steady-b"][0] is CameraState.UP
    running.end(timeout_s=30)


def test_a_worker_silent_for_long_is_killed_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Frozen whole (its own watch cannot end it): after ``hung_s`` without a report the
    node kills it, and another process takes its cameras."""
    caplog.set_level(logging.WARNING, logger="edge.workers")
    subject = workers(site("deaf-a", "steady-b"), Delivered(), stop_wait_s=0.5,
                      kill_after_s=0.5, hung_s=1.5)  # fmt: skip
    running = Running(subject)
    pids: set[int | None] = set()

    def restarted() -> bool:
        process = subject._workers[0].process
        pids.add(process.pid if process is not None else None)
        return len(pids - {None}) >= 2 and states(subject)["deaf-a"][0] is CameraState.UP

    running.until(lambda: "(not reporting for" in states(subject)["deaf-a"][1], "a killed")
    state, reason = states(subject)["deaf-a"]
    assert state is CameraState.DOWN
    assert reason.startswith("worker process was killed by SIGKILL (not reporting for ")
    running.until(restarted, "a started again")
    assert states(subject)["steady-b"][0] is CameraState.UP  # never silent: left running
    running.end(timeout_s=30)
    killed = [r.getMessage() for r in caplog.records if r.getMessage().endswith(": killing it")]
    assert killed and all(m.startswith("worker 0 not reporting for ") for m in killed)


def test_a_worker_whose_pipeline_was_stuck_is_named_so() -> None:
    from edge.pipeline import HUNG_EXIT_CODE
    from edge.workers import _ended

    assert _ended(HUNG_EXIT_CODE) == "exited with status 70 (its pipeline was stuck)"
    assert _ended(3) == "exited with status 3"


def test_a_workers_error_stops_the_node_with_its_message() -> None:
    delivered = Delivered()
    with pytest.raises(WorkerError) as failed:
        workers(site("steady-a", "fails-b"), delivered).run(threading.Event())
    assert str(failed.value) == "worker 1 (cameras fails-b): no such model: yolov9x"
    assert failed.value.exit_code == 2  # the worker's user error reads as one
    assert [t.camera for t in delivered.traffic] == ["steady-a"]  # the other finished


def test_a_worker_that_ignores_the_stop_is_killed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge.workers")
    subject = workers(site("deaf-a", "steady-b"), Delivered(), stop_wait_s=0.5, kill_after_s=0.5)
    running = Running(subject)
    running.until(lambda: states(subject)["deaf-a"][0] is CameraState.UP, "a deaf now")
    running.until(lambda: states(subject)["steady-b"][0] is CameraState.UP, "b up")
    summary = running.end(timeout_s=30)
    assert isinstance(summary, RunSummary)
    assert summary.frames_by_camera == {"steady-b": 10}
    messages = [r.getMessage() for r in caplog.records]
    assert "workers still running 0.5 s after the stop" in messages
    assert "worker 0 did not end; killing it" in messages


def test_a_delivery_fault_stops_the_run_and_leaves_nothing_running() -> None:
    """The outbox failing (a full disk): the error ends the run as in one process, and
    every worker, pipe and thread is gone (checked by this module's and conftest's
    fixtures), though what the workers still send may fail again on the way."""

    def full_disk(packages: list[EvidencePackage], traffic: list[TrafficStats]) -> None:
        raise OSError(28, "No space left on device")

    subject = Workers(
        site("steady-a", "steady-b"), generate_private_key(), "m@1", full_disk, {},
        target=scripted, health_every_s=0.2, kill_after_s=2.0,
    )  # fmt: skip
    with pytest.raises(OSError, match="No space left on device"):
        subject.run(threading.Event())


def test_workers_wait_for_their_evidence_at_the_stop_as_long_as_the_node_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live run told to wait ``evidence_wait_s`` (the density bench: a few seconds, not
    the 300 s of a node's stop) hands it to its workers, whose stop is awaited that long,
    plus the frames after the violations found just before it (6 s by default), plus the
    margin for their readers and last messages."""
    from edge import workers as workers_module
    from edge.node import EdgeNode
    from tests.edge_support import hanoi_clip

    subject = workers(site("evidence-a"), Delivered(), evidence_wait_s=4.0)
    running = Running(subject)
    running.until(lambda: states(subject)["evidence-a"][1] == "evidence wait 4 s", "its wait")
    assert isinstance(running.end(), RunSummary)

    built: dict[str, Any] = {}

    class Built:
        def __init__(self, *args: Any, **options: Any) -> None:
            built.update(options)

        def health(self) -> list[Any]:
            return []

        def run(self, stop: threading.Event) -> RunSummary:
            return RunSummary()

    monkeypatch.setattr(workers_module, "Workers", Built)
    config = parse_site_config(
        {"site": "s", "node": "n", "processes": 2,
         "cameras": [{"id": c, "url": str(hanoi_clip())} for c in ("a", "b")]}
    )  # fmt: skip
    EdgeNode.from_config(config, model_version="m@1").run_live(
        threading.Event(), evidence_wait_s=4.0
    )
    assert built["evidence_wait_s"] == 4.0 and built["stop_wait_s"] == 6.0 + 4.0 + 30.0
