"""A camera's resolution and its integrity guard: a reference view of another size is
refused at the start, and a pushed scene of another size starts the guard afresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import load_site_config
from edge.detections import Detections
from edge.enforcement import CameraEnforcement
from edge.evidence.package import EvidenceBuilder
from edge.evidence.ring import FrameRing
from edge.integrity import IntegrityGuard, ReferenceView
from edge.node import read_camera_files
from edge.rules.scene import SceneConfig, load_scene
from edge.sources import Frame
from roadwatch.errors import UserError
from tests.media import read_frames

REPO = Path(__file__).resolve().parents[2]
SCENE = REPO / "tests" / "data" / "rules_vn_redlight_16h30.scene.yaml"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_a_reference_view_of_another_size_is_refused_at_the_start(tmp_path: Path) -> None:
    frame = read_frames("vn_redlight_16h30.mp4", [0])[0]
    cv2.imwrite(str(tmp_path / "ref.jpg"), cv2.resize(frame, (1280, 960)))
    site = tmp_path / "site.yaml"
    camera = {"id": load_scene(SCENE).camera, "url": "clip.mp4", "scene": str(SCENE)}
    site.write_text(
        yaml.safe_dump(
            {
                "site": "ql13",
                "node": "node-01",
                "cameras": [{**camera, "reference_view": "ref.jpg"}],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(UserError, match=r"ref\.jpg: the reference view is 1280x960, .* 640x480"):
        read_camera_files(load_site_config(site), NOW)


def _enforcement(scene: SceneConfig, guard: IntegrityGuard | None) -> CameraEnforcement:
    return CameraEnforcement(
        site="ql13", node="node-01", camera=scene.camera, scene=scene, projector=None,
        ring=FrameRing(scene.camera, seconds=12, max_bytes=1 << 26),
        builder=EvidenceBuilder(Ed25519PrivateKey.generate()), model_version="m@1",
        guard=guard,
    )  # fmt: skip


def test_a_pushed_scene_of_another_size_starts_the_guard_afresh() -> None:
    old_scene = load_scene(SCENE)
    size = old_scene.image_size.model_copy(update={"width": 1280, "height": 960})
    new_scene = old_scene.model_copy(update={"image_size": size})
    frame = read_frames("vn_redlight_16h30.mp4", [0])[0]
    old = _enforcement(old_scene, IntegrityGuard(ReferenceView.from_frame(frame)))
    old.on_frame(
        index=0, mono_s=0.0, captured_at=NOW, tracks=Detections.empty(),
        frame=Frame(old_scene.camera, 0, 0.0, NOW, frame),
    )  # fmt: skip
    new = _enforcement(new_scene, None)
    new.take_over(old)
    later = NOW + timedelta(seconds=10)
    big = cv2.resize(frame, (1280, 960))
    new.on_frame(  # (it raised: the old guard's reference is 640x480)
        index=1, mono_s=10.0, captured_at=later, tracks=Detections.empty(),
        frame=Frame(new_scene.camera, 1, 10.0, later, big),
    )  # fmt: skip
    assert new.guard is not old.guard
