"""The speed evaluation end to end: generated scene -> edge detector and tracker -> speed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calibration.camera import PinholeCamera
from calibration.scene_render import ScenePaths, load_assets, write_scene
from calibration.scenes import Effects, SceneSpec, VehiclePath
from calibration.speed_eval import evaluate_scene
from edge.detections import Detections
from edge.detector import Detector, FrameDetections
from roadwatch.cli import main
from tests.edge_support import shared_detector
from tests.services import require_shared_file

SPEEDS = {1: 60.0, 2: 100.0}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> ScenePaths:
    clip = require_shared_file("kraten_cars.mp4")
    spec = SceneSpec(
        name="pipeline",
        seed=5,
        camera=PinholeCamera(height_m=8, tilt_deg=14, focal_px=1100, width=1280, height=720),
        fps=20,
        frames=48,
        vehicles=(
            VehiclePath(vehicle_id=1, sprite=1, start_m=(-1.75, 14), velocity_kmh=(0, SPEEDS[1])),
            VehiclePath(vehicle_id=2, sprite=3, start_m=(1.75, 70), velocity_kmh=(0, -SPEEDS[2])),
        ),
        effects=Effects(blur_sigma_px=0.6, noise_sigma=2.0, gain_end=0.9, crf=23),
    )
    folder = tmp_path_factory.mktemp("scene")
    return write_scene(spec, load_assets(clip.parent, max_sprites=4), folder)


def test_real_detector_and_tracker_measure_each_vehicle_within_its_interval(
    scene: ScenePaths,
) -> None:
    result = evaluate_scene(scene, shared_detector())
    assert result.detected_boxes / result.truth_boxes > 0.8  # detector recall on the scene
    assert {t.vehicle_id for t in result.tracks} == {1, 2}
    for track in result.tracks:
        assert track.true_kmh == pytest.approx(SPEEDS[track.vehicle_id], abs=0.01)
        assert abs(track.error_kmh) < 3.0
        assert track.estimate.contains(track.true_kmh)
        assert track.estimate.lower_kmh > 0.9 * track.true_kmh


class UnsureStretch:
    """The shared detector, except that on frames ``first`` to ``last`` every box is only a
    low one (its score brought under its class threshold): the detector's output on a
    stretch where the vehicles are seen less surely (dusk, rain, a passing shadow)."""

    def __init__(self, detector: Detector, first: int, last: int) -> None:
        self._detector, self._first, self._last = detector, first, last
        self.frame = 0

    def detect_for_tracking(self, frames: Sequence[Any]) -> list[FrameDetections]:
        out = []
        for found in self._detector.detect_for_tracking(frames):
            if self._first <= self.frame <= self._last:
                both = Detections.merge([found.confident, found.low])
                lowered = np.minimum(both.confidence, np.float32(0.2))
                found = FrameDetections(
                    Detections.empty(), Detections(both.xyxy, lowered, both.class_id)
                )
            out.append(found)
            self.frame += 1
        return out

    def detect(self, frames: Sequence[Any]) -> list[Any]:
        return [f.confident for f in self.detect_for_tracking(frames)]


def test_the_evaluation_tracks_as_the_node_does_low_boxes_continuing_tracks(
    scene: ScenePaths,
) -> None:
    """A stretch of frames (12) where each vehicle is seen by low boxes only: in the node
    they continue its track, which is measured from the frames where it was seen surely
    on both sides of the stretch (a low box's place is no speed sample). The evaluation
    fed its tracker the confident boxes alone, so each track broke at the stretch and
    only a piece of it was measured."""
    sure = evaluate_scene(scene, shared_detector())
    unsure = evaluate_scene(scene, UnsureStretch(shared_detector(), 20, 31))  # type: ignore[arg-type]
    assert unsure.detected_boxes < sure.detected_boxes  # recall: the confident boxes alone
    measured = {t.vehicle_id: t.estimate for t in sure.tracks}
    assert set(measured) == {1, 2}
    assert sorted(t.vehicle_id for t in unsure.tracks) == [1, 2]  # one track each
    assert {t.vehicle_id: t.estimate.samples for t in unsure.tracks} == {
        v: e.samples - 12 for v, e in measured.items()
    }
    for track in unsure.tracks:
        assert track.estimate.speed_kmh == pytest.approx(
            measured[track.vehicle_id].speed_kmh, abs=0.5
        )


def test_eval_speed_command_prints_the_json_summary(
    scene: ScenePaths, capsys: pytest.CaptureFixture[str]
) -> None:
    shared_detector()  # the models must be pulled (CI: fail when they are not)
    assert main(["eval", "speed", str(scene.video), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) >= {
        "mean_abs_error_kmh",
        "p95_abs_error_kmh",
        "interval_coverage",
        "scenes",
        "tracks",
    }
    assert summary["scenes"] == 1
    assert summary["tracks"] >= 2
    assert summary["interval_coverage"] == 1.0


def test_eval_speed_with_a_missing_scene_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared_detector()
    assert main(["eval", "speed", str(tmp_path / "nope.mp4")]) == 2
    assert "nope.mp4: scene file missing" in capsys.readouterr().err
