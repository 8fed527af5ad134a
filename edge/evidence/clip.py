"""The evidence clip: frames from the ring encoded as H.264 MP4 by ffmpeg (libx264).

The ffmpeg binary is the one shipped in the ``imageio-ffmpeg`` wheel, so every node has
the same encoder without a system package.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.evidence.ring import BufferedFrame


class ClipError(RuntimeError):
    """The clip could not be encoded."""


def ffmpeg_binary() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def frame_rate(times: Sequence[float]) -> float:
    """The clip's constant frame rate: the frames' usual rate (the median gap between their
    capture times), so that frames dropped under load do not slow the rest down."""
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    if not gaps:
        return 1.0
    return min(60.0, max(1.0, 1.0 / statistics.median(gaps)))


def clip_schedule(times: Sequence[float], rate: float) -> list[int]:
    """For each picture of a constant-rate clip, the frame it shows: the latest one
    captured by then (to half a picture), so every frame is seen at its own time from the
    first, and a gap holds the frame before it, as it was, instead of closing up."""
    if not times:
        return []
    start = times[0]
    count = int((times[-1] - start) * rate + 0.5) + 1
    shown, k = [], 0
    for n in range(count):
        due = start + (n + 0.5) / rate
        while k + 1 < len(times) and times[k + 1] <= due:
            k += 1
        shown.append(k)
    return shown


def encode_clip(
    frames: Sequence[BufferedFrame],
    *,
    ffmpeg: str | None = None,
    crf: int = 26,
    timeout_s: float = 120.0,
) -> bytes:
    """H.264 MP4 (yuv420p, faststart) of ``frames``; raises ClipError on failure."""
    if not frames:
        raise ClipError("no frames for the clip")
    width, height = frames[0].width, frames[0].height
    if any(f.width != width or f.height != height for f in frames):
        raise ClipError("the frames of a clip must share one size")
    # The ring's JPEGs go to ffmpeg as they are: it decodes them itself, and the pipe
    # carries a few megabytes instead of raw frames ~15 times larger. Each is placed at its
    # capture time: the pipeline may have skipped frames under load, and a clip that
    # closed the gaps up would show the decisive moment elsewhere than it happened.
    times = [f.mono_s for f in frames]
    rate = frame_rate(times)
    stream = b"".join(frames[i].jpeg for i in clip_schedule(times, rate))
    with tempfile.TemporaryDirectory(prefix="roadwatch-clip-") as tmp:
        out = Path(tmp) / "clip.mp4"
        command = [
            ffmpeg or ffmpeg_binary(),
            "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "image2pipe", "-c:v", "mjpeg",
            "-framerate", f"{rate:.3f}", "-i", "pipe:0",
            # yuv420p needs even sides; players expect it.
            "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-threads", "2",
            str(out),
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, input=stream, capture_output=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClipError(f"ffmpeg failed to run: {exc}") from exc
        if result.returncode != 0 or not out.is_file():
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ClipError(f"ffmpeg exited {result.returncode}: {detail[-1] if detail else ''}")
        return out.read_bytes()
