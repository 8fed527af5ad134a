"""Lens calibration against checkerboards rendered through a known, distorting camera."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.lens import LensModel, calibrate_lens

TRUE_LENS = LensModel(
    camera_matrix=np.array([[520.0, 0, 322.0], [0, 520.0, 238.0], [0, 0, 1]]),
    dist_coeffs=np.array([-0.30, 0.10, 0.0008, -0.0005, 0.0]),
    image_size=(640, 480),
)
PATTERN = (8, 6)  # inner corners
SQUARE_M = 0.04
SUPERSAMPLE = 2


def render_checkerboard(
    lens: LensModel, rvec: tuple[float, float, float], centre_m: tuple[float, float, float]
) -> np.ndarray:
    """What ``lens`` sees of a checkerboard turned by ``rvec`` with its centre at ``centre_m``."""
    w, h = lens.image_size
    s = SUPERSAMPLE
    us, vs = np.meshgrid((np.arange(w * s) + 0.5) / s - 0.5, (np.arange(h * s) + 0.5) / s - 0.5)
    pixels = np.column_stack([us.ravel(), vs.ravel()]).astype(np.float64)
    rays = cv2.undistortPoints(pixels.reshape(-1, 1, 2), lens.camera_matrix, lens.dist_coeffs)
    rays = rays.reshape(-1, 2)
    rotation, _ = cv2.Rodrigues(np.array(rvec, dtype=np.float64))
    cols, rows = PATTERN
    centre = np.array([(cols - 1) * SQUARE_M / 2, (rows - 1) * SQUARE_M / 2, 0.0])
    t = np.array(centre_m) - rotation @ centre
    plane = np.column_stack([rotation[:, 0], rotation[:, 1], t])
    board = np.column_stack([rays, np.ones(len(rays))]) @ np.linalg.inv(plane).T
    bx, by = board[:, 0] / board[:, 2], board[:, 1] / board[:, 2]
    i, j = np.floor(bx / SQUARE_M), np.floor(by / SQUARE_M)
    on_board = (i >= -1) & (i <= cols - 1) & (j >= -1) & (j <= rows - 1)
    margin = (i >= -2) & (i <= cols) & (j >= -2) & (j <= rows)
    value = np.full(len(rays), 90.0)
    value[margin] = 235.0
    value[on_board & ((i + j) % 2 == 0)] = 20.0
    image = value.reshape(h * s, w * s).astype(np.float32)
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0, 255).astype(np.uint8)


POSES = [
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.55)),
    ((0.35, 0.0, 0.0), (0.0, 0.0, 0.55)),
    ((0.0, 0.4, 0.1), (0.0, 0.0, 0.5)),
    ((0.25, 0.3, 0.2), (0.0, 0.0, 0.45)),
    ((0.2, -0.2, 0.1), (-0.15, -0.1, 0.5)),
    ((-0.2, 0.2, -0.1), (0.13, -0.09, 0.5)),
    ((0.2, 0.2, 0.0), (-0.15, 0.1, 0.5)),
    ((-0.2, -0.2, 0.2), (0.15, 0.1, 0.5)),
]


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    return [render_checkerboard(TRUE_LENS, rvec, c) for rvec, c in POSES]


def test_lens_calibration_recovers_the_known_camera(views: list[np.ndarray]) -> None:
    fit = calibrate_lens(views, PATTERN, SQUARE_M)
    assert fit.views_used == len(POSES)
    assert fit.rms_px < 0.3
    k = fit.lens.camera_matrix
    assert k[0, 0] == pytest.approx(520, rel=0.01)
    assert k[1, 1] == pytest.approx(520, rel=0.01)
    assert k[0, 2] == pytest.approx(322, abs=3)
    assert k[1, 2] == pytest.approx(238, abs=3)
    # What matters downstream: points are undistorted to where the true lens puts them.
    grid = np.array([[u, v] for u in range(20, 640, 60) for v in range(20, 480, 60)], float)
    error = np.hypot(*(fit.lens.undistort(grid) - TRUE_LENS.undistort(grid)).T)
    assert error.max() < 1.0
    assert np.median(error) < 0.3


def test_distort_undistort_round_trip() -> None:
    grid = np.array([[u, v] for u in range(40, 640, 80) for v in range(40, 480, 80)], float)
    back = TRUE_LENS.distort(TRUE_LENS.undistort(grid))
    assert np.abs(back - grid).max() < 0.05


def test_too_few_checkerboard_views_is_a_clear_error(views: list[np.ndarray]) -> None:
    blank = np.full((480, 640), 128, np.uint8)
    with pytest.raises(CalibrationError, match="found in 2 of 4 images; need at least 3"):
        calibrate_lens([views[0], views[1], blank, blank], PATTERN, SQUARE_M)


@pytest.mark.parametrize(
    ("matrix", "coeffs", "message"),
    [
        (np.zeros((3, 3)), np.zeros(5), "not invertible"),
        (np.diag([-500.0, 500.0, 1.0]), np.zeros(5), "focal lengths must be positive"),
        (np.diag([500.0, 500.0, 1.0]), np.zeros(3), "4, 5 or 8 coefficients"),
        (np.diag([500.0, 500.0, 1.0]), np.array([np.nan, 0, 0, 0, 0]), "must be finite"),
    ],
)
def test_bad_lens_values_are_refused(matrix: np.ndarray, coeffs: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        LensModel(camera_matrix=matrix, dist_coeffs=coeffs, image_size=(640, 480))


def _lens(fx: float = 520.0, fy: float = 520.0, coeffs: object = (0.0,) * 5) -> LensModel:
    return LensModel(
        camera_matrix=np.array([[fx, 0, 322.0], [0, fy, 238.0], [0, 0, 1]]),
        dist_coeffs=np.array(coeffs, dtype=np.float64),
        image_size=(640, 480),
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fx": -520.0}, "focal lengths must be positive"),
        ({"fy": -520.0}, "focal lengths must be positive"),
        ({"coeffs": (0.0,) * 3}, "expected 4, 5 or 8 coefficients"),
        ({"coeffs": (0.0,) * 6}, "expected 4, 5 or 8 coefficients"),
        ({"coeffs": (0.0,) * 9}, "expected 4, 5 or 8 coefficients"),
        ({"coeffs": [[0.0] * 5]}, "expected 4, 5 or 8 coefficients"),
        ({"coeffs": (0.0, float("nan"), 0.0, 0.0, 0.0)}, "must be finite"),
    ],
)
def test_a_lens_out_of_range_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        _lens(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [4, 5, 8])
def test_a_lens_takes_4_5_or_8_coefficients(n: int) -> None:
    lens = _lens(fx=0.5, fy=0.5, coeffs=(0.0,) * n)  # (a short focal length is still one)
    assert len(lens.dist_coeffs) == n
