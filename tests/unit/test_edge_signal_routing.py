"""A signal controller's messages reach the enforcement of their camera at its next frame;
one stamped ahead of the node's clock, or for a camera or head the node does not have, is
refused and said so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import parse_site_config
from edge.detections import Detections
from edge.enforcement import CameraEnforcement
from edge.evidence.package import EvidenceBuilder
from edge.evidence.ring import FrameRing
from edge.node import SIGNAL_AHEAD_S, EdgeNode
from edge.pipeline import TrackedFrame
from edge.rules.base import TrackMemory
from edge.rules.scene import SceneConfig, SignalHead, load_scene
from edge.sources import Frame
from roadwatch.contract import LampColour, SignalPhase, ViolationType

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class Camera:
    """Stands in for a camera's enforcement: records what it is told, and when."""

    def __init__(self, heads: set[str]) -> None:
        self.heads = heads
        self.told: list[SignalPhase] = []
        self.log: list[str] = []

    def on_controller(self, message: SignalPhase, t: float) -> str | None:
        self.log.append("signal")
        if message.head not in self.heads:
            return "no such signal head in the camera's scene"
        self.told.append(message)
        return None

    def on_frame(self, **_: Any) -> tuple[list[Any], list[Any]]:
        self.log.append("frame")
        return [], []


def node_with(cameras: dict[str, Camera]) -> EdgeNode:
    config = parse_site_config(
        {"site": "s", "node": "n", "cameras": [{"id": c, "url": "x.mp4"} for c in cameras]}
    )
    return EdgeNode(config, cameras, None)  # type: ignore[arg-type]


def phase(camera: str = "cam-a", head: str = "main", sent: timedelta = timedelta()) -> SignalPhase:
    at = NOW + sent
    return SignalPhase(site="s", node="n", camera=camera, head=head, phase=LampColour.RED,
                       changed_at=at - timedelta(seconds=5), sent_at=at)  # fmt: skip


def frame_of(node: EdgeNode, camera: str) -> None:
    pixels = np.zeros((4, 4, 3), np.uint8)
    node.on_tracked(TrackedFrame(Frame(camera, 0, 0.0, NOW, pixels), Detections.empty()))


def test_a_message_reaches_its_camera_before_that_cameras_next_frame() -> None:
    a, b = Camera({"main"}), Camera({"main"})
    node = node_with({"cam-a": a, "cam-b": b})
    node.on_signal(phase(), now=NOW)
    assert a.told == []  # (from the publisher's thread: taken on the pipeline's)
    frame_of(node, "cam-b")
    assert [m.camera for m in a.told] == ["cam-a"] and b.told == []
    assert a.log == ["signal"]  # (any camera's frame takes it: before cam-a's next)


@pytest.mark.parametrize(
    ("ahead_s", "taken"),
    [(0.0, True), (-60.0, True), (SIGNAL_AHEAD_S, True), (SIGNAL_AHEAD_S + 0.5, False)],
    ids=["now", "a minute old", "just within the clocks' drift", "ahead of the node's clock"],
)
def test_a_message_stamped_ahead_of_the_nodes_clock_is_refused(
    ahead_s: float, taken: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """It would stand as fresh, and the controller's next messages as older, until the
    node's clock caught up with it."""
    a = Camera({"main"})
    node = node_with({"cam-a": a})
    node.on_signal(phase(sent=timedelta(seconds=ahead_s)), now=NOW)
    frame_of(node, "cam-a")
    assert bool(a.told) == taken
    assert ("ahead of this node's clock" in caplog.text) == (not taken)


def test_messages_for_a_head_or_camera_the_node_lacks_are_ignored_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = Camera({"main"})
    node = node_with({"cam-a": a})
    for _ in range(3):
        node.on_signal(phase(head="left"), now=NOW)
        node.on_signal(phase(camera="cam-z"), now=NOW)
        frame_of(node, "cam-a")
    assert a.told == []
    said = [r.getMessage() for r in caplog.records if "signal messages for" in r.getMessage()]
    assert len(said) == 2, said
    assert "camera cam-a, head left: no such signal head in the camera's scene" in said[0]
    assert "camera cam-z, head main: no camera of that id is enforced" in said[1]


HANOI = load_scene(Path(__file__).resolve().parents[2] / "tests" / "data"
                   / "rules_vn_redlight_16h30.scene.yaml")  # fmt: skip


def enforcement(scene: SceneConfig) -> CameraEnforcement:
    return CameraEnforcement(
        site="s", node="n", camera=scene.camera, scene=scene, projector=None,
        ring=FrameRing(scene.camera, seconds=2, max_bytes=1 << 24),
        builder=EvidenceBuilder(Ed25519PrivateKey.generate()), model_version="m@1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lamps_after", "kept"),
    [("same", True), ("none", False), ("moved", False)],
    ids=["lamps unchanged", "lamps taken away", "lamps redrawn elsewhere"],
)
def test_a_pushed_scene_keeps_a_heads_signal_state_only_while_its_lamps_stay(
    lamps_after: str, kept: bool
) -> None:
    """A head whose lamps were taken away must not keep a red read from them (nor one
    given lamps wait for the controller): it starts afresh."""
    [head] = HANOI.signal_heads
    new_head = {
        "same": head,
        "none": SignalHead(id="main"),
        "moved": head.model_copy(update={"red": (500, 185, 510, 195)}),
    }[lamps_after]
    old = enforcement(HANOI)
    new = enforcement(HANOI.model_copy(update={"signal_heads": [new_head]}))
    new.take_over(old)
    assert (new.signals["main"] is old.signals["main"]) is kept


def test_a_pushed_scene_keeps_which_tracks_each_rule_has_fined() -> None:
    """Its rules start afresh on the new scene but for that: a vehicle fined before the
    push, still in view, is not fined again for the same act."""
    old = enforcement(HANOI)
    new = enforcement(HANOI.model_copy(update={"version": "pushed"}))
    [rule] = [r for r in old.rules.rules if r.rule is ViolationType.RED_LIGHT]
    memory = rule._tracks[7] = TrackMemory(rule.new_state(), 0.0)
    memory.fired = True
    new.take_over(old)
    [after] = [r for r in new.rules.rules if r.rule is ViolationType.RED_LIGHT]
    assert after is not rule and after._tracks[7].fired


def test_a_camera_says_when_a_head_only_the_controller_reports_has_gone_silent() -> None:
    """Up, but red light is not enforced at that head's stop lines: the camera's health
    says so (the IOC reads it) until a fresh message comes."""
    scene = HANOI.model_copy(update={"signal_heads": [SignalHead(id="main")]})
    camera = enforcement(scene)
    size = scene.image_size
    pixels = np.zeros((size.height, size.width, 3), np.uint8)

    def frame_at(seconds: float) -> str | None:
        at = NOW + timedelta(seconds=seconds)
        camera.on_frame(index=int(seconds * 10), mono_s=seconds, captured_at=at,
                        frame=Frame(scene.camera, 0, seconds, at, pixels),
                        tracks=Detections.empty())  # fmt: skip
        return camera.health_note()

    assert camera.health_note() is None  # (no frame yet)
    assert "no fresh signal controller message for head main" in (frame_at(0.0) or "")
    message = phase(camera=scene.camera).model_copy(update={"sent_at": NOW})
    assert camera.on_controller(message, NOW.timestamp()) is None
    stale = message.model_copy(update={"sent_at": NOW - timedelta(seconds=4)})
    assert "the controller's clock or a late delivery" in (
        camera.on_controller(stale, NOW.timestamp()) or ""
    )
    assert frame_at(1.0) is None
    assert frame_at(3.0) is None  # (3 s old: fresh)
    assert "red light is not enforced" in (frame_at(3.5) or "")
