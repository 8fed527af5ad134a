from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibration.camera import PinholeCamera
from calibration.config import LensSpec, PointsFile, SurveyPoint
from calibration.errors import CalibrationError, CalibrationExpiredError, CalibrationRequiredError
from calibration.lens import LensModel
from calibration.projector import RoadProjector, build_calibration, require_calibration
from calibration.store import load_calibration, load_points, save_calibration

CAMERA = PinholeCamera(height_m=7, tilt_deg=14, focal_px=1100, width=1280, height=720)
AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ROAD = [(x, y) for x in (-3.5, 0.0, 3.5) for y in (18.0, 30.0, 45.0)]
LENS = LensModel(
    camera_matrix=CAMERA.intrinsics,
    dist_coeffs=np.array([-0.2, 0.05, 0.0, 0.0, 0.0]),
    image_size=(1280, 720),
)


def survey(lens: LensModel | None = None) -> PointsFile:
    pixels = CAMERA.project(np.array(ROAD))
    if lens is not None:
        pixels = lens.distort(pixels)
    return PointsFile(
        camera="cam01",
        points=[
            SurveyPoint(name=f"m{i}", pixel=(float(u), float(v)), world=w)
            for i, ((u, v), w) in enumerate(zip(pixels, ROAD, strict=True))
        ],
        lens=None if lens is None else LensSpec.from_model(lens),
        undistort=lens is not None,
    )


def written(tmp_path: Path, lens: LensModel | None = None) -> Path:
    calibration, _ = build_calibration(survey(lens), (1280, 720), "Nguyen Van A", AT)
    path = tmp_path / "cam01.calib.yaml"
    save_calibration(calibration, path)
    return path


@pytest.mark.parametrize("lens", [None, LENS])
def test_fitted_calibration_round_trips_and_maps_captured_pixels_to_the_road(
    tmp_path: Path, lens: LensModel | None
) -> None:
    calibration = load_calibration(written(tmp_path, lens))
    assert calibration.calibrated_by == "Nguyen Van A"
    assert calibration.valid_until == (AT + timedelta(days=365)).date()
    assert calibration.rms_px < 0.01
    projector = RoadProjector.from_calibration(calibration, AT)
    probe = np.array([[1.7, 25.0], [-2.0, 40.0]])
    captured = CAMERA.project(probe) if lens is None else lens.distort(CAMERA.project(probe))
    assert np.allclose(projector.to_world(captured), probe, atol=0.01)
    assert np.allclose(projector.to_image(probe), captured, atol=0.05)


# A radial-only lens on square pixels has a symmetric Jacobian: it cannot tell d/du from
# d/dv. Unequal focal lengths can (small tangential terms are too weak at this tolerance).
LENSES = {
    "radial": LENS,
    "non-square-pixels": LensModel(
        camera_matrix=np.diag([1.3, 1.0, 1.0]) @ CAMERA.intrinsics,
        dist_coeffs=np.array([-0.2, 0.05, 0.0, 0.0, 0.0]),
        image_size=(1280, 720),
    ),
}


@pytest.mark.parametrize("lens", LENSES.values(), ids=LENSES.keys())
def test_lens_jacobian_matches_finite_differences(tmp_path: Path, lens: LensModel) -> None:
    projector = RoadProjector.from_calibration(load_calibration(written(tmp_path, lens)), AT)
    pixel = np.array([900.0, 600.0])
    jac = projector.jacobian((900.0, 600.0))
    for axis in range(2):
        d = np.zeros(2)
        d[axis] = 0.25
        diff = (projector.to_world((pixel + d)[None]) - projector.to_world((pixel - d)[None]))[0]
        assert np.allclose(jac[:, axis], diff / 0.5, rtol=0.02, atol=1e-5)


@pytest.mark.parametrize("lens", [True, False])
def test_jacobians_of_many_pixels_at_once_match_finite_differences(
    tmp_path: Path, lens: bool
) -> None:
    path = written(tmp_path, LENS) if lens else written(tmp_path)
    projector = RoadProjector.from_calibration(load_calibration(path), AT)
    pixels = np.array([[900.0, 600.0], [200.0, 1000.0], [1700.0, 800.0], [960.0, 700.0]])
    jacs = projector.jacobians(pixels)
    assert jacs.shape == (4, 2, 2)
    for pixel, jac in zip(pixels, jacs, strict=True):
        assert np.array_equal(jac, projector.jacobian((float(pixel[0]), float(pixel[1]))))
        for axis in range(2):
            d = np.zeros(2)
            d[axis] = 0.25
            ahead, back = projector.to_world(np.array([pixel + d, pixel - d]))
            assert np.allclose(jac[:, axis], (ahead - back) / 0.5, rtol=0.02, atol=1e-5)


def _edited(tmp_path: Path, edit: object) -> Path:
    path = written(tmp_path)
    data = yaml.safe_load(path.read_text())
    assert callable(edit)
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour="red"), "field 'colour': Extra inputs are not permitted"),
        (lambda d: d["homography"][0].__setitem__(0, 0.5), "matrix or points were edited"),
        (lambda d: d.update(homography=[[1, 2, 3], [2, 4, 6], [0, 0, 1]]), "not invertible"),
        (lambda d: d["points"][0].__setitem__("pixel", [float("nan"), 3]), "points.0.pixel.0"),
        (lambda d: d.update(undistort=True), "undistort is set but no lens is given"),
        (lambda d: d.update(valid_until="2020-01-01"), "valid_until is before valid_from"),
        (lambda d: d.update(calibrated_at="2026-11-23T08:00:00"), "needs a time zone"),
        (lambda d: d.update(points=d["points"][:3], inliers=d["inliers"][:3]), "at least 4"),
        # The RMS checks run over the inliers: with none, any matrix would pass them.
        (lambda d: d.update(inliers=[False] * 9), "only 0 of 9 points are marked inliers"),
        (
            lambda d: (d["homography"][0].__setitem__(0, 0.5), d.update(inliers=[False] * 9)),
            "only 0 of 9 points are marked inliers",
        ),
        (lambda d: d.update(inliers=[True] * 3 + [False] * 6), "only 3 of 9 points"),
        # Points 0-2 lie on one lane line: four inliers with three of them on a line.
        (
            lambda d: d.update(inliers=[True] * 4 + [False] * 5),
            "inlier image points: no four points without three on one line",
        ),
        (lambda d: d.update(rms_m=0.5), r"not the recorded 0\.500 m"),
    ],
)
def test_bad_calibration_files_are_refused_with_the_field_named(
    tmp_path: Path, edit: object, message: str
) -> None:
    path = _edited(tmp_path, edit)
    with pytest.raises(CalibrationError, match=message):
        load_calibration(path)


def noisy_survey() -> PointsFile:
    """The survey clicked with about a pixel of noise: a fit with a real RMS."""
    noise = np.random.default_rng(1).normal(0.0, 1.0, (len(ROAD), 2))
    pixels = CAMERA.project(np.array(ROAD)) + noise
    return PointsFile(
        camera="cam01",
        points=[
            SurveyPoint(name=f"m{i}", pixel=(float(u), float(v)), world=w)
            for i, ((u, v), w) in enumerate(zip(pixels, ROAD, strict=True))
        ],
    )


def test_recorded_rms_m_is_checked_against_the_matrix(tmp_path: Path) -> None:
    # rms_m is the floor of every speed's uncertainty: a file may not claim a better fit.
    calibration, fit = build_calibration(noisy_survey(), (1280, 720), "x", AT)
    assert fit.rms_m > 0.05
    path = tmp_path / "cam01.calib.yaml"
    save_calibration(calibration, path)
    assert load_calibration(path).rms_m == pytest.approx(fit.rms_m)
    data = yaml.safe_load(path.read_text())
    data["rms_m"] = 0.0
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match=r"RMS 0\.\d+ m, not the recorded 0\.000 m"):
        load_calibration(path)


def test_not_yaml_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("camera: [unclosed")
    with pytest.raises(CalibrationError, match="not valid YAML"):
        load_calibration(path)
    with pytest.raises(CalibrationError, match="cannot read"):
        load_points(tmp_path / "missing.yaml")


def test_expired_or_not_yet_valid_calibration_is_refused(tmp_path: Path) -> None:
    calibration = load_calibration(written(tmp_path))
    with pytest.raises(CalibrationExpiredError, match=r"expired on 2027-11-23 .*recalibrate"):
        RoadProjector.from_calibration(calibration, AT + timedelta(days=366))
    with pytest.raises(CalibrationExpiredError, match="valid only from 2026-11-23"):
        RoadProjector.from_calibration(calibration, AT - timedelta(days=1))


def test_measurement_needing_calibration_refuses_an_uncalibrated_camera(tmp_path: Path) -> None:
    with pytest.raises(CalibrationRequiredError, match="camera cam07 has no calibration"):
        require_calibration(None, "cam07", AT)
    calibration = load_calibration(written(tmp_path))
    with pytest.raises(
        CalibrationRequiredError, match="calibration is for camera cam01, not cam02"
    ):
        require_calibration(calibration, "cam02", AT)
    assert require_calibration(calibration, "cam01", AT).rms_m < 0.01


def test_points_outside_the_frame_are_refused() -> None:
    with pytest.raises(CalibrationError, match="outside the 640x360 frame"):
        build_calibration(survey(), (640, 360), "x", AT)


def test_the_projector_keeps_the_calibrations_rms_m_as_its_uncertainty_floor() -> None:
    calibration, fit = build_calibration(noisy_survey(), (1280, 720), "x", AT)
    assert fit.rms_m > 0.05
    assert RoadProjector.from_calibration(calibration, AT).rms_m == fit.rms_m
    assert require_calibration(calibration, "cam01", AT).rms_m == fit.rms_m


def _with_pixel(points: PointsFile, index: int, pixel: tuple[float, float]) -> PointsFile:
    moved = [
        p.model_copy(update={"pixel": pixel}) if i == index else p
        for i, p in enumerate(points.points)
    ]
    return points.model_copy(update={"points": moved})


@pytest.mark.parametrize(
    ("pixel", "inside"),
    [
        ((0.0, 400.0), True),
        ((1280.0, 400.0), True),
        ((640.0, 0.0), True),
        ((640.0, 720.0), True),
        ((-0.5, 400.0), False),
        ((1280.5, 400.0), False),
        ((640.0, -0.5), False),
        ((640.0, 720.5), False),
        ((640.0, 1000.0), False),
    ],
    ids=[
        "left-edge",
        "right-edge",
        "top-edge",
        "bottom-edge",
        "left-of-frame",
        "right-of-frame",
        "above-frame",
        "below-frame",
        "below-frame-within-its-width",
    ],
)
def test_a_point_on_the_frame_edge_is_taken_and_one_past_it_refused(
    pixel: tuple[float, float], inside: bool
) -> None:
    # The middle road mark moved: RANSAC drops it as a misclick, the frame check comes first.
    points = _with_pixel(survey(), 4, pixel)
    if inside:
        calibration, _ = build_calibration(points, (1280, 720), "x", AT)
        assert calibration.inliers[4] is False
    else:
        with pytest.raises(CalibrationError, match=r"point m4 at pixel .* outside the 1280x720"):
            build_calibration(points, (1280, 720), "x", AT)


def test_a_lens_calibrated_at_another_frame_size_is_refused() -> None:
    with pytest.raises(
        CalibrationError, match="lens was calibrated at 1280x720, the frame is 1920x1080"
    ):
        build_calibration(survey(LENS), (1920, 1080), "x", AT)


def test_a_lens_on_file_is_not_applied_unless_undistort_is_set() -> None:
    # Pixels clicked on an undistorted frame: the lens is recorded but must not be applied.
    points = survey().model_copy(update={"lens": LensSpec.from_model(LENS)})
    calibration, fit = build_calibration(points, (1280, 720), "x", AT)
    assert calibration.lens is not None and not calibration.undistort
    assert fit.rms_px < 0.01
    projector = RoadProjector.from_calibration(calibration, AT)
    assert projector.lens is None
    probe = np.array([[1.7, 25.0], [-2.0, 40.0]])
    assert np.allclose(projector.to_world(CAMERA.project(probe)), probe, atol=0.01)


@pytest.mark.parametrize("lens", [None, LENS], ids=["no-lens", "lens"])
def test_a_road_point_behind_the_camera_has_no_pixel_and_leaves_the_others_alone(
    tmp_path: Path, lens: LensModel | None
) -> None:
    projector = RoadProjector.from_calibration(load_calibration(written(tmp_path, lens)), AT)
    ahead, behind = np.array([1.7, 25.0]), np.array([0.0, -50.0])
    pixels = projector.to_image(np.array([ahead, behind]))
    assert np.array_equal(pixels[0], projector.to_image(ahead[None])[0])
    assert np.isnan(pixels[1]).all()


# Validity days are UTC days (check_valid): 01:00 on the 24th in Hanoi is the 23rd in UTC.
HANOI = timezone(timedelta(hours=7))


@pytest.mark.parametrize(
    "at",
    [AT, datetime(2026, 11, 24, 1, 0, tzinfo=HANOI), datetime(2026, 11, 23, 20, 0, tzinfo=UTC)],
    ids=["utc-morning", "hanoi-after-midnight", "utc-evening"],
)
def test_a_calibration_is_valid_from_the_utc_day_it_was_made(at: datetime) -> None:
    calibration, _ = build_calibration(survey(), (1280, 720), "x", at)
    assert calibration.valid_from == date(2026, 11, 23)
    assert calibration.valid_until == date(2027, 11, 23)
    assert RoadProjector.from_calibration(calibration, at).rms_m < 0.01


@pytest.mark.parametrize(
    ("scale", "why"),
    [
        (100.0, r"span \d+ m, more than one camera sees \(1000 m\): .* centimetres\?"),
        (0.001, r"span 0\.\d+ m: road coordinates are metres \(were they written in kilometres"),
    ],
    ids=["centimetres", "kilometres"],
)
def test_road_points_in_another_unit_than_metres_are_refused(scale: float, why: str) -> None:
    """Written in centimetres, a survey fitted with the same pixel error (its RMS in px
    unchanged) and made every speed 100 times the truth; nothing said so."""
    points = survey()
    scaled = [
        p.model_copy(update={"world": (p.world[0] * scale, p.world[1] * scale)})
        for p in points.points
    ]
    with pytest.raises(CalibrationError, match=why):
        build_calibration(points.model_copy(update={"points": scaled}), (1280, 720), "x", AT)
    assert build_calibration(points, (1280, 720), "x", AT)[0].rms_m < 0.01


def _kraten(names: tuple[str, ...] | None = None, scale: float = 1.0) -> PointsFile:
    example = load_points(
        Path(__file__).parents[2] / "calibration/examples/kraten_cars.points.yaml"
    )
    return example.model_copy(
        update={
            "points": [
                p.model_copy(update={"world": (p.world[0] * scale, p.world[1] * scale)})
                for p in example.points
                if names is None or p.name in names
            ]
        }
    )


def _seen_by(camera: PinholeCamera, road: list[tuple[float, float]], scale: float) -> PointsFile:
    pixels = camera.project(np.array(road))
    assert ((pixels >= 0) & (pixels <= (camera.width, camera.height))).all()
    return PointsFile(
        camera="cam01",
        points=[
            SurveyPoint(name=f"m{i}", pixel=(float(u), float(v)), world=(x * scale, y * scale))
            for i, ((u, v), (x, y)) in enumerate(zip(pixels, road, strict=True))
        ],
    )


def _box(across: float, y0: float, along: float = 8.0) -> list[tuple[float, float]]:
    """A short survey: one lane's two lines, at two dash ends ``along`` metres apart."""
    return [(0.0, y0), (across, y0), (0.0, y0 + along), (across, y0 + along)]


_GANTRY = PinholeCamera(height_m=6, tilt_deg=10, focal_px=1300, width=1280, height=720)
_HIGH = PinholeCamera(height_m=12, tilt_deg=22, focal_px=1000, width=1280, height=720)
_POLE_4K = PinholeCamera(height_m=4, tilt_deg=30, focal_px=3000, width=3840, height=2160)
_POLE_1080 = PinholeCamera(height_m=6, tilt_deg=10, focal_px=1950, width=1920, height=1080)
_LOW_RES = PinholeCamera(height_m=12, tilt_deg=22, focal_px=500, width=640, height=360)
_FISHEYE_FAR = PinholeCamera(height_m=3, tilt_deg=20, focal_px=400, width=1280, height=720)
_SURVEYS: list[tuple[str, PointsFile, tuple[int, int], bool]] = [
    ("kraten-example", _kraten(), (640, 360), True),
    ("kraten-one-dash-pair", _kraten(("L0", "R0", "L8", "R8")), (640, 360), True),
    ("module-survey", survey(), (1280, 720), True),
    ("gantry-3.5x8", _seen_by(_GANTRY, _box(3.5, 13.0), 1.0), (1280, 720), True),
    ("high-3.5x8", _seen_by(_HIGH, _box(3.5, 15.0), 1.0), (1280, 720), True),
    ("4k-pole-3.5x8", _seen_by(_POLE_4K, _box(3.5, 5.0), 1.0), (3840, 2160), True),
    ("1080p-3.5x8", _seen_by(_POLE_1080, _box(3.5, 13.0), 1.0), (1920, 1080), True),
    ("640x360-far-3.5x8", _seen_by(_LOW_RES, _box(3.5, 83.0), 1.0), (640, 360), True),
    # (116-degree lens, nearest mark 77 m away: the frame 235 m wide there)
    ("wide-lens-far-3.5x8", _seen_by(_FISHEYE_FAR, _box(3.5, 77.0), 1.0), (1280, 720), True),
    ("kraten-one-dash-pair-cm", _kraten(("L0", "R0", "L8", "R8"), 100.0), (640, 360), False),
    ("kraten-near-rows-cm", _kraten(("L0", "C0", "R0", "L2", "R2"), 100.0), (640, 360), False),
    ("gantry-3.5x8-cm", _seen_by(_GANTRY, _box(3.5, 13.0), 100.0), (1280, 720), False),
    ("high-3.5x8-cm", _seen_by(_HIGH, _box(3.5, 15.0), 100.0), (1280, 720), False),
    ("4k-pole-3.5x8-cm", _seen_by(_POLE_4K, _box(3.5, 5.0), 100.0), (3840, 2160), False),
    ("1080p-3.5x8-cm", _seen_by(_POLE_1080, _box(3.5, 13.0), 100.0), (1920, 1080), False),
    ("640x360-3x6-cm", _seen_by(_LOW_RES, _box(3.0, 15.0, 6.0), 100.0), (640, 360), False),
]


@pytest.mark.parametrize(
    ("points", "size", "metres"),
    [case[1:] for case in _SURVEYS],
    ids=[case[0] for case in _SURVEYS],
)
def test_a_short_survey_in_centimetres_is_refused_by_the_frame_s_width_on_the_road(
    points: PointsFile, size: tuple[int, int], metres: bool
) -> None:
    """A survey in centimetres spanning less than 1000 (a lane across and a dash pair
    along, 350 by 800) fitted and made every speed 100 times the truth: only the span was
    checked. At its nearest mark the frame would be 700 m to 2 km wide, where a real
    survey's is 7 m to 235 m (a wide lens whose nearest marks are 77 m away)."""
    span = max(
        max(p.world[k] for p in points.points) - min(p.world[k] for p in points.points)
        for k in (0, 1)
    )
    assert span <= 1000
    if metres:
        calibration, _ = build_calibration(points, size, "x", AT)
        assert calibration.rms_px < points.ransac_threshold_px
    else:
        with pytest.raises(
            CalibrationError, match=r"frame would be \d+ m wide there, .* centimetres\?"
        ):
            build_calibration(points, size, "x", AT)
