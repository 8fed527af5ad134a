"""The evidence ring of a camera decoded on the GPU: its compressed stream, not pictures.

The NVDEC capture hands every packet it demuxes (H.264 or HEVC, Annex B) to the ring, and
the enforcement records each frame it processed by its place in that stream (capture
session and presentation time). Nothing is encoded per frame: the ring holds a few
megabytes of stream per camera instead of a JPEG of every frame, and the frames stay on
the GPU. When evidence is built, ``window`` decodes the stretch it needs on the CPU
(FFmpeg, from the last keyframe before the first wanted frame, or the first keyframe still
held) and returns the wanted frames as ``BufferedFrame`` JPEGs, exactly as ``FrameRing``
would have held them; a stretch whose pictures and time stamps do not pair up is skipped.

Frames that arrive without a place in a stream that holds a keyframe (a camera reopened
with OpenCV, a stream before its first IDR or without any) are kept as JPEGs in a
``FrameRing`` beside, so evidence never depends on which decoder served the camera.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.evidence.ring import BufferedFrame, FrameRing, Image, encode_jpeg
from edge.sources import Frame, SourceTag

log = logging.getLogger(__name__)

Codec = Literal["h264", "hevc"]
START = b"\x00\x00\x01"
# Pictures a decoder can start from, and the parameter sets it needs before them.
KEY_NALS: dict[Codec, frozenset[int]] = {
    "h264": frozenset({5}),  # IDR
    "hevc": frozenset({16, 17, 18, 19, 20, 21}),  # BLA, IDR, CRA
}
PARAM_NALS: dict[Codec, frozenset[int]] = {
    "h264": frozenset({7, 8}),  # SPS, PPS
    "hevc": frozenset({32, 33, 34}),  # VPS, SPS, PPS
}


def nal_units(data: bytes, codec: Codec) -> Iterator[tuple[int, memoryview]]:
    """(type, unit with its start code) of each NAL unit of an Annex B packet; the units
    are views into ``data``, not copies (each packet of a stream passes through here)."""
    view = memoryview(data)
    starts = []
    i = data.find(START)
    while i >= 0:
        starts.append(i)
        i = data.find(START, i + 3)
    for n, at in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(data)
        if at + 3 >= len(data):
            break
        header = data[at + 3]
        kind = header & 0x1F if codec == "h264" else (header >> 1) & 0x3F
        begin = at - 1 if at > 0 and data[at - 1] == 0 else at  # a 4-byte start code
        yield kind, view[begin:end]


REORDER_PTS_WINDOW = 32  # frames a time stamp may come before the highest one so far
PARAM_SETS_KEPT = 16


@dataclass
class _Session:
    """What the ring knows of one capture session's stream."""

    codec: Codec
    packets: int = 0
    keys: int = 0
    # The time stamp of the first keyframe since the ring last held none: frames shown
    # before it cannot be decoded from here (a ring that joined the stream mid-way, a
    # decoder's output ahead of its first IDR, a GOP longer than the ring).
    first_key_pts: int | None = None
    top_pts: int = -(2**62)
    pts_step: int = 0  # smallest positive step between time stamps seen
    _params: dict[bytes, None] = field(default_factory=dict)

    def note(self, pts: int) -> None:
        if pts > self.top_pts:
            step = pts - self.top_pts
            if self.top_pts > -(2**62) and (self.pts_step == 0 or step < self.pts_step):
                self.pts_step = step
            self.top_pts = pts

    def remember(self, view: memoryview) -> None:
        """A parameter set (several may be in use, e.g. PPS ids); the newest kept last."""
        unit = bytes(view)
        self._params.pop(unit, None)
        self._params[unit] = None
        while len(self._params) > PARAM_SETS_KEPT:
            del self._params[next(iter(self._params))]

    def param_units(self) -> list[bytes]:
        return list(self._params)


@dataclass(frozen=True, slots=True)
class Packet:
    session: int
    pts: int
    key: bool
    mono_s: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Seen:
    """A frame the enforcement processed, known by its place in the stream."""

    session: int
    pts: int
    index: int
    mono_s: float
    captured_at: datetime
    width: int
    height: int


class PacketRing:
    """The last ``seconds`` of one camera's stream, at most ``max_bytes`` of packets."""

    def __init__(
        self, camera: str, *, seconds: float, max_bytes: int, jpeg_quality: int = 90
    ) -> None:
        # Checks the arguments too; holds the frames that come without a stream place.
        self._jpegs = FrameRing(
            camera, seconds=seconds, max_bytes=max_bytes, jpeg_quality=jpeg_quality
        )
        self.camera = camera
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.jpeg_quality = jpeg_quality
        self._packets: deque[Packet] = deque()
        self._bytes = 0
        self._seen: deque[Seen] = deque()
        self._sessions: dict[int, _Session] = {}
        self._lock = threading.Lock()

    # -- the capture's thread ------------------------------------------------------------
    def add_packet(self, session: int, codec: Codec, pts: int, data: bytes, mono_s: float) -> None:
        """One demuxed packet (Annex B), in decode order."""
        units = list(nal_units(data, codec))
        key = any(kind in KEY_NALS[codec] for kind, _ in units)
        with self._lock:
            state = self._sessions.get(session)
            if state is None:
                state = self._sessions[session] = _Session(codec)
            elif pts < state.top_pts - REORDER_PTS_WINDOW * max(1, state.pts_step):
                # The time stamps started over (a camera's clock reset): what came before
                # cannot be matched to frames any more.
                log.warning("camera %s: stream time stamps went back; older frames dropped",
                            self.camera)  # fmt: skip
                self._forget_session(session)
                state = self._sessions[session] = _Session(codec)
            state.note(pts)
            for kind, unit in units:
                if kind in PARAM_NALS[codec]:
                    state.remember(unit)
            state.keys += key
            if key and state.first_key_pts is None:
                state.first_key_pts = pts
            state.packets += 1
            self._packets.append(Packet(session, pts, key, mono_s, data))
            self._bytes += len(data)
            horizon = mono_s - self.seconds
            while len(self._packets) > 1 and (
                self._packets[0].mono_s < horizon or self._bytes > self.max_bytes
            ):
                gone = self._packets.popleft()
                self._bytes -= len(gone.data)
                left = self._sessions[gone.session]
                left.packets -= 1
                left.keys -= gone.key
                if left.keys == 0:
                    left.first_key_pts = None
                if left.packets == 0:
                    del self._sessions[gone.session]

    def _forget_session(self, session: int) -> None:
        kept = [p for p in self._packets if p.session != session]
        self._bytes = sum(len(p.data) for p in kept)
        self._packets = deque(kept)
        self._seen = deque(s for s in self._seen if s.session != session)
        self._sessions.pop(session, None)

    # -- the enforcement ------------------------------------------------------------------
    def push_frame(self, index: int, mono_s: float, captured_at: datetime, frame: Frame) -> None:
        """Record a processed frame; one without a place in a stream here is kept as JPEG."""
        tag: SourceTag | None = frame.source
        with self._lock:
            state = self._sessions.get(tag.session) if tag is not None else None
            # Until its stream has a keyframe here (or when it never sends one), and for
            # a frame shown before that keyframe, the frame could not be decoded from the
            # ring: it is kept as a picture instead.
            first = state.first_key_pts if state is not None and state.keys > 0 else None
            known = first is not None and tag is not None and tag.pts >= first
            if known and tag is not None:
                height, width = (int(v) for v in frame.pixels.shape[:2])
                self._seen.append(
                    Seen(tag.session, tag.pts, index, mono_s, captured_at, width, height)
                )
                horizon = mono_s - self.seconds
                while self._seen and self._seen[0].mono_s < horizon:
                    self._seen.popleft()
        if not known:
            self._jpegs.push(index, mono_s, captured_at, frame.image)

    def window(self, start_s: float, end_s: float) -> list[BufferedFrame]:
        """Frames with ``start_s <= mono_s <= end_s``, oldest first (decoded here)."""
        with self._lock:
            wanted = [s for s in self._seen if start_s <= s.mono_s <= end_s]
        return self._rebuilt(wanted, self._jpegs.window(start_s, end_s))

    def frames_at(self, monos: Iterable[float]) -> list[BufferedFrame]:
        """The frames taken at exactly these times (those still held), oldest first."""
        times = set(monos)
        with self._lock:
            wanted = [s for s in self._seen if s.mono_s in times]
        jpegs = [f for f in self._jpegs.frames() if f.mono_s in times]
        return self._rebuilt(wanted, jpegs)

    @property
    def newest_mono_s(self) -> float | None:
        with self._lock:
            newest = self._seen[-1].mono_s if self._seen else None
        other = self._jpegs.newest_mono_s
        return max((t for t in (newest, other) if t is not None), default=None)

    # -- decoding -------------------------------------------------------------------------
    def _rebuilt(self, wanted: list[Seen], jpegs: list[BufferedFrame]) -> list[BufferedFrame]:
        out = list(jpegs)
        for session in sorted({s.session for s in wanted}):
            mine = [s for s in wanted if s.session == session]
            with self._lock:
                packets = [p for p in self._packets if p.session == session]
                state = self._sessions.get(session)
                codec = state.codec if state is not None else None
                params = state.param_units() if state is not None else []
            if codec is not None:
                out.extend(self._decoded(mine, packets, params, codec))
        return sorted(out, key=lambda f: f.mono_s)

    def _decoded(
        self, wanted: list[Seen], packets: list[Packet], params: list[bytes], codec: Codec
    ) -> list[BufferedFrame]:
        first, last = min(s.pts for s in wanted), max(s.pts for s in wanted)
        keys = [i for i, p in enumerate(packets) if p.key]
        before = [i for i in keys if packets[i].pts <= first]
        # From the last keyframe before the first wanted frame; when that one has left the
        # ring, from the first keyframe still held (the frames before it are lost).
        start = before[-1] if before else next((i for i in keys if packets[i].pts <= last), None)
        if start is None:
            log.warning("camera %s: no keyframe held for the evidence frames", self.camera)
            return []
        held = [i for i, p in enumerate(packets) if p.pts <= last]
        chunk = packets[start : max(held) + 1]
        # Pictures that lead the keyframe in display order (HEVC RASL) are not output.
        key_pts = packets[start].pts
        order = sorted(p.pts for p in chunk if p.pts >= key_pts)
        if len(set(order)) != len(order):
            log.warning("camera %s: repeated stream time stamps; evidence skipped", self.camera)
            return []
        by_pts = {s.pts: s for s in wanted}
        kept: list[tuple[Seen, bytes, int, int]] = []
        count = 0
        for count, image in enumerate(decode_annexb(params, [p.data for p in chunk], codec), 1):
            if count > len(order):
                break
            seen = by_pts.get(order[count - 1])
            if seen is not None:
                jpeg = encode_jpeg(image, self.jpeg_quality)
                kept.append((seen, jpeg, int(image.shape[1]), int(image.shape[0])))
        if count != len(order):
            # Pictures and time stamps no longer pair up: better no frame than a wrong one.
            log.warning(
                "camera %s: %d packets gave %d pictures; evidence frames skipped",
                self.camera, len(order), count,
            )  # fmt: skip
            return []
        return [
            BufferedFrame(self.camera, seen.index, seen.mono_s, seen.captured_at, w, h, jpeg)
            for seen, jpeg, w, h in kept
        ]

    # Last in the class: the property's name would shadow the type in annotations below it.
    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes + self._jpegs.bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen) + len(self._jpegs)


def decode_annexb(
    params: Sequence[bytes], packets: Sequence[bytes], codec: Codec
) -> Iterator[Image]:
    """The pictures of an Annex B stretch (parameter sets, then packets from a keyframe),
    in display order, decoded on the CPU by FFmpeg (through OpenCV)."""
    fd, name = tempfile.mkstemp(prefix="roadwatch-ring-", suffix=f".{codec}")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(params))
            for data in packets:
                out.write(data)
        cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
        try:
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    return
                yield np.asarray(image, np.uint8)
        finally:
            cap.release()
    finally:
        Path(name).unlink()
