"""Ground-truth traffic scenes: scripted vehicles on a flat road seen by a known camera.

This module holds what a scene is and what is true in it, with no imagery: the rendering
from real road and vehicle imagery lives in :mod:`calibration.scene_render`. A scene is
fully determined by its :class:`SceneSpec` (seeded), so the same spec always gives the same
video and the same ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from calibration.camera import PinholeCamera
from calibration.errors import CalibrationError


@dataclass(frozen=True)
class VehiclePath:
    """A vehicle driving at constant velocity on the road plane from ``enter_s`` on.

    The position is the vehicle's rear ground contact point (the bottom centre of its
    image), in road metres; velocity is (across, along) the road in km/h.
    """

    vehicle_id: int
    sprite: int
    start_m: tuple[float, float]
    velocity_kmh: tuple[float, float]
    enter_s: float = 0.0

    @property
    def speed_kmh(self) -> float:
        return math.hypot(*self.velocity_kmh)

    def position(self, t: float) -> tuple[float, float] | None:
        if t < self.enter_s:
            return None
        dt = t - self.enter_s
        return (
            self.start_m[0] + self.velocity_kmh[0] / 3.6 * dt,
            self.start_m[1] + self.velocity_kmh[1] / 3.6 * dt,
        )


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


@dataclass(frozen=True)
class SceneSpec:
    name: str
    seed: int
    camera: PinholeCamera
    fps: float
    frames: int
    vehicles: tuple[VehiclePath, ...]
    effects: Effects = field(default_factory=Effects)

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


class SceneTruth(_Truth):
    """What is true in a generated scene, frame by frame (written next to its video)."""

    name: str
    seed: int
    fps: float
    camera: CameraTruth
    vehicles: list[VehicleTruth]
    frames: list[FrameTruth]


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
