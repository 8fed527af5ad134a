"""Ground-truth traffic scenes: scripted vehicles on a flat road seen by a known camera.

This module holds what a scene is and what is true in it, with no imagery: the rendering
from real road and vehicle imagery lives in :mod:`calibration.scene_render`. A scene is
fully determined by its :class:`SceneSpec` (seeded), so the same spec always gives the same
video and the same ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from calibration.camera import PinholeCamera
from calibration.errors import CalibrationError


@dataclass(frozen=True)
class Leg:
    """A change of velocity at constant acceleration: from the velocity before the leg to
    ``velocity_kmh`` (across, along the road) over ``duration_s``. A leg that keeps the
    velocity is a stretch of steady driving."""

    duration_s: float
    velocity_kmh: tuple[float, float]

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise CalibrationError("a leg of a vehicle path must last more than 0 s")


@dataclass(frozen=True)
class VehiclePath:
    """A vehicle on the road plane from ``enter_s`` on: it starts at ``velocity_kmh``, then
    follows its ``legs`` one after the other and keeps the last velocity.

    The position is the vehicle's rear ground contact point (the bottom centre of its
    image), in road metres; velocity is (across, along) the road in km/h.
    """

    vehicle_id: int
    sprite: int
    start_m: tuple[float, float]
    velocity_kmh: tuple[float, float]
    enter_s: float = 0.0
    legs: tuple[Leg, ...] = ()

    @property
    def speed_kmh(self) -> float:
        """The speed it enters at."""
        return math.hypot(*self.velocity_kmh)

    def _state(self, t: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """Position (m) and velocity (m/s) at ``t`` >= ``enter_s``."""
        x, y = self.start_m
        vx, vy = self.velocity_kmh[0] / 3.6, self.velocity_kmh[1] / 3.6
        left = t - self.enter_s
        for leg in self.legs:
            wx, wy = leg.velocity_kmh[0] / 3.6, leg.velocity_kmh[1] / 3.6
            dt = min(left, leg.duration_s)
            k = dt / leg.duration_s
            ux, uy = vx + (wx - vx) * k, vy + (wy - vy) * k
            x += (vx + ux) / 2 * dt
            y += (vy + uy) / 2 * dt
            vx, vy = ux, uy
            left -= dt
            if left <= 0:
                return (x, y), (vx, vy)
        return (x + vx * left, y + vy * left), (vx, vy)

    def positions(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Positions (N, 2) at many times at once; NaN before the vehicle enters."""
        times = np.asarray(times, dtype=np.float64)
        out = np.full((len(times), 2), np.nan)
        t0 = self.enter_s
        p = np.array(self.start_m, dtype=np.float64)
        v = np.array(self.velocity_kmh, dtype=np.float64) / 3.6
        for leg in self.legs:
            w = np.array(leg.velocity_kmh, dtype=np.float64) / 3.6
            inside = (times >= t0) & (times < t0 + leg.duration_s)
            dt = (times[inside] - t0)[:, None]
            out[inside] = p + v * dt + (w - v) / leg.duration_s * dt * dt / 2
            p = p + (v + w) / 2 * leg.duration_s
            v = w
            t0 += leg.duration_s
        after = times >= t0
        out[after] = p + v * (times[after] - t0)[:, None]
        return out

    def position(self, t: float) -> tuple[float, float] | None:
        if t < self.enter_s:
            return None
        return self._state(t)[0]

    def velocity_at(self, t: float) -> tuple[float, float] | None:
        """Velocity (across, along) in km/h at ``t``; None before it enters."""
        if t < self.enter_s:
            return None
        vx, vy = self._state(t)[1]
        return vx * 3.6, vy * 3.6

    def speed_at(self, t: float) -> float:
        velocity = self.velocity_at(t)
        return 0.0 if velocity is None else math.hypot(*velocity)


@dataclass(frozen=True)
class Effects:
    """Image degradations applied after composing each frame."""

    blur_sigma_px: float = 0.0
    noise_sigma: float = 0.0
    gain_start: float = 1.0
    gain_end: float = 1.0
    crf: int | None = 23
    """H.264 constant rate factor (higher = stronger compression); None = lossless."""

    def gain(self, fraction: float) -> float:
        return self.gain_start + (self.gain_end - self.gain_start) * fraction


class LampColourName(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    GREEN = "green"
    OFF = "off"


@dataclass(frozen=True)
class LampPhase:
    start_s: float
    colour: LampColourName


@dataclass(frozen=True)
class SignalHeadSpec:
    """A traffic light drawn in the image: a dark housing at ``box`` (pixels x0, y0, x1, y1,
    taller than wide) with red, yellow and green lamps top to bottom, lit by ``phases``."""

    box: tuple[int, int, int, int]
    phases: tuple[LampPhase, ...]

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 and 0 <= y0 < y1 and y1 - y0 >= 3 * (x1 - x0) >= 9):
            raise CalibrationError("signal head box must be at least 3 px wide and 3x as tall")
        starts = [p.start_s for p in self.phases]
        if not starts or starts[0] != 0.0 or starts != sorted(set(starts)):
            raise CalibrationError("signal phases must start at 0 s and increase")

    def colour_at(self, t: float) -> LampColourName:
        current = self.phases[0].colour
        for phase in self.phases:
            if phase.start_s <= t:
                current = phase.colour
        return current

    def lamp_boxes(self) -> tuple[tuple[int, int, int, int], ...]:
        """The red, yellow and green lamp rectangles (x0, y0, x1, y1; x1, y1 exclusive)."""
        x0, y0, x1, y1 = self.box
        cell = (y1 - y0) // 3
        pad = max(1, (x1 - x0) // 8)
        return tuple(
            (x0 + pad, y0 + i * cell + pad, x1 - pad, y0 + (i + 1) * cell - pad) for i in range(3)
        )


@dataclass(frozen=True)
class RoadMarking:
    """Paint on the road: a convex polygon in road metres and its BGR colour."""

    polygon: tuple[tuple[float, float], ...]
    colour: tuple[int, int, int] = (225, 225, 225)


@dataclass(frozen=True)
class SceneSpec:
    name: str
    seed: int
    camera: PinholeCamera
    fps: float
    frames: int
    vehicles: tuple[VehiclePath, ...]
    effects: Effects = field(default_factory=Effects)
    signal: SignalHeadSpec | None = None
    markings: tuple[RoadMarking, ...] = ()

    def __post_init__(self) -> None:
        if not (1 <= self.fps <= 120 and 1 <= self.frames <= 100_000):
            raise CalibrationError("scene fps must be 1-120 and frames 1-100000")
        ids = [v.vehicle_id for v in self.vehicles]
        if len(set(ids)) != len(ids):
            raise CalibrationError(f"scene {self.name}: vehicle ids must be unique")

    def time(self, index: int) -> float:
        return index / self.fps


class _Truth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CameraTruth(_Truth):
    height_m: float
    tilt_deg: float
    focal_px: float
    width: int
    height: int
    pan_deg: float
    offset_m: float
    image_to_world: list[list[float]]

    def camera(self) -> PinholeCamera:
        return PinholeCamera(
            height_m=self.height_m,
            tilt_deg=self.tilt_deg,
            focal_px=self.focal_px,
            width=self.width,
            height=self.height,
            pan_deg=self.pan_deg,
            offset_m=self.offset_m,
        )


class VehicleTruth(_Truth):
    vehicle_id: int
    speed_kmh: float
    velocity_kmh: tuple[float, float]
    width_m: float
    sprite: int


class BoxTruth(_Truth):
    vehicle_id: int
    xyxy: tuple[float, float, float, float] = Field(description="visible box, pixels")
    world_m: tuple[float, float] = Field(description="rear ground contact point, metres")
    contact_px: tuple[float, float] = Field(description="that point in the image")
    speed_kmh: float
    visible: float = Field(ge=0, le=1, description="share of the vehicle's pixels in view")


class FrameTruth(_Truth):
    index: int
    t: float
    boxes: list[BoxTruth]


class PhaseTruth(_Truth):
    start_s: float
    colour: LampColourName


class SceneTruth(_Truth):
    """What is true in a generated scene, frame by frame (written next to its video)."""

    name: str
    seed: int
    fps: float
    camera: CameraTruth
    vehicles: list[VehicleTruth]
    frames: list[FrameTruth]
    signal_phases: list[PhaseTruth] = Field(
        default=[], description="the drawn traffic light's phases (none without one)"
    )


def camera_truth(camera: PinholeCamera) -> CameraTruth:
    return CameraTruth(
        height_m=camera.height_m,
        tilt_deg=camera.tilt_deg,
        focal_px=camera.focal_px,
        width=camera.width,
        height=camera.height,
        pan_deg=camera.pan_deg,
        offset_m=camera.offset_m,
        image_to_world=camera.image_to_world.tolist(),
    )


# Standard cameras for speed measurement: (height m, tilt deg, focal px, pan deg, offset m).
STANDARD_CAMERAS: tuple[tuple[float, float, float, float, float], ...] = (
    (6.0, 10.0, 1300.0, 0.0, 0.0),
    (8.0, 14.0, 1200.0, 4.0, -3.0),
    (10.0, 17.0, 1100.0, -5.0, 4.0),
    (12.0, 22.0, 1000.0, 0.0, 1.5),
)
# Lane centres (m across the road) on the sample road texture.
LANES = (-1.75, 1.75, 5.25)


def standard_scenes(
    seed: int = 2026,
    count: int = 10,
    sprites: int = 8,
    width: int = 1280,
    height: int = 720,
    fps: float = 20.0,
    max_seconds: float = 3.5,
) -> list[SceneSpec]:
    """A seeded set of speed scenes: 30-130 km/h, several camera heights and angles.

    Each scene has one vehicle per lane, driving away from or towards the camera through
    the measured stretch (about 14-75 m from the camera's foot).
    """
    rng = np.random.default_rng(seed)
    scenes = []
    for n in range(count):
        height_m, tilt, focal, pan, offset = STANDARD_CAMERAS[n % len(STANDARD_CAMERAS)]
        camera = PinholeCamera(
            height_m=height_m,
            tilt_deg=tilt,
            focal_px=focal,
            width=width,
            height=height,
            pan_deg=pan,
            offset_m=offset,
        )
        vehicles = []
        seconds = 0.0
        for lane_no, lane in enumerate(LANES):
            speed = float(rng.uniform(30, 130))
            towards = bool(rng.random() < 0.3)
            enter = float(rng.uniform(0, 0.4))
            drift = float(rng.uniform(-0.4, 0.4))
            start_y = 75.0 if towards else 13.0 + float(rng.uniform(0, 3))
            seconds = max(seconds, enter + 60.0 / (speed / 3.6))
            vehicles.append(
                VehiclePath(
                    vehicle_id=lane_no + 1,
                    sprite=int(rng.integers(0, sprites)),
                    start_m=(lane, start_y),
                    velocity_kmh=(drift, -speed if towards else speed),
                    enter_s=enter,
                )
            )
        effects = Effects(
            blur_sigma_px=float(rng.choice([0.0, 0.6, 1.0])),
            noise_sigma=float(rng.uniform(0, 4)),
            gain_start=float(rng.uniform(0.8, 1.1)),
            gain_end=float(rng.uniform(0.8, 1.1)),
            crf=int(rng.choice([20, 23, 26])),
        )
        scenes.append(
            SceneSpec(
                name=f"speed-{n:02d}",
                seed=seed + n,
                camera=camera,
                fps=fps,
                frames=math.ceil(min(seconds, max_seconds) * fps),
                vehicles=tuple(vehicles),
                effects=effects,
            )
        )
    return scenes
