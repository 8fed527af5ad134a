"""NVDEC decoding in the camera readers, with a stand-in for PyNvVideoCodec and CuPy.

The stand-in decodes the real clip with OpenCV and hands out RGB surfaces the way NVDEC
does: a frame of latency, one surface reused for every picture, a flush at the end. Its
"GPU arrays" are host arrays that are not ``numpy.ndarray``, so every place that needs the
host must copy them down as it would from a GPU.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge import nvdec
from edge.config import ConfigError, parse_site_config
from edge.detections import Detections
from edge.detector import FrameDetections
from edge.evidence.packets import nal_units
from edge.nvdec import (
    AutoOpener,
    NvdecBusyError,
    NvdecCapture,
    NvdecSessions,
    NvdecUnavailableError,
    capture_factory,
)
from edge.pipeline import DetectorPool, LivePipeline, TrackedFrame
from edge.sources import (
    Backoff,
    CameraReader,
    Frame,
    OpenCvCapture,
    SourceError,
    is_stream,
    valid_image,
)
from roadwatch.net import redact_url
from tests.edge_support import hanoi_clip, read_image, require_model, shared_detector
from tests.nvdec_standin import (
    FAKE_XP,
    VIDEO_PACKET_FLAG,
    AvNvc,
    DemuxedPacket,
    GpuArray,
    StreamNvc,
    read_stream,
)

Image = npt.NDArray[np.uint8]


class FakeDecoder:
    """NVDEC as seen from Python: RGB pictures one packet late, in one reused surface."""

    def __init__(self, frames: list[Image], bad_packets: frozenset[int]) -> None:
        self.frames = frames
        self.bad = bad_packets
        self.surface = np.zeros_like(frames[0]) if frames else np.zeros((1, 1, 3), np.uint8)
        self.held: int | None = None

    def Decode(self, packet: int | None) -> list[Image]:  # noqa: N802 (its API's name)
        if packet is not None and packet in self.bad:
            raise RuntimeError(f"cuvidParseVideoData failed on packet {packet}")
        shown, self.held = self.held, packet
        if shown is None:
            return []
        self.surface[...] = self.frames[shown][:, :, ::-1]  # RGB, written over the last one
        return [self.surface]


class FakeDemuxer:
    """Packets 0, 1, ... then the empty packet (None here) that flushes the decoder."""

    def __init__(self, count: int, fail_at: int, stall: threading.Event | None) -> None:
        self.count, self.fail_at, self.stall = count, fail_at, stall

    def __iter__(self) -> Iterator[int | None]:
        for i in range(self.count):
            if i == self.fail_at:
                if self.stall is not None:  # a dead stream: the read returns much later
                    self.stall.wait(30)
                raise RuntimeError("av_read_frame failed: connection reset")
            yield i
        yield None

    def GetNvCodecId(self) -> str:  # noqa: N802
        return "cudaVideoCodec.VP9"  # its packets are opaque: nothing parses them

    def FrameRate(self) -> float:  # noqa: N802
        return 25.0


class FakeNvc:
    """The few calls of PyNvVideoCodec that the capture makes."""

    OutputColorType = SimpleNamespace(RGB="rgb", NATIVE="native")
    DisplayDecodeLatencyType = SimpleNamespace(LOW="low", NATIVE="native")

    def __init__(
        self,
        frames: list[Image],
        *,
        bad: frozenset[int] = frozenset(),
        fail_at: int = -1,
        stall: threading.Event | None = None,
        hang_open: threading.Event | None = None,
    ) -> None:
        self.frames = frames
        self.bad = bad
        self.fail_at = fail_at
        self.stall = stall
        self.hang_open = hang_open
        self.opened: list[str] = []
        self.decoder_args: dict[str, Any] = {}

    def CreateDemuxer(self, filename: str) -> FakeDemuxer:  # noqa: N802
        if self.hang_open is not None:
            self.hang_open.wait(30)
        if not Path(filename).is_file():
            raise RuntimeError(f"avformat_open_input failed for {filename}")
        self.opened.append(filename)
        return FakeDemuxer(len(self.frames), self.fail_at, self.stall)

    def CreateDecoder(self, **kwargs: Any) -> FakeDecoder:  # noqa: N802
        self.decoder_args = kwargs
        return FakeDecoder(self.frames, self.bad)


def clip_frames(count: int) -> list[Image]:
    cap = cv2.VideoCapture(str(hanoi_clip()))
    frames: list[Image] = []
    while len(frames) < count:
        ok, image = cap.read()
        assert ok
        frames.append(np.asarray(image, np.uint8))
    cap.release()
    return frames


def read_all(cap: NvdecCapture) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    while True:
        ok, image = cap.read()
        if not ok:
            return out
        out.append((ok, image))


def test_the_capture_gives_each_picture_once_as_bgr_in_its_own_memory() -> None:
    frames = clip_frames(6)
    nvc = FakeNvc(frames)
    cap = NvdecCapture(str(hanoi_clip()), nvc=nvc, xp=FAKE_XP)
    got = read_all(cap)
    assert len(got) == len(frames)  # the flush at the end gives the held-back picture
    for (_, image), want in zip(got, frames, strict=True):
        assert isinstance(image, GpuArray) and valid_image(image, want.shape)
        # Every picture came through one reused surface: each must be a copy of its own.
        assert np.array_equal(image.get(), want)
    assert cap.fps == 25.0
    args = nvc.decoder_args
    assert args["usedevicememory"] is True and args["outputColorType"] == "rgb"
    assert args["latency"] == "low"
    cap.release()
    assert cap.read() == (False, None)


class Picture:
    """A demuxed packet of one whole picture (``bsl`` 0: the flush), as PyNvVideoCodec's
    PacketData: the application may set ``decode_flag`` before decoding it."""

    def __init__(self, index: int, size: int = 1) -> None:
        self.index, self.bsl, self.pts, self.decode_flag = index, size, index, 0


class LowLatencyNvc(FakeNvc):
    """NVDEC at ``DisplayDecodeLatencyType.LOW``: a picture is shown with its own packet
    only when that packet says it ends the picture (ENDOFPICTURE), else with the next
    packet (or the flush). The stream sends its first packet, then nothing until ``gate``."""

    VideoPacketFlag = VIDEO_PACKET_FLAG

    def __init__(self, frames: list[Image], gate: threading.Event) -> None:
        super().__init__(frames)
        self.gate = gate
        self.flags: list[tuple[int, int]] = []  # (bsl, decode_flag) of each packet decoded

    def CreateDemuxer(self, filename: str) -> Any:  # noqa: N802
        frames, gate = self.frames, self.gate

        class Demuxer(FakeDemuxer):
            def __iter__(self) -> Iterator[Any]:
                for i in range(len(frames)):
                    if i == 1:
                        gate.wait(30)
                    yield Picture(i)
                yield Picture(-1, size=0)

        return Demuxer(len(frames), -1, None)

    def CreateDecoder(self, **kwargs: Any) -> Any:  # noqa: N802
        self.decoder_args = kwargs
        frames, flags = self.frames, self.flags
        held: list[int] = []

        class Decoder:
            def Decode(self, packet: Picture) -> list[Image]:  # noqa: N802
                flags.append((packet.bsl, packet.decode_flag))
                shown = held[:]
                held.clear()
                if packet.bsl and packet.decode_flag & VIDEO_PACKET_FLAG.ENDOFPICTURE:
                    shown.append(packet.index)
                elif packet.bsl:
                    held.append(packet.index)
                return [frames[i][:, :, ::-1].copy() for i in shown]

        return Decoder()


def test_a_picture_comes_out_with_its_own_packet() -> None:
    """Each packet is marked as ending its picture, so a camera's frame is handed over as
    soon as its packet is decoded, not one packet (a frame period of the camera) later."""
    gate = threading.Event()
    frames = clip_frames(3)
    nvc = LowLatencyNvc(frames, gate)
    cap = NvdecCapture(str(hanoi_clip()), nvc=nvc, xp=FAKE_XP, read_timeout_s=3.0)
    try:
        ok, first = cap.read()  # the stream has sent one packet so far
        assert ok and isinstance(first, GpuArray), "the first picture waited for the next packet"
        assert np.array_equal(first.get(), frames[0])
        gate.set()
        assert len(read_all(cap)) == len(frames) - 1
    finally:
        gate.set()
        cap.release()
    end = VIDEO_PACKET_FLAG.ENDOFPICTURE
    assert nvc.flags == [(1, end)] * len(frames) + [(0, 0)]  # not the flush


def test_a_refused_packet_is_one_corrupt_frame_and_a_demuxer_failure_ends_the_read() -> None:
    frames = clip_frames(8)
    cap = NvdecCapture(str(hanoi_clip()), nvc=FakeNvc(frames, bad=frozenset({3})), xp=FAKE_XP)
    got = read_all(cap)
    assert [image is None for _, image in got].count(True) == 1
    assert len(got) == len(frames)  # 7 pictures and one corrupt read
    failing = NvdecCapture(str(hanoi_clip()), nvc=FakeNvc(frames, fail_at=4), xp=FAKE_XP)
    assert len(read_all(failing)) == 3  # the fourth was held back when the stream broke
    cap.release()
    failing.release()


def test_a_stream_that_stops_mid_read_times_out_and_releases_promptly() -> None:
    stall = threading.Event()
    nvc = FakeNvc(clip_frames(4), fail_at=2, stall=stall)
    cap = NvdecCapture(str(hanoi_clip()), nvc=nvc, xp=FAKE_XP, read_timeout_s=2.0)
    ok, first = cap.read()  # packet 1 brought frame 0 out; the read of packet 2 hangs
    assert ok and first is not None
    assert cap.read() == (False, None)  # no frame within the read time-out
    cap.release(stop_timeout_s=0.2)
    assert cap._thread.is_alive()  # release did not wait for the stuck demuxer
    assert cap.read() == (False, None)
    stall.set()  # FFmpeg gives up at last; the capture's thread ends by itself
    cap._thread.join(5)
    assert not cap._thread.is_alive()


def test_an_open_that_hangs_is_a_clear_error_within_the_open_time_out() -> None:
    hang = threading.Event()
    nvc = FakeNvc(clip_frames(1), hang_open=hang)
    with pytest.raises(SourceError, match=r"no answer within 0\.3 s"):
        NvdecCapture("/cams/stuck.mp4", nvc=nvc, xp=FAKE_XP, open_timeout_s=0.3)
    opening = [t for t in threading.enumerate() if t.name == "nvdec /cams/stuck.mp4"]
    assert opening and opening[0].is_alive()  # the error came while the open still hung
    hang.set()
    opening[0].join(5)
    assert not opening[0].is_alive()


def test_a_source_nvdec_cannot_open_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match=r"cannot open video source /no/such\.mp4 on NVDEC"):
        NvdecCapture("/no/such.mp4", nvc=FakeNvc(clip_frames(1)), xp=FAKE_XP)


def test_a_reader_on_nvdec_hands_out_gpu_frames_and_ends_with_the_file() -> None:
    frames = clip_frames(10)
    nvc = FakeNvc(frames, bad=frozenset({5}))
    reader = CameraReader(
        "cam1",
        str(hanoi_clip()),
        capture=lambda url: NvdecCapture(url, nvc=nvc, xp=FAKE_XP),
        realtime=False,
    )
    seen: list[Frame] = []
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while not reader.ended and time.monotonic() < deadline:
            if (frame := reader.latest(timeout_s=0.05)) is not None:
                seen.append(frame)
    finally:
        assert reader.stop(5.0)
    assert reader.ended
    counts = reader.counts()
    assert counts.frames == 9 and counts.corrupt == 1
    assert seen and all(isinstance(f.pixels, GpuArray) for f in seen)
    last = seen[-1]
    assert np.array_equal(last.image, frames[last.index])


def test_frame_image_copies_a_gpu_frame_down_once() -> None:
    pixels = GpuArray(np.full((4, 6, 3), 9, np.uint8))
    frame = Frame("cam1", 0, 0.0, datetime.now(UTC), pixels)
    assert isinstance(frame.pixels, GpuArray)
    assert frame.image is frame.image
    assert pixels.copies_down == 1 and frame.image.shape == (4, 6, 3)
    host = np.zeros((4, 6, 3), np.uint8)
    plain = Frame("cam1", 0, 0.0, datetime.now(UTC), host)
    assert plain.image is host and isinstance(plain.pixels, np.ndarray)


@pytest.mark.parametrize("device_pipeline", [False, True])
def test_the_detector_takes_gpu_frames_on_the_cpu_provider(device_pipeline: bool) -> None:
    from edge.detector import Detector, DetectorConfig

    image = read_image(require_model("bangkok_junction"))
    if device_pipeline:
        detector = Detector.load(
            require_model("yolov8n-coco-dynamic"),
            DetectorConfig(providers=("CPUExecutionProvider",), device_pipeline=True),
            None,
        )
    else:
        detector = shared_detector()
    want, got = detector.detect([image, GpuArray(image)])  # type: ignore[list-item]
    assert len(want) > 5
    assert np.array_equal(got.xyxy, want.xyxy) and np.array_equal(got.class_id, want.class_id)


class RecordingDetector:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.riders_merged = 0

    def detect_for_tracking(self, frames: list[Any]) -> list[FrameDetections]:
        self.frames.extend(frames)
        return [FrameDetections(Detections.empty(), Detections.empty()) for _ in frames]


def _site(decoder: str = "auto", cameras: int = 2) -> Any:
    clip = str(hanoi_clip())
    return parse_site_config(
        {
            "site": "s1", "node": "n1", "decode": {"decoder": decoder},
            "cameras": [{"id": f"cam{i}", "url": clip} for i in range(cameras)],
        }
    )  # fmt: skip


def test_the_live_pipeline_passes_gpu_frames_to_the_detector_untouched() -> None:
    frames = clip_frames(12)
    nvc = FakeNvc(frames)
    recording = RecordingDetector()
    pipeline = LivePipeline(
        _site(),
        DetectorPool(load=lambda _cfg: recording),  # type: ignore[arg-type, return-value]
        opener=lambda url, stall_s, packets: NvdecCapture(url, nvc=nvc, xp=FAKE_XP),
    )
    assert pipeline.decoder == "custom"
    stop = threading.Event()
    tracked: list[TrackedFrame] = []
    runner = threading.Thread(target=pipeline.run, args=(stop, [tracked.append]))
    runner.start()
    deadline = time.monotonic() + 10
    while len(tracked) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    runner.join(15)
    assert not runner.is_alive()
    assert len(tracked) >= 4 and len(nvc.opened) == 2
    assert recording.frames and all(isinstance(f, GpuArray) for f in recording.frames)
    # Nothing on the way needed the host copy: no sink asked for the picture.
    assert all(f.copies_down == 0 for f in recording.frames)


def test_the_decoder_choice(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.nvdec")
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # not installed
    opener, name = capture_factory("auto")
    assert name == "opencv" and "needs PyNvVideoCodec (the gpu extra)" in caplog.text
    cap = opener(str(hanoi_clip()), 5.0, None)
    assert isinstance(cap, OpenCvCapture)
    cap.release()
    with pytest.raises(NvdecUnavailableError, match="needs PyNvVideoCodec"):
        capture_factory("nvdec")
    with pytest.raises(NvdecUnavailableError, match="needs PyNvVideoCodec"):
        LivePipeline(_site("nvdec"), DetectorPool(load=lambda _cfg: RecordingDetector()))  # type: ignore[arg-type, return-value]
    assert LivePipeline(_site("auto"), DetectorPool()).decoder == "opencv"
    assert capture_factory("opencv")[1] == "opencv"

    fake = FakeNvc(clip_frames(2))
    monkeypatch.setattr(nvdec, "load_nvc", lambda: fake)
    monkeypatch.setattr(nvdec, "load_cupy", lambda gpu: FAKE_XP)
    opener, name = capture_factory("auto", gpu_id=1)
    assert name == "nvdec"
    opened = opener(str(hanoi_clip()), 5.0, None)
    assert isinstance(opened, NvdecCapture) and fake.decoder_args["gpuid"] == 1
    opened.release()


def test_the_decode_section_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"decode\.decoder: Input should be 'auto', 'opencv'"):
        _site("gpu")
    assert _site().decode.decoder == "auto"


def _auto(monkeypatch: pytest.MonkeyPatch, nvc: Any, xp: Any = FAKE_XP) -> AutoOpener:
    monkeypatch.setattr(nvdec, "load_nvc", lambda: nvc)
    monkeypatch.setattr(nvdec, "load_cupy", lambda gpu: xp)
    opener, name = capture_factory("auto")
    assert name == "nvdec" and isinstance(opener, AutoOpener)
    return opener


class NoCodec(FakeNvc):
    def CreateDecoder(self, **kwargs: Any) -> FakeDecoder:  # noqa: N802
        raise RuntimeError("codec not supported by NVDEC")


def test_auto_sends_a_source_nvdec_cannot_open_to_opencv(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    opener = _auto(monkeypatch, NoCodec(clip_frames(1)))
    clip = str(hanoi_clip())
    first = opener(clip, 5.0)
    assert isinstance(first, OpenCvCapture) and "codec not supported" in opener.on_cpu[clip]
    assert "decoding on the CPU (OpenCV)" in caplog.text
    first.release()
    with pytest.raises(SourceError, match="cannot open video source"):
        opener("/no/such/file.mp4", 5.0)  # neither decoder opens it: the source's fault
    assert "/no/such/file.mp4" not in opener.on_cpu


def test_auto_sends_a_source_that_fails_before_its_first_frame_to_opencv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: Any) -> Any:
        raise RuntimeError("DLPack export failed")

    xp = SimpleNamespace(from_dlpack=broken, ascontiguousarray=FAKE_XP.ascontiguousarray)
    opener = _auto(monkeypatch, FakeNvc(clip_frames(3)), xp)
    clip = str(hanoi_clip())
    first = opener(clip, 5.0)
    assert isinstance(first, OpenCvCapture) and "DLPack export failed" in opener.on_cpu[clip]
    first.release()
    again = opener(clip, 5.0)  # the reader reconnects: straight to OpenCV
    assert isinstance(again, OpenCvCapture)
    again.release()


def test_a_decoder_that_refuses_every_packet_fails_the_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames = clip_frames(40)
    every = frozenset(range(len(frames)))
    cap = NvdecCapture(str(hanoi_clip()), nvc=FakeNvc(frames, bad=every), xp=FAKE_XP)
    assert read_all(cap) == []  # refusals before a first frame are not handed out
    assert cap.error is not None and "refused the first 30 packets" in cap.error
    cap.release()
    opener = _auto(monkeypatch, FakeNvc(frames, bad=every))
    chosen = opener(str(hanoi_clip()), 5.0)
    assert isinstance(chosen, OpenCvCapture)
    chosen.release()


def test_a_source_is_not_reopened_while_its_last_session_is_stuck() -> None:
    stall = threading.Event()
    sessions = NvdecSessions(0, FakeNvc(clip_frames(4), fail_at=2, stall=stall), FAKE_XP)
    clip = str(hanoi_clip())
    first = sessions(clip, 5.0)
    assert first.read()[0]  # frame 0 out: the thread goes on to the packet that hangs
    first.release(stop_timeout_s=0.1)  # its demuxer is stuck in the stalled stream
    with pytest.raises(NvdecBusyError, match="previous NVDEC session has not ended"):
        sessions(clip, 5.0)
    stall.set()
    first._thread.join(5)
    second = sessions(clip, 5.0)
    assert second is not first
    second.release()


class Sink:
    """A camera reader's packet sink (``CameraPackets``): what tells the readers apart."""

    def add_packet(self, session: int, codec: Any, pts: int, data: bytes, mono_s: float) -> None:
        pass


def test_a_stuck_session_blocks_only_its_own_readers_reopen() -> None:
    """Two cameras on one URL: the other camera's live capture is no stuck session of this
    one's, and this one's stuck capture holds back only this one."""
    stall = threading.Event()
    sessions = NvdecSessions(0, FakeNvc(clip_frames(4), fail_at=2, stall=stall), FAKE_XP)
    clip = str(hanoi_clip())
    one, two = Sink(), Sink()
    first = sessions(clip, 5.0, one)
    other = sessions(clip, 5.0, two)  # the second camera, while the first streams
    assert first.read()[0]
    first.release(stop_timeout_s=0.1)  # stuck in the stalled stream
    with pytest.raises(NvdecBusyError, match="previous NVDEC session has not ended"):
        sessions(clip, 5.0, one)
    other.release(stop_timeout_s=0.1)
    stall.set()
    first._thread.join(5)
    other._thread.join(5)
    again = sessions(clip, 5.0, one)
    again.release()


def test_cameras_sharing_one_url_all_stream_across_their_files_loops() -> None:
    """Every camera loops the same clip on NVDEC (as the density bench's do): each reopens
    its file at the end of each loop while the others stream, and all stay up."""
    clip = str(hanoi_clip())
    frames_in_clip = len(read_stream(hanoi_clip())[0])
    ids = [f"cam{i}" for i in range(3)]
    cameras = [{"id": cam, "url": clip, "loop": True} for cam in ids]
    config = parse_site_config({"site": "s1", "node": "n1", "cameras": cameras, "plates": False})
    pipeline = LivePipeline(
        config,
        DetectorPool(load=lambda _cfg: RecordingDetector()),  # type: ignore[arg-type, return-value]
        opener=NvdecSessions(0, StreamNvc(pace=32.0), FAKE_XP),  # a loop in about 2 s
        decoder="nvdec",
    )
    stop = threading.Event()
    runner = threading.Thread(target=pipeline.run, args=(stop, []))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = pipeline.summary.frames_by_camera
            if all(counts.get(cam, 0) > 2 * frames_in_clip for cam in ids):
                break
            time.sleep(0.2)
        health = {h.camera: (h.state.value, h.reason) for h in pipeline.health()}
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    counts = dict(pipeline.summary.frames_by_camera)
    assert all(counts.get(cam, 0) > 2 * frames_in_clip for cam in ids), (counts, health)
    assert all(state == "up" for state, _ in health.values()), health


def test_stopping_a_reader_ends_a_waiting_nvdec_read_at_once() -> None:
    stall = threading.Event()
    nvc = FakeNvc(clip_frames(4), fail_at=2, stall=stall)
    reader = CameraReader(
        "cam1",
        "rtsp://10.0.0.9/stream",
        capture=lambda url: NvdecCapture(
            str(hanoi_clip()), nvc=nvc, xp=FAKE_XP, read_timeout_s=120.0
        ),
    )
    reader.start()
    try:
        assert reader.latest(timeout_s=5.0) is not None  # frame 0; then the demuxer hangs
    finally:
        stopped = reader.stop(timeout_s=5.0)  # a read waiting 120 s would not end in 5 s
        stall.set()
    assert stopped


def test_auto_keeps_nvdec_for_a_stream_that_dropped_after_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opener = _auto(monkeypatch, FakeNvc(clip_frames(6), fail_at=4))
    clip = str(hanoi_clip())
    first = opener(clip, 5.0)
    assert isinstance(first, NvdecCapture)
    frames = 0
    while first.read()[0]:
        frames += 1
    assert frames == 3 and first.error is not None
    first.release()
    again = opener(clip, 5.0)
    assert isinstance(again, NvdecCapture) and not opener.on_cpu
    again.release()


def test_a_stream_without_parameter_sets_of_its_own_fails_the_nvdec_capture() -> None:
    """A camera that sends its SPS and PPS only in the RTSP SDP: the decoder skips every
    picture without an error, so the capture tells after two whole GOPs, and why."""
    clip = str(hanoi_clip())  # a keyframe every 32 packets
    cap = NvdecCapture(clip, nvc=StreamNvc(sdp_only=True), xp=FAKE_XP)
    assert read_all(cap) == []
    assert cap.undecodable is not None and cap.error == cap.undecodable
    assert "no picture from the stream's first 2 GOPs" in cap.undecodable
    assert "without parameter sets" in cap.undecodable
    assert cap.failed_before_first_frame(1.0) == cap.undecodable
    cap.release()
    # The same stream with its parameter sets decodes as ever.
    whole = NvdecCapture(clip, nvc=StreamNvc(), xp=FAKE_XP)
    assert len(read_all(whole)) == 384 and whole.undecodable is None
    whole.release()


def test_a_network_stream_is_demuxed_by_pyav_into_packets_like_pynvvideocodecs(
    tmp_path: Path,
) -> None:
    """The demuxer that stands in for PyNvVideoCodec's on network sources: the same Annex B
    packets as FFmpeg's own (MP4 codec data filtered into the stream), the stream's own time
    stamps (the clip's time base is 1/90000), each packet's bytes valid until the next, then
    the empty packet that flushes the decoder."""
    clip = hanoi_clip()
    packets, _, fps = read_stream(clip)
    demuxer = nvdec.StreamDemuxer(str(clip), AvNvc(), open_timeout_s=5.0, read_timeout_s=5.0)
    assert demuxer.GetNvCodecId() == AvNvc.cudaVideoCodec.H264
    assert demuxer.FrameRate() == pytest.approx(fps, rel=1e-3)
    got = [(p.pts, p.key, ctypes.string_at(p.bsl_data, p.bsl)) for p in demuxer]
    assert got[-1] == (0, 0, b"") and len(got) == len(packets) + 1
    assert [data for _, _, data in got[:-1]] == [data for _, data in packets]
    assert [pts for pts, _, _ in got[:5]] == [0, 14998, 29993, 44989, 59986]
    assert [i for i, (_, key, _) in enumerate(got) if key] == list(range(0, 384, 32))


@pytest.mark.parametrize("kept", [set[int](), {7}, {8}], ids=["none", "sps", "pps"])
def test_the_sdps_sets_go_ahead_of_the_keyframe_picture_with_those_it_carries(
    kept: set[int],
) -> None:
    """A stream that sends some of its parameter sets in the stream and the rest only in
    its SDP: the missing ones go right before the keyframe's picture, after those it
    carries (an SDP's PPS refers to the stream's SPS), and FFmpeg decodes every picture."""
    clip = hanoi_clip()
    packets, pictures, _ = read_stream(clip)
    demuxer = nvdec.StreamDemuxer(str(clip), AvNvc(), open_timeout_s=5.0, read_timeout_s=5.0)
    demuxer.close()
    units = [(k, bytes(u)) for _, d in packets[:1] for k, u in nal_units(d, "h264")]
    demuxer._params = [(k, u) for k, u in units if k in (7, 8)]
    demuxer._filter = None

    def stream() -> Iterator[DemuxedPacket]:
        for pts, data in packets:
            parts = [bytes(u) for k, u in nal_units(data, "h264") if k not in {7, 8} - kept]
            key = any(kind == 5 for kind, _ in nal_units(data, "h264"))
            yield DemuxedPacket(b"".join(parts), pts, pts, key)

    demuxer._demuxed = stream  # type: ignore[method-assign]
    decoder = AvNvc().CreateDecoder(codec="cudaVideoCodec.H264")
    handed: list[bytes] = []  # each packet's bytes live until the next is taken
    shown = []
    for packet in demuxer:
        handed.append(ctypes.string_at(packet.bsl_data, packet.bsl))
        shown.extend(decoder.Decode(packet))
    kinds = [k for k, _ in nal_units(handed[0], "h264")]
    assert kinds.index(7) < kinds.index(8) < kinds.index(5)
    assert len(shown) == len(pictures)


def test_a_network_stream_nvdec_cannot_take_is_refused_at_the_open(tmp_path: Path) -> None:
    mjpeg = tmp_path / "mjpeg.avi"
    writer = cv2.VideoWriter(str(mjpeg), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    with pytest.raises(SourceError, match=r"its codec is mjpeg; NVDEC decodes H\.264 and HEVC"):
        nvdec.StreamDemuxer(str(mjpeg), AvNvc(), open_timeout_s=5.0, read_timeout_s=5.0)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"rtsp://admin:s3cret@127.0.0.1:{port}/cam"
    with pytest.raises(SourceError) as refused:
        nvdec.StreamDemuxer(url, AvNvc(), open_timeout_s=2.0, read_timeout_s=2.0)
    assert "s3cret" not in str(refused.value)


def test_a_network_source_that_never_answers_is_refused_within_the_open_time_out() -> None:
    with socket.socket() as listener:  # accepts the connection, then says nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam"
        with pytest.raises(SourceError, match=r"^no answer within 1 s \("):
            nvdec.StreamDemuxer(url, AvNvc(), open_timeout_s=1.0, read_timeout_s=1.0)


def test_rtsp_is_asked_for_over_tcp_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """As OpenCV asks for it: RTP over UDP does not cross most NATs and firewalls."""
    import av

    asked: list[tuple[str, Any]] = []

    def opened(url: str, options: Any = None, timeout: Any = None) -> Any:
        asked.append((url, options))
        raise av.error.ConnectionRefusedError(111, "Connection refused", url)

    monkeypatch.setattr(av, "open", opened)
    for url in ("rtsp://10.0.0.9/s", "RTSPS://10.0.0.9/s", "http://10.0.0.9/s.ts"):
        with pytest.raises(SourceError, match="Connection refused"):
            nvdec.StreamDemuxer(url, AvNvc(), open_timeout_s=1.0, read_timeout_s=1.0)
    assert [options for _, options in asked] == [{"rtsp_flags": "prefer_tcp"}] * 2 + [None]


class ClosedStream:
    """A stream demuxer that only records whether its session was closed (and can be made
    to take long to open)."""

    closed: ClassVar[list[str]] = []
    answer: ClassVar[threading.Event | None] = None

    def __init__(self, url: str, nvc: Any, **timeouts: float) -> None:
        self.url = url
        if self.answer is not None:
            self.answer.wait(30)

    def GetNvCodecId(self) -> str:  # noqa: N802
        return "cudaVideoCodec.H264"

    def FrameRate(self) -> float:  # noqa: N802
        return 25.0

    def __iter__(self) -> Iterator[Any]:
        return iter([])  # the stream ended at once

    def close(self) -> None:
        self.closed.append(self.url)


def test_a_cameras_session_ends_with_its_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also when no NVDEC decoder can be made for it (all sessions taken): cameras allow
    few sessions, and one left open until garbage collection would lock the camera out."""
    monkeypatch.setattr(nvdec, "StreamDemuxer", ClosedStream)
    ClosedStream.closed = []
    refusing = FakeNvc(clip_frames(1))

    def no_session(**kwargs: Any) -> None:
        raise RuntimeError("cuvidCreateDecoder: out of NVDEC sessions")

    refusing.CreateDecoder = no_session  # type: ignore[method-assign,assignment]
    with pytest.raises(SourceError, match="out of NVDEC sessions"):
        NvdecCapture("rtsp://10.0.0.9/a", nvc=refusing, xp=FAKE_XP)
    assert ClosedStream.closed == ["rtsp://10.0.0.9/a"]
    cap = NvdecCapture("rtsp://10.0.0.9/b", nvc=FakeNvc(clip_frames(1)), xp=FAKE_XP)
    assert cap.read() == (False, None)  # the stream ended
    cap.release()
    assert ClosedStream.closed == ["rtsp://10.0.0.9/a", "rtsp://10.0.0.9/b"]


def test_a_capture_given_up_at_the_open_frees_what_its_thread_opens_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A camera slower to answer than the capture waits: the open it was given up on
    still returns later, and then makes no decoder and ends the camera's session."""
    monkeypatch.setattr(nvdec, "StreamDemuxer", ClosedStream)
    ClosedStream.closed, ClosedStream.answer = [], threading.Event()
    nvc = FakeNvc(clip_frames(1))
    try:
        with pytest.raises(SourceError, match=r"no answer within 0\.2 s"):
            NvdecCapture("rtsp://10.0.0.9/slow", nvc=nvc, xp=FAKE_XP, open_timeout_s=0.2)
        opening = [t for t in threading.enumerate() if t.name == "nvdec rtsp://10.0.0.9/slow"]
        assert opening and opening[0].is_alive()
    finally:
        ClosedStream.answer.set()
        ClosedStream.answer = None
    opening[0].join(5)
    assert not opening[0].is_alive()
    assert ClosedStream.closed == ["rtsp://10.0.0.9/slow"] and nvc.decoder_args == {}


def test_an_rtsp_source_never_reaches_pynvvideocodecs_demuxer() -> None:
    """Its demuxer crashes the process on a network source: the capture does not call it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nvc, asked = FakeNvc(clip_frames(1)), list[str]()
    nvc.CreateDemuxer = asked.append  # type: ignore[method-assign,assignment]
    with pytest.raises(SourceError, match=r"cannot open video source rtsp://127\.0\.0\.1"):
        NvdecCapture(f"rtsp://127.0.0.1:{port}/cam", nvc=nvc, xp=FAKE_XP, open_timeout_s=2.0)
    assert asked == []
    assert is_stream("rtsp://10.0.0.9/s") and is_stream("HTTP://10.0.0.9/s")
    assert not is_stream("/data/clip.mp4") and not is_stream("file:///data/c.mp4")


def test_a_camera_on_nvdec_only_says_why_its_stream_failed() -> None:
    reader = CameraReader(
        "cam1",
        "rtsp://10.0.0.9/stream",
        capture=lambda url: NvdecCapture(
            str(hanoi_clip()), nvc=StreamNvc(sdp_only=True), xp=FAKE_XP
        ),
    )
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while "without parameter sets" not in (reason := reader.health().reason):
            seen.append(reason)
            assert time.monotonic() < deadline, seen
            time.sleep(0.02)
    finally:
        assert reader.stop(timeout_s=10.0)
    assert reason.startswith("stream failed: NVDEC decoded no picture"), reason


def test_auto_sends_a_source_nvdec_cannot_start_on_to_opencv(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whether the capture finds out within the first-frame wait at the open, or only
    later (long GOPs, a short wait): the next open is OpenCV's, logged once."""
    clip = str(hanoi_clip())
    opener = _auto(monkeypatch, StreamNvc(sdp_only=True))
    first = opener(clip, 5.0)
    assert isinstance(first, OpenCvCapture) and "without parameter sets" in opener.on_cpu[clip]
    first.release()

    later = _auto(monkeypatch, StreamNvc(sdp_only=True, hold_s=2.0))
    caplog.clear()
    nvdec_first = later(clip, 0.2)  # its first-frame wait ends before two GOPs came
    assert isinstance(nvdec_first, NvdecCapture) and not later.on_cpu
    why = nvdec_first.failed_before_first_frame(10.0)  # it finds out later
    assert why is not None and why == nvdec_first.undecodable
    nvdec_first.release()
    then = later(clip, 0.2)  # the reader reconnects: no NVDEC capture is tried again
    assert isinstance(then, OpenCvCapture) and "without parameter sets" in later.on_cpu[clip]
    assert then.read()[0]  # OpenCV decodes it (its FFmpeg reads the parameter sets)
    then.release()
    assert caplog.text.count("decoding on the CPU (OpenCV)") == 1


def test_auto_moves_a_camera_with_long_gops_to_opencv_once_nvdec_finds_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reader gives up on the NVDEC capture (its stall time-out) long before that
    capture has seen two whole GOPs: the released capture goes on finding out, and the
    reconnect after it is OpenCV's, so the camera's frames flow."""
    clip = str(hanoi_clip())  # a keyframe every 32 packets: one every 1.6 s here
    read_stream(hanoi_clip())  # demuxed once, before the clock matters
    opener = _auto(monkeypatch, StreamNvc(sdp_only=True, packet_s=0.05))
    reader = CameraReader(
        "cam1", "rtsp://10.0.0.9/stream", capture=lambda url: opener(clip, 0.5),
        stall_timeout_s=0.5, backoff=Backoff(0.2, 1.0, 0.2),
    )  # fmt: skip
    reader.start()
    try:
        frame = reader.latest(timeout_s=30.0)
    finally:
        assert reader.stop(timeout_s=10.0)
    assert frame is not None and "without parameter sets" in opener.on_cpu[clip]


def test_passwords_in_source_urls_are_not_reported() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.1:554/s1") == "rtsp://admin:***@10.0.0.1:554/s1"
    assert redact_url("rtsp://viewer@10.0.0.1/s1") == "rtsp://viewer@10.0.0.1/s1"
    assert redact_url("/data/clip@2x.mp4") == "/data/clip@2x.mp4"
    assert redact_url("rtsp://admin:p@ss@10.0.0.1/s1") == "rtsp://admin:***@10.0.0.1/s1"
    assert redact_url("rtsp://10.0.0.1/live@main") == "rtsp://10.0.0.1/live@main"
    assert (
        redact_url("http://10.0.0.2/cgi-bin/mjpg?user=admin&password=s3cret&channel=1")
        == "http://10.0.0.2/cgi-bin/mjpg?user=admin&password=***&channel=1"
    )
    with pytest.raises(ConfigError) as refused:
        parse_site_config(
            {"site": "s1", "node": "n1", "cameras": [{"id": "c1", "url": "ftp://u:s3cret@h/x"}]}
        )
    assert "s3cret" not in str(refused.value) and "u:***@h" in str(refused.value)
    with pytest.raises(SourceError) as caught:
        NvdecCapture("rtsp://admin:s3cret@10.0.0.1/s1", nvc=FakeNvc(clip_frames(1)), xp=FAKE_XP)
    assert "s3cret" not in str(caught.value) and "admin:***@" in str(caught.value)

    def refuse(url: str) -> OpenCvCapture:
        raise RuntimeError(f"avformat_open_input({url}): connection refused")

    reader = CameraReader("cam1", "rtsp://admin:s3cret@10.0.0.1/s1", capture=refuse)
    reader.start()
    try:
        deadline = time.monotonic() + 5
        while "cannot open" not in reader.health().reason and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        assert reader.stop(5.0)
    reason = reader.health().reason
    assert "cannot open" in reason and "s3cret" not in reason
