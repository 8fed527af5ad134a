"""Stand-ins for CuPy and PyNvVideoCodec, for testing the GPU path where there is no GPU.

``GpuArray`` is an array "in GPU memory": shape and dtype like CuPy's, a host copy only by
``get`` (counted), and not a ``numpy.ndarray``, so code that needs the host must copy it
down as it would from a GPU. ``StreamNvc`` plays PyNvVideoCodec on a real clip: its
demuxer hands out the clip's real H.264 packets (Annex B, with their presentation time
stamps, as FFmpeg demuxes them), and its decoder gives the pictures FFmpeg decodes, in
display order, as RGB surfaces with their time stamps. ``StreamNvc(sdp_only=True)`` plays
a camera that sends its parameter sets only in the RTSP SDP: the packets come without
them, and the decoder, like NVDEC's parser, shows no picture it has no SPS and PPS for.
``AvNvc`` is PyNvVideoCodec's decoder for network streams (which ``StreamDemuxer`` demuxes,
for real): it decodes the packets it is given with FFmpeg (PyAV), and like NVDEC's parser
shows no picture from packets it has no parameter sets for, without an error.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import av
import cv2
import numpy as np
import numpy.typing as npt

from edge.evidence.packets import nal_units

Image = npt.NDArray[np.uint8]


class GpuArray:
    def __init__(self, data: Image) -> None:
        self._data = data
        self.copies_down = 0
        self.bytes_down = 0

    def __getitem__(self, key: Any) -> GpuArray:
        """A part of the array, still "on the GPU" (as a CuPy slice is)."""
        part = GpuArray(self._data[key])
        self.parts.append(part)
        return part

    @functools.cached_property
    def parts(self) -> list[GpuArray]:
        return []

    @property
    def total_bytes_down(self) -> int:
        """Bytes copied to the host from this array and its parts."""
        return self.bytes_down + sum(p.total_bytes_down for p in self.parts)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._data.dtype

    def get(self) -> Image:
        self.copies_down += 1
        self.bytes_down += self._data.nbytes
        return self._data.copy()

    @property
    def on_gpu(self) -> Image:
        """The memory itself, for a stand-in of code that runs on the GPU (not counted)."""
        return self._data


FAKE_XP = SimpleNamespace(
    from_dlpack=np.from_dlpack,
    ascontiguousarray=lambda a: GpuArray(np.ascontiguousarray(a)),
)


@functools.cache
def read_stream(path: Path) -> tuple[tuple[tuple[int, bytes], ...], dict[int, Image], float]:
    """The clip's packets in decode order as (pts, Annex B bytes), its pictures by pts
    (BGR, as FFmpeg decodes them) and its frame rate."""
    raw = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    packets = []
    while True:
        ok, data = raw.read()
        if not ok:
            break
        packets.append((int(raw.get(cv2.CAP_PROP_PTS)), data.tobytes()))
    raw.release()
    decoded = cv2.VideoCapture(str(path))
    fps = float(decoded.get(cv2.CAP_PROP_FPS))
    pictures: dict[int, Image] = {}
    while True:
        ok, image = decoded.read()
        if not ok:
            break
        pictures[int(decoded.get(cv2.CAP_PROP_PTS))] = np.asarray(image, np.uint8)
    decoded.release()
    assert sorted(p for p, _ in packets) == sorted(pictures), "packets and pictures disagree"
    return tuple(packets), pictures, fps


def without_parameter_sets(data: bytes) -> bytes:
    """An H.264 packet (Annex B) without its SPS and PPS units."""
    return b"".join(bytes(unit) for kind, unit in nal_units(data, "h264") if kind not in (7, 8))


class PacketData:
    """PyNvVideoCodec's PacketData as an application makes one: empty, then filled in
    (``bsl_data`` points at ``bsl`` bytes that the application keeps alive)."""

    def __init__(self) -> None:
        self.key = self.pts = self.dts = self.pos = self.duration = 0
        self.bsl = self.bsl_data = 0
        self.decode_flag = 0  # CUvideopacketflags for the parser (VideoPacketFlag)


class StreamPacket:
    """Like PyNvVideoCodec's PacketData: ``bsl_data`` points at ``bsl`` bytes."""

    def __init__(self, data: bytes, pts: int) -> None:
        self._buffer = ctypes.create_string_buffer(data, len(data)) if data else None
        self.bsl = len(data)
        self.bsl_data = ctypes.addressof(self._buffer) if self._buffer is not None else 0
        self.pts = pts
        self.decode_flag = 0


class DemuxedPacket:
    """A packet as PyAV's demuxer gives it, for ``StreamDemuxer`` to hand on."""

    def __init__(self, data: bytes, pts: int | None, dts: int | None, is_keyframe: bool) -> None:
        self.data, self.size = data, len(data)
        self.pts, self.dts, self.is_keyframe = pts, dts, is_keyframe

    def __bytes__(self) -> bytes:
        return self.data


class StreamPicture:
    """Like PyNvVideoCodec's DecodedFrame in RGB: DLPack export and its time stamp."""

    def __init__(self, rgb: Image, pts: int) -> None:
        self._rgb, self._pts = rgb, pts

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._rgb.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self._rgb.__dlpack_device__()

    def getPTS(self) -> int:  # noqa: N802 (its API's name)
        return self._pts


class StreamDecoder:
    """Gives each picture once every packet up to it in display order has come, from the
    first packet that brought an SPS and a PPS on."""

    def __init__(self, pictures: dict[int, Image]) -> None:
        self._pictures = pictures
        self._order = sorted(pictures)
        self._next = 0
        self._received: set[int] = set()
        self._params: set[int] = set()

    def Decode(self, packet: StreamPacket) -> list[StreamPicture]:  # noqa: N802
        if packet.bsl:
            data = ctypes.string_at(packet.bsl_data, packet.bsl)
            self._params |= {kind for kind, _ in nal_units(data, "h264")} & {7, 8}
            if self._params != {7, 8}:
                return []  # skipped, without an error
            self._received.add(packet.pts)
        flush = packet.bsl == 0
        out = []
        while self._next < len(self._order) and (
            self._order[self._next] in self._received or flush
        ):
            pts = self._order[self._next]
            if pts in self._received:
                out.append(StreamPicture(self._pictures[pts][:, :, ::-1].copy(), pts))
            self._next += 1
        return out


class StreamDemuxer:
    def __init__(
        self,
        packets: tuple[tuple[int, bytes], ...],
        fps: float,
        sdp_only: bool = False,
        hold_s: float = 0.0,
        packet_s: float = 0.0,
    ) -> None:
        self._packets, self._fps = packets, fps  # the rate a file is played back at
        self._sdp_only, self._hold_s, self._packet_s = sdp_only, hold_s, packet_s

    def __iter__(self) -> Iterator[StreamPacket]:
        time.sleep(self._hold_s)  # a stream slow to send its first packet
        for pts, data in self._packets:
            time.sleep(self._packet_s)
            if self._sdp_only:
                data = without_parameter_sets(data)
            yield StreamPacket(data, pts)
        yield StreamPacket(b"", 0)  # the empty packet that flushes the decoder

    def GetNvCodecId(self) -> str:  # noqa: N802
        return "cudaVideoCodec.H264"

    def FrameRate(self) -> float:  # noqa: N802
        return self._fps


# PyNvVideoCodec's VideoPacketFlag (CUvideopacketflags' values)
VIDEO_PACKET_FLAG = SimpleNamespace(ENDOFSTREAM=1, TIMESTAMP=2, DISCONTINUITY=4, ENDOFPICTURE=8)


class StreamNvc:
    """PyNvVideoCodec's demuxer and decoder, playing real clips."""

    OutputColorType = SimpleNamespace(RGB="rgb", NATIVE="native")
    DisplayDecodeLatencyType = SimpleNamespace(LOW="low", NATIVE="native")
    VideoPacketFlag = VIDEO_PACKET_FLAG

    def __init__(
        self,
        pace: float = 1.0,
        *,
        sdp_only: bool = False,
        hold_s: float = 0.0,
        packet_s: float = 0.0,
    ) -> None:
        """``pace``: the share of its own frame rate a clip is played back at; ``hold_s``:
        how long the demuxer waits before its first packet, ``packet_s`` before each."""
        self._clip = threading.local()  # each capture thread opens a demuxer, then a decoder
        self.pace = pace
        self.sdp_only, self.hold_s, self.packet_s = sdp_only, hold_s, packet_s

    def CreateDemuxer(self, filename: str) -> StreamDemuxer:  # noqa: N802
        packets, pictures, fps = read_stream(Path(filename))
        self._clip.pictures = pictures
        return StreamDemuxer(packets, fps * self.pace, self.sdp_only, self.hold_s, self.packet_s)

    def CreateDecoder(self, **kwargs: Any) -> StreamDecoder:  # noqa: N802
        return StreamDecoder(self._clip.pictures)


class AvDecoder:
    """Decodes what it is given with FFmpeg: RGB pictures with their packets' time stamps."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._context = cast(av.VideoCodecContext, av.CodecContext.create(codec, "r"))

    def Decode(self, packet: PacketData) -> list[StreamPicture]:  # noqa: N802
        if packet.bsl:
            data = av.Packet(ctypes.string_at(packet.bsl_data, packet.bsl))
            data.pts = data.dts = packet.pts
        else:
            data = None  # the empty packet: flush
        try:
            frames = self._context.decode(data)
        except av.FFmpegError:  # e.g. no parameter sets yet: NVDEC skips such pictures
            return []
        pictures = [(np.asarray(f.to_ndarray(format="rgb24"), np.uint8), f.pts) for f in frames]
        return [StreamPicture(rgb, int(pts or 0)) for rgb, pts in pictures]


class AvNvc:
    """PyNvVideoCodec for network streams: packets come from ``StreamDemuxer``."""

    OutputColorType = SimpleNamespace(RGB="rgb", NATIVE="native")
    DisplayDecodeLatencyType = SimpleNamespace(LOW="low", NATIVE="native")
    VideoPacketFlag = VIDEO_PACKET_FLAG
    cudaVideoCodec = SimpleNamespace(  # noqa: N815 (its API's name)
        H264="cudaVideoCodec.H264", HEVC="cudaVideoCodec.HEVC"
    )
    PacketData = PacketData

    def __init__(self) -> None:
        self.decoders: list[AvDecoder] = []

    def CreateDemuxer(self, filename: str) -> None:  # noqa: N802
        raise AssertionError(f"PyNvVideoCodec's demuxer crashes on network sources: {filename}")

    def CreateDecoder(self, codec: str, **kwargs: Any) -> AvDecoder:  # noqa: N802
        self.decoders.append(AvDecoder("h264" if "H264" in codec else "hevc"))
        return self.decoders[-1]
