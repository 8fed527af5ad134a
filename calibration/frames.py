"""Reading one frame from an image, a video file or a camera's stream (the I/O edge of the
calibration tools)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError
from calibration.store import write_bytes_atomic
from roadwatch.net import redact_url

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".ts", ".webm"}
STREAM_OPEN_TIMEOUT_S = 10.0


def is_stream_url(source: str) -> bool:
    """A camera's stream (``rtsp://``, ``http://`` …), not a file."""
    return "://" in source


def read_source_frame(source: str, index: int = 0) -> npt.NDArray[np.uint8]:
    """A BGR frame of a camera's stream (frame ``index`` after it opened) or of a file.

    A stream is read as the node reads its cameras (``edge.sources.OpenCvCapture``): it
    opens within ``STREAM_OPEN_TIMEOUT_S``, each frame comes within as long, and its
    errors are the node's (``SourceError``), the URL's password replaced by ***."""
    if not is_stream_url(source):
        return read_frame(Path(source), index)
    from edge.sources import SourceError, open_opencv, quiet_ffmpeg

    quiet_ffmpeg()  # (the error says why; FFmpeg's own lines would only repeat it)
    capture = open_opencv(source, STREAM_OPEN_TIMEOUT_S)
    try:
        frame = None
        for _ in range(index + 1):
            started = time.monotonic()
            ok, frame = capture.read()
            if not ok or frame is None:
                # (a read that waited out the time-out: the stream stalled, it did not end)
                stalled = time.monotonic() - started >= 0.9 * STREAM_OPEN_TIMEOUT_S
                why = (
                    f"no frame within {STREAM_OPEN_TIMEOUT_S:g} s: the stream stalled"
                    if stalled
                    else "the stream ended"
                )
                raise SourceError(f"{redact_url(source)}: {why} before frame {index}")
    finally:
        capture.release()
    return np.asarray(frame, dtype=np.uint8)


def read_frame(path: Path, index: int = 0) -> npt.NDArray[np.uint8]:
    """A BGR frame: the image itself, or frame ``index`` of a video."""
    if not path.is_file():
        raise CalibrationError(f"{path}: no such file")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise CalibrationError(f"{path}: cannot open the video")
            if index:
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
        finally:
            capture.release()
        if not ok or frame is None:
            raise CalibrationError(f"{path}: has no frame {index}")
        return np.asarray(frame, dtype=np.uint8)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CalibrationError(f"{path}: not an image OpenCV can read")
    return np.asarray(image, dtype=np.uint8)


def check_image_name(path: Path) -> None:
    """Refuse a picture name ``write_image`` cannot write, before any work is done."""
    if path.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
        raise CalibrationError(f"{path}: must end in .png, .jpg or .jpeg")


def write_image(image: npt.NDArray[np.uint8], path: Path) -> None:
    check_image_name(path)
    if not path.parent.is_dir():
        raise CalibrationError(f"{path.parent}: folder does not exist")
    ok, encoded = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise CalibrationError(f"{path}: cannot encode the picture")
    # (in one step: a picture written over with --replace is kept whole if the write fails)
    write_bytes_atomic(path, encoded.tobytes())
