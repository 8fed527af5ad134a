"""The evidence clip: frames from the ring encoded as H.264 MP4 by ffmpeg (libx264).

The ffmpeg binary is the one shipped in the ``imageio-ffmpeg`` wheel, so every node has
the same encoder without a system package.
"""

from __future__ import annotations

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


def frame_rate(frames: Sequence[BufferedFrame]) -> float:
    """The clip's constant frame rate, from the frames' own capture times."""
    if len(frames) < 2:
        return 1.0
    span = frames[-1].mono_s - frames[0].mono_s
    if span <= 0:
        return 1.0
    return min(60.0, max(1.0, (len(frames) - 1) / span))


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
    # carries a few megabytes instead of raw frames ~15 times larger.
    stream = b"".join(f.jpeg for f in frames)
    with tempfile.TemporaryDirectory(prefix="roadwatch-clip-") as tmp:
        out = Path(tmp) / "clip.mp4"
        command = [
            ffmpeg or ffmpeg_binary(),
            "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "image2pipe", "-c:v", "mjpeg",
            "-framerate", f"{frame_rate(frames):.3f}", "-i", "pipe:0",
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
