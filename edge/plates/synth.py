"""Synthetic Vietnamese plates on real vehicle images, for measuring plate reading.

Plates are drawn to the regulation's proportions (one-line car 520x110 mm, two-line car
330x165 mm, motorcycle 190x140 mm) in condensed bold fonts from Debian font packages, in
each colour, then warped in perspective onto the plate position of a real vehicle cropped
from the sample stills and clips in ``../shared/data``, blurred, noised and JPEG-coded. The
night condition darkens the scene, lights or burns out the plate, and adds sensor noise.
Everything is drawn from one seeded generator, so a seed gives the same set every time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from edge.plates.grammar import (
    CAR_LETTERS,
    ELECTRIC_SERIES,
    MILITARY_UNIT_FIRST,
    SERIES_LETTERS,
    PlateKind,
)
from edge.plates.provinces import PROVINCES
from roadwatch.contract import PlateColour
from roadwatch.errors import UserError

Image8 = npt.NDArray[np.uint8]

FONT_FILES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",  # fonts-dejavu-core
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",  # fonts-liberation
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",  # fonts-roboto-unhinted
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Medium.ttf",
)


class Condition(StrEnum):
    DAY = "day"
    NIGHT = "night"


@dataclass(frozen=True)
class PlateSpec:
    """What a plate says and looks like: the written text is the grammar's normal form."""

    text: str
    lines: tuple[str, ...]
    kind: PlateKind
    colour: PlateColour


@dataclass(frozen=True)
class VehicleView:
    """A vehicle in a sample still or clip frame and where its plate sits (box fractions)."""

    file: str
    frame: int
    box: tuple[int, int, int, int]
    plate_at: tuple[float, float]
    two_wheeler: bool


@dataclass(frozen=True)
class PlateSample:
    image: Image8  # the vehicle crop, BGR
    spec: PlateSpec
    condition: Condition
    plate_box: tuple[int, int, int, int]  # where the plate was put, crop pixels
    source: str


# Front views at a Bangkok junction and rear views at a Saigon junction; each covers the
# vehicle's own plate with the synthetic one.
VEHICLES: tuple[VehicleView, ...] = (
    VehicleView("bangkok_junction.jpg", 0, (258, 335, 400, 545), (0.38, 0.89), False),
    VehicleView("bangkok_junction.jpg", 0, (485, 355, 592, 490), (0.5, 0.85), False),
    VehicleView("bangkok_junction.jpg", 0, (655, 305, 790, 470), (0.5, 0.86), False),
    VehicleView("bangkok_junction.jpg", 0, (72, 350, 215, 480), (0.5, 0.86), False),
    VehicleView("bangkok_junction.jpg", 0, (500, 280, 590, 368), (0.5, 0.84), False),
    VehicleView("bangkok_junction.jpg", 0, (200, 282, 305, 372), (0.5, 0.84), False),
    VehicleView("bangkok_junction.jpg", 0, (605, 272, 690, 355), (0.5, 0.84), False),
    VehicleView("bangkok_junction.jpg", 0, (358, 268, 440, 342), (0.5, 0.84), False),
    VehicleView("bangkok_junction.jpg", 0, (238, 195, 340, 298), (0.5, 0.84), False),
    VehicleView("bangkok_junction.jpg", 0, (500, 218, 562, 288), (0.5, 0.84), False),
    VehicleView("bangkok_junction.jpg", 0, (505, 520, 565, 612), (0.5, 0.6), True),
    VehicleView("bangkok_junction.jpg", 0, (425, 430, 487, 552), (0.5, 0.62), True),
    VehicleView("bangkok_junction.jpg", 0, (628, 458, 672, 548), (0.5, 0.6), True),
    VehicleView("bangkok_junction.jpg", 0, (690, 430, 740, 542), (0.5, 0.62), True),
    VehicleView("bangkok_junction.jpg", 0, (790, 555, 835, 652), (0.5, 0.6), True),
    VehicleView("bangkok_junction.jpg", 0, (160, 470, 230, 582), (0.5, 0.6), True),
    VehicleView("vn_saigon.mp4", 100, (415, 318, 572, 505), (0.41, 0.7), False),
    VehicleView("vn_saigon.mp4", 100, (660, 330, 790, 497), (0.54, 0.66), False),
    VehicleView("vn_saigon.mp4", 100, (588, 268, 642, 398), (0.5, 0.78), True),
    VehicleView("vn_saigon.mp4", 100, (808, 395, 866, 557), (0.45, 0.67), True),
    VehicleView("vn_saigon.mp4", 100, (763, 266, 802, 388), (0.5, 0.8), True),
)


def shared_data_dir() -> Path:
    """The sample media folder: ROADWATCH_SHARED_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("ROADWATCH_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    if not path.is_dir():
        raise UserError(
            f"sample media folder {path} is not there (set ROADWATCH_SHARED_DATA to the folder"
            " holding bangkok_junction.jpg and vn_saigon.mp4)"
        )
    return path


def load_vehicle_images(data_dir: Path) -> dict[VehicleView, Image8]:
    """Crop every vehicle view (with a margin for jitter) from the sample media."""
    frames: dict[tuple[str, int], Image8] = {}
    for view in VEHICLES:
        key = (view.file, view.frame)
        if key not in frames:
            frames[key] = _read_frame(data_dir / view.file, view.frame)
    return {v: frames[(v.file, v.frame)] for v in VEHICLES}


def _read_frame(path: Path, index: int) -> Image8:
    if not path.is_file():
        raise UserError(f"sample media {path} is not there")
    if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    else:
        cap = cv2.VideoCapture(str(path))
        try:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = cap.read()
        finally:
            cap.release()
        if not ok:
            image = None
    if image is None:
        raise UserError(f"cannot read frame {index} of {path}")
    return np.ascontiguousarray(image, dtype=np.uint8)


# -- plate text -------------------------------------------------------------------------


def random_spec(rng: np.random.Generator, two_wheeler: bool) -> PlateSpec:
    """A plate in one of the grammar's formats, with a colour that format is issued in."""
    province = str(rng.choice(sorted(PROVINCES)))
    digits5 = "".join(str(d) for d in rng.integers(0, 10, 5))
    number5 = f"{digits5[:3]}.{digits5[3:]}"
    number4 = digits5[:4]
    letters = sorted(SERIES_LETTERS)
    if two_wheeler:
        form = rng.choice(
            ["motorcycle", "motorcycle4", "moped", "electric"], p=[0.6, 0.15, 0.1, 0.15]
        )
        if form == "moped":
            series = str(rng.choice(letters)) + str(rng.choice(letters))
        elif form == "electric":
            series = f"{ELECTRIC_SERIES}{rng.integers(1, 10)}"
        else:
            series = f"{rng.choice(letters)}{rng.integers(1, 10)}"
        number = number4 if form == "motorcycle4" else number5
        colour = PlateColour.BLUE if rng.random() < 0.2 else PlateColour.WHITE
        top = f"{province}-{series}"
        return PlateSpec(f"{top} {number}", (top, number), PlateKind.MOTORCYCLE, colour)
    if rng.random() < 0.12:
        unit = str(rng.choice(sorted(MILITARY_UNIT_FIRST))) + str(rng.choice(letters))
        text = f"{unit}-{digits5[:2]}-{digits5[2:4]}"
        return PlateSpec(text, (text,), PlateKind.MILITARY, PlateColour.RED)
    series = str(rng.choice(sorted(CAR_LETTERS))) if rng.random() < 0.9 else "LD"
    number = number4 if rng.random() < 0.2 else number5
    colour = PlateColour(rng.choice(["white", "yellow", "blue"], p=[0.5, 0.35, 0.15]))
    head = f"{province}{series}"
    text = f"{head}-{number}"
    lines = (head, number) if rng.random() < 0.35 else (text,)
    return PlateSpec(text, lines, PlateKind.CAR, colour)


# -- drawing ----------------------------------------------------------------------------

_BACKGROUND: dict[PlateColour, tuple[int, int, int]] = {  # RGB
    PlateColour.WHITE: (236, 236, 230),
    PlateColour.YELLOW: (250, 196, 20),
    PlateColour.BLUE: (22, 70, 160),
    PlateColour.RED: (200, 28, 32),
}
_PX_PER_MM = 2.0


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def available_fonts() -> tuple[str, ...]:
    fonts = tuple(f for f in FONT_FILES if Path(f).is_file())
    if not fonts:
        raise UserError(
            "no plate fonts found: install the Debian packages fonts-dejavu-core,"
            " fonts-liberation and fonts-roboto-unhinted (scripts/setup does)"
        )
    return fonts


def _text_block(text: str, font_path: str, height: int, max_width: int, ink: int) -> Image.Image:
    font = _font(font_path, 200)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (int(right - left) + 8, int(bottom - top) + 8), 0)
    ImageDraw.Draw(img).text((4 - left, 4 - top), text, font=font, fill=ink)
    bbox = img.getbbox() or (0, 0, img.width, img.height)
    img = img.crop(bbox)
    width = min(max_width, round(img.width * height / img.height * 1.08))
    return img.resize((max(width, 1), height), Image.Resampling.LANCZOS)


def render_plate(spec: PlateSpec, font_path: str) -> Image8:
    """The plate seen square-on, BGR, at two pixels per millimetre."""
    if spec.kind is PlateKind.MOTORCYCLE:
        size_mm, heights_mm = (190, 140), (50, 50)
    elif len(spec.lines) == 2:
        size_mm, heights_mm = (330, 165), (62, 62)
    else:
        size_mm, heights_mm = (520, 110), (78, 0)
    w, h = round(size_mm[0] * _PX_PER_MM), round(size_mm[1] * _PX_PER_MM)
    bg = _BACKGROUND[spec.colour]
    ink = (
        (20, 20, 20) if spec.colour in (PlateColour.WHITE, PlateColour.YELLOW) else (245, 245, 245)
    )
    plate = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(plate)
    inset = round(4 * _PX_PER_MM)
    draw.rectangle((inset, inset, w - inset, h - inset), outline=ink, width=round(2.5 * _PX_PER_MM))
    n = len(spec.lines)
    gap = (h - sum(round(heights_mm[i] * _PX_PER_MM) for i in range(n))) / (n + 1)
    y = gap
    for i, line in enumerate(spec.lines):
        th = round(heights_mm[i] * _PX_PER_MM)
        block = _text_block(line, font_path, th, w - 4 * inset, 255)
        x = (w - block.width) // 2
        plate.paste(Image.new("RGB", block.size, ink), (x, round(y)), block)
        y += th + gap
    rgb = np.asarray(plate, dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


# -- composing --------------------------------------------------------------------------


def compose(
    vehicle: VehicleView,
    frame: Image8,
    plate: Image8,
    condition: Condition,
    rng: np.random.Generator,
    plate_scale: float = 1.0,
) -> tuple[Image8, tuple[int, int, int, int]]:
    """Put a plate on a vehicle crop: perspective, lighting, blur, noise, JPEG.

    ``plate_scale`` shrinks (< 1) or enlarges the plate and its vehicle on the image, as a
    camera further away or with a wider lens would.
    """
    x1, y1, x2, y2 = vehicle.box
    bw, bh = x2 - x1, y2 - y1
    jx, jy = rng.uniform(-0.06, 0.06, 2)
    grow = rng.uniform(0.0, 0.12)
    cx1 = int(np.clip(x1 + (jx - grow) * bw, 0, frame.shape[1] - 2))
    cy1 = int(np.clip(y1 + (jy - grow) * bh, 0, frame.shape[0] - 2))
    cx2 = int(np.clip(x2 + (jx + grow) * bw, cx1 + 2, frame.shape[1]))
    cy2 = int(np.clip(y2 + (jy + grow) * bh, cy1 + 2, frame.shape[0]))
    crop = frame[cy1:cy2, cx1:cx2]
    # Plate width in pixels on the camera image, then the vehicle scaled to match it.
    ph, pw = plate.shape[:2]
    if vehicle.two_wheeler:
        plate_w = rng.uniform(62.0, 100.0)
        share = rng.uniform(0.4, 0.55)
    else:
        plate_w = rng.uniform(105.0, 180.0) if ph < pw / 3 else rng.uniform(78.0, 120.0)
        share = rng.uniform(0.3, 0.42)
    plate_w *= plate_scale
    scale = plate_w / (share * bw)
    out_w, out_h = max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale))
    image = cv2.resize(
        crop, (out_w, out_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    plate_h = plate_w * ph / pw
    centre = np.array(
        [
            (x1 + vehicle.plate_at[0] * bw - cx1) * scale,
            (y1 + vehicle.plate_at[1] * bh - cy1) * scale,
        ]
    )
    small = cv2.resize(
        plate, (round(plate_w * 1.5), round(plate_h * 1.5)), interpolation=cv2.INTER_AREA
    )
    sh, sw = small.shape[:2]
    src = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], dtype=np.float32)
    angle = np.radians(rng.uniform(-7.0, 7.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    half = (
        np.array(
            [[-plate_w, -plate_h], [plate_w, -plate_h], [plate_w, plate_h], [-plate_w, plate_h]]
        )
        / 2
    )
    yaw = rng.uniform(-0.12, 0.12)  # one side nearer the camera
    pitch = rng.uniform(0.0, 0.12)  # seen from above: the top edge shorter
    half[:, 0] *= 1.0 + np.array([-yaw, yaw, yaw, -yaw])
    half[:2, 0] *= 1.0 - pitch
    half += rng.normal(0.0, 0.02 * plate_h, half.shape)
    dst = (half @ rot.T + centre).astype(np.float32)
    homography = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(small, homography, (out_w, out_h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(
        np.full((sh, sw), 255, np.uint8), homography, (out_w, out_h), flags=cv2.INTER_LINEAR
    )
    alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
    lit = image.astype(np.float32)
    plate_f = warped.astype(np.float32)
    if condition is Condition.DAY:
        lit = lit * rng.uniform(0.8, 1.15)
        plate_f = plate_f * rng.uniform(0.75, 1.1) + rng.uniform(-10, 15)
    else:
        lit = _night(lit, rng)
        plate_f = _night_plate(plate_f, rng)
    mixed = lit * (1.0 - alpha) + plate_f * alpha
    sigma = rng.uniform(0.0, 0.9) if condition is Condition.DAY else rng.uniform(0.3, 1.1)
    if sigma > 0.2:
        mixed = cv2.GaussianBlur(mixed, (0, 0), sigma)
    if rng.random() < 0.3:
        mixed = _motion_blur(mixed, rng)
    noise = rng.uniform(1.0, 5.0) if condition is Condition.DAY else rng.uniform(4.0, 9.0)
    mixed = mixed + rng.normal(0.0, noise, mixed.shape)
    out = np.clip(mixed, 0, 255).astype(np.uint8)
    quality = int(rng.integers(40, 91)) if condition is Condition.DAY else int(rng.integers(30, 71))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    xs, ys = dst[:, 0], dst[:, 1]
    box = (
        max(0, int(xs.min())),
        max(0, int(ys.min())),
        min(out_w, int(np.ceil(xs.max()))),
        min(out_h, int(np.ceil(ys.max()))),
    )
    return np.ascontiguousarray(decoded, dtype=np.uint8), box


def _night(scene: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    gain = rng.uniform(0.12, 0.3)
    tint = np.array([rng.uniform(1.0, 1.25), 1.0, rng.uniform(0.8, 1.05)], np.float32)
    dark = 255.0 * (scene / 255.0) ** 1.3 * gain * tint
    return dark.astype(np.float32)


def _night_plate(
    plate: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """The plate at night: dimly lit, lit by the camera's lamp, or burnt out by it."""
    mode = rng.choice(["dim", "lamp", "burnt"], p=[0.4, 0.35, 0.25])
    if mode == "dim":
        gain = rng.uniform(0.22, 0.45)
    elif mode == "lamp":
        gain = rng.uniform(0.5, 0.9)
    else:
        gain = rng.uniform(1.3, 1.8)
    lit = 255.0 * (plate / 255.0) ** 1.15 * gain
    if mode == "burnt":
        lit = lit + rng.uniform(10.0, 40.0)  # flare lifts the dark characters too
    return lit.astype(np.float32)


def _motion_blur(
    image: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    length = int(rng.integers(2, 5))
    kernel = np.zeros((length, length), np.float32)
    if rng.random() < 0.5:
        kernel[length // 2, :] = 1.0 / length
    else:
        kernel[:, length // 2] = 1.0 / length
    return cv2.filter2D(image, -1, kernel).astype(np.float32)


def generate(
    count: int,
    seed: int,
    data_dir: Path,
    conditions: Sequence[Condition] = (Condition.DAY, Condition.NIGHT),
    plate_scale: float = 1.0,
) -> Iterator[PlateSample]:
    """``count`` samples per condition, drawn from ``seed``; the same seed, the same set."""
    frames = load_vehicle_images(data_dir)
    fonts = available_fonts()
    rng = np.random.default_rng(seed)
    for condition in conditions:
        for i in range(count):
            vehicle = VEHICLES[int(rng.integers(0, len(VEHICLES)))]
            spec = random_spec(rng, vehicle.two_wheeler)
            plate = render_plate(spec, fonts[i % len(fonts)])
            image, box = compose(vehicle, frames[vehicle], plate, condition, rng, plate_scale)
            yield PlateSample(image, spec, condition, box, f"{vehicle.file}#{vehicle.frame}")
