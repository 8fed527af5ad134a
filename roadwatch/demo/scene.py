"""The demo's sample scene: a calibrated road camera with known violations.

A clip is composed from real imagery (the road and vehicle cut-outs of the sample gantry
clip, through the scene generator) with a one-way, three-lane road limited to 60 km/h.
Most vehicles keep to the limit; some speed, and one drives against the traffic. The
camera is calibrated as a surveyor would (road marks clicked with pixel noise), and the
scene file marks the lanes, their direction and limit. Everything is seeded, so every run
produces the same clip and the same known violations.

Demo scene: plate images placed on vehicles so the read flow can be shown. The sample
footage holds no plate anyone can read (the gantry clip's plates are some 15 pixels wide
and Chinese; the Vietnamese clips' are 20-30 pixels wide, blurred past reading), so each
vehicle carries a Vietnamese plate drawn to the regulation's size (a one-line car plate,
520 x 110 mm, by the plate generator the reader is measured with) over its own plate, in
the camera's perspective. The camera films in 1080p, as the product's cameras do: at the
near end of the road a plate is about 100 pixels wide. The edge node reads these plates
as it reads any other, through its detector, tracker and plate reader; nothing tells it
what they say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import yaml

from calibration.camera import PinholeCamera
from calibration.config import CalibrationFile
from calibration.scene_render import PlateArt
from calibration.scenes import LANES, Effects, SceneSpec, VehiclePath
from edge.scene_layout import LaneStrip, RoadLayout
from edge.scene_layout import scene_document as layout_document
from roadwatch.contract import ViolationType

SPEED_LIMIT_KMH = 60.0
LANE_HALF_WIDTH_M = 1.75
ROAD_NEAR_M, ROAD_FAR_M = 12.0, 75.0
CAMERA_ID = "cam-01"

# (lane index, speed km/h, enter second, towards the camera); all lanes run away from it.
TRAFFIC: tuple[tuple[int, float, float, bool], ...] = (
    (0, 48.0, 0.0, False),
    (1, 104.0, 0.6, False),  # speeding
    (2, 52.0, 2.0, False),
    (0, 55.0, 5.0, False),
    (2, 38.0, 6.0, True),  # wrong way
    (1, 45.0, 8.5, False),
    (0, 118.0, 11.0, False),  # speeding
    (2, 57.0, 12.5, False),
    (1, 50.0, 15.0, False),
    (2, 96.0, 17.5, False),  # speeding
    (0, 42.0, 19.0, False),
)
SECONDS = 24.0
# Plates of the province and its neighbours: Bình Dương, Hồ Chí Minh City, Đồng Nai,
# Bình Phước, Tây Ninh.
PLATE_PROVINCES = ("61", "61", "61", "51", "60", "93", "70")
CAR_PLATE_MM = (520, 110)  # a one-line car plate
# The plate's holder around it, mm each side: it also covers the cut-out's own plate
# (440 x 140 mm, taller than a Vietnamese one-line plate).
HOLDER_MM = (20, 30)
HOLDER_BGR = (38, 38, 38)


@dataclass(frozen=True)
class KnownViolation:
    type: ViolationType
    lane: str
    speed_kmh: float


def demo_camera() -> PinholeCamera:
    """The sample road's camera, 8 m up looking 14 degrees down it (960 x 540)."""
    return PinholeCamera(
        height_m=8.0, tilt_deg=14.0, focal_px=900.0, width=960, height=540, pan_deg=0.0,
        offset_m=0.0,
    )  # fmt: skip


def demo_video_camera() -> PinholeCamera:
    """The demo's camera: the same view in 1080p, so that the near vehicles' plates can
    be read (about 100 pixels wide, as a roadside camera's must be)."""
    view = demo_camera()
    return replace(view, focal_px=view.focal_px * 2, width=view.width * 2, height=view.height * 2)


def lane_id(index: int) -> str:
    return f"lane-{index + 1}"


def demo_spec(seed: int = 2026, fps: float = 12.0) -> SceneSpec:
    rng = np.random.default_rng(seed)
    vehicles = []
    for n, (lane, speed, enter, towards) in enumerate(TRAFFIC):
        start_y = ROAD_FAR_M if towards else ROAD_NEAR_M + 1.0
        vehicles.append(
            VehiclePath(
                vehicle_id=n + 1,
                sprite=int(rng.integers(0, 8)),
                start_m=(LANES[lane], start_y),
                velocity_kmh=(0.0, -speed if towards else speed),
                enter_s=enter,
            )
        )
    return SceneSpec(
        name="demo-ql13",
        seed=seed,
        camera=demo_video_camera(),
        fps=fps,
        frames=math.ceil(SECONDS * fps),
        vehicles=tuple(vehicles),
        effects=Effects(noise_sigma=2.0, crf=23),
    )


def demo_plate_texts(seed: int = 2026) -> dict[int, str]:
    """The plate each vehicle carries (vehicle id -> one-line car plate), from ``seed``."""
    from edge.plates.grammar import CAR_LETTERS

    rng = np.random.default_rng([seed, 61])
    letters = sorted(CAR_LETTERS)
    texts: dict[int, str] = {}
    for n in range(len(TRAFFIC)):
        province = str(rng.choice(PLATE_PROVINCES))
        digits = "".join(str(d) for d in rng.integers(0, 10, 5))
        texts[n + 1] = f"{province}{rng.choice(letters)}-{digits[:3]}.{digits[3:]}"
    return texts


def demo_plates(seed: int = 2026) -> dict[int, PlateArt]:
    """The plate pictures the scene puts on its vehicles: white private-car plates, with
    yellow commercial ones among them (vehicle id -> picture and real width)."""
    from edge.plates.grammar import PlateKind
    from edge.plates.synth import PlateSpec, available_fonts, render_plate
    from roadwatch.contract import PlateColour

    font = available_fonts()[0]
    plates = {}
    for vehicle_id, text in demo_plate_texts(seed).items():
        colour = PlateColour.YELLOW if vehicle_id % 4 == 0 else PlateColour.WHITE
        picture = render_plate(PlateSpec(text, (text,), PlateKind.CAR, colour), font)
        px_per_mm = picture.shape[1] / CAR_PLATE_MM[0]
        side, top = (round(mm * px_per_mm) for mm in HOLDER_MM)
        held = cv2.copyMakeBorder(
            picture, top, top, side, side, cv2.BORDER_CONSTANT, value=HOLDER_BGR
        )
        width_m = (CAR_PLATE_MM[0] + 2 * HOLDER_MM[0]) / 1000
        plates[vehicle_id] = PlateArt(np.asarray(held, dtype=np.uint8), width_m)
    return plates


def known_violations() -> list[KnownViolation]:
    out = []
    for lane, speed, _enter, towards in TRAFFIC:
        if towards:
            out.append(KnownViolation(ViolationType.WRONG_WAY, lane_id(lane), speed))
        elif speed > SPEED_LIMIT_KMH + 20:
            out.append(KnownViolation(ViolationType.SPEEDING, lane_id(lane), speed))
    return out


def demo_layout() -> RoadLayout:
    """Three one-way lanes limited to 60 km/h, with their road-plane geometry."""
    return RoadLayout(
        version="demo-ql13/1",
        camera_id=CAMERA_ID,
        lanes=tuple(
            LaneStrip(
                id=lane_id(index),
                x0=centre - LANE_HALF_WIDTH_M,
                x1=centre + LANE_HALF_WIDTH_M,
                name=f"Làn {index + 1}",
            )
            for index, centre in enumerate(LANES)
        ),
        near_m=ROAD_NEAR_M,
        far_m=ROAD_FAR_M,
        speed_limit_kmh=SPEED_LIMIT_KMH,
        rules={
            "red_light": {"enabled": False},
            "no_stopping": {"enabled": False},
            "forbidden_lane": {"enabled": False},
            "solid_line": {"enabled": False},
        },
    )


def scene_document(camera: PinholeCamera) -> dict[str, object]:
    """The scene file: three one-way lanes with their world geometry, limit 60 km/h."""
    return layout_document(demo_layout(), camera)


def write_scene_file(path: Path, camera: PinholeCamera) -> None:
    path.write_text(
        yaml.safe_dump(scene_document(camera), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )


def surveyed_calibration(camera: PinholeCamera, seed: int, at: datetime) -> CalibrationFile:
    """The camera calibrated from road marks clicked with pixel noise."""
    from calibration.speed_eval import surveyed_calibration as survey

    return survey(camera, seed, at, camera_id=CAMERA_ID, calibrated_by="Roadwatch demo survey")
