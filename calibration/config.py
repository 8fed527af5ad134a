"""The per-camera calibration file and the surveyed points file, validated on load.

Both are YAML on disk (see :mod:`calibration.store`); these models hold the rules. The
homography maps image pixels (undistorted first when ``undistort`` is set) to road-plane
metres.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calibration.errors import CalibrationError, CalibrationExpiredError
from calibration.homography import (
    Matrix3,
    PointPair,
    as_points,
    check_homography,
    check_inliers,
    evaluate,
)
from calibration.lens import LensModel

Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e5, le=1e5)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\- ]+$")]
CameraId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
# A stored matrix must reproduce the stored points to within this (pixels) of its RMS.
RMS_TOLERANCE_PX = 0.05
# The same on the road. rms_m is the floor of every speed's uncertainty; 1 cm is about what
# RMS_TOLERANCE_PX amounts to at the far end of a view, and it moves a speed's uncertainty
# by well under 0.1 km/h.
RMS_TOLERANCE_M = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SurveyPoint(_Strict):
    """A road mark seen in the image at ``pixel`` and surveyed at ``world`` (metres)."""

    name: Name = Field(description="label shown on the check picture, e.g. 'lane2-dash3-far'")
    pixel: tuple[Coordinate, Coordinate] = Field(description="(u, v) pixel, v down")
    world: tuple[Coordinate, Coordinate] = Field(description="(x, y) metres on the road")

    def pair(self) -> PointPair:
        return PointPair(pixel=self.pixel, world=self.world, name=self.name)


class LaneLine(_Strict):
    """A painted line on the road plane, drawn on the check picture."""

    name: Name
    points: list[tuple[Coordinate, Coordinate]] = Field(
        min_length=2, max_length=64, description="(x, y) metres along the line"
    )


class LensSpec(_Strict):
    """Intrinsics and distortion of the lens (from ``roadwatch calibrate lens``)."""

    camera_matrix: list[list[Coordinate]] = Field(description="3x3 OpenCV camera matrix")
    dist_coeffs: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        min_length=4, max_length=8, description="k1, k2, p1, p2[, k3[, k4, k5, k6]]"
    )
    image_size: tuple[Annotated[int, Field(gt=0, le=16384)], Annotated[int, Field(gt=0, le=16384)]]
    rms_px: float = Field(default=0.0, ge=0, le=100, description="checkerboard reprojection RMS")

    @model_validator(mode="after")
    def _usable(self) -> LensSpec:
        self.model()
        return self

    def model(self) -> LensModel:
        return LensModel(
            camera_matrix=np.asarray(self.camera_matrix, dtype=np.float64),
            dist_coeffs=np.asarray(self.dist_coeffs, dtype=np.float64),
            image_size=self.image_size,
        )

    @classmethod
    def from_model(cls, lens: LensModel, rms_px: float = 0.0) -> LensSpec:
        return cls(
            camera_matrix=lens.camera_matrix.tolist(),
            dist_coeffs=lens.dist_coeffs.tolist(),
            image_size=lens.image_size,
            rms_px=rms_px,
        )


def homography_pairs(points: list[SurveyPoint], lens: LensSpec | None) -> list[PointPair]:
    """Point pairs in the pixels the homography takes: undistorted when a lens is given."""
    pairs = [p.pair() for p in points]
    if lens is None:
        return pairs
    ideal = lens.model().undistort(np.array([p.pixel for p in pairs]))
    return [
        PointPair(pixel=(float(u), float(v)), world=p.world, name=p.name)
        for (u, v), p in zip(ideal, pairs, strict=True)
    ]


class PointsFile(_Strict):
    """What a surveyor writes: the camera, its road marks and optional lane lines and lens."""

    camera: CameraId
    points: list[SurveyPoint] = Field(min_length=4, max_length=64)
    lanes: list[LaneLine] = Field(default_factory=list, max_length=32)
    lens: LensSpec | None = None
    undistort: bool = Field(default=False, description="undistort pixels with the lens first")
    valid_days: int = Field(default=365, ge=1, le=3660, description="validity from today")
    ransac_threshold_px: float = Field(default=3.0, gt=0, le=50)

    @model_validator(mode="after")
    def _lens_when_undistorting(self) -> PointsFile:
        if self.undistort and self.lens is None:
            raise ValueError("undistort is set but no lens is given")
        return self


class CalibrationFile(_Strict):
    """A camera's calibration: matrix, the points it came from, lens, validity, provenance."""

    version: Literal[1] = 1
    camera: CameraId
    image_size: tuple[Annotated[int, Field(gt=0, le=16384)], Annotated[int, Field(gt=0, le=16384)]]
    homography: list[list[Coordinate]] = Field(
        description="3x3 image -> road plane (metres); undistorted pixels when undistort is set"
    )
    points: list[SurveyPoint] = Field(min_length=4, max_length=64)
    inliers: list[bool] = Field(description="which points the fit kept (RANSAC)")
    lanes: list[LaneLine] = Field(default_factory=list, max_length=32)
    lens: LensSpec | None = None
    undistort: bool = False
    rms_px: float = Field(ge=0, le=1000, description="RMS reprojection error of inliers, px")
    rms_m: float = Field(ge=0, le=100, description="RMS reprojection error of inliers, m")
    valid_from: date
    valid_until: date
    calibrated_by: Annotated[str, Field(min_length=1, max_length=128)]
    calibrated_at: datetime

    @field_validator("calibrated_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("calibrated_at needs a time zone (e.g. 2026-11-23T08:00:00Z)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> CalibrationFile:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        if self.undistort and self.lens is None:
            raise ValueError("undistort is set but no lens is given")
        if self.lens is not None and self.lens.image_size != self.image_size:
            raise ValueError("lens image_size differs from the calibration's image_size")
        if len(self.inliers) != len(self.points):
            raise ValueError("inliers must have one entry per point")
        try:
            matrix = self.matrix()
            pairs = self.pairs()
            inliers = np.asarray(self.inliers, dtype=bool)
            check_inliers(
                as_points([p.pixel for p in pairs], "image points"),
                as_points([p.world for p in pairs], "road points"),
                inliers,
            )
            fit = evaluate(matrix, pairs, inliers)
        except CalibrationError as exc:
            raise ValueError(str(exc)) from exc
        # NaN compares false with everything: without this an unmeasurable fit would pass.
        if not (math.isfinite(fit.rms_px) and math.isfinite(fit.rms_m)):
            raise ValueError("the homography's RMS over the inlier points is not a finite number")
        if abs(fit.rms_px - self.rms_px) > RMS_TOLERANCE_PX + 0.01 * self.rms_px:
            raise ValueError(
                f"homography reproduces the points with RMS {fit.rms_px:.2f} px, "
                f"not the recorded {self.rms_px:.2f} px (matrix or points were edited)"
            )
        if abs(fit.rms_m - self.rms_m) > RMS_TOLERANCE_M + 0.01 * self.rms_m:
            raise ValueError(
                f"homography reproduces the points with RMS {fit.rms_m:.3f} m, "
                f"not the recorded {self.rms_m:.3f} m (rms_m, matrix or points were edited)"
            )
        return self

    def matrix(self) -> Matrix3:
        return check_homography(np.asarray(self.homography, dtype=np.float64))

    def pairs(self) -> list[PointPair]:
        """Point pairs in the pixels the homography takes (undistorted when configured)."""
        return homography_pairs(self.points, self.lens if self.undistort else None)

    def check_valid(self, at: datetime) -> None:
        """Refuse use outside the validity dates (``at`` is UTC)."""
        day = at.astimezone(UTC).date()
        if day > self.valid_until:
            raise CalibrationExpiredError(
                f"calibration of camera {self.camera} expired on {self.valid_until} "
                f"(calibrated {self.calibrated_at:%Y-%m-%d} by {self.calibrated_by}); "
                "recalibrate"
            )
        if day < self.valid_from:
            raise CalibrationExpiredError(
                f"calibration of camera {self.camera} is valid only from {self.valid_from}"
            )
