"""Camera reconnect against a real RTSP server that the test starts, stops and restarts.

The server is GStreamer's (gst-rtsp-server through PyGObject, Debian packages listed in
scripts/setup), run by the system python3 in its own process on a free port.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.evidence.packets import KEY_NALS, PacketRing, nal_units
from edge.nvdec import NvdecCapture, StreamDemuxer
from edge.sources import Backoff, CameraReader, Frame
from roadwatch.contract import CameraState
from tests.nvdec_standin import FAKE_XP, AvNvc, DemuxedPacket, GpuArray
from tests.services import missing

pytestmark = pytest.mark.integration

SERVER = Path(__file__).resolve().parents[1] / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gst_available() -> bool:
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        " from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        " assert Gst.ElementFactory.find('x264enc')"
    )
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


class RtspServer:
    def __init__(self, port: int, mode: str = "") -> None:
        """``mode``: "" (H.264, parameter sets in the stream), "sdp-only" or "hevc" (see
        tests/rtsp_server.py)."""
        self.port = port
        self.mode = mode
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), *([self.mode] if self.mode else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


def _serving(mode: str) -> Iterator[RtspServer]:
    if not _gst_available():
        missing("GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not installed")
    server = RtspServer(_free_port(), mode)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    yield from _serving("")


@pytest.fixture
def hevc_camera() -> Iterator[RtspServer]:
    yield from _serving("hevc")


@pytest.fixture(params=["", "sdp-only", "hevc"], ids=["h264", "h264-sdp-only", "hevc"])
def any_camera(request: pytest.FixtureRequest) -> Iterator[RtspServer]:
    """An H.264 camera that sends its parameter sets in the stream, one that sends them only
    in the SDP, and an HEVC camera (its sets ahead of the first keyframe only)."""
    yield from _serving(request.param)


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_reader_reconnects_when_the_server_comes_back(rtsp_server: RtspServer) -> None:
    reader = CameraReader(
        "cam1", rtsp_server.url, stall_timeout_s=3.0, backoff=Backoff(0.2, 2.0, 1.0)
    )
    reader.start()
    try:
        assert _wait_for(lambda: reader.counts().frames >= 5, 30), reader.health()
        frame = reader.latest(timeout_s=5)
        assert frame is not None and frame.image.shape == (240, 320, 3)

        rtsp_server.stop()
        assert _wait_for(lambda: reader.health().state is not CameraState.UP, 30), reader.health()
        assert (
            reader.health().reason
            in {
                "stream failed",
                "no frame within the stall timeout",
            }
            or "cannot open" in reader.health().reason
        )
        frames_while_down = reader.counts().frames

        rtsp_server.start()
        assert _wait_for(lambda: reader.counts().frames >= frames_while_down + 5, 60), (
            reader.health()
        )
        health = reader.health()
        assert health.state is CameraState.UP
        assert health.reconnects >= 1
    finally:
        assert reader.stop(timeout_s=15)


def test_an_nvdec_capture_reads_a_camera_over_rtsp(any_camera: RtspServer) -> None:
    """The NVDEC capture of a real RTSP camera: demuxed by ``StreamDemuxer`` (PyNvVideoCodec's
    own demuxer would crash the process), decoded by the stand-in for NVDEC (FFmpeg, which
    like NVDEC's parser shows nothing it has no parameter sets for), H.264 and HEVC. A
    camera that sends its SPS and PPS only in its SDP is decoded too: they go ahead of the
    stream's first keyframe, for the decoder and for the evidence ring, which rebuilds the
    frames of a later GOP from them."""
    nvc = AvNvc()
    ring = PacketRing("cam1", seconds=60.0, max_bytes=1 << 26)
    at = datetime.now(UTC)
    shown: list[GpuArray] = []
    cap = NvdecCapture(any_camera.url, nvc=nvc, xp=FAKE_XP, packets=ring)
    try:
        while len(shown) < 25:  # 2.5 s: three keyframes or more
            ok, image = cap.read()
            assert ok and isinstance(image, GpuArray) and cap.last_source is not None
            assert image.shape == (240, 320, 3)
            n = len(shown)
            shown.append(image)
            frame = Frame("cam1", n, 100.0 + n / 10, at, image, cap.last_source)
            ring.push_frame(n, frame.monotonic, at, frame)
    finally:
        cap.release()
    assert not cap.alive  # the stream's session ended with the capture
    codec = "hevc" if any_camera.mode == "hevc" else "h264"
    assert cap.fps == 10.0 and [d.codec for d in nvc.decoders] == [codec]
    rebuilt = ring.window(100.0 + 15 / 10, 100.0 + 24 / 10)
    assert [f.index for f in rebuilt] == list(range(15, 25))
    for f in rebuilt:
        picture = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None
        difference = np.abs(picture.astype(np.int16) - shown[f.index].get().astype(np.int16))
        assert float(difference.mean()) < 4.0, f.index


def test_a_camera_that_stops_sending_ends_its_nvdec_capture(rtsp_server: RtspServer) -> None:
    """A stream that goes silent (the camera hangs) ends the capture's thread at the read
    time-out of its demuxer, with the reason, rather than leaving it blocked in FFmpeg."""
    cap = NvdecCapture(rtsp_server.url, nvc=AvNvc(), xp=FAKE_XP, read_timeout_s=2.0)
    proc = rtsp_server.proc
    assert proc is not None
    try:
        assert cap.read()[0]
        proc.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 30
            while cap.alive and time.monotonic() < deadline:
                cap.read()  # takes what was decoded before (the queue is short)
            assert not cap.alive, "the capture's thread still waits in FFmpeg"
        finally:
            proc.send_signal(signal.SIGCONT)
    finally:
        cap.release()
    assert cap.error == "SourceError: no packet from the stream within 2 s", cap.error


def _without_sets(packet: Any) -> DemuxedPacket:
    """A demuxed HEVC packet with its VPS, SPS and PPS taken out."""
    units = nal_units(bytes(packet), "hevc")
    data = b"".join(bytes(u) for kind, u in units if kind not in (32, 33, 34))
    return DemuxedPacket(data, packet.pts, packet.dts, packet.is_keyframe)


def test_an_hevc_camera_that_sends_its_sets_only_in_its_sdp_is_decoded(
    hevc_camera: RtspServer,
) -> None:
    """GStreamer's HEVC encoder sends its VPS, SPS and PPS with every IDR picture, so they
    are taken out of the demuxed packets here, as a camera that sends them only in its SDP
    leaves them out: the SDP's go into the first keyframe in the order they refer to each
    other, before its picture, and FFmpeg's HEVC decoder shows the stream."""
    demuxer = StreamDemuxer(hevc_camera.url, AvNvc(), open_timeout_s=10.0, read_timeout_s=10.0)
    demuxed = demuxer._demuxed
    demuxer._demuxed = lambda: (_without_sets(p) for p in demuxed())  # type: ignore[method-assign]
    decoder = AvNvc().CreateDecoder(codec=demuxer.GetNvCodecId())
    handed: list[bytes] = []  # each packet's bytes live until the next is taken
    shown = 0
    for packet in demuxer:
        handed.append(ctypes.string_at(packet.bsl_data, packet.bsl))
        shown += len(decoder.Decode(packet))
        if shown >= 15 or len(handed) >= 60:  # 6 s of stream at most
            break
    demuxer.close()
    keys = KEY_NALS["hevc"]
    keyframe = next(data for data in handed if {k for k, _ in nal_units(data, "hevc")} & keys)
    kinds = [kind for kind, _ in nal_units(keyframe, "hevc")]
    picture = next(i for i, kind in enumerate(kinds) if kind in keys)
    assert kinds.index(32) < kinds.index(33) < kinds.index(34) < picture
    assert sum(1 for data in handed for k, _ in nal_units(data, "hevc") if k in (32, 33, 34)) == 3
    assert shown >= 15


def test_calibrate_frame_saves_a_still_of_a_camera_stream(
    rtsp_server: RtspServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new camera's view, taken from its stream as the site file names it."""
    from roadwatch.cli import main

    out = tmp_path / "cam.png"
    assert main(["calibrate", "frame", rtsp_server.url, "--frame-index", "2", "-o", str(out)]) == 0
    assert "320x240" in capsys.readouterr().out
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (240, 320, 3)
    assert float(image.std()) > 5  # the test pattern, not a blank picture
