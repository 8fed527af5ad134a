"""A node started again with its clock set back (it ran fast until the restart): the
traffic minutes it counts again, up to the latest its outbox holds from before, are
stored as parts beside those, not dropped as duplicates of them. The whole node as it
starts (``EdgeNode.from_config``, its outbox, a camera's enforcement) or as a worker
process builds its own, fed tracked frames at chosen times. A camera whose counting a
push begins afresh (its lanes changed; its scene taken away and given back) after a
clock set back keeps the minutes it counts again likewise."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge.config import SiteConfig, load_site_config
from edge.detections import Detections
from edge.identity import write_key_pair
from edge.node import EdgeNode
from edge.outbox import MessageKind
from edge.pipeline import TrackedFrame
from edge.sources import Frame
from roadwatch.contract import TrafficStats
from roadwatch.demo.scene import CAMERA_ID, demo_camera, scene_document

T = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
MINUTE, SECOND = timedelta(minutes=1), timedelta(seconds=1)
FRAME_EVERY = timedelta(seconds=20)
PICTURE = np.zeros((540, 960, 3), np.uint8)  # (the scene's size)


def site_file(folder: Path, **options: Any) -> Path:
    """A node with one camera on the demo scene (960x540, three lanes), delivering to an
    outbox in ``folder`` (to no broker: nothing is sent)."""
    write_key_pair(folder / "node")
    (folder / "cam.scene.yaml").write_text(yaml.safe_dump(scene_document(demo_camera())))
    doc = {
        "site": "ql13", "node": "node-01", "plates": False, "integrity": {"enabled": False},
        "cameras": [{"id": CAMERA_ID, "url": "rtsp://127.0.0.1:1/cam", "scene": "cam.scene.yaml"}],
        "delivery": {"key_path": "node.key", "outbox": {"path": "outbox"},
                     "broker": {"host": "127.0.0.1", "port": 1}},
        **options,
    }  # fmt: skip
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def car(track: int) -> Detections:
    """One car whose ground point (the box's bottom middle, 420,400) is in lane 1."""
    box = np.array([[400.0, 350.0, 440.0, 400.0]], np.float32)
    ids = np.array([track], np.int64)
    return Detections(box, np.full(1, 0.9, np.float32), np.full(1, 2, np.int64), tracker_id=ids)


_FRAMES = itertools.count()  # (a camera's frame index and monotonic time only go on)


def feed(
    on_tracked: Callable[[TrackedFrame], None], start: datetime, end: datetime, first: int
) -> int:
    """A new car every frame (20 s apart) from ``start`` to before ``end``; how many."""
    count, at = 0, start
    while at < end:
        index = next(_FRAMES)
        frame = Frame(CAMERA_ID, index, float(index), at, PICTURE)
        on_tracked(TrackedFrame(frame, car(first + count)))
        count, at = count + 1, at + FRAME_EVERY
    return count


def stored(node: EdgeNode) -> list[TrafficStats]:
    assert node.delivery is not None
    return [
        TrafficStats.model_validate_json(m.payload)
        for m in node.delivery.outbox.due_messages(1000)
        if m.kind is MessageKind.TRAFFIC
    ]


def cars(minutes: list[TrafficStats]) -> int:
    return sum(sum(lane.counts.values()) for s in minutes for lane in s.lanes)


def start(path: Path) -> EdgeNode:
    node = EdgeNode.from_config(load_site_config(path), model_version="m@1")
    assert node.delivery is not None
    return node


def before_the_restart(path: Path) -> list[TrafficStats]:
    """The node ran with its clock fast, up to 10:15:40, and stopped: minutes up to 10:15
    are in its outbox."""
    node = start(path)
    try:
        fed = feed(node.on_tracked, T + 2 * MINUTE, T + 15 * MINUTE + 41 * SECOND, 1)
        node.finish()
        minutes = stored(node)
    finally:
        assert node.delivery is not None
        node.delivery.stop()  # (never started: closes the outbox)
    assert [s.minute_start for s in minutes] == [T + m * MINUTE for m in range(2, 16)]
    assert cars(minutes) == fed
    return minutes


def in_the_nodes_process(node: EdgeNode) -> EdgeNode:
    return node


def in_a_worker(node: EdgeNode) -> EdgeNode:
    """A worker process's node, built as ``edge.workers`` builds one: told what the
    node's outbox held at its start, handing what it delivers to the node's process."""
    assert node._parts is not None
    return EdgeNode.for_worker(
        node.config, key=node._parts.key, model_version="m@1", files=node.files,
        forward=node._deliver, forward_fired=node._record_fired,
        traffic_sent=node.stored_traffic([CAMERA_ID]),
    )  # fmt: skip


@pytest.mark.parametrize(
    "counted_by", [in_the_nodes_process, in_a_worker], ids=lambda f: f.__name__
)
def test_minutes_counted_again_after_a_restart_with_the_clock_set_back_are_kept(
    tmp_path: Path, counted_by: Callable[[EdgeNode], EdgeNode]
) -> None:
    """Sent up to 10:15 with the clock 10 minutes fast; started again with the clock set
    right at 10:05:10 and run to 10:17: each minute from 10:05 to 10:15 is counted again
    as a part, stored beside the one sent before; 10:16 and 10:17 are whole. Every car
    is in the outbox once: none is lost."""
    path = site_file(tmp_path)
    sent = before_the_restart(path)
    node = start(path)
    try:
        counting = counted_by(node)
        fed = feed(counting.on_tracked, T + 5 * MINUTE + 10 * SECOND, T + 18 * MINUTE, 1000)
        counting.finish()
        minutes = stored(node)
    finally:
        assert node.delivery is not None
        node.delivery.stop()
    again = [s for s in minutes if s not in sent]
    assert [s.minute_start for s in again] == [T + m * MINUTE for m in range(5, 18)]
    assert cars(again) == fed  # (none dropped as a duplicate of a minute sent before)
    parts = [s.counted_from for s in again]
    assert parts == [*(T + m * MINUTE + 10 * SECOND for m in range(5, 16)), None, None]
    kept = {(s.minute_start, s.part_start) for s in minutes}
    assert len(kept) == len(minutes) == len(sent) + len(again)


def push(node: EdgeNode, scene: Path | None) -> None:
    """A config push giving the camera ``scene`` (None: no scene, nothing enforced)."""
    camera = node.config.cameras[0].model_copy(update={"scene": scene})
    pushed = node.config.model_copy(update={"cameras": [camera]})
    node.reconfigure(pushed, node.prepare(pushed))


@pytest.mark.parametrize("change", ["lanes changed", "scene taken away and given back"])
def test_a_push_after_a_clock_set_back_keeps_the_minutes_counted_again(
    tmp_path: Path, change: str
) -> None:
    """Counted up to 10:15 with the clock fast, set back to 10:05:10, then a push at
    10:07:10 (and, taking the scene away, one giving it back at 10:08:10): the camera's
    counting begins afresh, still knowing the minutes up to 10:15 were sent, so every
    car counted is in the outbox."""
    path = site_file(tmp_path)
    scene = tmp_path / "cam.scene.yaml"
    document = yaml.safe_load(scene.read_text())
    document["lanes"] = document["lanes"][:2]  # (lane 3 taken away)
    (tmp_path / "two-lanes.scene.yaml").write_text(yaml.safe_dump(document))
    node = start(path)
    try:
        fed = feed(node.on_tracked, T + 2 * MINUTE, T + 15 * MINUTE + 41 * SECOND, 1)
        fed += feed(node.on_tracked, T + 5 * MINUTE + 10 * SECOND, T + 7 * MINUTE, 1000)
        if change == "lanes changed":
            push(node, tmp_path / "two-lanes.scene.yaml")
            fed += feed(node.on_tracked, T + 7 * MINUTE + 10 * SECOND, T + 8 * MINUTE, 2000)
        else:
            push(node, None)
            feed(node.on_tracked, T + 7 * MINUTE + 10 * SECOND, T + 8 * MINUTE, 2000)
            push(node, scene)  # (the cars of 10:07, with no scene, are not counted)
        fed += feed(node.on_tracked, T + 8 * MINUTE + 10 * SECOND, T + 18 * MINUTE, 3000)
        node.finish()
        minutes = stored(node)
    finally:
        assert node.delivery is not None
        node.delivery.stop()
    assert cars(minutes) == fed
    again = [s.minute_start for s in minutes if s.counted_from is not None]
    assert again[-8:] == [T + m * MINUTE for m in range(8, 16)]  # (10:08 to 10:15: parts)


def test_a_node_without_delivery_starts_knowing_of_no_minute_sent(tmp_path: Path) -> None:
    config: SiteConfig = load_site_config(site_file(tmp_path))
    node = EdgeNode.from_config(config.model_copy(update={"delivery": None}), model_version="m")
    assert node.stored_traffic([CAMERA_ID]) == {} and node.traffic_sent == {}
    assert node.enforcement[CAMERA_ID].traffic.sent_up_to is None


def test_worker_processes_are_told_what_the_outbox_holds_as_they_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``processes`` above 1 the cameras are counted in worker processes, which open
    no outbox: the workers are given the node's reading of it, asked at each start."""
    import threading

    from edge import workers as workers_module
    from edge.pipeline import RunSummary

    path = site_file(tmp_path, processes=2)
    before_the_restart(path)
    told: list[dict[str, datetime]] = []

    class Built:
        def __init__(self, *args: Any, **options: Any) -> None:
            self.traffic_sent = options["traffic_sent"]

        def health(self) -> list[Any]:
            return []

        def run(self, stop: threading.Event) -> RunSummary:
            told.append(self.traffic_sent([CAMERA_ID, "cam-09"]))  # (as a worker starts)
            return RunSummary()

    monkeypatch.setattr(workers_module, "Workers", Built)
    start(path).run_live(threading.Event(), drain_s=0.0)  # (delivery stops with the run)
    assert told == [{CAMERA_ID: T + 15 * MINUTE}]  # (a camera it holds nothing of: none)


def test_a_minute_split_by_a_stop_or_a_push_says_where_each_part_stopped(
    tmp_path: Path,
) -> None:
    """The node counts from 10:02 and stops at 10:03:40; started again, it counts from
    10:03:50, its camera's lanes change at 10:04:30 and it counts on to 10:05:20. Each
    part stopped before its minute's end says when (its last frame); a minute closed by a
    later one's frame ran to its end."""
    path = site_file(tmp_path)
    scene = tmp_path / "cam.scene.yaml"
    document = yaml.safe_load(scene.read_text())
    document["lanes"] = document["lanes"][:2]
    (tmp_path / "two-lanes.scene.yaml").write_text(yaml.safe_dump(document))
    node = start(path)
    try:
        feed(node.on_tracked, T + 2 * MINUTE, T + 3 * MINUTE + 41 * SECOND, 1)
        node.finish()
    finally:
        assert node.delivery is not None
        node.delivery.stop()
    node = start(path)
    try:
        feed(node.on_tracked, T + 3 * MINUTE + 50 * SECOND, T + 4 * MINUTE + 31 * SECOND, 100)
        push(node, tmp_path / "two-lanes.scene.yaml")
        feed(node.on_tracked, T + 4 * MINUTE + 40 * SECOND, T + 5 * MINUTE + 21 * SECOND, 200)
        node.finish()
        minutes = stored(node)
    finally:
        assert node.delivery is not None
        node.delivery.stop()
    at = {(s.minute_start, s.part_start): s.counted_until for s in minutes}
    m, s = MINUTE, SECOND
    assert at == {
        (T + 2 * m, T + 2 * m): None,  # (closed by 10:03's first frame)
        (T + 3 * m, T + 3 * m): T + 3 * m + 40 * s,  # the node stopped
        (T + 3 * m, T + 3 * m + 50 * s): None,
        (T + 4 * m, T + 4 * m): T + 4 * m + 30 * s,  # its lanes changed
        (T + 4 * m, T + 4 * m + 40 * s): None,
        (T + 5 * m, T + 5 * m): T + 5 * m + 20 * s,  # the node stopped again
    }
