"""Camera decoding on the GPU: FFmpeg's demuxers and PyNvVideoCodec's NVDEC decoder.

``NvdecCapture`` is a ``Capture`` whose frames stay in GPU memory: the decoder converts
each picture to interleaved RGB on the GPU, and one copy turns it into a BGR CuPy array
that the capture owns (the decoder reuses its surfaces). The detector's device pipeline
letterboxes that array where it is; the host sees the picture only when something asks
for ``Frame.image`` (the integrity guard every few seconds; a JPEG evidence ring, where a
camera's ring does not keep its stream). A capture given a ``PacketSink`` hands it every
packet it demuxes, and tags each frame with its place in the stream (``last_source``).

A file is demuxed by PyNvVideoCodec's own demuxer. A network stream (RTSP and the like) is
demuxed by FFmpeg through PyAV (``StreamDemuxer``): PyNvVideoCodec 2.2.4's demuxer crashes
the process on one (it reads the seekable flag of the source's I/O context, which FFmpeg's
RTSP demuxer does not have). ``StreamDemuxer`` hands out the same packets, with time-outs
of its own, and puts parameter sets that a camera sends only in its RTSP SDP ahead of the
stream's first keyframe (NVDEC's parser skips every picture it has no SPS for).

``capture_factory`` picks the decoder a node asked for: ``opencv`` (FFmpeg on the CPU),
``nvdec``, or ``auto`` (NVDEC where PyNvVideoCodec, CuPy and a GPU are usable, OpenCV
otherwise, with the reason logged once).
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

from edge.device_batch import BackendError, cuda_backend
from edge.evidence.packets import KEY_NALS, PARAM_NALS, Codec, nal_units
from edge.sources import (
    Capture,
    Image,
    SourceError,
    SourceTag,
    is_stream,
    open_opencv,
    redact_in,
)
from roadwatch.net import redact_url

log = logging.getLogger(__name__)

Decoder = Literal["auto", "opencv", "nvdec"]
_END = object()  # the source ended or failed
_CORRUPT = object()  # the decoder refused a packet
REFUSALS_BEFORE_FAILURE = 30
# Whole GOPs a decoder is given to show its first picture: one that shows none by the
# keyframe after them cannot start on the stream (see ``_StartCheck``).
GOPS_BEFORE_FAILURE = 2
# How long a capture released before its first picture goes on demuxing to find out
# whether NVDEC can decode the stream (a reader that gave up on a stream with long GOPs
# reopens it once that is known; see ``AutoOpener``).
VERDICT_AFTER_RELEASE_S = 30.0
# How much longer than its open time-out a capture waits for a stream's demuxer to answer,
# so the demuxer's own reason for giving up comes back rather than the wait's.
OPEN_GRACE_S = 1.0
_SESSIONS = itertools.count(1)


class PacketSink(Protocol):
    """Takes a capture's packets (the camera's evidence ring)."""

    def add_packet(
        self, session: int, codec: Codec, pts: int, data: bytes, mono_s: float
    ) -> None: ...


def _codec_name(codec_id: Any) -> Codec | None:
    """The stream's codec as the ring knows it (PyNvVideoCodec's cudaVideoCodec name)."""
    name = str(codec_id).upper()
    if "H264" in name:
        return "h264"
    if "HEVC" in name or "H265" in name:
        return "hevc"
    return None


class _StartCheck:
    """The keyframes and parameter sets of a stream before its first picture: a decoder
    that has had ``GOPS_BEFORE_FAILURE`` whole GOPs and shows nothing cannot start on it.

    That is how NVDEC meets a stream that carries no parameter sets its decoder gets (in
    the stream, its container or its SDP): NVDEC's parser skips every picture it has no
    SPS for, without an error."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.keys = 0
        self.params = False

    def cannot_start(self, data: bytes) -> str | None:
        """Why the decoder cannot start, given the next packet (None: it may yet)."""
        kinds = {kind for kind, _ in nal_units(data, self.codec)}
        self.params = self.params or bool(kinds & PARAM_NALS[self.codec])
        if not kinds & KEY_NALS[self.codec]:
            return None
        self.keys += 1
        if self.keys <= GOPS_BEFORE_FAILURE:
            return None
        why = f"NVDEC decoded no picture from the stream's first {GOPS_BEFORE_FAILURE} GOPs"
        if self.params:
            return why
        return f"{why}, which came without parameter sets, in the stream or out of it"


class StreamDemuxer:
    """A network stream demuxed by FFmpeg through PyAV, its packets handed out as
    PyNvVideoCodec's demuxer hands them out: Annex B H.264 or HEVC in ``PacketData`` with
    the stream's own time stamps, each valid until the next is taken, then an empty packet
    that flushes the decoder. A packet without a time stamp (an RTSP stream's first, before
    its clock is known) gets the one after the last packet's.

    FFmpeg's two opening steps (connecting, then reading the stream's first packets to
    learn its codec) wait at most half of ``open_timeout_s`` each, and each read at most
    ``read_timeout_s`` (FFmpeg's interrupt callback), then raise. RTSP is asked for over
    TCP first, as OpenCV asks for it: RTP over UDP does not cross most NATs and firewalls,
    and a large keyframe over lossy UDP arrives broken. A stream whose codec data is in MP4
    form (avcC/hvcC) goes through FFmpeg's ``mp4toannexb`` filter. Parameter sets that come
    only out of the stream (the RTSP SDP's ``sprop-parameter-sets``, which FFmpeg keeps as
    the codec's extradata) go into the stream's first keyframe, those of each kind the
    stream has not sent by then, before its picture (see ``_with_sets``).
    """

    def __init__(self, url: str, nvc: Any, *, open_timeout_s: float, read_timeout_s: float) -> None:
        import av

        self._nvc = nvc
        rtsp = url.lower().startswith(("rtsp://", "rtsps://"))
        step_s = open_timeout_s / 2  # FFmpeg's two opening steps share the open time-out
        started = time.monotonic()
        try:
            self._container = av.open(
                url, options={"rtsp_flags": "prefer_tcp"} if rtsp else None,
                timeout=(step_s, read_timeout_s),
            )  # fmt: skip
        except av.FFmpegError as exc:
            why = redact_in(f"{exc}".splitlines()[0], url)
            # FFmpeg's interrupt at the time-out surfaces as whatever the step it stopped
            # was doing ("Immediate exit requested", "Invalid data found", ...).
            if time.monotonic() - started >= step_s:
                why = f"no answer within {open_timeout_s:g} s ({why})"
            raise SourceError(why) from exc
        self._read_timeout_s = read_timeout_s
        try:
            videos = self._container.streams.video
            if not videos:
                raise SourceError("the source has no video stream")
            self._stream = videos[0]
            name = self._stream.codec_context.name
            if name not in ("h264", "hevc"):
                raise SourceError(f"its codec is {name}; NVDEC decodes H.264 and HEVC here")
            self.codec: Codec = "h264" if name == "h264" else "hevc"
            extra = bytes(self._stream.codec_context.extradata or b"")
            mp4_form = extra[:1] == b"\x01"
            self._filter = (
                av.BitStreamFilterContext(f"{name}_mp4toannexb", self._stream) if mp4_form else None
            )
            kinds = PARAM_NALS[self.codec]
            self._params = [(k, bytes(u)) for k, u in nal_units(extra, self.codec) if k in kinds]
            rate = self._stream.average_rate or self._stream.guessed_rate
            self._rate = float(rate) if rate else 0.0
        except BaseException:
            self._container.close()
            raise
        self._held = b""  # the bytes the last packet handed out points at

    def GetNvCodecId(self) -> Any:  # noqa: N802 (PyNvVideoCodec's demuxer's name)
        codecs = self._nvc.cudaVideoCodec
        return codecs.H264 if self.codec == "h264" else codecs.HEVC

    def FrameRate(self) -> float:  # noqa: N802
        return self._rate

    def close(self) -> None:
        """End the session with the source (also done when the packets run out)."""
        self._container.close()

    def __iter__(self) -> Iterator[Any]:
        keyed = not self._params  # nothing to put ahead of the first keyframe
        sent: set[int] = set()  # kinds of parameter set the stream sent before it
        last_pts = -1
        try:
            for packet in self._demuxed():
                for part in self._filter.filter(packet) if self._filter else (packet,):
                    if not part.size:
                        continue  # the demuxer's own end-of-stream marker
                    data = bytes(part)
                    if not keyed:
                        kinds = {kind for kind, _ in nal_units(data, self.codec)}
                        sent |= kinds & PARAM_NALS[self.codec]
                        if kinds & KEY_NALS[self.codec]:
                            data, keyed = self._with_sets(data, sent), True
                    pts = part.pts if part.pts is not None else part.dts
                    last_pts = int(pts) if pts is not None else last_pts + 1
                    yield self._packet(data, last_pts, bool(part.is_keyframe))
            yield self._nvc.PacketData()  # empty: flushes the decoder
        finally:
            self.close()

    def _with_sets(self, key: bytes, sent: set[int]) -> bytes:
        """The keyframe packet with the SDP's sets of the kinds the stream has not ``sent``,
        and the sets it carries itself, in the order they refer to each other (VPS, SPS,
        PPS: the kinds' numbers ascend in that order in both codecs), where its first set
        or its picture was."""
        params, pictures = PARAM_NALS[self.codec], KEY_NALS[self.codec]
        units = [(kind, bytes(unit)) for kind, unit in nal_units(key, self.codec)]
        at = next(i for i, (kind, _) in enumerate(units) if kind in params | pictures)
        sets = [(k, u) for k, u in units if k in params]
        sets += [(k, u) for k, u in self._params if k not in sent]
        ordered = [u for _, u in sorted(sets, key=lambda set_: set_[0])]  # stable
        before = [u for _, u in units[:at]]
        after = [u for k, u in units[at:] if k not in params]
        return b"".join(before + ordered + after)

    def _demuxed(self) -> Iterator[Any]:
        """The stream's packets; a read that times out raises ``SourceError`` saying so."""
        import av

        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.ExitError as exc:  # FFmpeg's interrupt: the read time-out
                why = f"no packet from the stream within {self._read_timeout_s:g} s"
                raise SourceError(why) from exc
            yield packet

    def _packet(self, data: bytes, pts: int, key: bool) -> Any:
        out = self._nvc.PacketData()
        self._held = data  # pointed at, not copied: kept until the next packet
        out.bsl_data = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        out.bsl = len(data)
        out.pts = out.dts = pts
        out.key = int(key)
        return out


def _end_of_picture(nvc: Any) -> int | None:
    """The packet flag that tells NVDEC a packet holds one whole picture (None where this
    PyNvVideoCodec has none).

    With ``DisplayDecodeLatencyType.LOW`` the decoder shows a picture as soon as it is
    decoded only when its packet carries this flag (``PacketData.decode_flag``, passed to
    ``cuvidParseVideoData`` as ``CUVID_PKT_ENDOFPICTURE``); without it, the parser waits for
    the next packet to know that the picture ended, one frame of delay. Both demuxers hand
    out one access unit per packet: FFmpeg's file demuxer (PyNvVideoCodec's) and PyAV's,
    whose RTSP demuxer parses the stream into whole frames."""
    flags = getattr(nvc, "VideoPacketFlag", None)
    flag = getattr(flags, "ENDOFPICTURE", None)
    return int(flag) if flag is not None else None


def _close(demuxer: Any) -> None:
    """End a demuxer's session with its source, where it has one to end (a stream's)."""
    if isinstance(demuxer, StreamDemuxer):
        demuxer.close()


class NvdecUnavailableError(SourceError):
    """NVDEC decoding was asked for and cannot run here."""


class NvdecBusyError(SourceError):
    """The source's previous NVDEC session has not ended yet."""


def load_nvc() -> Any:
    """The PyNvVideoCodec module; ``NvdecUnavailableError`` with the reason when it cannot load."""
    try:
        import PyNvVideoCodec
    except ImportError as exc:
        raise NvdecUnavailableError(
            f"NVDEC decoding needs PyNvVideoCodec (the gpu extra): {exc}".splitlines()[0]
        ) from exc
    except Exception as exc:  # its import probes the driver and raises its own errors
        raise NvdecUnavailableError(f"PyNvVideoCodec cannot start: {exc}".splitlines()[0]) from exc
    return PyNvVideoCodec


def load_cupy(gpu_id: int) -> Any:
    """CuPy on GPU ``gpu_id``, where the decoded frames are kept."""
    try:
        return cuda_backend(gpu_id).xp
    except BackendError as exc:
        raise NvdecUnavailableError(str(exc).splitlines()[0]) from exc


class NvdecCapture:
    """One source (file or stream URL) demuxed by FFmpeg and decoded by NVDEC.

    Demuxing and decoding run on a thread of the capture's own, which hands finished BGR
    frames over a short queue: ``read`` waits at most ``read_timeout_s`` (PyNvVideoCodec's
    file demuxer has no time-out of its own), ``interrupt`` (from any thread) ends a
    waiting read at once, and ``release`` returns within ``stop_timeout_s`` even while the
    demuxer is stuck in a dead source (the thread then ends whenever FFmpeg returns;
    ``alive`` tells).
    A decoder that refuses the first ``REFUSALS_BEFORE_FAILURE`` packets (a codec or
    profile NVDEC lacks) ends the capture with ``error`` set.

    ``read`` returns ``(True, frame)`` with a BGR uint8 (height, width, 3) array on the GPU,
    ``(True, None)`` for a packet the decoder refused (a corrupt frame), and
    ``(False, None)`` at the end of the source, when the demuxer fails or when no frame
    came within the read time-out.
    """

    def __init__(
        self,
        url: str,
        *,
        gpu_id: int = 0,
        nvc: Any = None,
        xp: Any = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        depth: int = 4,
        packets: PacketSink | None = None,
    ) -> None:
        self.url = url
        self.session = next(_SESSIONS)
        self._packets = packets
        self.last_source: SourceTag | None = None  # of the frame the last read returned
        shown = redact_url(url)
        self._nvc = nvc if nvc is not None else load_nvc()
        self._xp = xp if xp is not None else load_cupy(gpu_id)
        self._gpu_id = gpu_id
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._frames: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._abandoned = threading.Event()  # the constructor stopped waiting for the open
        self._open_error: Exception | None = None
        self._finished = False
        self._fps = 0.0
        self._produced = 0  # frames the thread decoded
        self._settled = threading.Event()  # the first frame is decoded, or the thread ended
        self.error: str | None = None  # why the source stopped, when it failed
        # Why NVDEC cannot decode this source (set with ``error``): the decoder refused
        # its first packets, or showed no picture from whole GOPs.
        self.undecodable: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"nvdec {shown}", daemon=True)
        self._thread.start()
        # A stream's demuxer gives up within the open time-out itself, with its reason; a
        # file's has no time-out of its own.
        grace = OPEN_GRACE_S if is_stream(url) else 0.0
        if not self._opened.wait(open_timeout_s + grace):
            self._abandoned.set()  # the thread frees what it opens, once the open returns
            self._stop.set()
            raise SourceError(
                f"cannot open video source {shown} on NVDEC: no answer within {open_timeout_s:g} s"
            )
        if self._open_error is not None:
            self._thread.join(1.0)
            raise SourceError(
                redact_in(f"cannot open video source {url} on NVDEC: {self._open_error}", url)
            ) from self._open_error

    # -- the capture's thread ------------------------------------------------------------
    def _open(self) -> tuple[Any, Any]:
        if hasattr(self._xp, "cuda"):
            self._xp.cuda.Device(self._gpu_id).use()  # CuPy's device is per thread
        if is_stream(self.url):
            demuxer: Any = StreamDemuxer(
                self.url, self._nvc, open_timeout_s=self._open_timeout_s,
                read_timeout_s=self._read_timeout_s,
            )  # fmt: skip
        else:
            demuxer = self._nvc.CreateDemuxer(filename=self.url.removeprefix("file://"))
        if self._abandoned.is_set():  # no decoder for a capture nobody holds
            _close(demuxer)
            raise SourceError("the open was given up")
        try:
            decoder = self._nvc.CreateDecoder(
                gpuid=self._gpu_id,
                codec=demuxer.GetNvCodecId(),
                usedevicememory=True,
                outputColorType=self._nvc.OutputColorType.RGB,
                # Pictures in display order, without NVDEC's usual 4 frames of delay; the
                # last frame of delay goes with packets that say they end their picture
                # (see ``_end_of_picture``).
                latency=self._nvc.DisplayDecodeLatencyType.LOW,
            )
        except BaseException:  # no decoder (e.g. all NVDEC sessions taken): free the camera
            _close(demuxer)
            raise
        try:
            rate = float(demuxer.FrameRate())
        except Exception:  # a live stream may not know its rate
            rate = 0.0
        self._fps = rate if 0.0 < rate < 1000.0 else 0.0
        return demuxer, decoder

    def _run(self) -> None:
        try:
            demuxer, decoder = self._open()
        except Exception as exc:  # PyNvVideoCodec raises its own untyped errors
            self._open_error = exc
            self._opened.set()
            self._settled.set()
            return
        self._opened.set()
        try:
            if not self._abandoned.is_set():
                self._decode(demuxer, decoder)
        except Exception as exc:  # the demuxer's own error (the source failed), or CuPy's
            if not self._stop.is_set():  # after a release, nobody asks why it ended
                self.error = redact_in(f"{type(exc).__name__}: {exc}".splitlines()[0], self.url)
        finally:
            _close(demuxer)  # the camera's session ends with the capture, not at collection
        if self.error is not None:
            log.info("NVDEC on %s stopped: %s", redact_url(self.url), self.error)
        self._settled.set()
        self._put(_END)

    def _decode(self, demuxer: Any, decoder: Any) -> None:
        refused = 0
        end_of_picture = _end_of_picture(self._nvc)
        sink = self._packets
        codec = _codec_name(demuxer.GetNvCodecId())
        start = _StartCheck(codec) if codec is not None else None
        stopped_at: float | None = None
        for packet in demuxer:  # the last, empty packet flushes the decoder
            if self._stop.is_set():
                # Released: done, unless it is still finding out whether NVDEC can start.
                stopped_at = stopped_at or time.monotonic()
                if self._produced or start is None:
                    return
                if time.monotonic() - stopped_at > VERDICT_AFTER_RELEASE_S:
                    return
            data = b""
            if codec is not None and packet.bsl > 0 and (sink is not None or not self._produced):
                # Copied now: the demuxer reuses the packet's memory for the next one.
                data = ctypes.string_at(packet.bsl_data, packet.bsl)
            if data and sink is not None and codec is not None:
                sink.add_packet(self.session, codec, int(packet.pts), data, time.monotonic())
            starting = start if data and not self._produced else None
            if starting is not None and (why := starting.cannot_start(data)) is not None:
                self.error = self.undecodable = why
                return
            if end_of_picture is not None and getattr(packet, "bsl", 0) > 0:
                packet.decode_flag = end_of_picture
            try:
                decoded = decoder.Decode(packet)
            except Exception as exc:  # a packet the decoder cannot take
                log.debug("NVDEC decoder: %s", redact_in(str(exc), self.url))
                refused += 1
                if not self._produced:  # counted, not handed out: is the stream usable?
                    if refused >= REFUSALS_BEFORE_FAILURE:
                        why = f"the decoder refused the first {refused} packets: {exc}"
                        self.error = self.undecodable = redact_in(why, self.url)
                        return
                    continue
                if not self._put(_CORRUPT):
                    return
                continue
            for picture in decoded:
                frame = self._bgr(picture)
                pts = int(picture.getPTS()) if codec is not None else 0
                self._produced += 1
                self._settled.set()
                if not self._put((frame, pts)):
                    return

    def _bgr(self, decoded: Any) -> Image:
        """The decoder's RGB surface as a BGR array of our own (the surface is reused)."""
        rgb = self._xp.from_dlpack(decoded)
        bgr: Image = self._xp.ascontiguousarray(rgb[:, :, ::-1])
        return bgr

    def _put(self, item: Any) -> bool:
        """Hand ``item`` to the reader; False when the capture was released meanwhile."""
        while not self._stop.is_set():
            try:
                self._frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # -- the reader's side ---------------------------------------------------------------
    def read(self) -> tuple[bool, Image | None]:
        deadline = time.monotonic() + self._read_timeout_s
        while True:
            if self._finished or self._stop.is_set():
                return False, None
            left = deadline - time.monotonic()
            if left <= 0:
                return False, None
            try:
                item = self._frames.get(timeout=min(left, 0.1))
                break
            except queue.Empty:
                continue
        if item is _END:
            self._finished = True
            return False, None
        if item is _CORRUPT:
            return True, None
        frame, pts = item
        self.last_source = SourceTag(self.session, pts) if self._packets is not None else None
        return True, frame

    def failed_before_first_frame(self, timeout_s: float) -> str | None:
        """Why the capture ended without a single frame, waiting up to ``timeout_s`` for the
        first one; None once frames flow (or while none came yet)."""
        self._settled.wait(timeout_s)
        if self._produced or not self._settled.is_set():
            return None
        return self.error or "the source ended before its first frame"

    def interrupt(self) -> None:
        """End a waiting ``read`` now (safe from any thread); release still follows."""
        self._stop.set()

    @property
    def alive(self) -> bool:
        """The capture's thread still runs (a released capture's demuxer may be stuck)."""
        return self._thread.is_alive()

    def release(self, stop_timeout_s: float = 2.0) -> None:
        self._stop.set()
        while True:  # unblock the thread's hand-over and free the frames it made
            try:
                self._frames.get_nowait()
            except queue.Empty:
                break
        self._thread.join(stop_timeout_s)
        if self._thread.is_alive() and not self._produced and self.undecodable is None:
            log.info(
                "NVDEC capture of %s goes on for up to %g s to find out whether NVDEC can "
                "decode the stream (or until FFmpeg returns)",
                redact_url(self.url), VERDICT_AFTER_RELEASE_S,
            )  # fmt: skip
        elif self._thread.is_alive():
            log.warning(
                "NVDEC demuxer of %s did not return within %g s; it ends when FFmpeg gives up",
                redact_url(self.url), stop_timeout_s,
            )  # fmt: skip

    @property
    def fps(self) -> float:
        return self._fps


# (url, stall time-out in seconds, where the capture may hand its packets)
CaptureOpener = Callable[[str, float, "PacketSink | None"], Capture]


def open_on_cpu(url: str, stall_timeout_s: float, packets: PacketSink | None = None) -> Capture:
    """OpenCV (it hands out no packets: its frames go to a ring as pictures)."""
    return open_opencv(url, stall_timeout_s)


def check_decoder(decoder: Decoder, gpu_id: int = 0) -> None:
    """``NvdecUnavailableError`` where ``decoder`` is nvdec and NVDEC cannot run here, for a
    start to be refused before it creates anything (``auto`` and ``opencv`` always run)."""
    if decoder != "nvdec":
        return
    try:
        load_nvc()
        load_cupy(gpu_id)
    except NvdecUnavailableError as exc:
        raise NvdecUnavailableError(
            f"decode.decoder is nvdec, which cannot run here ({exc}); use auto or opencv"
        ) from exc


def capture_factory(decoder: Decoder, gpu_id: int = 0) -> tuple[CaptureOpener, str]:
    """How a node opens its cameras and the decoder that won.

    ``nvdec`` raises ``NvdecUnavailableError`` when it cannot run; ``auto`` falls back to
    OpenCV and logs why, and also per camera (see ``AutoOpener``)."""
    if decoder != "opencv":
        try:
            nvc, xp = load_nvc(), load_cupy(gpu_id)
        except NvdecUnavailableError as exc:
            if decoder == "nvdec":
                raise
            log.info("decoding on the CPU (OpenCV): %s", exc)
        else:
            sessions = NvdecSessions(gpu_id, nvc, xp)
            return (AutoOpener(sessions) if decoder == "auto" else sessions), "nvdec"
    return open_on_cpu, "opencv"


class NvdecSessions:
    """Opens NVDEC captures, at most one per camera reader at a time: while the thread of a
    reader's released capture is still stuck in a dead stream's demuxer, that reader's
    source is not opened again (it retries with back-off), so stuck threads cannot pile up.

    A reader is told by the packet sink it passes (``CameraPackets``, one per reader), not
    by its URL: cameras that share one URL (one stream enforced for two zones, or every
    camera of the density bench looping one clip) each have their own live capture, which
    is no stuck session of the others'. A caller that passes no sink is one reader per URL.
    """

    def __init__(self, gpu_id: int, nvc: Any, xp: Any) -> None:
        self.gpu_id, self._nvc, self._xp = gpu_id, nvc, xp
        # (url, id of the reader's sink) -> its last capture; the capture holds the sink,
        # so the id is not reused while the entry is kept.
        self._last: dict[tuple[str, int], NvdecCapture] = {}
        self._lock = threading.Lock()  # readers open their cameras from their own threads

    def __call__(
        self, url: str, stall_timeout_s: float, packets: PacketSink | None = None
    ) -> NvdecCapture:
        reader = (url, id(packets) if packets is not None else 0)
        with self._lock:
            self._last = {k: c for k, c in self._last.items() if c.alive}  # ended: forgotten
            last = self._last.get(reader)
        if last is not None:
            raise NvdecBusyError(
                f"{redact_url(url)}: the previous NVDEC session has not ended yet (its"
                " demuxer is stuck in the stream); retrying later"
            )
        cap = NvdecCapture(
            url, gpu_id=self.gpu_id, nvc=self._nvc, xp=self._xp,
            open_timeout_s=min(stall_timeout_s, 10.0), read_timeout_s=stall_timeout_s,
            packets=packets,
        )  # fmt: skip
        with self._lock:
            self._last[reader] = cap
        return cap


class AutoOpener:
    """NVDEC for every camera, except one NVDEC cannot serve: a source that NVDEC cannot
    open but OpenCV can, whose NVDEC capture ends before its first frame (a codec or
    profile NVDEC lacks, say), or whose last NVDEC capture found that NVDEC cannot decode
    it (no picture from whole GOPs, however long they took), is opened with OpenCV from
    then on (logged once)."""

    def __init__(self, nvdec: Callable[[str, float, PacketSink | None], NvdecCapture]) -> None:
        self._nvdec = nvdec
        self.on_cpu: dict[str, str] = {}  # url -> why it left NVDEC
        self._last: dict[str, NvdecCapture] = {}  # url -> its last NVDEC capture
        self._lock = threading.Lock()

    def __call__(
        self, url: str, stall_timeout_s: float, packets: PacketSink | None = None
    ) -> Capture:
        with self._lock:  # kept until replaced: a released capture may find out later
            last = self._last.get(url)
        if last is not None and last.undecodable is not None:
            self._to_cpu(url, last.undecodable)
        with self._lock:
            on_cpu = url in self.on_cpu
        if on_cpu:
            return open_opencv(url, stall_timeout_s)
        try:
            cap = self._nvdec(url, stall_timeout_s, packets)
        except NvdecBusyError:
            raise  # not the source's fault: the reader retries with back-off
        except SourceError as exc:
            fallback = open_opencv(url, stall_timeout_s)  # raises when no decoder can open it
            self._to_cpu(url, str(exc))
            return fallback
        failure = cap.failed_before_first_frame(min(stall_timeout_s, 10.0))
        if failure is None:
            with self._lock:
                self._last[url] = cap
            return cap
        cap.release()
        fallback = open_opencv(url, stall_timeout_s)
        self._to_cpu(url, failure)
        return fallback

    def _to_cpu(self, url: str, reason: str) -> None:
        with self._lock:
            if url in self.on_cpu:
                return
            self.on_cpu[url] = reason
        log.warning("camera source %s: decoding on the CPU (OpenCV): %s", redact_url(url), reason)
