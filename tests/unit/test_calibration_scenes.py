"""The ground-truth scene generator: real imagery, exact truth, seeded and deterministic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.camera import PinholeCamera
from calibration.errors import CalibrationError
from calibration.scene_render import (
    SceneAssets,
    SceneRenderer,
    load_assets,
    read_truth,
    write_scene,
)
from calibration.scenes import Effects, SceneSpec, VehiclePath, standard_scenes
from tests.services import require_shared_file

CAMERA = PinholeCamera(height_m=8, tilt_deg=15, focal_px=700, width=640, height=360)


@pytest.fixture(scope="module")
def assets() -> SceneAssets:
    clip = require_shared_file("kraten_cars.mp4")
    return load_assets(clip.parent, max_sprites=4)


def small_scene(crf: int | None = 23) -> SceneSpec:
    return SceneSpec(
        name="small",
        seed=11,
        camera=CAMERA,
        fps=25,
        frames=20,
        vehicles=(
            VehiclePath(vehicle_id=1, sprite=0, start_m=(-1.75, 15), velocity_kmh=(0, 72)),
            VehiclePath(
                vehicle_id=2, sprite=1, start_m=(1.75, 40), velocity_kmh=(0.5, -54), enter_s=0.2
            ),
        ),
        effects=Effects(blur_sigma_px=0.6, noise_sigma=2, gain_start=1.0, gain_end=0.85, crf=crf),
    )


def test_cut_outs_are_real_vehicles_of_plausible_width(assets: SceneAssets) -> None:
    assert len(assets.sprites) == 4
    for sprite in assets.sprites:
        assert 1.4 <= sprite.width_m <= 3.0
        assert sprite.alpha.shape == sprite.image.shape[:2]
        assert 0.5 < float((sprite.alpha > 0.5).mean()) <= 1.0
        assert "kraten_cars.mp4 frame" in sprite.source


def test_scene_video_and_truth_are_deterministic_and_exact(
    tmp_path: Path, assets: SceneAssets
) -> None:
    spec = small_scene()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_scene(spec, assets, tmp_path / "a")
    second = write_scene(spec, assets, tmp_path / "b")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first.video, second.video)]
    assert digest[0] == digest[1]
    assert first.truth.read_bytes() == second.truth.read_bytes()

    truth = read_truth(first.truth)
    assert len(truth.frames) == 20
    camera = truth.camera.camera()
    speeds = {v.vehicle_id: v.speed_kmh for v in truth.vehicles}
    assert speeds[1] == pytest.approx(72)
    assert speeds[2] == pytest.approx(np.hypot(0.5, 54))
    track: dict[int, list[tuple[float, tuple[float, float]]]] = {1: [], 2: []}
    for frame in truth.frames:
        for box in frame.boxes:
            assert np.allclose(camera.project(np.array([box.world_m]))[0], box.contact_px)
            assert box.xyxy[3] == pytest.approx(min(box.contact_px[1], 360))
            track[box.vehicle_id].append((frame.t, box.world_m))
    for vehicle_id, samples in track.items():
        assert len(samples) >= 10
        (t0, p0), (t1, p1) = samples[0], samples[-1]
        assert np.hypot(p1[0] - p0[0], p1[1] - p0[1]) / (t1 - t0) * 3.6 == pytest.approx(
            speeds[vehicle_id]
        )

    capture = cv2.VideoCapture(str(first.video))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 640
    capture.release()
    assert decoded == 20


def test_lossless_video_holds_the_rendered_frames(tmp_path: Path, assets: SceneAssets) -> None:
    spec = small_scene(crf=None)
    paths = write_scene(spec, assets, tmp_path)
    rendered, truth = SceneRenderer(spec, assets).render(12)
    capture = cv2.VideoCapture(str(paths.video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 12)
    ok, decoded = capture.read()
    capture.release()
    assert ok
    assert float(np.abs(decoded.astype(int) - rendered.astype(int)).mean()) < 1.5
    # The vehicle is really there: its box differs from the empty road.
    empty = SceneRenderer(SceneSpec("empty", 11, CAMERA, 25, 20, ()), assets).render(12)[0]
    x1, y1, x2, y2 = (round(v) for v in truth.boxes[0].xyxy)
    assert float(np.abs(rendered[y1:y2, x1:x2].astype(int) - empty[y1:y2, x1:x2]).mean()) > 15


def test_standard_set_is_seeded_and_spans_the_speed_range() -> None:
    first, again, other = standard_scenes(seed=1), standard_scenes(seed=1), standard_scenes(seed=2)
    assert first == again
    assert first != other
    speeds = [v.speed_kmh for s in first for v in s.vehicles]
    assert min(speeds) >= 30 and max(speeds) <= 131
    assert max(speeds) - min(speeds) > 60
    assert len({s.camera.height_m for s in first}) >= 3
    assert any(v.velocity_kmh[1] < 0 for s in first for v in s.vehicles)


def test_unknown_sprite_and_duplicate_ids_are_refused(assets: SceneAssets) -> None:
    path = VehiclePath(vehicle_id=1, sprite=9, start_m=(0, 20), velocity_kmh=(0, 50))
    with pytest.raises(CalibrationError, match="uses sprite 9, only 4 loaded"):
        SceneRenderer(SceneSpec("s", 1, CAMERA, 25, 5, (path,)), assets)
    with pytest.raises(CalibrationError, match="vehicle ids must be unique"):
        SceneSpec("s", 1, CAMERA, 25, 5, (path, path))
