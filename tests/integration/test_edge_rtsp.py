"""Camera reconnect against a real RTSP server that the test starts, stops and restarts.

The server is GStreamer's (gst-rtsp-server through PyGObject, Debian packages listed in
scripts/setup), run by the system python3 in its own process on a free port.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

from edge.evidence.packets import decode_annexb, nal_units
from edge.nvdec import sdp_parameter_sets
from edge.sources import Backoff, CameraReader
from roadwatch.contract import CameraState
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
    def __init__(self, port: int, sdp_only: bool = False) -> None:
        self.port = port
        self.sdp_only = sdp_only
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), *(["sdp-only"] if self.sdp_only else [])],
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


def _serving(sdp_only: bool) -> Iterator[RtspServer]:
    if not _gst_available():
        missing("GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not installed")
    server = RtspServer(_free_port(), sdp_only)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    yield from _serving(sdp_only=False)


@pytest.fixture(params=[True, False], ids=["sdp-only", "in-band"])
def either_server(request: pytest.FixtureRequest) -> Iterator[RtspServer]:
    """A camera that sends its parameter sets only in the SDP, and one that sends them in
    the stream too."""
    yield from _serving(sdp_only=request.param)


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


def _packets(url: str, count: int) -> list[bytes]:
    """The stream's first ``count`` packets (Annex B, as FFmpeg's RTSP client gets them)."""
    raw = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    try:
        assert raw.isOpened()
        out = []
        while len(out) < count and (read := raw.read())[0]:
            out.append(read[1].tobytes())
        return out
    finally:
        raw.release()


def _kinds(packets: list[bytes]) -> list[set[int]]:
    return [{kind for kind, _ in nal_units(data, "h264")} for data in packets]


def test_the_parameter_sets_of_a_camera_are_read_from_its_sdp(either_server: RtspServer) -> None:
    """What NVDEC gets ahead of the first keyframe of a camera that sends its SPS and PPS
    only in the SDP: the sets that make that stream decodable (FFmpeg decodes nothing
    from its packets without them, and every picture with them)."""
    server, sdp_only = either_server, either_server.sdp_only
    sets = sdp_parameter_sets(server.url, "h264", timeout_s=10.0)
    assert _kinds(sets) == [{7}, {8}]
    packets = _packets(server.url, 25)
    kinds = _kinds(packets)
    key = next(i for i, k in enumerate(kinds) if 5 in k)
    in_band = any(k & {7, 8} for k in kinds)
    assert in_band is not sdp_only
    stretch = packets[key:]
    if sdp_only:
        assert list(decode_annexb([], stretch, "h264")) == []
    pictures = list(decode_annexb(sets, stretch, "h264"))
    assert len(pictures) == len(stretch)
    assert all(p.shape == (240, 320, 3) for p in pictures)
