"""Camera sources: files and RTSP streams behind one interface, one reader thread each.

``CameraReader`` owns one capture and one thread. The thread keeps only the newest frame
(a consumer that falls behind sees the latest picture, and every frame overwritten
unseen counts as a drop), stamps each frame with monotonic and UTC time, skips and counts
corrupt frames, reconnects with exponential back-off when the stream fails, and a stall
watchdog reconnects when no good frame came for ``stall_timeout_s``. ``stop`` ends the
thread within a bounded time: every blocking call has a timeout.

``read_file`` reads a video file frame by frame without dropping, for offline runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.device_batch import host_image
from roadwatch.contract import CameraHealth, CameraState
from roadwatch.errors import UserError
from roadwatch.net import redact_url

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]


class SourceError(UserError):
    """A source that cannot be opened at all (bad path, unreadable file)."""


@dataclass(frozen=True, slots=True)
class SourceTag:
    """Where a frame sits in its compressed stream: the capture session (a reconnect opens
    a new one) and the frame's presentation time stamp."""

    session: int
    pts: int


@dataclass(frozen=True, eq=False)
class Frame:
    camera: str
    index: int  # position in the source since the reader started (gaps are drops)
    monotonic: float  # time.monotonic() when the frame was read
    captured_at: datetime  # UTC wall clock when the frame was read
    pixels: Any  # BGR, uint8, (height, width, 3): a NumPy array, or CuPy from NVDEC
    source: SourceTag | None = None  # from a capture that hands its packets to a ring

    @cached_property
    def image(self) -> Image:
        """The picture in host memory (copied down from the GPU once, when first asked)."""
        return host_image(self.pixels)


class Capture(Protocol):
    """The few calls the readers need from a video capture."""

    def read(self) -> tuple[bool, Any]: ...  # (ok, BGR frame on the host or the GPU)

    def release(self) -> None: ...

    @property
    def fps(self) -> float: ...


def is_stream(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def redact_in(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url``'s password replaced by ***."""
    return text.replace(url, redact_url(url))


# The port a camera URL means without one (FFmpeg's defaults for these schemes).
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}


def reachability(url: str, timeout_s: float) -> str:
    """Why a stream did not open, as far as one TCP connection can tell (OpenCV says only
    that it did not): " (host:port refuses connections)", " (no answer from host:port
    within N s)", or, when the port answers, that the URL's path or its credentials are
    the thing to check. Empty for a URL without a host (or a UDP scheme)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return ""
    if not host or port is None:
        return ""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except ConnectionRefusedError:
        return f" ({where} refuses connections: the camera or its streaming service is off)"
    except TimeoutError:
        return f" (no answer from {where} within {timeout_s:g} s: the camera or the network)"
    except OSError as exc:
        return f" ({where}: {exc.strerror or exc})"
    return f" ({where} answers: check the URL's path, user and password)"


class OpenCvCapture:
    """OpenCV's FFmpeg back-end with open and read time-outs (so no call blocks forever)."""

    def __init__(self, url: str, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0) -> None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000),
        ]  # fmt: skip
        target = url.removeprefix("file://")
        self._cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            self._cap.release()
            why = reachability(url, min(open_timeout_s, 2.0)) if is_stream(url) else ""
            raise SourceError(f"cannot open video source {redact_url(url)}{why}")

    def read(self) -> tuple[bool, Image | None]:
        ok, image = self._cap.read()
        return bool(ok), np.asarray(image, dtype=np.uint8) if ok and image is not None else None

    def release(self) -> None:
        self._cap.release()

    @property
    def fps(self) -> float:
        value = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return value if 0.0 < value < 1000.0 else 0.0

    @property
    def frame_count(self) -> int:
        return max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))


CaptureFactory = Callable[[str], Capture]

FFMPEG_LOG_LEVEL = "OPENCV_FFMPEG_LOGLEVEL"


def quiet_ffmpeg() -> None:
    """FFmpeg's own lines inside OpenCV ("[tcp @ 0x…] Connection to tcp://…?timeout=0
    failed" at every reconnect attempt) go: they bypass the log's format, and the node
    says the cause itself (``reachability``, the camera's state and counts). OpenCV reads
    the level at its first FFmpeg capture in the process, so this is called before it
    (worker processes inherit it); a level set in the environment is kept."""
    os.environ.setdefault(FFMPEG_LOG_LEVEL, "-8")  # (AV_LOG_QUIET)


def open_opencv(url: str, stall_timeout_s: float) -> OpenCvCapture:
    """OpenCV capture of a camera whose read time-out is its stall watchdog: no frame for
    that long ends the read."""
    return OpenCvCapture(
        url, open_timeout_s=min(stall_timeout_s, 10.0), read_timeout_s=stall_timeout_s
    )


def valid_image(image: object, expected: tuple[int, ...] | None = None) -> bool:
    """A decodable BGR frame: uint8, (h, w, 3), non-empty, and the stream's size once known
    (a NumPy array, or a CuPy array in GPU memory)."""
    if getattr(image, "dtype", None) != np.uint8:
        return False
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) != 3 or shape[2] != 3 or 0 in shape:
        return False
    return expected is None or shape == expected


@dataclass(frozen=True)
class FileInfo:
    fps: float
    frame_count: int


def probe_file(path: Path) -> FileInfo:
    if not path.is_file():
        raise SourceError(f"no such video file: {path}")
    cap = OpenCvCapture(str(path))
    try:
        ok, image = cap.read()
        if not ok or not valid_image(image):
            raise SourceError(f"cannot decode any frame of {path}")
        return FileInfo(cap.fps or 25.0, cap.frame_count)
    finally:
        cap.release()


@dataclass
class ReadCounters:
    frames: int = 0
    corrupt: int = 0


def read_file(
    path: Path, camera: str = "file", counters: ReadCounters | None = None
) -> Iterator[Frame]:
    """Every frame of a video file in order; corrupt frames are skipped and counted."""
    probe_file(path)
    counters = counters if counters is not None else ReadCounters()
    cap = OpenCvCapture(str(path))
    shape: tuple[int, ...] | None = None
    index = -1
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return
            index += 1
            if not valid_image(image, shape) or image is None:
                counters.corrupt += 1
                continue
            shape = shape or image.shape
            counters.frames += 1
            yield Frame(camera, index, time.monotonic(), datetime.now(UTC), image)
    finally:
        cap.release()


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnect attempts: initial, doubling, capped."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        # (the exponent bounded: a camera down for a day has failed thousands of times, and
        # 2.0 ** 1024 overflows)
        return float(min(self.max_s, self.initial_s * self.factor ** min(max(0, failures - 1), 64)))


@dataclass(frozen=True)
class ReaderCounts:
    frames: int
    dropped: int
    corrupt: int
    reconnects: int  # connections opened again after a failure
    reconnect_attempts: int = 0  # opens tried after a failure, refused ones too


class Arrivals:
    """Which cameras have published a frame since their consumer last looked, so that it
    wakes on a new frame and looks only at the cameras that have one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._cameras: set[str] = set()

    def add(self, camera: str) -> None:
        with self._cond:
            self._cameras.add(camera)
            self._cond.notify()

    def take(self, timeout_s: float = 0.0) -> set[str]:
        """The cameras with a new frame, waiting up to ``timeout_s`` for one."""
        with self._cond:
            if not self._cameras and timeout_s > 0:
                self._cond.wait(timeout_s)
            cameras, self._cameras = self._cameras, set()
            return cameras


class CameraReader:
    """One camera, one thread, the newest frame only. ``start`` it, ``latest`` it, ``stop`` it."""

    def __init__(
        self,
        camera: str,
        url: str,
        *,
        capture: CaptureFactory | None = None,
        backoff: Backoff | None = None,
        stall_timeout_s: float = 10.0,
        target_fps: float | None = None,
        loop: bool = False,
        realtime: bool = True,
        arrivals: Arrivals | None = None,
    ) -> None:
        self.camera = camera
        self._arrivals = arrivals  # told of every new frame (shared by a node's readers)
        self.url = url
        self._open = capture or self._default_capture
        self.backoff = backoff or Backoff()
        self.stall_timeout_s = stall_timeout_s
        self.min_interval = 1.0 / target_fps if target_fps else 0.0
        self.loop = loop
        # A file is paced at its own frame rate, like the camera it stands in for.
        self.realtime = realtime and not is_stream(url)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = True
        self._waiting_since = 0.0
        self._capture: Capture | None = None  # the open one, for request_stop
        self._thread: threading.Thread | None = None
        self._state = CameraState.DOWN
        self._reason = "not started"
        self._frames = self._dropped = self._corrupt = self._reconnects = 0
        self._attempts = 0  # reconnect attempts (a camera down says it is being retried)
        self._last_good = 0.0
        self._fps_ema = 0.0
        self._ended = False
        self._warned_at = 0.0  # when a state other than up was last logged, until up again

    def _default_capture(self, url: str) -> Capture:
        return open_opencv(url, self.stall_timeout_s)

    # -- consumer side -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("reader already started")
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end (a capture that can be interrupted stops waiting now)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            cap = self._capture
        interrupt = getattr(cap, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the thread to end and wait at most ``timeout_s``; True when it has ended."""
        self.request_stop()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def latest(self, timeout_s: float = 0.0) -> Frame | None:
        """The newest frame not handed out yet, waiting up to ``timeout_s`` for one."""
        with self._cond:
            if self._taken and timeout_s > 0:
                self._cond.wait_for(
                    lambda: not self._taken or self._stop.is_set() or self._ended, timeout_s
                )
            if self._taken or self._latest is None:
                return None
            self._taken = True
            return self._latest

    def newest(self) -> tuple[Frame, float] | None:
        """The newest frame not handed out yet, and since when the camera has had one
        waiting (the read time of the oldest frame it replaced, or its own); no waiting."""
        with self._cond:
            if self._taken or self._latest is None:
                return None
            self._taken = True
            return self._latest, self._waiting_since

    @property
    def ended(self) -> bool:
        """A file source that reached its end (and does not loop)."""
        return self._ended

    def counts(self) -> ReaderCounts:
        with self._cond:
            return ReaderCounts(
                self._frames, self._dropped, self._corrupt, self._reconnects, self._attempts
            )

    def health(self) -> CameraHealth:
        with self._cond:
            state, reason = self._state, self._reason
            if (
                state is CameraState.UP
                and time.monotonic() - self._last_good > self.stall_timeout_s
            ):
                state, reason = CameraState.STALLED, "no frame within the stall timeout"
            # A camera that sends nothing has no frame rate (not the last one it had).
            fps = self._fps_ema if state is CameraState.UP else 0.0
            return CameraHealth(
                camera=self.camera,
                state=state,
                reason=reason[:500],
                fps=min(1000.0, round(fps, 2)),
                frames_dropped=self._dropped,
                frames_corrupt=self._corrupt,
                reconnects=self._reconnects,
            )

    # -- reader thread -------------------------------------------------------------
    def _set_state(self, state: CameraState, reason: str) -> None:
        with self._cond:
            if (state, reason) != (self._state, self._reason):
                # A camera that goes down or stalls is the operator's to see without -v,
                # and so is its coming back: else the last line said "down" long after.
                if state is not CameraState.UP:
                    log.warning("camera %s: %s (%s)", self.camera, state.value, reason)
                    self._warned_at = self._warned_at or time.monotonic()
                elif self._warned_at:
                    log.warning(
                        "camera %s: %s again (%s) after %.0f s %s",
                        self.camera, state.value, reason,
                        time.monotonic() - self._warned_at, self._state.value,
                    )  # fmt: skip
                    self._warned_at = 0.0
                else:
                    log.info("camera %s: %s (%s)", self.camera, state.value, reason)
            self._state, self._reason = state, reason

    def _publish(self, image: Image, index: int, source: SourceTag | None) -> None:
        now = time.monotonic()
        frame = Frame(self.camera, index, now, datetime.now(UTC), image, source)
        with self._cond:
            if not self._taken:
                self._dropped += 1
            else:
                self._waiting_since = now
            if self._last_good:
                dt = now - self._last_good
                if dt > 0:
                    self._fps_ema = (
                        0.9 * self._fps_ema + 0.1 * (1.0 / dt) if self._fps_ema else 1.0 / dt
                    )
            self._latest, self._taken = frame, False
            self._frames += 1
            self._last_good = now
            self._cond.notify_all()
        if self._arrivals is not None:
            self._arrivals.add(self.camera)

    def _connect(self, failures: int) -> Capture | None:
        if failures:
            with self._cond:
                self._attempts += 1
        try:
            cap = self._open(self.url)
        except SourceError as exc:
            self._set_state(CameraState.DOWN, str(exc))
            return None
        except Exception as exc:  # a capture back-end can fail in its own ways
            reason = redact_in(f"cannot open {self.url}: {exc}", self.url)
            self._set_state(CameraState.DOWN, reason)
            return None
        if failures:
            with self._cond:
                self._reconnects += 1
        # (up once a frame comes: a camera, or a file, that opens and gives none stays
        # down with its reason, not up for the moment between opening and failing)
        with self._cond:
            self._last_good = time.monotonic()
            self._fps_ema = 0.0  # (the rate starts again with the new connection)
            self._capture = cap
            stopping = self._stop.is_set()
        interrupt = getattr(cap, "interrupt", None)
        if stopping and interrupt is not None:
            interrupt()  # the stop came while this capture was opening
        return cap

    def _run(self) -> None:
        # Failures in a row: opens refused, and connections that broke before their first
        # good frame (a camera that accepts and fails at once still backs off).
        failures = 0
        index = -1
        cap: Capture | None = None
        period = next_due = last_sent = 0.0
        shape: tuple[int, ...] | None = None
        stall = self.stall_timeout_s * 0.9
        slow = False  # the last read took about the stall timeout (frames arrived late)
        framed = False  # this connection has given a good frame
        try:
            while not self._stop.is_set():
                if cap is None:
                    cap = self._connect(failures)
                    if cap is None:
                        failures += 1
                        self._stop.wait(self.backoff.delay(failures))
                        continue
                    slow = framed = False
                    period = 1.0 / cap.fps if self.realtime and cap.fps else 0.0
                    next_due = time.monotonic()
                    last_sent = 0.0
                    shape = None
                started = time.monotonic()
                ok, image = cap.read()
                now = time.monotonic()
                slow_before, slow = slow, now - started >= stall
                if ok and valid_image(image, shape) and image is not None:
                    if not framed:
                        self._set_state(CameraState.UP, "streaming")
                    failures, framed = 0, True
                    index += 1
                    shape = shape or image.shape
                    if period:
                        next_due += period
                        self._stop.wait(max(0.0, next_due - time.monotonic()))
                    if not self.min_interval or now - last_sent >= self.min_interval:
                        last_sent = now
                        self._publish(image, index, getattr(cap, "last_source", None))
                elif ok:
                    index += 1
                    with self._cond:
                        self._corrupt += 1
                    if now - self._last_good > self.stall_timeout_s:
                        cap = self._drop(cap, CameraState.STALLED, "only corrupt frames")
                        failures += 1
                elif not is_stream(self.url) and not self.loop:
                    self._set_state(CameraState.DOWN, "end of file")
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    return
                else:
                    if not is_stream(self.url):
                        state, reason = (
                            (CameraState.UP, "end of file, looping")
                            if framed
                            else (CameraState.DOWN, "no frame could be read from the file")
                        )
                    elif slow or slow_before:
                        # (a read that waited out the time-out may still hand over what the
                        # decoder held; the stream then fails at once on the next)
                        state, reason = CameraState.STALLED, "no frame within the stall timeout"
                    else:
                        why = getattr(cap, "error", None)  # a capture that knows (NVDEC)
                        state, reason = (
                            CameraState.DOWN,
                            f"stream failed: {why}" if why else "stream failed",
                        )
                    cap = self._drop(cap, state, reason)
                    # (a file that gave frames loops at once; one that gave none backs off)
                    failures = 0 if framed and not is_stream(self.url) else failures + 1
                    if failures:
                        self._stop.wait(self.backoff.delay(failures))
        finally:
            if cap is not None:
                cap.release()

    def _drop(self, cap: Capture, state: CameraState, reason: str) -> Capture | None:
        """Release ``cap`` after a failure; the caller reconnects (returns None to say so)."""
        self._set_state(state, reason)
        with self._cond:
            self._capture = None
        cap.release()
        return None
