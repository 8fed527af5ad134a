"""A live run's stop waits for the frames after the violations found just before it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.config import parse_site_config
from edge.node import AfterFrames, after_frames_wait_s


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("stopped", "waiting", "after_s", "ends"),
    [
        (False, 0, 0.0, False),  # running: not a stop
        (False, 3, 0.0, False),
        (True, 0, 0.0, True),  # stopped, nothing waiting: at once
        (True, 2, 0.0, False),  # stopped, two waiting: the cameras run on
        (True, 2, 5.9, False),
        (True, 2, 6.0, True),  # ... until the wait is up
        (True, 0, 3.0, True),  # ... or their frames came
    ],
)
def test_a_stop_ends_the_run_once_no_violation_waits_or_the_wait_is_up(
    stopped: bool, waiting: int, after_s: float, ends: bool
) -> None:
    stop, clock = threading.Event(), _Clock()
    count = {"n": 2 if stopped else waiting}
    after = AfterFrames(stop, lambda: count["n"], 6.0, clock=clock)
    if stopped:
        stop.set()
        assert not after.is_set()  # (the first look, with two waiting, starts the wait)
    clock.now += after_s
    count["n"] = waiting
    assert after.is_set() is ends


def test_the_cameras_are_closed_once_at_the_stop_and_the_wait_runs_from_it() -> None:
    stop, clock = threading.Event(), _Clock()
    closed: list[float] = []
    after = AfterFrames(stop, lambda: 1, 6.0, lambda: closed.append(clock.now), clock=clock)
    assert not after.is_set() and closed == []
    clock.now += 60  # long running before the stop: no wait counted
    stop.set()
    assert not after.is_set()
    clock.now += 5.9
    assert not after.is_set()
    clock.now += 0.1
    assert after.is_set()
    assert closed == [160.0]  # (once, when the stop was first seen)


def test_the_wait_is_the_clips_after_half_and_a_grace() -> None:
    camera = {"id": "cam-01", "url": "rtsp://cam-01/stream"}
    site = parse_site_config({"site": "s", "node": "n", "cameras": [camera]})
    assert after_frames_wait_s(site) == pytest.approx(4.0 + 2.0)  # the defaults


def test_a_cameras_enforcement_a_push_replaces_after_the_stop_looks_for_no_violation(
    tmp_path: Path,
) -> None:
    """The stop closes the cameras; a push taking effect in the frames after it (their
    enforcement replaced at the camera's next frame) leaves them closed."""
    import yaml

    from roadwatch.demo.scene import CAMERA_ID
    from tests.unit.test_edge_traffic_restart import push, site_file, start

    node = start(site_file(tmp_path))
    try:
        assert not node.enforcement[CAMERA_ID].closing
        document = yaml.safe_load((tmp_path / "cam.scene.yaml").read_text())
        document["lanes"] = document["lanes"][:2]
        (tmp_path / "two-lanes.scene.yaml").write_text(yaml.safe_dump(document))
        push(node, tmp_path / "two-lanes.scene.yaml")
        before = node.enforcement[CAMERA_ID]
        node._close_cameras()
        node._switch(CAMERA_ID)  # (as at the camera's next frame)
        assert node.enforcement[CAMERA_ID] is not before
        assert node.enforcement[CAMERA_ID].closing
    finally:
        assert node.delivery is not None
        node.delivery.stop()
