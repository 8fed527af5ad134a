from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.camera import PinholeCamera
from calibration.errors import CalibrationError
from calibration.homography import (
    MAX_POINTS,
    PointPair,
    apply_homography,
    as_points,
    check_general_position,
    check_homography,
    fit_homography,
    homography_jacobian,
)

CAMERAS = [
    PinholeCamera(height_m=6, tilt_deg=12, focal_px=1000, width=1920, height=1080),
    PinholeCamera(height_m=10, tilt_deg=25, focal_px=1400, width=1920, height=1080, pan_deg=8),
    PinholeCamera(height_m=4, tilt_deg=8, focal_px=700, width=1280, height=720, offset_m=-2),
]
# Lane-dash ends on a 3.5 m lane grid, 15-55 m out, as a surveyor would pick them.
ROAD = np.array(
    [[x, y] for x in (-3.5, 0.0, 3.5) for y in (15.0, 25.0, 40.0, 55.0)], dtype=np.float64
)


def _pairs(camera: PinholeCamera, world: np.ndarray, noise_px: float = 0.0) -> list[PointPair]:
    rng = np.random.default_rng(7)
    pixels = camera.project(world) + rng.normal(0, noise_px, (len(world), 2))
    return [
        PointPair(pixel=(float(u), float(v)), world=(float(x), float(y)), name=f"m{i}")
        for i, ((u, v), (x, y)) in enumerate(zip(pixels, world, strict=True))
    ]


@pytest.mark.parametrize("camera", CAMERAS)
def test_exact_points_recover_the_camera_homography(camera: PinholeCamera) -> None:
    fit = fit_homography(_pairs(camera, ROAD))
    assert fit.rms_px < 1e-3
    assert fit.rms_m < 1e-3
    probe = np.array([[1.0, 20.0], [-5.0, 70.0], [6.0, 12.0]])
    pixels = camera.project(probe)
    assert np.allclose(apply_homography(fit.image_to_world, pixels), probe, atol=1e-3)


@pytest.mark.parametrize(("noise_px", "max_rms_px"), [(0.3, 0.5), (0.6, 1.0), (1.0, 1.6)])
def test_noisy_clicks_give_an_rms_of_the_noise_size(noise_px: float, max_rms_px: float) -> None:
    fit = fit_homography(_pairs(CAMERAS[0], ROAD, noise_px))
    assert noise_px * 0.3 < fit.rms_px < max_rms_px
    assert fit.inliers == len(ROAD)
    assert all(r.error_m > 0 for r in fit.residuals)


def test_ransac_drops_a_misclicked_point_and_reports_its_error() -> None:
    pairs = _pairs(CAMERAS[1], ROAD)
    bad = pairs[5]
    pairs[5] = PointPair(pixel=(bad.pixel[0] + 40, bad.pixel[1] - 25), world=bad.world, name="x")
    fit = fit_homography(pairs)
    assert fit.inliers == len(ROAD) - 1
    outlier = fit.residuals[5]
    assert not outlier.inlier
    assert outlier.error_px == pytest.approx(math.hypot(40, 25), rel=0.05)
    assert fit.rms_px < 1e-3  # RMS is over the inliers


def test_jacobian_matches_finite_differences() -> None:
    h = CAMERAS[0].image_to_world
    pixel = (700.0, 800.0)
    jac = homography_jacobian(h, pixel)
    eps = 1e-3
    for axis in range(2):
        step = np.array(pixel)
        step[axis] += eps
        back = np.array(pixel)
        back[axis] -= eps
        diff = (apply_homography(h, step[None]) - apply_homography(h, back[None]))[0] / (2 * eps)
        assert np.allclose(jac[:, axis], diff, rtol=1e-5)


def _square(extra: list[tuple[tuple[float, float], tuple[float, float]]]) -> list[PointPair]:
    base = [
        ((100, 500), (0, 0)),
        ((500, 500), (4, 0)),
        ((450, 200), (4, 30)),
        ((150, 200), (0, 30)),
    ]
    return [PointPair(pixel=p, world=w) for p, w in base + extra]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (_square([])[:3], "need at least 4 points, got 3"),
        (
            [PointPair(pixel=(10.0 * i, 20.0 * i), world=(i, 2.0 * i)) for i in range(1, 6)],
            "all points lie on one line",
        ),
        (
            [
                *_square([])[:3],
                PointPair(pixel=(100, 500), world=(0, 0)),
            ],
            "points 1 and 4 are duplicates",
        ),
        (
            [
                PointPair(pixel=(0, 0), world=(0, 0)),
                PointPair(pixel=(100, 0), world=(1, 0)),
                PointPair(pixel=(200, 0), world=(2, 0)),
                PointPair(pixel=(100, 100), world=(1, 1)),
            ],
            "no four points without three on one line",
        ),
        (_square([((float("nan"), 3.0), (1.0, 1.0))]), "point 5 is not a finite number"),
        (_square([((300.0, 300.0), (1.0, float("inf")))]), "point 5 is not a finite number"),
    ],
)
def test_degenerate_point_sets_are_refused_with_a_clear_error(
    pairs: list[PointPair], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit_homography(pairs)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.zeros((3, 3)), "not invertible"),
        (np.array([[1.0, 2, 3], [2, 4, 6], [0, 0, 1]]), "not invertible"),
        (np.array([[1.0, 0, 0], [0, np.nan, 0], [0, 0, 1]]), "NaN"),
        (np.eye(2), "expected a 3x3 matrix"),
    ],
)
def test_bad_matrices_are_refused(matrix: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        check_homography(matrix)


def test_pixels_above_the_horizon_have_no_road_position() -> None:
    camera = CAMERAS[0]
    sky = np.array([[960.0, 10.0]])
    assert np.isnan(apply_homography(camera.image_to_world, sky)).all()
    with pytest.raises(CalibrationError, match="horizon"):
        homography_jacobian(camera.image_to_world, (960.0, 10.0))


def _circle(n: int) -> list[tuple[float, float]]:
    """n points on a circle of radius 500: no three on one line."""
    angles = np.arange(n) * 2 * np.pi / n
    return [(500 * float(np.cos(a)), 500 * float(np.sin(a))) for a in angles]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (_circle(MAX_POINTS + 1), f"at most {MAX_POINTS} points, got {MAX_POINTS + 1}"),
        ([(5.0, 5.0)] * 4, "all points are the same point"),
        ([(0, 0), (1000, 0), (1000, 1000), (0.0005, 0.0)], "points 1 and 4 are duplicates"),
        ([(0, 0), (1000, 0), (500, 2), (250, -1)], "all points lie on one line"),
    ],
)
def test_point_sets_that_cannot_fix_a_homography_are_refused(
    points: list[tuple[float, float]], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        check_general_position(as_points(points, "road points"), "road points")


@pytest.mark.parametrize(
    "points",
    [
        _circle(MAX_POINTS),
        _circle(4),
        [(0, 0), (1000, 0), (1000, 1000), (0, 1000), (0.002, 1000)],  # 2 mm apart in 1 km
        [(0, 0), (1000, 0), (500, 60), (250, -60)],  # flat, but not a line
    ],
)
def test_point_sets_in_general_position_are_taken(points: list[tuple[float, float]]) -> None:
    check_general_position(as_points(points, "road points"), "road points")


@pytest.mark.parametrize("values", [[(1.0, 2.0, 3.0)] * 4, [1.0, 2.0], [[[1.0, 2.0]]]])
def test_points_must_be_pairs(values: object) -> None:
    with pytest.raises(CalibrationError, match="expected a list of \\(x, y\\) pairs"):
        as_points(values, "image points")  # type: ignore[arg-type]
