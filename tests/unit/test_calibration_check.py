"""The check picture: what a person judges a calibration by must be drawn where it belongs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import numpy as np
import numpy.typing as npt
import pytest

from calibration.camera import PinholeCamera
from calibration.check import (
    GRID_1M,
    GRID_5M,
    INLIER,
    LANE,
    OUTLIER,
    GridExtent,
    _densify,
    _scale_for,
    check_picture,
)
from calibration.config import CalibrationFile, LaneLine, LensSpec, PointsFile, SurveyPoint
from calibration.lens import LensModel
from calibration.projector import RoadProjector, build_calibration

AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
# Spread out to the frame's lower corners, where the lens moves points by tens of pixels.
ROAD = [(x, y) for x in (-6.0, 0.0, 6.0) for y in (12.0, 18.0, 40.0)]
# One long straight kerb: through the lens it bends, away from its chord by over 10 px.
LANES = [LaneLine(name="kerb", points=[(-8.0, 10.0), (-8.0, 70.0)])]
Image = npt.NDArray[np.uint8]


def camera(width: int, height: int) -> PinholeCamera:
    return PinholeCamera(
        height_m=7, tilt_deg=14, focal_px=1100 * width / 1280, width=width, height=height
    )


def lens_for(cam: PinholeCamera) -> LensModel:
    return LensModel(
        camera_matrix=cam.intrinsics,
        dist_coeffs=np.array([-0.3, 0.08, 0.0, 0.0, 0.0]),
        image_size=(cam.width, cam.height),
    )


def calibrated(
    size: tuple[int, int] = (1280, 720), lens: str = "none", misclick: bool = False
) -> CalibrationFile:
    """A survey of ``ROAD`` seen by ``camera(size)``: lens "none", "undistort" or "on-file"."""
    cam = camera(*size)
    model = lens_for(cam)
    pixels = cam.project(np.array(ROAD))
    if lens == "undistort":
        pixels = model.distort(pixels)
    if misclick:
        pixels[4] += (0.0, 25.0 * size[0] / 1280)
    survey = PointsFile(
        camera="cam01",
        points=[
            SurveyPoint(name=f"m{i}", pixel=(float(u), float(v)), world=w)
            for i, ((u, v), w) in enumerate(zip(pixels, ROAD, strict=True))
        ],
        lanes=LANES,
        lens=None if lens == "none" else LensSpec.from_model(model),
        undistort=lens == "undistort",
    )
    calibration, _ = build_calibration(survey, size, "x", AT)
    return calibration


def picture(calibration: CalibrationFile, at: datetime = AT) -> Image:
    width, height = calibration.image_size
    return check_picture(calibration, np.zeros((height, width, 3), np.uint8), at)


def near(image: Image, centre: tuple[float, float], radius: int) -> Image:
    """The square of pixels within ``radius`` of ``centre`` (u, v)."""
    u, v = round(centre[0]), round(centre[1])
    return image[max(v - radius, 0) : v + radius + 1, max(u - radius, 0) : u + radius + 1]


def count(pixels: Image, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    diff = np.abs(pixels.astype(int) - np.array(colour)).max(axis=-1)
    return int((diff < tolerance).sum())


def to_picture(calibration: CalibrationFile, world: tuple[float, float]) -> tuple[float, float]:
    """Where a road point is in the picture: captured pixels times the drawing scale."""
    projector = RoadProjector.from_calibration(calibration, AT)
    u, v = projector.to_image(np.array([world]))[0] * _scale_for(calibration.image_size[0])
    return float(u), float(v)


@pytest.mark.parametrize(
    ("world", "extent"),
    [
        ([(-3.5, 18.0), (3.5, 45.0)], GridExtent(-10, 10, 10, 60)),
        ([(0.2, 5.0), (1.0, 6.0)], GridExtent(-5, 5, 0, 25)),
        ([(-12.0, 30.0), (-11.0, 31.0)], GridExtent(-20, -5, 25, 50)),
    ],
    ids=["lane-grid", "small-patch", "left-of-the-camera"],
)
def test_the_grid_covers_the_points_on_5_m_lines_with_room_ahead(
    world: list[tuple[float, float]], extent: GridExtent
) -> None:
    assert GridExtent.around(np.array(world)) == extent


@pytest.mark.parametrize(
    ("width", "scale"),
    [(320, 4), (640, 2), (900, 2), (1279, 2), (1280, 1), (1920, 1)],
    ids=["qvga", "vga", "900", "just-under-hd", "hd", "full-hd"],
)
def test_small_frames_are_drawn_larger(width: int, scale: int) -> None:
    assert _scale_for(width) == scale


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(0.0, 0.0), (0.0, 1.0)], [(0.0, 0.0), (0.0, 0.5), (0.0, 1.0)]),
        ([(0.0, 0.0), (0.0, 0.7)], [(0.0, 0.0), (0.0, 0.35), (0.0, 0.7)]),
        ([(1.0, 1.0), (1.0, 1.0)], [(1.0, 1.0), (1.0, 1.0)]),
        ([(0.0, 0.0), (0.3, 0.4), (0.3, 0.4)], [(0.0, 0.0), (0.3, 0.4), (0.3, 0.4)]),
    ],
    ids=["two-steps", "part-step-rounds-up", "one-point-twice", "ends-kept"],
)
def test_lane_lines_are_densified_to_half_metre_steps_through_their_points(
    points: list[tuple[float, float]], expected: list[tuple[float, float]]
) -> None:
    assert np.allclose(_densify(np.array(points)), expected)


CASES = {
    "no-lens": {},
    "undistorting-lens": {"lens": "undistort"},
    "lens-on-file-not-applied": {"lens": "on-file"},
    "small-frame-drawn-at-2x": {"size": (640, 360)},
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_point_is_drawn_where_it_was_clicked_with_its_reprojection_on_it(
    case: dict[str, object],
) -> None:
    calibration = calibrated(**case)  # type: ignore[arg-type]
    image = picture(calibration)
    scale = _scale_for(calibration.image_size[0])
    for point in calibration.points:
        clicked = (point.pixel[0] * scale, point.pixel[1] * scale)
        assert count(near(image, clicked, 7), INLIER) > 10, point.name
        # A reprojection off the click would draw a red line out of the circle.
        ring = near(image, clicked, 40).copy()
        ring[40 - 12 : 40 + 13, 40 - 12 : 40 + 13] = 0
        assert count(ring, OUTLIER) == 0, point.name


def test_a_dropped_point_is_drawn_red_and_a_kept_one_green() -> None:
    calibration = calibrated(misclick=True)
    assert calibration.inliers.count(False) == 1
    image = picture(calibration)
    for point, inlier in zip(calibration.points, calibration.inliers, strict=True):
        circle = near(image, point.pixel, 7)
        kept, dropped = count(circle, INLIER), count(circle, OUTLIER)
        assert (kept > 10 and dropped < kept) if inlier else (dropped > 10 and kept == 0)


@pytest.mark.parametrize(
    ("days", "expired"),
    [(0, False), (200, False), (365, False), (366, True), (-1, True)],
    ids=["first-day", "mid-validity", "last-day", "day-after", "day-before"],
)
def test_the_legend_says_expired_outside_the_validity_dates(days: int, expired: bool) -> None:
    calibration = calibrated()
    assert calibration.valid_until == (AT + timedelta(days=365)).date()
    shown = picture(calibration, AT + timedelta(days=days))
    assert np.array_equal(shown, picture(calibration)) is not expired


@pytest.mark.parametrize(
    ("world", "colour"),
    [
        ((0.5, 20.0), GRID_5M),
        ((0.5, 55.0), GRID_5M),
        ((10.0, 22.5), GRID_5M),
        ((0.5, 22.0), GRID_1M),
        ((2.0, 22.5), GRID_1M),
    ],
    ids=["5m-across", "far-edge-across", "right-edge-along", "1m-across", "1m-along"],
)
def test_grid_lines_are_drawn_to_the_edges_of_the_extent_bold_every_5_m(
    world: tuple[float, float], colour: tuple[int, int, int]
) -> None:
    calibration = calibrated()
    image = picture(calibration)
    patch = near(image, to_picture(calibration, world), 1).reshape(-1, 3).astype(int)
    brightest = patch[patch.sum(axis=1).argmax()]
    # Over a black frame the grid shows at about half strength, in its own hue.
    expected = np.array(colour) * 0.55
    assert np.abs(brightest - expected).max() < 45, (brightest, expected)


@pytest.mark.parametrize("lens", ["none", "undistort"])
def test_lane_lines_are_drawn_along_the_road_through_the_lens(lens: str) -> None:
    calibration = calibrated(lens=lens)
    image = picture(calibration)
    for y in (20.0, 33.0, 47.0, 61.0):
        spot = near(image, to_picture(calibration, (-8.0, y)), 1)
        assert count(spot, LANE, tolerance=60) > 0, y


def test_the_legend_judges_expiry_on_utc_days_as_the_calibration_does() -> None:
    calibration = calibrated()
    # 23:30 UTC on the last valid day: already the next day in Hanoi, still valid.
    last = datetime.combine(calibration.valid_until, time(23, 30), tzinfo=UTC)
    in_hanoi = last.astimezone(timezone(timedelta(hours=7)))
    assert in_hanoi.date() > calibration.valid_until
    RoadProjector.from_calibration(calibration, in_hanoi)
    assert np.array_equal(picture(calibration, in_hanoi), picture(calibration))
