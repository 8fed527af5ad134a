"""The red-light rule on the real Hanoi clip through the real detector and tracker."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.config import parse_site_config
from edge.detections import Detections
from edge.node import EdgeNode
from edge.pipeline import TrackedFrame
from edge.red_light_eval import run_red_light
from edge.rules.scene import load_scene
from edge.rules.signal import lamp_region
from edge.sources import Frame
from edge.tracking import Tracker
from roadwatch.contract import (
    EvidenceRole,
    LampColour,
    SignalPhase,
    ViolationEvent,
    ViolationType,
    parse_payload,
)
from tests.edge_support import hanoi_clip, require_model, shared_detector
from tests.nvdec_standin import GpuArray

ROOT = Path(__file__).resolve().parents[2]
SCENE = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.scene.yaml"
LABELS = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.redlight.yaml"
PHASES = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.phases.yaml"
START = datetime(2026, 12, 5, 9, 44, 40, tzinfo=UTC)


@pytest.mark.slow
def test_red_light_on_the_hanoi_clip_against_hand_labels() -> None:
    clip = hanoi_clip()
    require_model("yolov8n-coco-dynamic")
    # Every labelled vehicle has gone on by frame 285 (green came at 255).
    run = run_red_light(clip, SCENE, LABELS, last_frame=285)
    score = run.score
    print(f"precision {score.precision:.3f} recall {score.recall:.3f}: {score}")
    assert run.frames == 286
    # Measured 14 of 15 labelled violators found, and 1 false alarm (a second track on
    # one rider); allow one more of each before failing.
    assert len(score.matches) >= 13
    assert len(score.false_alarms) <= 2
    assert all(m.frame_error <= 6 for m in score.matches)
    for text in run.explanations:
        assert text.startswith(("motorcycle crossed the stop line of lane 1", "car crossed"))
        assert "after red began at 16:44:47.498" in text


@dataclass
class NodeRun:
    node: EdgeNode
    events: list[ViolationEvent]
    on_gpu: list[GpuArray]
    fps: float


# Each frame's detections, the same for every run of the node on the clip: detected once.
_DETECTED: dict[int, Detections] = {}


def run_node(scene: Path, controller: Callable[[int, datetime], SignalPhase | None]) -> NodeRun:
    """The whole node on the Hanoi clip, its frames standing on the "GPU"; ``controller``
    may send a signal controller's message before each frame (its index and time)."""
    clip = hanoi_clip()
    camera = "vp4-ly-thuong-kiet"
    config = parse_site_config(
        {"site": "hanoi", "node": "n1", "plates": False, "integrity": {"enabled": False},
         "cameras": [{"id": camera, "url": str(clip), "scene": str(scene)}]}
    )  # fmt: skip
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco", violations_out=out)
    cap = cv2.VideoCapture(str(clip))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    tracker = Tracker(config.tracker, fps=fps)
    on_gpu: list[GpuArray] = []
    index = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        at = START + timedelta(seconds=index / fps)
        if (message := controller(index, at)) is not None:
            node.on_signal(message)
        if index not in _DETECTED:
            _DETECTED[index] = shared_detector().detect([image])[0]
        tracks = tracker.update(_DETECTED[index], index / fps)
        on_gpu.append(GpuArray(np.asarray(image, np.uint8)))
        frame = Frame(camera, index, index / fps, at, on_gpu[-1])
        node.on_tracked(TrackedFrame(frame, tracks), mono_s=index / fps, at=at)
        index += 1
    cap.release()
    node.finish()
    events = [parse_payload(ViolationEvent, line) for line in out.getvalue().splitlines()]
    return NodeRun(node, events, on_gpu, fps)


@pytest.fixture(scope="module")
def from_lamps() -> NodeRun:
    """The node on the clip, the phase read from the lamps in the picture."""
    return run_node(SCENE, lambda index, at: None)


def test_a_node_on_the_hanoi_clip_reads_the_lamps_and_files_red_light_cases(
    from_lamps: NodeRun,
) -> None:
    """The whole node (lamp check, rules, evidence) on the real clip: the lamp check
    copies only the signal head's rectangle to the host."""
    run = from_lamps
    red = [e for e in run.events if e.type is ViolationType.RED_LIGHT]
    # Measured: 14 red-light cases on the whole clip, 2026-12-07 (15 hand-labelled
    # violators in the first 285 frames); every case shows the signal head.
    assert len(red) >= 12, [e.explanation for e in run.events]
    assert all(EvidenceRole.LAMP_CROP in {r.role for r in e.evidence} for e in red)
    assert all("(signal controller)" not in e.explanation for e in red)
    assert run.node.packages == run.node.violations
    head = load_scene(SCENE).signal_heads[0]
    x0, y0, x1, y1 = lamp_region(head)
    lamps_bytes = (x1 - x0) * (y1 - y0) * 3
    # The JPEG ring takes each frame once; the lamp check only the head's rectangle.
    frame_bytes = run.on_gpu[0].total_bytes_down - run.on_gpu[0].bytes_down
    assert frame_bytes == lamps_bytes
    assert all(a.copies_down == 1 for a in run.on_gpu)


def test_a_node_on_the_hanoi_clip_takes_the_phase_from_the_signal_controller(
    tmp_path: Path, from_lamps: NodeRun
) -> None:
    """The same clip with the signal head left out of the picture (no lamp rectangles):
    only the controller's messages, sent each second and at each change of the
    hand-labelled phases, say when red began, and the same cases are filed."""
    scene = yaml.safe_load(SCENE.read_text(encoding="utf-8"))
    scene["signal_heads"] = [{"id": "main"}]
    controller_only = tmp_path / "scene.yaml"
    controller_only.write_text(yaml.safe_dump(scene), encoding="utf-8")
    labels = yaml.safe_load(PHASES.read_text(encoding="utf-8"))["phases"]
    began: dict[int, LampColour] = {p["first_frame"]: LampColour(p["phase"]) for p in labels}
    changed_at = START

    def controller(index: int, at: datetime) -> SignalPhase | None:
        nonlocal changed_at
        if index in began:
            changed_at = at
        elif index % 5:  # (about every 0.8 s at the clip's 6 fps)
            return None
        phase = next(began[f] for f in sorted(began, reverse=True) if f <= index)
        return SignalPhase(site="hanoi", node="n1", camera="vp4-ly-thuong-kiet",
                           phase=phase, changed_at=changed_at, sent_at=at)  # fmt: skip

    run = run_node(controller_only, controller)
    red = [e for e in run.events if e.type is ViolationType.RED_LIGHT]
    assert len(red) >= 12, [e.explanation for e in run.events]
    # Red began at frame 3; the explanation gives the scene's local time (UTC+7).
    red_began = load_scene(SCENE).clock_text(START.timestamp() + 3 / run.fps)
    for event in red:
        assert f"after red began at {red_began} (signal controller)" in event.explanation
        assert EvidenceRole.LAMP_CROP not in {r.role for r in event.evidence}
    # The same vehicles as from the lamps (14 measured), and the same words.
    lamps = [e for e in from_lamps.events if e.type is ViolationType.RED_LIGHT]
    assert sorted(e.track_id for e in red) == sorted(e.track_id for e in lamps)
    told = [e.explanation.replace(" (signal controller)", "") for e in red]
    assert sorted(told) == sorted(e.explanation for e in lamps)
    assert run.on_gpu[0].total_bytes_down == run.on_gpu[0].bytes_down  # (no lamp to read)
