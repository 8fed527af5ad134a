"""Frames for model checks: still images as they are, videos sampled evenly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from roadwatch.errors import UserError

Image = npt.NDArray[Any]
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".ts"}
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_media() -> list[Path]:
    """The pulled Bangkok sample and the sample clips beside the checkout, when present."""
    from models.registry import model_path

    media = [model_path("bangkok_junction")]
    if SHARED_DATA.is_dir():
        media += sorted(p for p in SHARED_DATA.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return media


def sample_frames(media: Sequence[Path], per_video: int) -> list[Image]:
    """Every image, and ``per_video`` evenly spaced frames of every video."""
    if per_video < 1:
        raise UserError("take at least one frame per video")
    frames: list[Image] = []
    for path in media:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            image = cv2.imread(str(path))
            if image is None:
                raise UserError(f"{path}: not an image OpenCV can read")
            frames.append(image)
            continue
        frames += _video_frames(path, per_video)
    return frames


def _video_frames(path: Path, count: int) -> list[Image]:
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not capture.isOpened() or total <= 0:
            raise UserError(f"{path}: not a video OpenCV can read")
        frames: list[Image] = []
        for index in np.linspace(0, total - 1, count).round().astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                frames.append(frame)
        if not frames:
            raise UserError(f"{path}: no frame could be decoded")
        return frames
    finally:
        capture.release()
