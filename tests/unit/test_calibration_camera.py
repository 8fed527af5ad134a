"""The pinhole camera behind generated scenes, pinned against geometry worked by hand.

Scenes and their truth both come from this model, so an error in it (a mirrored pan, a
flipped image) would agree with itself everywhere else; these cases do not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from calibration.camera import PinholeCamera
from calibration.errors import CalibrationError
from calibration.homography import apply_homography

BASE: dict[str, Any] = {
    "height_m": 8.0,
    "tilt_deg": 15.0,
    "focal_px": 1000.0,
    "width": 1280,
    "height": 720,
}


def camera(**changes: float) -> PinholeCamera:
    return PinholeCamera(**{**BASE, **changes})


def axis_on_road(cam: PinholeCamera) -> np.ndarray:
    """Where the optical axis meets the road: h / tan(tilt) out, turned by the pan."""
    ahead = cam.height_m / math.tan(math.radians(cam.tilt_deg))
    pan = math.radians(cam.pan_deg)
    return np.array([cam.offset_m + ahead * math.sin(pan), ahead * math.cos(pan)])


@pytest.mark.parametrize(
    "changes",
    [
        {"height_m": 0.5},
        {"height_m": 100.0},
        {"tilt_deg": 1.0},
        {"tilt_deg": 89.0},
        {"focal_px": 1e-3, "width": 1, "height": 1},
    ],
    ids=["lowest", "highest", "flattest", "steepest", "smallest"],
)
def test_a_camera_at_the_edges_of_its_ranges_is_taken(changes: dict[str, float]) -> None:
    camera(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"height_m": 0.49}, "camera height 0.49 m is outside 0.5-100 m"),
        ({"height_m": 100.01}, "camera height 100.01 m is outside"),
        ({"tilt_deg": 0.99}, "camera tilt 0.99 deg is outside 1-89 deg"),
        ({"tilt_deg": 89.01}, "camera tilt 89.01 deg is outside"),
        ({"focal_px": 0.0}, "focal length and image size must be positive"),
        ({"width": 0}, "focal length and image size must be positive"),
        ({"height": 0}, "focal length and image size must be positive"),
    ],
    ids=["too-low", "too-high", "too-flat", "too-steep", "no-focal", "no-width", "no-height"],
)
def test_a_camera_out_of_range_is_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        camera(**changes)


CAMERAS = {
    "straight": camera(),
    "panned-right": camera(pan_deg=10.0),
    "panned-left-and-offset": camera(pan_deg=-7.0, offset_m=-3.0),
    "steep": camera(tilt_deg=60.0, height_m=20.0),
}


@pytest.mark.parametrize("cam", CAMERAS.values(), ids=CAMERAS.keys())
def test_the_optical_axis_meets_the_road_at_the_image_centre(cam: PinholeCamera) -> None:
    point = axis_on_road(cam)[None]
    assert np.allclose(cam.project(point), [[cam.width / 2, cam.height / 2]], atol=1e-6)
    slant = cam.height_m / math.sin(math.radians(cam.tilt_deg))
    assert cam.depth(point) == pytest.approx([slant])
    assert np.allclose(apply_homography(cam.image_to_world, cam.project(point)), point)


@pytest.mark.parametrize("cam", CAMERAS.values(), ids=CAMERAS.keys())
def test_right_is_right_and_farther_is_higher_in_the_image(cam: PinholeCamera) -> None:
    # Offsets along the camera's own right and forward directions on the road.
    pan = math.radians(cam.pan_deg)
    right = np.array([math.cos(pan), -math.sin(pan)])
    forward = np.array([math.sin(pan), math.cos(pan)])
    centre = axis_on_road(cam)
    (cu, cv), (ru, rv), (fu, fv) = cam.project(
        np.array([centre, centre + 2.0 * right, centre + 10.0 * forward])
    )
    assert ru > cu + 10 and rv == pytest.approx(cv, abs=1e-6)
    assert fv < cv - 10 and fu == pytest.approx(cu, abs=1e-6)
    assert cam.depth(np.array([centre + 10.0 * forward]))[0] > cam.depth(centre[None])[0]


@pytest.mark.parametrize(
    ("world", "pixel"),
    [
        # Straight camera, 8 m up, 15 deg down, f = 1000 px: worked by hand.
        ((0.0, 8.0 / math.tan(math.radians(15.0))), (640.0, 360.0)),
        (
            (0.0, 8.0 / math.tan(math.radians(30.0))),
            (640.0, 360.0 + 1000 * math.tan(math.radians(15))),
        ),
        (
            (0.0, 8.0 / math.tan(math.radians(5.0))),
            (640.0, 360.0 - 1000 * math.tan(math.radians(10))),
        ),
    ],
    ids=["on-the-axis", "15-deg-below-it", "10-deg-above-it"],
)
def test_points_ahead_land_where_their_angle_below_the_horizon_puts_them(
    world: tuple[float, float], pixel: tuple[float, float]
) -> None:
    assert np.allclose(camera().project(np.array([world])), [pixel], atol=1e-6)


def test_the_camera_stands_at_its_offset() -> None:
    # Straight down the road from the camera's foot lies the image's vertical centre line.
    for offset in (-3.0, 0.0, 2.5):
        cam = camera(offset_m=offset)
        u = cam.project(np.array([[offset, 20.0], [offset, 60.0]]))[:, 0]
        assert np.allclose(u, cam.width / 2, atol=1e-6)


@pytest.mark.parametrize("cam", CAMERAS.values(), ids=CAMERAS.keys())
def test_3d_points_on_the_road_project_as_road_points_and_raised_ones_higher(
    cam: PinholeCamera,
) -> None:
    road = np.array([[1.0, 20.0], [-2.0, 35.0], [3.0, 60.0]])
    on_road = cam.project_3d(np.column_stack([road, np.zeros(3)]))
    assert np.allclose(on_road, cam.project(road), atol=1e-6)
    raised = cam.project_3d(np.column_stack([road, np.full(3, 1.5)]))
    assert (raised[:, 1] < on_road[:, 1]).all()


@pytest.mark.parametrize("cam", CAMERAS.values(), ids=CAMERAS.keys())
def test_points_behind_the_camera_have_no_pixel(cam: PinholeCamera) -> None:
    behind = np.array([[0.0, -100.0]])
    assert np.isnan(cam.project(behind)).all()
    assert np.isnan(cam.project_3d(np.array([[0.0, -100.0, 0.0], [0.0, 0.0, 50.0]]))).all()
    assert cam.depth(behind)[0] < 0
