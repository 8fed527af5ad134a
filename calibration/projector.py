"""Image pixels -> road-plane metres for a calibrated camera, and the refusal without one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from calibration.config import CalibrationFile, PointsFile, homography_pairs
from calibration.errors import CalibrationError, CalibrationRequiredError
from calibration.homography import (
    HomographyFit,
    Matrix3,
    Points,
    apply_homography,
    as_points,
    fit_homography,
    homography_jacobians,
    invert_homography,
)
from calibration.lens import LensModel

# Step for the numeric derivative of the lens undistortion, pixels.
_LENS_STEP_PX = 0.5


@dataclass(frozen=True)
class RoadProjector:
    """Maps (distorted, as captured) pixels onto the road plane.

    ``rms_m`` is the calibration's reprojection RMS on the road, the floor of any
    position's uncertainty.
    """

    image_to_world: Matrix3
    lens: LensModel | None = None
    rms_m: float = 0.0

    @classmethod
    def from_calibration(cls, calibration: CalibrationFile, at: datetime) -> RoadProjector:
        calibration.check_valid(at)
        lens = calibration.lens.model() if calibration.undistort and calibration.lens else None
        return cls(image_to_world=calibration.matrix(), lens=lens, rms_m=calibration.rms_m)

    def ideal(self, pixels: Points) -> Points:
        pts = as_points(pixels, "pixels")
        return pts if self.lens is None else self.lens.undistort(pts)

    def to_world(self, pixels: Points) -> Points:
        """(N, 2) pixels -> (N, 2) metres; NaN for pixels on or above the horizon."""
        return apply_homography(self.image_to_world, self.ideal(pixels))

    def to_image(self, world: Points) -> Points:
        """(N, 2) metres -> (N, 2) pixels as captured (distorted when a lens is set)."""
        ideal = apply_homography(invert_homography(self.image_to_world), world)
        if self.lens is None:
            return ideal
        out = np.full_like(ideal, np.nan)
        ok = np.isfinite(ideal).all(axis=1)
        if ok.any():
            out[ok] = self.lens.distort(ideal[ok])
        return out

    def jacobian(self, pixel: tuple[float, float]) -> npt.NDArray[np.float64]:
        """d(metres)/d(pixel) at a captured pixel (2x2), lens included."""
        one: npt.NDArray[np.float64] = self.jacobians(np.array([pixel], dtype=np.float64))[0]
        return one

    def jacobians(self, pixels: Points) -> npt.NDArray[np.float64]:
        """d(metres)/d(pixel) at each of (N, 2) captured pixels: (N, 2, 2), lens included."""
        pts = as_points(pixels, "pixels")
        plane = homography_jacobians(self.image_to_world, self.ideal(pts))
        if self.lens is None:
            return plane
        h = _LENS_STEP_PX
        steps = np.array([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
        probe = self.lens.undistort((pts[:, None, :] + steps[None]).reshape(-1, 2))
        probe = probe.reshape(len(pts), 4, 2)
        # Columns: d(ideal)/du and d(ideal)/dv by central differences.
        lens = np.stack(
            [(probe[:, 0] - probe[:, 1]) / (2 * h), (probe[:, 2] - probe[:, 3]) / (2 * h)], axis=2
        )
        return np.asarray(plane @ lens, dtype=np.float64)


def require_calibration(
    calibration: CalibrationFile | None, camera: str, at: datetime
) -> RoadProjector:
    """The projector for a measurement that needs calibration; refuse without a valid one."""
    if calibration is None:
        raise CalibrationRequiredError(
            f"camera {camera} has no calibration; speed needs one "
            "(roadwatch calibrate fit ... -o CAMERA.calib.yaml)"
        )
    if calibration.camera != camera:
        raise CalibrationRequiredError(
            f"calibration is for camera {calibration.camera}, not {camera}"
        )
    return RoadProjector.from_calibration(calibration, at)


# The road marks one camera sees lie within this span: points farther apart are not in
# metres (centimetres give 100 times the span, and every speed 100 times the truth).
MAX_SURVEY_SPAN_M = 1000.0
MIN_SURVEY_SPAN_M = 1.0


def _check_road_units(survey: PointsFile) -> None:
    """Refuse road coordinates that cannot be metres of one camera's view."""
    world = np.array([p.world for p in survey.points], dtype=np.float64)
    span = float(np.ptp(world, axis=0).max())
    if span > MAX_SURVEY_SPAN_M:
        raise CalibrationError(
            f"the road points span {span:g} m, more than one camera sees"
            f" ({MAX_SURVEY_SPAN_M:g} m): road coordinates are metres (were they written in"
            " centimetres?)"
        )
    if span < MIN_SURVEY_SPAN_M:
        raise CalibrationError(
            f"the road points span {span:g} m: road coordinates are metres (were they written"
            " in kilometres?); survey marks across the road and along it"
        )


# The frame's width on the road at the nearest surveyed mark (metres per pixel across the
# road there, times the image width) is at most this for any camera whose road marks can
# be surveyed: from about 7 m (a close view) to about 100 m (a view down the road whose
# nearest marks are 80 m away), and 235 m for a 116-degree lens whose nearest marks are
# 77 m away. A survey in centimetres makes it 100 times its truth, so it is caught for
# every view wider than 5 m at its nearest mark, however short the survey; the span
# check above catches those longer than 10 m whatever the view.
MAX_VIEW_WIDTH_M = 500.0


def _check_view_width(fit: HomographyFit, image_width: int) -> None:
    """Refuse a fit whose frame, at its nearest surveyed mark, would be wider than any
    camera's view of the road's marks: road coordinates that are not metres."""
    kept = [r for r in fit.residuals if r.inlier]
    pixels = np.array([r.pixel for r in kept], dtype=np.float64)
    # (the smaller singular value: metres per pixel across the road, which the camera's
    # tilt leaves as it is; along the road a pixel covers more the flatter the view)
    finest = np.linalg.svd(homography_jacobians(fit.image_to_world, pixels), compute_uv=False)[:, 1]
    nearest = int(np.argmin(finest))
    wide = float(finest[nearest]) * image_width
    if wide > MAX_VIEW_WIDTH_M:
        raise CalibrationError(
            f"at the nearest surveyed mark ({kept[nearest].name}) one pixel covers"
            f" {finest[nearest]:.2g} m of road, so the {image_width}-pixel-wide frame would"
            f" be {wide:.0f} m wide there, more than any camera's view of road marks"
            f" ({MAX_VIEW_WIDTH_M:g} m): road coordinates are metres (were they written in"
            " centimetres?)"
        )


def build_calibration(
    survey: PointsFile,
    image_size: tuple[int, int],
    calibrated_by: str,
    at: datetime,
) -> tuple[CalibrationFile, HomographyFit]:
    """Fit a survey into a calibration valid from ``at`` for ``survey.valid_days`` days."""
    width, height = image_size
    for point in survey.points:
        u, v = point.pixel
        if not (0 <= u <= width and 0 <= v <= height):
            raise CalibrationError(
                f"point {point.name} at pixel ({u:g}, {v:g}) is outside the {width}x{height} frame"
            )
    _check_road_units(survey)
    if survey.lens is not None and survey.lens.image_size != image_size:
        raise CalibrationError(
            f"lens was calibrated at {survey.lens.image_size[0]}x{survey.lens.image_size[1]}, "
            f"the frame is {width}x{height}"
        )
    pairs = homography_pairs(survey.points, survey.lens if survey.undistort else None)
    fit = fit_homography(pairs, survey.ransac_threshold_px)
    _check_view_width(fit, width)
    calibration = CalibrationFile(
        camera=survey.camera,
        image_size=image_size,
        homography=fit.image_to_world.tolist(),
        points=survey.points,
        inliers=[r.inlier for r in fit.residuals],
        lanes=survey.lanes,
        lens=survey.lens,
        undistort=survey.undistort,
        rms_px=fit.rms_px,
        rms_m=fit.rms_m,
        # Validity is in UTC days, as check_valid judges it (calibrated_at is kept in UTC).
        valid_from=at.astimezone(UTC).date(),
        valid_until=(at.astimezone(UTC) + timedelta(days=survey.valid_days)).date(),
        calibrated_by=calibrated_by,
        calibrated_at=at,
    )
    return calibration, fit
