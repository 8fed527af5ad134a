"""Lens intrinsics and distortion from checkerboard views, and undistortion of points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError
from calibration.homography import Matrix3, Points, as_points, check_homography

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class LensModel:
    """OpenCV pinhole intrinsics with radial/tangential distortion (k1, k2, p1, p2, k3)."""

    camera_matrix: Matrix3
    dist_coeffs: npt.NDArray[np.float64]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        check_homography(self.camera_matrix, "lens camera matrix")
        if self.camera_matrix[0, 0] <= 0 or self.camera_matrix[1, 1] <= 0:
            raise CalibrationError("lens camera matrix: focal lengths must be positive")
        if self.dist_coeffs.ndim != 1 or len(self.dist_coeffs) not in (4, 5, 8):
            raise CalibrationError("lens distortion: expected 4, 5 or 8 coefficients")
        if not np.isfinite(self.dist_coeffs).all():
            raise CalibrationError("lens distortion: coefficients must be finite")

    def undistort(self, pixels: Points) -> Points:
        """Distorted image pixels -> pixels of the ideal (undistorted) pinhole image."""
        pts = as_points(pixels, "pixels").reshape(-1, 1, 2)
        out = cv2.undistortPoints(pts, self.camera_matrix, self.dist_coeffs, P=self.camera_matrix)
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)

    def distort(self, pixels: Points) -> Points:
        """Ideal pinhole pixels -> pixels as this lens images them."""
        pts = as_points(pixels, "pixels")
        k_inv = np.linalg.inv(self.camera_matrix)
        normalised = np.column_stack([pts, np.ones(len(pts))]) @ k_inv.T
        out, _ = cv2.projectPoints(
            normalised.reshape(-1, 1, 3),
            np.zeros(3),
            np.zeros(3),
            self.camera_matrix,
            self.dist_coeffs,
        )
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)

    def undistort_image(self, image: Image) -> Image:
        return np.asarray(
            cv2.undistort(image, self.camera_matrix, self.dist_coeffs), dtype=np.uint8
        )


@dataclass(frozen=True)
class LensFit:
    lens: LensModel
    rms_px: float
    views_used: int
    views_rejected: int


def find_checkerboard(image: Image, pattern: tuple[int, int]) -> Points | None:
    """Sub-pixel inner corners of a checkerboard (columns x rows of inner corners)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    found, corners = cv2.findChessboardCorners(
        gray, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    )
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    refined = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), criteria)
    return np.asarray(refined, dtype=np.float64).reshape(-1, 2)


def calibrate_lens(
    images: Sequence[Image], pattern: tuple[int, int], square_m: float, min_views: int = 3
) -> LensFit:
    """Intrinsics and distortion from checkerboard views (OpenCV calibrateCamera)."""
    cols, rows = pattern
    if cols < 3 or rows < 3:
        raise CalibrationError("checkerboard pattern needs at least 3x3 inner corners")
    if not square_m > 0:
        raise CalibrationError("checkerboard square size must be positive")
    if not images:
        raise CalibrationError("no checkerboard images given")
    sizes = {(img.shape[1], img.shape[0]) for img in images}
    if len(sizes) != 1:
        raise CalibrationError(f"checkerboard images differ in size: {sorted(sizes)}")
    size = sizes.pop()
    board = np.zeros((cols * rows, 3), np.float32)
    board[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_m
    object_points, image_points = [], []
    for image in images:
        corners = find_checkerboard(image, pattern)
        if corners is not None:
            object_points.append(board)
            image_points.append(corners.astype(np.float32).reshape(-1, 1, 2))
    if len(image_points) < min_views:
        raise CalibrationError(
            f"checkerboard {cols}x{rows} found in {len(image_points)} of {len(images)} "
            f"images; need at least {min_views}"
        )
    rms, matrix, dist, _, _ = cv2.calibrateCamera(object_points, image_points, size, None, None)
    lens = LensModel(
        camera_matrix=np.asarray(matrix, dtype=np.float64),
        dist_coeffs=np.asarray(dist, dtype=np.float64).ravel(),
        image_size=size,
    )
    return LensFit(
        lens=lens,
        rms_px=float(rms),
        views_used=len(image_points),
        views_rejected=len(images) - len(image_points),
    )
