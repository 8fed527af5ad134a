"""Camera readers with scripted captures: newest frame only, drops, corrupt frames,
reconnect back-off, stall watchdog, bounded stop; and the file reader on a real clip."""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.sources import (
    Arrivals,
    Backoff,
    CameraReader,
    SourceError,
    probe_file,
    read_file,
    valid_image,
)
from roadwatch.contract import CameraState
from tests.edge_support import hanoi_clip

GOOD = np.zeros((48, 64, 3), np.uint8)


class ScriptedCapture:
    """Plays a script: an image, None (read failure) or a wrong-sized image (corrupt)."""

    def __init__(self, script: Callable[[int], np.ndarray | None], delay_s: float = 0.002) -> None:
        self.script = script
        self.delay_s = delay_s
        self.calls = 0
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.delay_s)
        image = self.script(self.calls)
        self.calls += 1
        return (image is not None), image

    def release(self) -> None:
        self.released = True

    @property
    def fps(self) -> float:
        return 0.0


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0), (5000, 30.0)],
)
def test_backoff_doubles_up_to_its_cap(failures: int, delay: float) -> None:
    assert Backoff(initial_s=0.5, factor=2, max_s=30).delay(failures) == delay


@pytest.mark.parametrize(
    ("image", "expected", "ok"),
    [
        (GOOD, None, True),
        (GOOD, (48, 64, 3), True),
        (np.zeros((10, 10, 3), np.uint8), (48, 64, 3), False),
        (np.zeros((48, 64), np.uint8), None, False),
        (np.zeros((48, 64, 3), np.float32), None, False),
        (np.zeros((0, 64, 3), np.uint8), None, False),
        (None, None, False),
    ],
)
def test_valid_image(image: object, expected: tuple[int, ...] | None, ok: bool) -> None:
    assert valid_image(image, expected) is ok


def test_keeps_only_the_newest_frame_and_counts_drops_and_corrupt_frames() -> None:
    corrupt = np.zeros((10, 10, 3), np.uint8)
    cap = ScriptedCapture(lambda i: corrupt if i % 10 == 5 else GOOD)
    reader = CameraReader("cam1", "rtsp://scripted", capture=lambda url: cap)
    reader.start()
    try:
        assert _wait_for(lambda: reader.counts().frames >= 40)
        first = reader.latest(timeout_s=2)
        time.sleep(0.1)
        second = reader.latest(timeout_s=2)
        assert first is not None and second is not None
        assert second.index > first.index + 1  # frames in between were overwritten
        assert reader.latest() is None  # nothing new handed out twice
        assert second.monotonic > first.monotonic
        assert second.captured_at.tzinfo is not None
    finally:
        assert reader.stop(timeout_s=5)
    counts = reader.counts()
    assert counts.dropped > 0
    assert counts.corrupt >= 3
    health = reader.health()
    assert health.frames_dropped == counts.dropped and health.frames_corrupt == counts.corrupt
    assert cap.released


def test_reconnects_with_backoff_after_failed_opens_and_a_broken_stream() -> None:
    opens: list[float] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(time.monotonic())
        if len(opens) in (1, 2):
            raise SourceError("connection refused")
        # the third connection breaks after 20 frames, the fourth keeps going
        if len(opens) == 3:
            return ScriptedCapture(lambda i: GOOD if i < 20 else None)
        return ScriptedCapture(lambda i: GOOD)

    reader = CameraReader("cam1", "rtsp://scripted", capture=factory, backoff=Backoff(0.05, 2, 1))
    reader.start()
    try:
        assert _wait_for(lambda: len(opens) >= 4 and reader.counts().frames > 25)
        assert reader.health().state is CameraState.UP
    finally:
        assert reader.stop(timeout_s=5)
    gaps = [b - a for a, b in itertools.pairwise(opens)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # back-off doubled
    assert reader.counts().reconnects == 2
    assert reader.counts().reconnect_attempts == 3  # (the second open, refused, too)


def test_a_camera_refused_counts_its_reconnect_attempts() -> None:
    """A camera that stays down has no successful reconnect: its attempts say that it is
    being retried (the health line's "reconnects 0" alone read as a node not retrying)."""
    opens: list[int] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(1)
        raise SourceError("connection refused")

    reader = CameraReader("cam1", "rtsp://scripted", capture=factory, backoff=Backoff(0.01, 1, 1))
    reader.start()
    try:
        assert _wait_for(lambda: len(opens) >= 4)
    finally:
        assert reader.stop(timeout_s=5)
    counts = reader.counts()
    assert counts.reconnects == 0 and reader.health().reconnects == 0
    assert counts.reconnect_attempts == len(opens) - 1  # (the first open is no reconnect)


def test_a_camera_that_is_down_reports_no_frame_rate() -> None:
    """While it is down the camera sends nothing: its status says 0 fps, not the rate it
    had before."""
    opens: list[int] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(1)
        if len(opens) == 1:
            return ScriptedCapture(lambda i: GOOD if i < 20 else None)
        raise SourceError("connection refused")

    reader = CameraReader("cam1", "rtsp://scripted", capture=factory, backoff=Backoff(0.05, 2, 5))
    reader.start()
    try:
        assert _wait_for(lambda: reader.counts().frames >= 10)
        assert reader.health().fps > 0
        assert _wait_for(lambda: reader.health().state is CameraState.DOWN)
        assert reader.health().fps == 0.0
    finally:
        assert reader.stop(timeout_s=5)


def test_a_camera_going_down_is_a_warning_and_so_is_its_coming_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A technician reads the log at its default level (warnings): a camera that came back
    must say so there, or the last line about it says "down" while it streams."""
    opens: list[int] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(1)
        if len(opens) == 1:
            raise SourceError("connection refused")
        return ScriptedCapture(lambda i: GOOD)

    caplog.set_level("INFO", logger="edge.sources")
    reader = CameraReader("cam1", "rtsp://scripted", capture=factory, backoff=Backoff(0.05, 2, 1))
    reader.start()
    try:
        assert _wait_for(lambda: reader.health().state is CameraState.UP)
    finally:
        assert reader.stop(timeout_s=5)
    said = [
        (r.levelname, r.getMessage()) for r in caplog.records if "camera cam1" in r.getMessage()
    ]
    assert said[0] == ("WARNING", "camera cam1: down (connection refused)")
    assert said[1][0] == "WARNING"
    assert re.fullmatch(r"camera cam1: up again \(streaming\) after \d+ s down", said[1][1])
    assert len(said) == 2


def test_a_camera_up_from_the_start_is_news_only_with_verbose_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="edge.sources")
    reader = CameraReader(
        "cam1", "rtsp://scripted", capture=lambda url: ScriptedCapture(lambda i: GOOD)
    )
    reader.start()
    try:
        assert _wait_for(lambda: reader.health().state is CameraState.UP)
    finally:
        assert reader.stop(timeout_s=5)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "cam1" in r.getMessage()]
    assert said == [("INFO", "camera cam1: up (streaming)")]


def test_stall_watchdog_reconnects_a_stream_that_sends_only_garbage() -> None:
    opens: list[int] = []
    bad = np.zeros((10, 10, 3), np.uint8)

    def factory(url: str) -> ScriptedCapture:
        opens.append(1)
        if len(opens) == 1:  # one good frame, then only undecodable ones
            return ScriptedCapture(lambda i: GOOD if i == 0 else bad)
        return ScriptedCapture(lambda i: GOOD)

    reader = CameraReader(
        "cam1", "rtsp://scripted", capture=factory, stall_timeout_s=0.3,
        backoff=Backoff(0.05, 2, 1),
    )  # fmt: skip
    reader.start()
    try:
        assert _wait_for(lambda: len(opens) >= 2)
        assert _wait_for(lambda: reader.counts().frames > 5)
    finally:
        assert reader.stop(timeout_s=5)
    assert reader.counts().reconnects == 1
    assert reader.counts().corrupt > 0


def test_a_camera_that_opens_and_fails_at_once_backs_off_as_one_refusing() -> None:
    """Each open succeeds and the first read fails (a camera that accepts, then breaks):
    the reader waits longer each time, as for refused opens, until a frame comes."""
    opens: list[float] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(time.monotonic())
        return ScriptedCapture(lambda i: GOOD if len(opens) > 5 else None)

    reader = CameraReader("cam1", "rtsp://scripted", capture=factory, backoff=Backoff(0.05, 2, 1))
    reader.start()
    try:
        assert _wait_for(lambda: reader.counts().frames > 3)
    finally:
        assert reader.stop(timeout_s=5)
    gaps = [b - a for a, b in itertools.pairwise(opens)]
    assert gaps[1] >= 0.1 and gaps[3] >= 0.4, gaps  # 0.05, 0.1, 0.2, 0.4 s


def test_a_stream_gone_silent_is_reported_stalled_not_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A read that waits out the time-out may still hand over a frame the decoder held;
    the stream then fails at once. That is a stall, and the status says so."""

    def script(i: int) -> np.ndarray | None:
        if i == 10:
            time.sleep(0.3)  # silence: the read's own time-out, then a late frame
        return GOOD if i <= 10 else None

    opens: list[int] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(1)
        return ScriptedCapture(script if len(opens) == 1 else (lambda i: GOOD))

    caplog.set_level("INFO", logger="edge.sources")
    reader = CameraReader(
        "cam1", "rtsp://scripted", capture=factory, stall_timeout_s=0.3,
        backoff=Backoff(0.05, 2, 1),
    )  # fmt: skip
    reader.start()
    try:
        assert _wait_for(lambda: len(opens) >= 2)
    finally:
        assert reader.stop(timeout_s=5)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said[0] == "camera cam1: stalled (no frame within the stall timeout)", said
    assert [re.sub(r"\d+ s", "N s", m) for m in said[1:]] == [
        "camera cam1: up again (streaming) after N s stalled"
    ], said


def test_a_looping_file_without_a_readable_frame_backs_off() -> None:
    """A file that opens and gives no frame is down and opened again with back-off, not
    thousands of times a second; a file that gives frames loops at once."""
    opens: list[float] = []

    def factory(url: str) -> ScriptedCapture:
        opens.append(time.monotonic())
        return ScriptedCapture(lambda i: None, delay_s=0.0)

    reader = CameraReader(
        "cam1", "clip.mp4", capture=factory, loop=True, backoff=Backoff(0.05, 2, 1)
    )
    reader.start()
    try:
        assert _wait_for(lambda: len(opens) >= 4)
        assert reader.health().state is CameraState.DOWN
    finally:
        assert reader.stop(timeout_s=5)
    gaps = [b - a for a, b in itertools.pairwise(opens)]
    assert gaps[2] >= 0.2, gaps  # 0.05, 0.1, 0.2 s


def test_a_camera_is_up_only_once_its_first_frame_comes() -> None:
    """Opened is not up: a camera that accepts the connection and has sent no frame yet
    (or never will) is not shown up, even for a moment, to the IOC."""
    first_read = threading.Event()
    release = threading.Event()

    def script(i: int) -> np.ndarray | None:
        if i == 0:
            first_read.set()
            release.wait(5)
        return GOOD

    reader = CameraReader("cam1", "rtsp://scripted", capture=lambda url: ScriptedCapture(script))
    reader.start()
    try:
        assert first_read.wait(5)
        assert reader.health().state is CameraState.DOWN
        release.set()
        assert _wait_for(lambda: reader.health().state is CameraState.UP, 3)
    finally:
        release.set()
        assert reader.stop(timeout_s=5)


def test_health_reports_a_stall_while_the_read_is_blocked() -> None:
    release = threading.Event()

    def script(i: int) -> np.ndarray | None:
        if i > 0:
            release.wait(5)  # a read that hangs (the real capture has a read time-out)
        return GOOD

    reader = CameraReader(
        "cam1", "rtsp://scripted", capture=lambda url: ScriptedCapture(script), stall_timeout_s=0.2
    )
    reader.start()
    try:
        assert _wait_for(lambda: reader.health().state is CameraState.STALLED, 3)
    finally:
        release.set()
        assert reader.stop(timeout_s=5)


def test_stop_is_bounded_while_waiting_out_a_long_backoff() -> None:
    def refuse(url: str) -> ScriptedCapture:
        raise SourceError("connection refused")

    reader = CameraReader("cam1", "rtsp://x", capture=refuse, backoff=Backoff(60, 2, 60))
    reader.start()
    assert _wait_for(lambda: reader.health().reason == "connection refused")
    started = time.monotonic()
    assert reader.stop(timeout_s=5)
    assert time.monotonic() - started < 5
    assert reader.health().state is CameraState.DOWN


def test_file_reader_reads_every_frame_of_a_real_clip_in_order() -> None:
    frames = []
    for frame in read_file(hanoi_clip(), "hanoi"):
        frames.append(frame.index)
        if len(frames) == 30:
            break
    assert frames == list(range(30))
    info = probe_file(hanoi_clip())
    assert info.frame_count == 384 and 5.9 < info.fps < 6.1


def test_file_camera_ends_at_the_end_of_a_file(tmp_path: Path) -> None:
    import cv2

    clip = tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 50, (64, 48))
    for _ in range(10):
        writer.write(GOOD)
    writer.release()
    reader = CameraReader("f", str(clip), realtime=True)
    reader.start()
    try:
        assert _wait_for(lambda: reader.ended)
    finally:
        assert reader.stop(timeout_s=5)
    assert reader.counts().frames == 10
    assert reader.health().reason == "end of file"


@pytest.mark.parametrize("content", [None, b"this is not a video"])
def test_unreadable_video_is_one_clear_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=r"clip.mp4"):
        probe_file(path)


def test_target_fps_limits_the_frames_handed_on() -> None:
    cap = ScriptedCapture(lambda i: GOOD, delay_s=0.001)
    reader = CameraReader("cam1", "rtsp://scripted", capture=lambda url: cap, target_fps=10)
    reader.start()
    started = time.monotonic()
    try:
        assert _wait_for(lambda: cap.calls >= 200)
    finally:
        assert reader.stop(timeout_s=5)
    elapsed = time.monotonic() - started
    assert reader.counts().frames <= 10 * elapsed + 2
    assert reader.counts().frames < cap.calls / 2


def test_newest_says_since_when_the_camera_has_had_a_frame_waiting() -> None:
    gate = threading.Semaphore(0)

    def script(i: int) -> np.ndarray | None:
        gate.acquire(timeout=5)  # one frame per release
        return GOOD

    arrivals = Arrivals()
    reader = CameraReader(
        "cam1", "rtsp://scripted", capture=lambda url: ScriptedCapture(script), arrivals=arrivals
    )
    reader.start()
    try:
        gate.release()
        assert arrivals.take(5) == {"cam1"}
        first = reader.newest()
        assert first is not None and first[1] == first[0].monotonic  # waiting since itself
        assert reader.newest() is None  # handed out
        for _ in range(3):  # three frames, none taken: the camera waits since the first
            gate.release()
        assert _wait_for(lambda: reader.counts().frames == 4)
        newest = reader.newest()
        assert newest is not None
        frame, since = newest
        assert arrivals.take() == {"cam1"} and since < frame.monotonic
        assert reader.counts().dropped == 2
    finally:
        for _ in range(10):
            gate.release()
        assert reader.stop(timeout_s=5)


@pytest.fixture
def answering_port() -> Iterator[int]:
    """A port that accepts connections and closes them at once (no RTSP server behind)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, name="answering-port")
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_a_stream_that_does_not_open_says_what_to_check(answering_port: int) -> None:
    """OpenCV says only that a stream did not open: a technician needs to know whether the
    camera is off (refused), the network does not reach it, or the URL is wrong (its path
    or credentials, where the port answers); the password stays hidden."""
    from edge.sources import OpenCvCapture
    from roadwatch.net import free_port

    closed = free_port()
    with pytest.raises(SourceError) as refused:
        OpenCvCapture(f"rtsp://admin:s3cret@127.0.0.1:{closed}/stream1", 2.0, 2.0)
    assert str(refused.value) == (
        f"cannot open video source rtsp://admin:***@127.0.0.1:{closed}/stream1"
        f" (127.0.0.1:{closed} refuses connections: the camera or its streaming service is off)"
    )
    with pytest.raises(SourceError) as answered:
        OpenCvCapture(f"rtsp://127.0.0.1:{answering_port}/wrong", 2.0, 2.0)
    assert str(answered.value).endswith(
        f" (127.0.0.1:{answering_port} answers: check the URL's path, user and password)"
    )
