"""The check picture: a metric grid, lane lines and the surveyed points over a frame.

People judge a calibration by looking at it: a 1 m / 5 m grid that lies flat on the road,
lane lines that sit on the paint, and each surveyed point with its reprojection error.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import cv2
import numpy as np
import numpy.typing as npt

from calibration.config import CalibrationFile
from calibration.homography import HomographyFit, Points, evaluate
from calibration.projector import RoadProjector

Image = npt.NDArray[np.uint8]

GRID_1M = (210, 210, 210)
GRID_5M = (0, 215, 255)
LANE = (255, 200, 0)
INLIER = (60, 220, 60)
OUTLIER = (40, 40, 240)
TEXT = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class GridExtent:
    """The road rectangle (metres) the grid covers."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    @classmethod
    def around(cls, world: Points, margin_m: float = 4.0, ahead_m: float = 15.0) -> GridExtent:
        lo, hi = world.min(axis=0), world.max(axis=0)
        return cls(
            x_min=5 * math.floor((lo[0] - margin_m) / 5),
            x_max=5 * math.ceil((hi[0] + margin_m) / 5),
            y_min=5 * math.floor((lo[1] - margin_m) / 5),
            y_max=5 * math.ceil((hi[1] + ahead_m) / 5),
        )


def _scale_for(width: int) -> int:
    """Integer upscaling so that small frames still carry readable labels."""
    return max(1, math.ceil(1280 / width)) if width < 1280 else 1


def _polyline(
    image: Image,
    projector: RoadProjector,
    world: Points,
    scale: int,
    colour: tuple[int, int, int],
    thickness: int,
) -> None:
    pixels = projector.to_image(world) * scale
    h, w = image.shape[:2]
    ok = np.isfinite(pixels).all(axis=1) & (np.abs(pixels) < 4 * max(w, h)).all(axis=1)
    runs: list[list[tuple[int, int]]] = [[]]
    for good, (u, v) in zip(ok, pixels, strict=True):
        if good:
            runs[-1].append((round(u), round(v)))
        elif runs[-1]:
            runs.append([])
    for run in runs:
        if len(run) >= 2:
            cv2.polylines(image, [np.array(run, np.int32)], False, colour, thickness, cv2.LINE_AA)


def _label(image: Image, text: str, at: tuple[int, int], colour: tuple[int, int, int]) -> None:
    h, w = image.shape[:2]
    (tw, th), base = cv2.getTextSize(text, FONT, 0.5, 1)
    x = min(max(at[0], 2), w - tw - 4)
    y = min(max(at[1], th + 4), h - base - 2)
    cv2.rectangle(image, (x - 2, y - th - 3), (x + tw + 2, y + base + 1), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), FONT, 0.5, colour, 1, cv2.LINE_AA)


def _visible(image: Image, pixel: npt.NDArray[np.float64]) -> bool:
    h, w = image.shape[:2]
    return bool(np.isfinite(pixel).all() and 0 <= pixel[0] < w and 0 <= pixel[1] < h)


def _grid(image: Image, projector: RoadProjector, extent: GridExtent, scale: int) -> None:
    overlay = image.copy()
    ys = np.linspace(extent.y_min, extent.y_max, 200)
    xs = np.linspace(extent.x_min, extent.x_max, 200)
    for major in (False, True):
        colour, thickness = (GRID_5M, 2) if major else (GRID_1M, 1)
        for x in range(int(extent.x_min), int(extent.x_max) + 1):
            if (x % 5 == 0) == major:
                _polyline(
                    overlay,
                    projector,
                    np.column_stack([np.full(200, x), ys]),
                    scale,
                    colour,
                    thickness,
                )
        for y in range(int(extent.y_min), int(extent.y_max) + 1):
            if (y % 5 == 0) == major:
                _polyline(
                    overlay,
                    projector,
                    np.column_stack([xs, np.full(200, y)]),
                    scale,
                    colour,
                    thickness,
                )
    cv2.addWeighted(overlay, 0.55, image, 0.45, 0, dst=image)
    for y in range(int(extent.y_min), int(extent.y_max) + 1, 5):
        anchor = projector.to_image(np.array([[extent.x_min, y]]))[0] * scale
        if _visible(image, anchor):
            _label(image, f"y {y} m", (int(anchor[0]) + 4, int(anchor[1]) - 4), GRID_5M)
    for x in range(int(extent.x_min), int(extent.x_max) + 1, 5):
        # Label each 5 m line where it is nearest the camera and still in the picture.
        line = projector.to_image(np.column_stack([np.full(len(ys), x), ys])) * scale
        shown = [p for p in line if _visible(image, p)]
        if shown:
            anchor = shown[0]
            _label(image, f"x {x} m", (int(anchor[0]) + 4, int(anchor[1]) - 8), GRID_5M)


def _points(image: Image, fit: HomographyFit, projector: RoadProjector, scale: int) -> None:
    for r in fit.residuals:
        colour = INLIER if r.inlier else OUTLIER
        clicked = np.array(r.pixel) * scale
        reprojected = projector.to_image(np.array([r.world]))[0] * scale
        c = (round(clicked[0]), round(clicked[1]))
        if np.isfinite(reprojected).all():
            p = (round(reprojected[0]), round(reprojected[1]))
            cv2.line(image, c, p, OUTLIER, 2, cv2.LINE_AA)
            cv2.drawMarker(image, p, OUTLIER, cv2.MARKER_CROSS, 10, 2)
        cv2.circle(image, c, 5, colour, 2, cv2.LINE_AA)
        text = f"{r.name} {r.error_px:.1f}px {r.error_m * 100:.0f}cm"
        _label(image, text, (c[0] + 8, c[1] + 16), colour)


def _legend(image: Image, calibration: CalibrationFile, fit: HomographyFit, at: datetime) -> None:
    day = at.astimezone(UTC).date()  # as CalibrationFile.check_valid judges it
    expired = day > calibration.valid_until or day < calibration.valid_from
    lines = [
        (
            f"camera {calibration.camera}  calibrated {calibration.calibrated_at:%Y-%m-%d} "
            f"by {calibration.calibrated_by}",
            TEXT,
        ),
        (
            f"valid {calibration.valid_from} .. {calibration.valid_until}"
            + ("  EXPIRED" if expired else ""),
            OUTLIER if expired else TEXT,
        ),
        (
            f"RMS {fit.rms_px:.2f} px / {fit.rms_m * 100:.1f} cm, "
            f"{fit.inliers}/{len(fit.residuals)} points inliers"
            + ("  (undistorted)" if calibration.undistort else ""),
            TEXT,
        ),
        ("grid: thin 1 m, bold 5 m", GRID_5M),
        ("lane lines", LANE),
        ("o surveyed point (green kept, red dropped)  + where the fit puts it", INLIER),
    ]
    height = 22 * len(lines) + 10
    width = max(cv2.getTextSize(t, FONT, 0.5, 1)[0][0] for t, _ in lines) + 16
    panel = image[:height, :width]
    panel[:] = (panel * 0.35).astype(np.uint8)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(image, text, (8, 20 + 22 * i), FONT, 0.5, colour, 1, cv2.LINE_AA)


def check_picture(calibration: CalibrationFile, frame: Image, at: datetime) -> Image:
    """Draw the calibration over ``frame`` (captured pixels; the lens is applied as set)."""
    projector = RoadProjector(
        image_to_world=calibration.matrix(),
        lens=calibration.lens.model() if calibration.undistort and calibration.lens else None,
        rms_m=calibration.rms_m,
    )
    fit = evaluate(
        calibration.matrix(), calibration.pairs(), np.asarray(calibration.inliers, dtype=bool)
    )
    h, w = frame.shape[:2]
    scale = _scale_for(w)
    image: Image = np.ascontiguousarray(
        cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
        if scale > 1
        else frame.copy(),
        dtype=np.uint8,
    )
    world = np.array([p.world for p in calibration.points], dtype=np.float64)
    _grid(image, projector, GridExtent.around(world), scale)
    for lane in calibration.lanes:
        dense = _densify(np.array(lane.points, dtype=np.float64))
        _polyline(image, projector, dense, scale, LANE, 3)
    # The residuals of an undistorting calibration are in ideal pixels; draw captured ones.
    captured = tuple(
        replace(r, pixel=p.pixel) for r, p in zip(fit.residuals, calibration.points, strict=True)
    )
    _points(image, replace(fit, residuals=captured), projector, scale)
    _legend(image, calibration, fit, at)
    return image


def _densify(points: Points, step_m: float = 0.5) -> Points:
    out = [points[0]]
    for a, b in itertools.pairwise(points):
        n = max(1, math.ceil(float(np.hypot(*(b - a))) / step_m))
        out.extend(a + (b - a) * k / n for k in range(1, n + 1))
    return np.array(out, dtype=np.float64)
