"""A camera without a scene runs no rules: its calibration and reference view are not
used, and the node says so at the start, with what is wrong with the calibration."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration.speed_eval import surveyed_calibration
from calibration.store import save_calibration
from edge.config import SiteConfig, parse_site_config
from edge.node import read_camera_files
from roadwatch.demo.scene import demo_camera


def config(calibration: Path, **camera: object) -> SiteConfig:
    return parse_site_config(
        {
            "site": "test",
            "node": "node-01",
            "cameras": [{"id": "cam-01", "url": "/data/a.mp4", "calibration": str(calibration),
                         **camera}],
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("calibrated_for", "days_on", "problem"),
    [
        ("cam-01", 0, None),
        ("cam-02", 0, "calibration is for camera cam-02, not cam-01"),
        ("cam-01", 3650, "expired"),
    ],
)
def test_a_calibration_without_a_scene_is_said_unused_and_checked(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    calibrated_for: str,
    days_on: int,
    problem: str | None,
) -> None:
    now = datetime.now(UTC)
    path = tmp_path / "cam.calib.yaml"
    save_calibration(surveyed_calibration(demo_camera(), 3, now, camera_id=calibrated_for), path)
    with caplog.at_level(logging.WARNING, logger="edge.node"):
        files = read_camera_files(config(path), now + timedelta(days=days_on))
    assert files == {}  # (no scene: no rules)
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"camera cam-01 has a calibration ({path}) but no scene")
    if problem is None:
        assert "cannot be used" not in said
    else:
        assert "cannot be used as it is: " in said and problem in said


def test_a_missing_calibration_or_reference_view_without_a_scene_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.node"):
        read_camera_files(
            config(tmp_path / "gone.calib.yaml", reference_view="ref.jpg"),
            datetime.now(UTC),
        )
    first, second = (r.getMessage() for r in caplog.records)
    assert "gone.calib.yaml: cannot read" in first
    assert second.startswith("camera cam-01 has a reference view (ref.jpg) but no scene")


def test_a_disabled_camera_is_not_checked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.node"):
        read_camera_files(
            config(tmp_path / "gone.calib.yaml", enabled=False),
            datetime.now(UTC),
        )
    assert caplog.records == []
