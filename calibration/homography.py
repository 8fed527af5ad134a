"""Image -> road-plane homography from point pairs, with RANSAC and reprojection errors.

Pixels are (u, v) with v down; road-plane coordinates are metres (x across, y along the
road). The fitted matrix maps (undistorted) image pixels to the road plane.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError

Matrix3 = npt.NDArray[np.float64]
Points = npt.NDArray[np.float64]

MIN_POINTS = 4
MAX_POINTS = 64
# A triangle whose area is below this share of its longest side squared counts as a line
# (about 0.6 degrees of bend for a thin triangle).
COLLINEAR_TOLERANCE = 0.005
# Points closer than this share of the set's extent are the same point.
DUPLICATE_TOLERANCE = 1e-6
# Largest condition number accepted for a homography (normalised to H[2, 2] = 1).
MAX_CONDITION = 1e12


@dataclass(frozen=True)
class PointPair:
    """One surveyed road mark: where it is in the image and on the road plane."""

    pixel: tuple[float, float]
    world: tuple[float, float]
    name: str = ""


@dataclass(frozen=True)
class PointResidual:
    """How well the fitted homography reproduces one point pair."""

    name: str
    pixel: tuple[float, float]
    world: tuple[float, float]
    projected_pixel: tuple[float, float]
    projected_world: tuple[float, float]
    error_px: float
    error_m: float
    inlier: bool


@dataclass(frozen=True)
class HomographyFit:
    """A fitted image -> road-plane homography and its reprojection errors."""

    image_to_world: Matrix3
    residuals: tuple[PointResidual, ...]
    rms_px: float
    rms_m: float

    @property
    def inliers(self) -> int:
        return sum(r.inlier for r in self.residuals)

    @property
    def world_to_image(self) -> Matrix3:
        return invert_homography(self.image_to_world)


def as_points(values: Sequence[tuple[float, float]] | Points, what: str) -> Points:
    """An (N, 2) float64 array of finite points, or a clear error."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise CalibrationError(f"{what}: expected a list of (x, y) pairs, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise CalibrationError(f"{what}: point {int(bad[0]) + 1} is not a finite number (NaN/inf)")
    return array


def check_general_position(points: Points, what: str) -> None:
    """Refuse point sets that cannot determine a homography.

    A homography needs at least four distinct points, no three of which lie on one line.
    """
    n = len(points)
    if n < MIN_POINTS:
        raise CalibrationError(f"{what}: need at least {MIN_POINTS} points, got {n}")
    if n > MAX_POINTS:
        raise CalibrationError(f"{what}: at most {MAX_POINTS} points, got {n}")
    extent = float(np.ptp(points, axis=0).max())
    if extent <= 0:
        raise CalibrationError(f"{what}: all points are the same point")
    for i, j in itertools.combinations(range(n), 2):
        if float(np.hypot(*(points[i] - points[j]))) <= DUPLICATE_TOLERANCE * extent:
            raise CalibrationError(f"{what}: points {i + 1} and {j + 1} are duplicates")
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    if singular[1] <= COLLINEAR_TOLERANCE * singular[0]:
        raise CalibrationError(f"{what}: all points lie on one line")
    for quad in itertools.combinations(range(n), 4):
        if not any(_collinear(points[list(tri)]) for tri in itertools.combinations(quad, 3)):
            return
    raise CalibrationError(
        f"{what}: no four points without three on one line; add points off the lines"
    )


def check_inliers(pixels: Points, world: Points, inlier: npt.NDArray[np.bool_]) -> None:
    """Refuse an inlier mask whose points cannot determine a homography on their own.

    The RMS figures are measured over the inliers only, so a mask that keeps too few points
    (none at all gives an RMS of NaN) would let any matrix pass a check against them.
    """
    kept = int(np.count_nonzero(inlier))
    if kept < MIN_POINTS:
        raise CalibrationError(
            f"only {kept} of {len(inlier)} points are marked inliers; "
            f"a homography needs at least {MIN_POINTS}"
        )
    check_general_position(pixels[inlier], "inlier image points")
    check_general_position(world[inlier], "inlier road points")


def _collinear(tri: Points) -> bool:
    a, b, c = tri
    ab, ac = b - a, c - a
    area2 = abs(float(ab[0] * ac[1] - ab[1] * ac[0]))
    longest = max(float(np.dot(ab, ab)), float(np.dot(ac, ac)), float(np.dot(c - b, c - b)))
    return area2 <= 2 * COLLINEAR_TOLERANCE * longest


def check_homography(matrix: npt.ArrayLike, what: str = "homography") -> Matrix3:
    """A finite, invertible, well-conditioned 3x3 matrix normalised to |H[2, 2]| = 1."""
    h = np.asarray(matrix, dtype=np.float64)
    if h.shape != (3, 3):
        raise CalibrationError(f"{what}: expected a 3x3 matrix, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise CalibrationError(f"{what}: matrix has NaN or infinite entries")
    # Scale by |H[2, 2]| only: the sign says which side of the horizon is the road.
    if abs(h[2, 2]) > 1e-12:
        h = h / abs(h[2, 2])
    condition = float(np.linalg.cond(h))
    if not math.isfinite(condition) or condition > MAX_CONDITION:
        raise CalibrationError(f"{what}: matrix is not invertible (condition {condition:.3g})")
    return h


def invert_homography(matrix: Matrix3) -> Matrix3:
    inverse = np.linalg.inv(check_homography(matrix))
    return check_homography(inverse)


def apply_homography(matrix: Matrix3, points: Points) -> Points:
    """Map (N, 2) points through H; points that land on or behind the horizon become NaN."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homogeneous = np.column_stack([pts, np.ones(len(pts))]) @ matrix.T
    w = homogeneous[:, 2]
    out = np.full((len(pts), 2), np.nan)
    ok = w > 1e-12
    out[ok] = homogeneous[ok, :2] / w[ok, None]
    return out


def homography_jacobian(matrix: Matrix3, pixel: tuple[float, float]) -> npt.NDArray[np.float64]:
    """d(world)/d(pixel) at one pixel: 2x2 metres per pixel."""
    one: npt.NDArray[np.float64] = homography_jacobians(matrix, np.array([pixel], np.float64))[0]
    return one


def homography_jacobians(matrix: Matrix3, pixels: Points) -> npt.NDArray[np.float64]:
    """d(world)/d(pixel) at each of (N, 2) pixels: (N, 2, 2) metres per pixel."""
    h = matrix
    u, v = pixels[:, 0], pixels[:, 1]
    x = h[0, 0] * u + h[0, 1] * v + h[0, 2]
    y = h[1, 0] * u + h[1, 1] * v + h[1, 2]
    w = h[2, 0] * u + h[2, 1] * v + h[2, 2]
    above = np.flatnonzero(~(w > 1e-12))
    if above.size:
        bu, bv = pixels[above[0]]
        raise CalibrationError(f"pixel ({bu:.1f}, {bv:.1f}) is on or above the road's horizon")
    w2 = w**2
    out = np.empty((len(u), 2, 2), dtype=np.float64)
    out[:, 0, 0] = (h[0, 0] * w - x * h[2, 0]) / w2
    out[:, 0, 1] = (h[0, 1] * w - x * h[2, 1]) / w2
    out[:, 1, 0] = (h[1, 0] * w - y * h[2, 0]) / w2
    out[:, 1, 1] = (h[1, 1] * w - y * h[2, 1]) / w2
    return out


def fit_homography(pairs: Sequence[PointPair], ransac_threshold_px: float = 3.0) -> HomographyFit:
    """Fit image -> road plane from surveyed point pairs.

    RANSAC (threshold in pixels, in the image where the points were picked) drops
    mis-clicked points; the matrix is then refined on the inliers. Errors are reported per
    point, in pixels (road point projected into the image) and metres (pixel projected
    onto the road).
    """
    if not ransac_threshold_px > 0:
        raise CalibrationError("RANSAC threshold must be a positive number of pixels")
    pixels = as_points([p.pixel for p in pairs], "image points")
    world = as_points([p.world for p in pairs], "road points")
    check_general_position(pixels, "image points")
    check_general_position(world, "road points")
    _, mask = cv2.findHomography(world, pixels, cv2.RANSAC, ransac_threshold_px)
    inlier = np.zeros(len(pairs), dtype=bool) if mask is None else np.asarray(mask).ravel() > 0
    if inlier.sum() < MIN_POINTS:
        raise CalibrationError(
            f"only {int(inlier.sum())} points agree within {ransac_threshold_px} px; "
            "check the point pairs"
        )
    # The file written from this fit is checked the same way when it is loaded.
    check_inliers(pixels, world, inlier)
    refined, _ = cv2.findHomography(world[inlier], pixels[inlier], 0)
    if refined is None:
        raise CalibrationError("the point pairs do not determine a homography")
    world_to_image = check_homography(np.asarray(refined, dtype=np.float64), "fitted matrix")
    # Orient the matrix so that the surveyed points are in front of the camera (w > 0).
    w = np.column_stack([world[inlier], np.ones(int(inlier.sum()))]) @ world_to_image[2]
    if float(np.median(w)) < 0:
        world_to_image = -world_to_image
    image_to_world = invert_homography(world_to_image)
    return evaluate(image_to_world, pairs, inlier)


def evaluate(
    image_to_world: Matrix3,
    pairs: Sequence[PointPair],
    inlier: npt.NDArray[np.bool_] | None = None,
) -> HomographyFit:
    """Per-point and RMS reprojection errors of a homography over the given pairs.

    The RMS figures are over the inliers (all points when no mask is given).
    """
    h = check_homography(image_to_world)
    pixels = as_points([p.pixel for p in pairs], "image points")
    world = as_points([p.world for p in pairs], "road points")
    mask = np.ones(len(pairs), dtype=bool) if inlier is None else inlier
    projected_world = apply_homography(h, pixels)
    projected_pixel = apply_homography(invert_homography(h), world)
    error_m = np.hypot(*(projected_world - world).T)
    error_px = np.hypot(*(projected_pixel - pixels).T)
    residuals = tuple(
        PointResidual(
            name=pair.name or f"p{i + 1}",
            pixel=(float(pixels[i, 0]), float(pixels[i, 1])),
            world=(float(world[i, 0]), float(world[i, 1])),
            projected_pixel=(float(projected_pixel[i, 0]), float(projected_pixel[i, 1])),
            projected_world=(float(projected_world[i, 0]), float(projected_world[i, 1])),
            error_px=float(error_px[i]),
            error_m=float(error_m[i]),
            inlier=bool(mask[i]),
        )
        for i, pair in enumerate(pairs)
    )
    if not np.isfinite(error_m[mask]).all() or not np.isfinite(error_px[mask]).all():
        raise CalibrationError("a point lies on or beyond the road's horizon under this matrix")
    return HomographyFit(
        image_to_world=h,
        residuals=residuals,
        rms_px=float(np.sqrt(np.mean(error_px[mask] ** 2))),
        rms_m=float(np.sqrt(np.mean(error_m[mask] ** 2))),
    )
