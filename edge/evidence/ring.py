"""A per-camera ring buffer of recent frames, JPEG-encoded to bound its memory.

Frames older than ``seconds`` behind the newest are evicted, and so are the oldest
frames while the buffer holds more than ``max_bytes`` of JPEG. Thread-safe: the pipeline
thread pushes while the evidence threads read.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from edge.sources import Frame

Image = npt.NDArray[np.uint8]


class FrameCodecError(ValueError):
    """A frame could not be encoded or decoded."""


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise FrameCodecError("JPEG encoding failed")
    return bytes(buf.tobytes())


def decode_jpeg(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameCodecError("not a decodable JPEG")
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    """One frame as kept in the ring: its times and its JPEG bytes."""

    camera: str
    index: int
    mono_s: float
    captured_at: datetime
    width: int
    height: int
    jpeg: bytes

    def image(self) -> Image:
        return decode_jpeg(self.jpeg)


class FrameRing:
    """The last ``seconds`` of one camera's frames, at most ``max_bytes`` of JPEG."""

    def __init__(
        self, camera: str, *, seconds: float, max_bytes: int, jpeg_quality: int = 90
    ) -> None:
        if seconds <= 0 or max_bytes <= 0 or not 1 <= jpeg_quality <= 100:
            raise ValueError("ring buffer needs seconds > 0, max_bytes > 0, quality 1..100")
        self.camera = camera
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.jpeg_quality = jpeg_quality
        self._frames: deque[BufferedFrame] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def push(self, index: int, mono_s: float, captured_at: datetime, image: Image) -> None:
        """Add a BGR frame (encoded here, outside the lock)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise FrameCodecError(f"expected a BGR uint8 image, got {image.shape} {image.dtype}")
        if captured_at.tzinfo is None:
            raise ValueError("captured_at must carry a timezone")
        frame = BufferedFrame(
            camera=self.camera,
            index=index,
            mono_s=mono_s,
            captured_at=captured_at,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            jpeg=encode_jpeg(image, self.jpeg_quality),
        )
        with self._lock:
            if self._frames and mono_s < self._frames[-1].mono_s:
                raise ValueError("frames must be pushed in time order")
            self._frames.append(frame)
            self._bytes += len(frame.jpeg)
            horizon = mono_s - self.seconds
            while len(self._frames) > 1 and (
                self._frames[0].mono_s < horizon or self._bytes > self.max_bytes
            ):
                self._bytes -= len(self._frames.popleft().jpeg)

    def push_frame(self, index: int, mono_s: float, captured_at: datetime, frame: Frame) -> None:
        """Add a camera frame (its picture, copied to the host if it is on the GPU)."""
        self.push(index, mono_s, captured_at, frame.image)

    def window(self, start_s: float, end_s: float) -> list[BufferedFrame]:
        """Frames with ``start_s <= mono_s <= end_s``, oldest first."""
        with self._lock:
            return [f for f in self._frames if start_s <= f.mono_s <= end_s]

    def frames_at(self, monos: Iterable[float]) -> list[BufferedFrame]:
        """The frames taken at exactly these times (those still held), oldest first."""
        times = set(monos)
        with self._lock:
            return [f for f in self._frames if f.mono_s in times]

    def frames(self) -> list[BufferedFrame]:
        with self._lock:
            return list(self._frames)

    @property
    def newest_mono_s(self) -> float | None:
        with self._lock:
            return self._frames[-1].mono_s if self._frames else None

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)


class EvidenceRing(Protocol):
    """What enforcement and the evidence builder need of a camera's ring."""

    camera: str
    jpeg_quality: int

    def push_frame(
        self, index: int, mono_s: float, captured_at: datetime, frame: Frame
    ) -> None: ...

    def window(self, start_s: float, end_s: float) -> list[BufferedFrame]: ...

    def frames_at(self, monos: Iterable[float]) -> list[BufferedFrame]: ...

    @property
    def newest_mono_s(self) -> float | None: ...
