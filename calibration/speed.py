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
class _LineFits:
    """One fitted line per row of padded sample arrays (padding weighs nothing)."""

    velocity: npt.NDArray[np.float64]  # (K, 2)
    weights: npt.NDArray[np.float64]  # (K, L)
    robust: npt.NDArray[np.float64]  # (K, L)
    residuals: npt.NDArray[np.float64]  # (K, L, 2)
    t_mean: npt.NDArray[np.float64]  # (K,)


def _fit_lines(
    t: npt.NDArray[np.float64],
    xy: npt.NDArray[np.float64],
    sigma_m: npt.NDArray[np.float64],
    valid: npt.NDArray[np.bool_],
) -> _LineFits:
    """Per row, p(t) = p0 + v t, weighted by each sample's positional variance,
    Huber-robust; all rows in one array pass, each row stopping when its weights settle.

    Far samples, where one pixel covers much road, weigh less; a sample whose residual is
    large for its own sigma is down-weighted further (an occlusion, a box that jumps).
    """
    rows = np.arange(len(t))
    counts = valid.sum(axis=1)
    low, high = (counts - 1) // 2, counts // 2  # the median's two middle ranks
    sigma = np.maximum(sigma_m, 1e-6)
    precision = np.where(valid, 1.0 / sigma**2, 0.0)
    robust = valid.astype(np.float64)
    x, y = xy[..., 0], xy[..., 1]
    active = np.ones(len(t), dtype=bool)
    for _ in range(_IRLS_STEPS):
        weights = robust * precision
        total = weights.sum(axis=1)
        mean_t = (weights * t).sum(axis=1) / total
        dt = t - mean_t[:, None]
        x_mean = (weights * x).sum(axis=1) / total
        y_mean = (weights * y).sum(axis=1) / total
        weighted_dt = weights * dt
        spread = (weighted_dt * dt).sum(axis=1)
        vx = (weighted_dt * (x - x_mean[:, None])).sum(axis=1) / spread
        vy = (weighted_dt * (y - y_mean[:, None])).sum(axis=1) / spread
        rx = x - (x_mean[:, None] + dt * vx[:, None])
        ry = y - (y_mean[:, None] + dt * vy[:, None])
        normalised = np.hypot(rx, ry) / sigma
        ordered = np.sort(np.where(valid, normalised, np.inf), axis=1)
        # The scale never drops below the modelled sigma, so exact tracks stay exact.
        scale = np.maximum(1.4826 * (ordered[rows, low] + ordered[rows, high]) / 2.0, 1.0)
        new = np.where(
            valid, np.minimum(1.0, _HUBER_K * scale[:, None] / np.maximum(normalised, 1e-12)), 0.0
        )
        # A settled row keeps its weights, so its fit stays the one it settled on.
        settled = np.all(np.abs(new - robust) <= 1e-6 + 1e-5 * np.abs(robust), axis=1)
        active &= ~settled
        robust[active] = new[active]
        if not active.any():
            break
    return _LineFits(
        velocity=np.column_stack([vx, vy]),
        weights=robust * precision,
        robust=robust,
        residuals=np.stack([rx, ry], axis=-1),
        t_mean=mean_t,
    )


def ground_rows(samples: Sequence[GroundSample]) -> npt.NDArray[np.float64]:
    """Samples as the rows ``estimate_speeds`` takes: (N, 4) of t, u, v, box height."""
    rows = np.array(
        [(s.t, s.pixel[0], s.pixel[1], s.box_height_px) for s in samples], dtype=np.float64
    )
    return rows.reshape(len(samples), 4)


class SampleWindow:
    """A track's newest ground samples as rows for ``estimate_speeds``, appended frame by
    frame and kept to the last ``seconds`` (no per-frame conversion of the history)."""

    __slots__ = ("_buffer", "_end", "_start", "seconds")

    def __init__(self, seconds: float, capacity: int = 64) -> None:
        self.seconds = seconds
        self._buffer = np.empty((max(capacity, 1), 4), dtype=np.float64)
        self._start = self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def rows(self) -> npt.NDArray[np.float64]:
        """The kept samples, oldest first (a view: valid until the next ``add``)."""
        return self._buffer[self._start : self._end]

    def add(self, sample: GroundSample) -> bool:
        """Keep ``sample`` unless it is not newer than the last; drop what is too old."""
        if len(self) and sample.t <= self._buffer[self._end - 1, 0]:
            return False
        if self._end == len(self._buffer):
            live = self.rows.copy()
            if len(live) * 2 > len(self._buffer):
                self._buffer = np.empty((len(self._buffer) * 2, 4), dtype=np.float64)
            self._buffer[: len(live)] = live
            self._start, self._end = 0, len(live)
        self._buffer[self._end] = (sample.t, *sample.pixel, sample.box_height_px)
        self._end += 1
        times = self._buffer[self._start : self._end, 0]
        self._start += int(np.searchsorted(times, sample.t - self.seconds, side="left"))
        return True


def estimate_speed(
    samples: Sequence[GroundSample], projector: RoadProjector, config: SpeedConfig
) -> SpeedEstimate | None:
    """Speed +/- uncertainty over the latest window; None while the track is too short."""
    return estimate_speeds([ground_rows(samples)], projector, config)[0]


def estimate_speeds(
    tracks: Sequence[npt.NDArray[np.float64]], projector: RoadProjector, config: SpeedConfig
) -> list[SpeedEstimate | None]:
    """``estimate_speed`` of each track, given as ``ground_rows`` (or a ``SampleWindow``'s
    rows), all in one array pass: a frame's tracks cost little more than one does."""
    out: list[SpeedEstimate | None] = [None] * len(tracks)
    arrays = [np.asarray(rows, dtype=np.float64) for rows in tracks]
    if any(a.ndim != 2 or a.shape[1] != 4 for a in arrays):
        raise CalibrationError("each track's samples must be rows of (t, u, v, box height)")
    lengths = np.array([len(a) for a in arrays], dtype=np.intp)
    if not lengths.sum():
        return out
    flat = np.concatenate(arrays)
    if not np.isfinite(flat).all():
        raise CalibrationError("track samples contain NaN or infinite values")
    track = np.repeat(np.arange(len(tracks)), lengths)  # each row's track
    t = flat[:, 0]
    if np.any((np.diff(t) <= 0) & (track[1:] == track[:-1])):
        raise CalibrationError("track samples must have strictly increasing times")
    last_t = t[np.maximum(np.cumsum(lengths) - 1, 0)]  # each track's newest (if any)
    world = projector.to_world(flat[:, 1:3])
    # The latest window of each track, on the road (not above the horizon).
    used = (t >= last_t[track] - config.max_window_s) & np.isfinite(world).all(axis=1)
    counts = np.bincount(track[used], minlength=len(tracks))
    enough = np.flatnonzero(counts >= config.min_samples)
    if not len(enough):
        return out
    used &= counts[track] >= config.min_samples
    flat, world, since = flat[used], world[used], t[used] - last_t[track[used]]
    # Padded rows, one per track with enough samples: its samples in order from column 0
    # (``flat`` holds them track after track, which is the mask's row-major order).
    n = counts[enough]
    valid = np.arange(int(n.max())) < n[:, None]
    # Times from each track's newest sample: epoch seconds would leave the fit's sums
    # only a few significant digits for the motion within the window.
    t_rows = np.zeros(valid.shape)
    t_rows[valid] = since
    xy = np.zeros((*valid.shape, 2))
    xy[valid] = world
    # A box's bottom edge errs up or down: its road footprint is the Jacobian's v column.
    sigma_px = np.hypot(config.pixel_sigma_px, config.box_edge_sigma * flat[:, 3])
    foot = projector.jacobians(flat[:, 1:3])[:, :, 1] * sigma_px[:, None]
    footprint = np.zeros((*valid.shape, 2))
    footprint[valid] = foot
    sigma_m = np.ones(valid.shape)  # (padding: any positive value, it weighs nothing)
    sigma_m[valid] = np.maximum(np.hypot(foot[:, 0], foot[:, 1]), 1e-3)
    fit = _fit_lines(t_rows, xy, sigma_m, valid)
    duration = t_rows[np.arange(len(n)), n - 1] - t_rows[:, 0]
    speed = np.hypot(fit.velocity[:, 0], fit.velocity[:, 1])
    distance = speed * duration
    heading = np.where(
        (speed > 1e-9)[:, None], fit.velocity / np.maximum(speed, 1e-300)[:, None], [0.0, 1.0]
    )
    w = fit.weights
    dt = np.where(valid, t_rows - fit.t_mean[:, None], 0.0)
    # How the fitted speed responds to each sample's along-track position.
    slope_weights = w * dt / (w * dt**2).sum(axis=1)[:, None]
    # Jitter: the slope's standard error from the fit's own residuals (sandwich form).
    along = (fit.residuals * heading[:, None, :]).sum(axis=2)
    sigma_jitter = np.sqrt(((slope_weights * along) ** 2).sum(axis=1) * n / np.maximum(n - 2, 1))
    # Pixel footprint: a box edge that sits off by sigma_px for the whole track moves every
    # sample by its footprint, and far samples by more; the speed error is the slope of it.
    sigma_pixel = np.abs((slope_weights * (footprint * heading[:, None, :]).sum(axis=2)).sum(1))
    sigma_calibration = math.sqrt(2.0) * projector.rms_m / duration
    sigma = np.sqrt(sigma_jitter**2 + sigma_pixel**2 + sigma_calibration**2)
    inliers = (fit.robust > 0.5).sum(axis=1)
    for k, i in enumerate(enough.tolist()):
        if duration[k] < config.min_duration_s and distance[k] < config.min_distance_m:
            continue
        out[i] = SpeedEstimate(
            speed_mps=float(speed[k]),
            sigma_mps=float(sigma[k]),
            z=config.z,
            sigma_calibration_mps=float(sigma_calibration[k]),
            sigma_pixel_mps=float(sigma_pixel[k]),
            sigma_jitter_mps=float(sigma_jitter[k]),
            heading=(float(heading[k, 0]), float(heading[k, 1])),
            window_s=float(duration[k]),
            distance_m=float(distance[k]),
            samples=int(n[k]),
            inliers=int(inliers[k]),
        )
    return out
