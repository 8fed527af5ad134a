"""A pinhole camera above a flat road: the exact model behind generated scenes.

Road frame: x metres to the right, y metres along the road away from the camera's foot,
z up; the road is z = 0. The camera stands at (offset_m, 0, height_m), looks along +y
turned by ``pan_deg`` (positive to the right) and tilted down by ``tilt_deg``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError
from calibration.homography import (
    Matrix3,
    Points,
    apply_homography,
    check_homography,
    invert_homography,
)


@dataclass(frozen=True)
class PinholeCamera:
    height_m: float
    tilt_deg: float
    focal_px: float
    width: int
    height: int
    pan_deg: float = 0.0
    offset_m: float = 0.0

    def __post_init__(self) -> None:
        if not (0.5 <= self.height_m <= 100):
            raise CalibrationError(f"camera height {self.height_m} m is outside 0.5-100 m")
        if not (1 <= self.tilt_deg <= 89):
            raise CalibrationError(f"camera tilt {self.tilt_deg} deg is outside 1-89 deg")
        if not (self.focal_px > 0 and self.width > 0 and self.height > 0):
            raise CalibrationError("focal length and image size must be positive")

    @property
    def intrinsics(self) -> Matrix3:
        return np.array(
            [
                [self.focal_px, 0.0, self.width / 2],
                [0.0, self.focal_px, self.height / 2],
                [0.0, 0.0, 1.0],
            ]
        )

    @property
    def rotation(self) -> Matrix3:
        """Rows: the camera's right, down and forward axes in road coordinates."""
        t, p = math.radians(self.tilt_deg), math.radians(self.pan_deg)
        forward = np.array([math.sin(p) * math.cos(t), math.cos(p) * math.cos(t), -math.sin(t)])
        right = np.array([math.cos(p), -math.sin(p), 0.0])
        down = np.cross(forward, right)
        return np.vstack([right, down, forward])

    @property
    def centre(self) -> npt.NDArray[np.float64]:
        return np.array([self.offset_m, 0.0, self.height_m])

    @property
    def world_to_image(self) -> Matrix3:
        """Homography road plane (x, y) -> pixel."""
        r = self.rotation
        h = self.intrinsics @ np.column_stack([r[:, 0], r[:, 1], -r @ self.centre])
        return check_homography(h, "camera homography")

    @property
    def image_to_world(self) -> Matrix3:
        return invert_homography(self.world_to_image)

    def project(self, world: Points) -> Points:
        """Road-plane points -> pixels (NaN behind the camera)."""
        return apply_homography(self.world_to_image, world)

    def project_3d(self, points: npt.NDArray[np.float64]) -> Points:
        """(N, 3) road-frame points -> pixels (NaN behind the camera)."""
        cam = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.centre) @ self.rotation.T
        out = np.full((len(cam), 2), np.nan)
        ok = cam[:, 2] > 1e-9
        out[ok] = (cam[ok] @ self.intrinsics.T)[:, :2] / cam[ok, 2:3]
        return out

    def depth(self, world: Points) -> npt.NDArray[np.float64]:
        """Distance along the optical axis of road-plane points, metres."""
        pts = np.asarray(world, dtype=np.float64).reshape(-1, 2)
        full = np.column_stack([pts, np.zeros(len(pts))]) - self.centre
        depth: npt.NDArray[np.float64] = full @ self.rotation[2]
        return depth
