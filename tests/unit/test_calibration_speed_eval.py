"""The parts of the speed evaluation that need no detector."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.scenes import SceneSpec, standard_scenes
from calibration.speed import SpeedEstimate
from calibration.speed_eval import (
    SceneResult,
    SpeedReport,
    TrackResult,
    scene_paths,
    survey_calibration,
)

AT = datetime(2026, 11, 23, 8, tzinfo=UTC)


@pytest.mark.parametrize("spec", standard_scenes(count=4), ids=lambda s: s.name)
def test_surveyed_calibration_of_each_standard_camera_is_accurate_to_a_decimetre(
    spec: SceneSpec,
) -> None:
    projector = survey_calibration(spec.camera, spec.seed, AT)
    probe = np.array([[-1.75, 20.0], [1.75, 40.0], [5.25, 60.0]])
    error = np.hypot(*(projector.to_world(spec.camera.project(probe)) - probe).T)
    assert error.max() < 0.15  # clicks of 0.5 px, marks up to 60 m away
    assert 0 < projector.rms_m < 0.2


def _estimate(speed_kmh: float, half_width_kmh: float) -> SpeedEstimate:
    sigma = half_width_kmh / 1.96 / 3.6
    return SpeedEstimate(
        speed_mps=speed_kmh / 3.6,
        sigma_mps=sigma,
        z=1.96,
        sigma_calibration_mps=0.0,
        sigma_pixel_mps=sigma,
        sigma_jitter_mps=0.0,
        heading=(0.0, 1.0),
        window_s=2.0,
        distance_m=speed_kmh / 3.6 * 2,
        samples=40,
        inliers=40,
    )


def test_summary_reports_mean_p95_and_coverage() -> None:
    tracks = tuple(
        TrackResult("s", i, i, true, _estimate(true + err, 1.5))
        for i, (true, err) in enumerate([(50, 0.5), (80, -1.0), (120, 2.0), (60, 0.0)])
    )
    report = SpeedReport(
        scenes=(
            SceneResult(
                "s", tracks, vehicles=5, unmatched_tracks=1, truth_boxes=100, detected_boxes=90
            ),
        )
    )
    summary = report.summary()
    assert summary["mean_abs_error_kmh"] == pytest.approx(0.875)
    assert summary["p95_abs_error_kmh"] == pytest.approx(np.percentile([0.5, 1, 2, 0], 95))
    assert summary["interval_coverage"] == pytest.approx(0.75)  # the 2 km/h miss is outside
    assert summary["tracks"] == 4
    assert summary["vehicles_measured"] == 4
    assert summary["vehicles"] == 5
    assert summary["detector_recall"] == pytest.approx(0.9)


def test_scene_arguments_need_both_the_video_and_its_truth(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "a.truth.json").write_text("{}")
    (tmp_path / "b.mp4").write_bytes(b"x")
    assert scene_paths([tmp_path / "a.truth.json"])[0].video == tmp_path / "a.mp4"
    with pytest.raises(CalibrationError, match=r"b\.truth\.json: scene file missing"):
        scene_paths([tmp_path / "b.mp4"])
