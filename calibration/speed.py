"""Ground-plane speed of a track, with an uncertainty a speeding rule can rely on.

A track's ground contact points (pixels, e.g. the bottom centre of its boxes) are mapped
onto the road plane; a constant-velocity line is fitted robustly over a window of at least
``min_distance_m`` or ``min_duration_s``. The uncertainty adds, in quadrature:

- calibration: the calibration's RMS on the road at both ends of the window;
- pixel footprint: how far on the road one pixel of box-edge error moves the contact point
  at the window's ends (the homography's Jacobian there, so far points weigh more);
- track jitter: the standard error of the fitted slope from the fit's residuals.

The interval is speed +/- z * sigma; the speeding rule uses its lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError
from calibration.projector import RoadProjector

MPS_TO_KMH = 3.6
_HUBER_K = 1.5
_IRLS_STEPS = 20


@dataclass(frozen=True)
class GroundSample:
    """Where a track touched the road in one frame: time (s) and pixel as captured."""

    t: float
    pixel: tuple[float, float]
    box_height_px: float = 0.0
    """Height of the box the point came from: its bottom edge's error grows with it."""


@dataclass(frozen=True)
class SpeedConfig:
    min_distance_m: float = 10.0
    min_duration_s: float = 0.5
    max_window_s: float = 4.0
    min_samples: int = 5
    pixel_sigma_px: float = 1.0
    """One-sigma error of a contact point's pixel position, whatever the box size."""
    box_edge_sigma: float = 0.0
    """One-sigma error of a box's bottom edge as a share of the box's height."""
    z: float = 1.96
    """Interval half-width in sigmas (1.96: 95 %)."""

    def __post_init__(self) -> None:
        if not (self.min_distance_m >= 0 and self.min_duration_s >= 0):
            raise CalibrationError("speed window minimums must not be negative")
        if not (self.max_window_s > 0 and self.min_samples >= 3):
            raise CalibrationError("speed window needs a positive length and >= 3 samples")
        if not (self.pixel_sigma_px >= 0 and self.box_edge_sigma >= 0 and self.z > 0):
            raise CalibrationError("pixel sigmas must not be negative and z must be positive")


@dataclass(frozen=True)
class SpeedEstimate:
    speed_mps: float
    sigma_mps: float
    z: float
    sigma_calibration_mps: float
    sigma_pixel_mps: float
    sigma_jitter_mps: float
    heading: tuple[float, float]
    """Unit vector of travel on the road plane (x, y)."""
    window_s: float
    distance_m: float
    samples: int
    inliers: int

    @property
    def speed_kmh(self) -> float:
        return self.speed_mps * MPS_TO_KMH

    @property
    def uncertainty_kmh(self) -> float:
        """Half-width of the interval."""
        return self.z * self.sigma_mps * MPS_TO_KMH

    @property
    def lower_kmh(self) -> float:
        return max(0.0, self.speed_kmh - self.uncertainty_kmh)

    @property
    def upper_kmh(self) -> float:
        return self.speed_kmh + self.uncertainty_kmh

    def contains(self, speed_kmh: float) -> bool:
        return self.lower_kmh <= speed_kmh <= self.upper_kmh


@dataclass(frozen=True)
class _LineFit:
    velocity: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    robust: npt.NDArray[np.float64]
    residuals: npt.NDArray[np.float64]
    t_mean: float


def _fit_line(
    t: npt.NDArray[np.float64], xy: npt.NDArray[np.float64], sigma_m: npt.NDArray[np.float64]
) -> _LineFit:
    """p(t) = p0 + v t, weighted by each sample's positional variance, Huber-robust.

    Far samples, where one pixel covers much road, weigh less; a sample whose residual is
    large for its own sigma is down-weighted further (an occlusion, a box that jumps).
    """
    precision = 1.0 / np.maximum(sigma_m, 1e-6) ** 2
    robust = np.ones(len(t))
    for _ in range(_IRLS_STEPS):
        weights = robust * precision
        t_mean = float(np.sum(weights * t) / np.sum(weights))
        dt = t - t_mean
        p_mean = (weights[:, None] * xy).sum(axis=0) / weights.sum()
        velocity = (weights[:, None] * dt[:, None] * (xy - p_mean)).sum(axis=0) / np.sum(
            weights * dt**2
        )
        residuals = xy - (p_mean + dt[:, None] * velocity)
        normalised = np.hypot(residuals[:, 0], residuals[:, 1]) / np.maximum(sigma_m, 1e-6)
        # The scale never drops below the modelled sigma, so exact tracks stay exact.
        scale = max(1.4826 * float(np.median(normalised)), 1.0)
        new = np.minimum(1.0, _HUBER_K * scale / np.maximum(normalised, 1e-12))
        if np.allclose(new, robust, atol=1e-6):
            break
        robust = new
    return _LineFit(
        velocity=velocity,
        weights=robust * precision,
        robust=robust,
        residuals=residuals,
        t_mean=t_mean,
    )


def estimate_speed(
    samples: Sequence[GroundSample], projector: RoadProjector, config: SpeedConfig
) -> SpeedEstimate | None:
    """Speed +/- uncertainty over the latest window; None while the track is too short."""
    if not samples:
        return None
    t = np.array([s.t for s in samples], dtype=np.float64)
    pixels = np.array([s.pixel for s in samples], dtype=np.float64)
    heights = np.array([s.box_height_px for s in samples], dtype=np.float64)
    if not (np.isfinite(t).all() and np.isfinite(pixels).all() and np.isfinite(heights).all()):
        raise CalibrationError("track samples contain NaN or infinite values")
    if np.any(np.diff(t) <= 0):
        raise CalibrationError("track samples must have strictly increasing times")
    keep = t >= t[-1] - config.max_window_s
    t, pixels, heights = t[keep], pixels[keep], heights[keep]
    world = projector.to_world(pixels)
    on_road = np.isfinite(world).all(axis=1)
    t, pixels, world, heights = t[on_road], pixels[on_road], world[on_road], heights[on_road]
    if len(t) < config.min_samples:
        return None
    duration = float(t[-1] - t[0])
    # A box's bottom edge errs up or down: its road footprint is the Jacobian's v column.
    sigma_px = np.hypot(config.pixel_sigma_px, config.box_edge_sigma * heights)
    v_column = projector.jacobians(pixels)[:, :, 1]
    footprint = v_column * sigma_px[:, None]
    fit = _fit_line(t, world, np.maximum(np.hypot(footprint[:, 0], footprint[:, 1]), 1e-3))
    speed = float(np.hypot(*fit.velocity))
    distance = speed * duration
    if duration < config.min_duration_s and distance < config.min_distance_m:
        return None
    heading = fit.velocity / speed if speed > 1e-9 else np.array([0.0, 1.0])
    w = fit.weights
    dt = t - fit.t_mean
    # How the fitted speed responds to each sample's along-track position.
    slope_weights = w * dt / float(np.sum(w * dt**2))
    # Jitter: the slope's standard error from the fit's own residuals (sandwich form).
    along = fit.residuals @ heading
    n = len(t)
    sigma_jitter = math.sqrt(float(np.sum((slope_weights * along) ** 2)) * n / max(n - 2, 1))
    # Pixel footprint: a box edge that sits off by sigma_px for the whole track moves every
    # sample by its footprint, and far samples by more; the speed error is the slope of it.
    sigma_pixel = abs(float(np.sum(slope_weights * (footprint @ heading))))
    sigma_calibration = math.sqrt(2.0) * projector.rms_m / duration
    sigma = math.sqrt(sigma_jitter**2 + sigma_pixel**2 + sigma_calibration**2)
    return SpeedEstimate(
        speed_mps=speed,
        sigma_mps=sigma,
        z=config.z,
        sigma_calibration_mps=sigma_calibration,
        sigma_pixel_mps=sigma_pixel,
        sigma_jitter_mps=sigma_jitter,
        heading=(float(heading[0]), float(heading[1])),
        window_s=duration,
        distance_m=distance,
        samples=len(t),
        inliers=int(np.sum(fit.robust > 0.5)),
    )
