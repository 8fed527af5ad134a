"""A row that continues its track from a low-score box is tracked (the rules see the
vehicle there) but is no speed sample: its box is less sure, and a speed measured from
it is evidence for a fine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from calibration.scenes import LANES
from calibration.speed_eval import survey_calibration
from edge.detections import Detections, ObjectClass
from edge.enforcement import CameraEnforcement
from edge.evidence.package import EvidenceBuilder
from edge.evidence.ring import FrameRing
from edge.rules.scene import load_scene
from edge.sources import Frame
from roadwatch.demo.scene import demo_camera, write_scene_file

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
FPS = 10.0


def _sampled_times(tmp_path: Path, low_frames: range) -> list[float]:
    camera = demo_camera()
    write_scene_file(tmp_path / "scene.yaml", camera)
    scene = load_scene(tmp_path / "scene.yaml")
    enforcement = CameraEnforcement(
        site="ql13", node="node-01", camera=scene.camera, scene=scene,
        projector=survey_calibration(camera, 3, NOW),
        ring=FrameRing(scene.camera, seconds=12, max_bytes=1 << 26),
        builder=EvidenceBuilder(Ed25519PrivateKey.generate()), model_version="m@1",
    )  # fmt: skip
    picture = np.zeros((camera.height, camera.width, 3), dtype=np.uint8)
    for f in range(16):
        t = f / FPS
        u, v = camera.project(np.array([[LANES[1], 30.0 + 1.5 * f]]))[0]  # 54 km/h away
        low = f in low_frames
        tracks = Detections(
            np.array([[u - 30, v - 40, u + 30, v]]),
            np.array([0.15 if low else 0.9]),
            np.array([int(ObjectClass.CAR)]),
            np.array([1]),
            np.array([low]),
        )
        at = NOW + timedelta(seconds=t)
        enforcement.on_frame(
            index=f, mono_s=t, captured_at=at, tracks=tracks,
            frame=Frame(scene.camera, f, t, at, picture),
        )  # fmt: skip
    start = NOW.timestamp()
    return [round(float(s) - start, 2) for s in enforcement._tracks[1].samples.rows[:, 0]]


@pytest.mark.parametrize("low_frames", [range(0), range(6, 11)])
def test_a_row_continued_from_a_low_box_is_no_speed_sample(
    tmp_path: Path, low_frames: range
) -> None:
    times = _sampled_times(tmp_path, low_frames)
    every = [round(f / FPS, 2) for f in range(16)]
    assert times == [t for f, t in enumerate(every) if f not in low_frames][-len(times) :]
    assert len(times) >= 16 - len(low_frames) - 2  # (the window keeps the last seconds)
