"""Scene-integrity guard: is the camera still looking at the calibrated view?

Enforcement depends on the calibration and the scene drawn on a reference view. If the
camera is knocked or turned (the view shifts), covered (blocked) or out of focus (blurred),
measurements are wrong, so enforcement pauses until the view returns. Each check compares a
frame with the reference view:

- shift: ORB features matched to the reference, a similarity transform fitted with RANSAC,
  and the median displacement of a grid of image points under it, in full-frame pixels;
- blocked: the share of grid cells that lost their texture (standard deviation far below
  the reference), or too few features left to match at all;
- blurred: the sharpness (variance of the Laplacian) far below the reference's.

A state change needs several checks in a row (inertia), so one odd frame — a bus filling
the view for a moment — neither pauses nor resumes enforcement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

_WORK_WIDTH = 640
_GRID = 8


class ViewVerdict(StrEnum):
    OK = "ok"
    SHIFTED = "shifted"
    BLOCKED = "blocked"
    BLURRED = "blurred"


@dataclass(frozen=True)
class IntegrityBounds:
    """Limits beyond which a view no longer counts as the reference view."""

    max_shift_px: float = 8.0
    min_sharpness_ratio: float = 0.3
    max_blocked_cells: float = 0.5
    min_matches: int = 25
    inertia: int = 3  # consecutive checks before enforcement pauses or resumes

    def __post_init__(self) -> None:
        if self.max_shift_px <= 0 or not 0 < self.min_sharpness_ratio < 1:
            raise ValueError("max_shift_px must be > 0 and min_sharpness_ratio in (0, 1)")
        if not 0 < self.max_blocked_cells <= 1 or self.min_matches < 4 or self.inertia < 1:
            raise ValueError("max_blocked_cells in (0, 1], min_matches >= 4, inertia >= 1")


@dataclass(frozen=True)
class ViewCheck:
    verdict: ViewVerdict
    shift_px: float | None
    sharpness_ratio: float
    blocked_cells: float
    matches: int

    @property
    def reason(self) -> str:
        if self.verdict is ViewVerdict.SHIFTED:
            if self.shift_px is None:
                return f"view not recognised ({self.matches} feature matches)"
            return f"view shifted by {self.shift_px:.1f} px"
        if self.verdict is ViewVerdict.BLOCKED:
            return f"view blocked ({self.blocked_cells:.0%} of the image lost its texture)"
        if self.verdict is ViewVerdict.BLURRED:
            return f"view blurred (sharpness {self.sharpness_ratio:.0%} of the reference)"
        return "view matches the reference"


def _gray_small(frame: Image) -> tuple[Image, float]:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame, got shape {frame.shape} {frame.dtype}")
    scale = _WORK_WIDTH / frame.shape[1]
    size = (_WORK_WIDTH, max(1, round(frame.shape[0] * scale)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), dtype=np.uint8), scale


def _sharpness(gray: Image) -> float:
    # A light pre-blur first, so the measure follows edges in the scene rather than pixel
    # noise and compression artefacts, which vary with light and bitrate.
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5)
    return float(cv2.Laplacian(smooth, cv2.CV_64F).var())


def _cell_texture(gray: Image) -> npt.NDArray[np.float64]:
    h, w = gray.shape
    cells = np.empty((_GRID, _GRID), dtype=np.float64)
    for i in range(_GRID):
        for j in range(_GRID):
            cell = gray[
                i * h // _GRID : (i + 1) * h // _GRID, j * w // _GRID : (j + 1) * w // _GRID
            ]
            cells[i, j] = float(cell.std())
    return cells


@dataclass(frozen=True)
class ReferenceView:
    """What the calibrated view looks like: features, sharpness and texture per cell."""

    shape: tuple[int, int]
    scale: float
    keypoints: npt.NDArray[np.float32]
    descriptors: Image
    sharpness: float
    texture: npt.NDArray[np.float64]

    @classmethod
    def from_frame(cls, frame: Image) -> ReferenceView:
        gray, scale = _gray_small(frame)
        points, descriptors = _features(gray)
        if len(points) < 50:
            raise ValueError(
                f"reference frame has only {len(points)} features; pick a frame with the "
                "road in clear view"
            )
        return cls(
            shape=(frame.shape[0], frame.shape[1]),
            scale=scale,
            keypoints=points,
            descriptors=descriptors,
            sharpness=_sharpness(gray),
            texture=_cell_texture(gray),
        )


def _features(gray: Image) -> tuple[npt.NDArray[np.float32], Image]:
    orb = cv2.ORB.create(nfeatures=1500, fastThreshold=12)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return np.empty((0, 2), np.float32), np.empty((0, 32), np.uint8)
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    return points, np.asarray(descriptors, dtype=np.uint8)


def _shift(reference: ReferenceView, gray: Image) -> tuple[float | None, int]:
    points, descriptors = _features(gray)
    if len(points) < 4:
        return None, 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(reference.descriptors, descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    if len(good) < 4:
        return None, len(good)
    src = reference.keypoints[[m.queryIdx for m in good]]
    dst = points[[m.trainIdx for m in good]]
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=2000, confidence=0.99
    )
    count = int(inliers.sum()) if inliers is not None else 0
    if matrix is None:
        return None, count
    h, w = gray.shape
    ys, xs = np.mgrid[0 : h : h / 6, 0 : w : w / 6]
    grid = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=0)
    moved = matrix @ grid
    displacement = np.hypot(moved[0] - grid[0], moved[1] - grid[1])
    return float(np.median(displacement)) / reference.scale, count


def check_view(reference: ReferenceView, frame: Image, bounds: IntegrityBounds) -> ViewCheck:
    """Compare one frame with the reference view."""
    if (frame.shape[0], frame.shape[1]) != reference.shape:
        raise ValueError(
            f"frame is {frame.shape[1]}x{frame.shape[0]}, the reference view "
            f"{reference.shape[1]}x{reference.shape[0]}"
        )
    gray, _ = _gray_small(frame)
    sharpness_ratio = _sharpness(gray) / max(reference.sharpness, 1e-6)
    textured = reference.texture > 6.0
    lost = (_cell_texture(gray) < 0.3 * reference.texture) & textured
    blocked = float(lost.sum()) / max(int(textured.sum()), 1)
    shift, matches = _shift(reference, gray)

    if blocked > bounds.max_blocked_cells:
        verdict = ViewVerdict.BLOCKED
    elif sharpness_ratio < bounds.min_sharpness_ratio:
        verdict = ViewVerdict.BLURRED
    elif shift is None or matches < bounds.min_matches or shift > bounds.max_shift_px:
        verdict = ViewVerdict.SHIFTED
    else:
        verdict = ViewVerdict.OK
    return ViewCheck(verdict, shift, sharpness_ratio, blocked, matches)


@dataclass
class IntegrityGuard:
    """Pauses enforcement on a camera while its view differs from the reference."""

    reference: ReferenceView
    bounds: IntegrityBounds = field(default_factory=IntegrityBounds)
    enforcing: bool = True
    reason: str = "view matches the reference"
    last: ViewCheck | None = None
    _streak: int = 0

    def update(self, frame: Image) -> bool:
        """Check one frame; return whether enforcement is on after it."""
        check = check_view(self.reference, frame, self.bounds)
        self.last = check
        contrary = (check.verdict is ViewVerdict.OK) != self.enforcing
        self._streak = self._streak + 1 if contrary else 0
        if self._streak >= self.bounds.inertia:
            self.enforcing = not self.enforcing
            self._streak = 0
            self.reason = check.reason
        elif not contrary:
            self.reason = check.reason
        return self.enforcing
