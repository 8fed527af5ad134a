"""The caption burnt into evidence frames: time, camera, place and Km marker, lane and the
measured value, in Vietnamese.

Text is drawn with Pillow and a TrueType font (DejaVu Sans, Debian package
``fonts-dejavu-core``), which has every Vietnamese letter with its stacked diacritics;
OpenCV's built-in Hershey fonts have none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PilImage
from PIL import ImageDraw, ImageFont

from edge.evidence.ring import Image
from roadwatch.contract import EvidenceRole, ViolationEvent, ViolationType
from roadwatch.errors import UserError

FONT_PATHS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)
VIETNAM = timezone(timedelta(hours=7), "ICT")

TYPE_LABELS = {
    ViolationType.SPEEDING: "Quá tốc độ",
    ViolationType.RED_LIGHT: "Vượt đèn đỏ",
    ViolationType.WRONG_WAY: "Đi ngược chiều",
    ViolationType.FORBIDDEN_LANE: "Đi sai làn đường",
    ViolationType.SOLID_LINE: "Đè vạch liền",
    ViolationType.NO_STOPPING: "Dừng, đỗ sai quy định",
    ViolationType.NO_HELMET: "Không đội mũ bảo hiểm",
}
ROLE_LABELS = {
    EvidenceRole.FRAME_BEFORE: "Trước",
    EvidenceRole.FRAME_AT: "Thời điểm vi phạm",
    EvidenceRole.FRAME_AFTER: "Sau",
}
PHASE_LABELS = {"red": "đỏ", "yellow": "vàng", "green": "xanh", "off": "tắt", "unknown": "?"}


def font_path() -> Path:
    for path in FONT_PATHS:
        if path.is_file():
            return path
    raise UserError("no DejaVu Sans font: install the Debian package fonts-dejavu-core")


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def _number(value: float) -> str:
    return f"{value:.1f}".replace(".", ",")  # Vietnamese decimal comma


def measured_text(event: ViolationEvent) -> str:
    """The measured value behind the violation, as a reviewer reads it."""
    m = event.measured
    label = TYPE_LABELS[event.type]
    if m.speed_kmh is not None:
        text = f"{label}: {_number(m.speed_kmh)} km/h"
        if m.speed_uncertainty_kmh is not None:
            text += f" ± {_number(m.speed_uncertainty_kmh)}"
        if m.speed_limit_kmh is not None:
            text += f" (giới hạn {_number(m.speed_limit_kmh)} km/h)"
        return text
    if m.signal_phase is not None:
        text = f"{label}: đèn {PHASE_LABELS[m.signal_phase.value]}"
        if m.time_since_red_s is not None:
            text += f", {_number(m.time_since_red_s)} s sau khi chuyển đỏ"
        return text
    if m.dwell_s is not None:
        return f"{label}: dừng {_number(m.dwell_s)} s"
    return label


def caption_lines(event: ViolationEvent, role: EvidenceRole, captured_at: datetime) -> list[str]:
    local = captured_at.astimezone(VIETNAM)
    stamp = local.strftime("%d/%m/%Y %H:%M:%S.") + f"{local.microsecond // 1000:03d} (UTC+7)"
    place = event.place or "(chưa đặt tên địa điểm)"
    lane = f"Làn {event.lane}" if event.lane else "Làn: không xác định"
    return [
        f"{stamp} · {ROLE_LABELS.get(role, role.value)}",
        f"Camera {event.camera} · {place}",
        f"{lane} · {measured_text(event)}",
    ]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels (x1, y1) - (x2, y2)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not (self.x2 > self.x1 and self.y2 > self.y1):
            raise ValueError(f"empty box {self}")

    def expanded(self, fraction: float) -> Box:
        dx, dy = (self.x2 - self.x1) * fraction, (self.y2 - self.y1) * fraction
        return Box(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)

    def clipped(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Integer pixel bounds inside a width x height image; ValueError if outside it."""
        x1, y1 = max(0, int(self.x1)), max(0, int(self.y1))
        x2, y2 = min(width, int(np.ceil(self.x2))), min(height, int(np.ceil(self.y2)))
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"box {self} lies outside the {width}x{height} frame")
        return x1, y1, x2, y2


def draw_caption(image: Image, lines: Sequence[str], box: Box | None = None) -> Image:
    """A copy of a BGR frame with the caption band on top (and the vehicle box, if any)."""
    height, width = image.shape[:2]
    out = image.copy()
    if box is not None:
        x1, y1, x2, y2 = box.clipped(width, height)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), (0, 0, 255), max(2, height // 240))
    size = max(12, height // 30)
    font = _font(size)
    pad = max(4, size // 3)
    band = pad * 2 + len(lines) * (size + pad)
    # Darken the band so the text stays legible on any scene.
    out[:band] = (out[:band].astype(np.uint16) * 35 // 100).astype(np.uint8)
    pil = PilImage.fromarray(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))
    draw = ImageDraw.Draw(pil)
    y = pad
    for line in lines:
        draw.text((pad, y), line, font=font, fill=(255, 255, 255))
        y += size + pad
    return np.asarray(cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR), dtype=np.uint8)


def render_text(text: str, size: int = 24) -> Image:
    """Text alone, white on black (for checking that the font has every glyph)."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    pil = PilImage.new("L", (int(right - left) + 4, int(bottom - top) + 4))
    ImageDraw.Draw(pil).text((2 - left, 2 - top), text, font=font, fill=255)
    return np.asarray(pil, dtype=np.uint8)
