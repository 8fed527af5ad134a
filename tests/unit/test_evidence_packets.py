"""The evidence ring that keeps a camera's compressed stream, on real H.264 clips.

Packets are the clips' own (Annex B, as FFmpeg demuxes them); the frames the enforcement
processed are known by their time stamps and stand on the "GPU". Every frame the ring
rebuilds must be the JPEG of exactly the picture FFmpeg decodes for that time stamp, and
no frame may be copied off the GPU for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.evidence.packets import PacketRing, nal_units
from edge.evidence.ring import encode_jpeg
from edge.sources import Frame, SourceTag
from tests.edge_support import hanoi_clip
from tests.nvdec_standin import GpuArray, read_stream

T0 = 1000.0
AT0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
SESSION = 7


def demo_clip() -> Path:
    """The demo road (rendered by the set-up): x264 with B-frames, one keyframe in 250."""
    path = Path(__file__).resolve().parents[2] / "var" / "demo" / "scene" / "demo-ql13.mp4"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run bash scripts/setup")
    return path


def filled(
    clip: Path,
    *,
    every: int = 1,
    seconds: float = 600.0,
    max_bytes: int = 1 << 30,
    until: int | None = None,
) -> tuple[PacketRing, dict[int, GpuArray], float]:
    """A ring with the clip's packets and every ``every``-th frame processed (up to the
    packet of frame ``until``)."""
    packets, pictures, fps = read_stream(clip)
    ring = PacketRing("cam1", seconds=seconds, max_bytes=max_bytes)
    on_gpu: dict[int, GpuArray] = {}
    shown = sorted(pictures)
    for seq, (pts, data) in enumerate(packets):
        if until is not None and seq > [p for p, _ in packets].index(until):
            break
        ring.add_packet(SESSION, "h264", pts, data, T0 + seq / fps)
        # Frames come out of the decoder in display order, a little after their packets.
        while (
            shown
            and shown[0] <= max(p for p, _ in packets[: seq + 1])
            and (shown[0] in {p for p, _ in packets[: seq + 1]})
        ):
            pts_shown = shown.pop(0)
            if pts_shown % every == 0:
                on_gpu[pts_shown] = GpuArray(pictures[pts_shown])
                mono = T0 + pts_shown / fps + 0.05
                frame = Frame(
                    "cam1", pts_shown, mono, AT0, on_gpu[pts_shown], SourceTag(SESSION, pts_shown)
                )
                ring.push_frame(pts_shown, mono, AT0 + timedelta(seconds=mono - T0), frame)
    return ring, on_gpu, fps


def mono_of(pts: int, fps: float) -> float:
    return T0 + pts / fps + 0.05


@pytest.mark.parametrize(("clip", "first", "last"), [("hanoi", 40, 70), ("demo", 100, 140)])
def test_the_window_is_rebuilt_from_the_stream_picture_for_picture(
    clip: str, first: int, last: int
) -> None:
    path = hanoi_clip() if clip == "hanoi" else demo_clip()
    ring, on_gpu, fps = filled(path, every=2)
    _, pictures, _ = read_stream(path)
    got = ring.window(mono_of(first, fps) - 1e-3, mono_of(last, fps) + 1e-3)
    assert [f.index for f in got] == [p for p in range(first, last + 1) if p % 2 == 0]
    for frame in got:
        assert frame.jpeg == encode_jpeg(pictures[frame.index], 90), frame.index
        assert (frame.width, frame.height) == (pictures[0].shape[1], pictures[0].shape[0])
    assert all(a.copies_down == 0 for a in on_gpu.values())  # nothing left the "GPU"
    assert ring.bytes == sum(len(d) for _, d in read_stream(path)[0])  # all held


def test_frames_at_gives_only_the_frames_asked_for() -> None:
    ring, _, fps = filled(hanoi_clip())
    _, pictures, _ = read_stream(hanoi_clip())
    got = ring.frames_at([mono_of(p, fps) for p in (75, 33, 90)])
    assert [f.index for f in got] == [33, 75, 90]
    assert all(f.jpeg == encode_jpeg(pictures[f.index], 90) for f in got)
    assert ring.frames_at([mono_of(33, fps) + 0.001]) == []


def test_frames_without_a_place_in_the_stream_are_kept_as_pictures() -> None:
    ring, _, fps = filled(hanoi_clip())
    _, pictures, _ = read_stream(hanoi_clip())
    # A reconnect with OpenCV: host frames, no source tag; and a tag of an unknown session.
    late = T0 + (max(pictures) + 10) / fps
    opencv = Frame("cam1", 1000, late, AT0, pictures[5])
    stranger = Frame("cam1", 1001, late + 0.04, AT0, GpuArray(pictures[6]), SourceTag(99, 6))
    ring.push_frame(1000, late, AT0, opencv)
    ring.push_frame(1001, late + 0.04, AT0, stranger)
    assert isinstance(stranger.pixels, GpuArray) and stranger.pixels.copies_down == 1
    got = ring.window(mono_of(380, fps), late + 1)
    assert [f.index for f in got][-2:] == [1000, 1001]
    assert got[-2].jpeg == encode_jpeg(pictures[5], 90)
    assert [f.index for f in got][:-2] == [p for p in sorted(pictures) if p >= 380]


def test_frames_before_the_first_keyframe_held_are_lost_the_rest_rebuilt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The Hanoi clip (frames 0-384) has a keyframe every 32 frames, at 1, 33, ... 353;
    # the ring keeps the last 50 packets' worth of time, from frame 335 on.
    fps = read_stream(hanoi_clip())[2]
    ring, _, _ = filled(hanoi_clip(), seconds=49.5 / fps)
    # Frames 351-352 needed the keyframe at 321, which has left; 353 on come back.
    got = ring.window(mono_of(351, fps), mono_of(356, fps))
    assert [f.index for f in got] == [353, 354, 355, 356]
    assert ring.window(mono_of(340, fps), mono_of(345, fps)) == []
    assert "no keyframe held for the evidence frames" in caplog.text


def test_time_stamps_that_start_over_drop_what_came_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ring, _, fps = filled(hanoi_clip())
    packets, pictures, _ = read_stream(hanoi_clip())
    later = T0 + 1000 / fps
    for seq, (pts, data) in enumerate(packets[:40]):  # the camera restarted its clock
        ring.add_packet(SESSION, "h264", pts, data, later + seq / fps)
    assert "stream time stamps went back" in caplog.text
    assert ring.window(T0, mono_of(max(pictures), fps)) == []  # the old frames are gone
    mono = later + 5 / fps + 0.05
    ring.push_frame(5, mono, AT0, Frame("cam1", 5, mono, AT0, GpuArray(pictures[5]),
                                        SourceTag(SESSION, 5)))  # fmt: skip
    [again] = ring.window(mono - 1e-3, mono + 1e-3)
    assert again.jpeg == encode_jpeg(pictures[5], 90)


@pytest.mark.parametrize(
    ("clip", "join", "key"),
    [("hanoi", 10, 32), ("demo", 200, 250)],  # keyframes: every 32 frames; at 0 and 250
)
def test_a_ring_that_joins_a_stream_keeps_the_frames_before_its_keyframe_as_pictures(
    clip: str, join: int, key: int
) -> None:
    """A camera given a scene by a push while it runs: its ring gets the stream from the
    middle of a GOP, and the capture demuxes a few packets ahead of the frames processed."""
    path = hanoi_clip() if clip == "hanoi" else demo_clip()
    packets, pictures, fps = read_stream(path)
    ring = PacketRing("cam1", seconds=600.0, max_bytes=1 << 30)
    order = [pts for pts, _ in packets]
    last = key + 13
    for seq in range(order.index(join), order.index(last) + 3):  # (B-frames: decode order)
        pts, data = packets[seq]
        ring.add_packet(SESSION, "h264", pts, data, T0 + seq / fps)
    on_gpu = {p: GpuArray(pictures[p]) for p in range(join, last + 1)}
    for p, pixels in on_gpu.items():  # processed once the keyframe had arrived
        mono = mono_of(p, fps)
        ring.push_frame(p, mono, AT0, Frame("cam1", p, mono, AT0, pixels, SourceTag(SESSION, p)))
    got = ring.window(mono_of(join, fps) - 1e-3, mono_of(last, fps) + 1e-3)
    assert [f.index for f in got] == list(range(join, last + 1))
    assert all(f.jpeg == encode_jpeg(pictures[f.index], 90) for f in got)
    # The frames before the keyframe came to the host for their pictures; the keyframe and
    # those after it are rebuilt from the stream.
    assert [p for p, a in on_gpu.items() if a.copies_down] == list(range(join, key))


def test_frames_while_the_ring_holds_no_keyframe_are_kept_as_pictures() -> None:
    """A GOP longer than the ring (here 32 frames against 20): once its keyframe has left,
    the frames up to the next one could not be decoded from the ring, so they are kept as
    pictures."""
    fps = read_stream(hanoi_clip())[2]
    ring, on_gpu, _ = filled(hanoi_clip(), seconds=20 / fps, until=63)
    _, pictures, _ = read_stream(hanoi_clip())
    got = ring.window(mono_of(52, fps) - 1e-3, mono_of(63, fps) + 1e-3)
    assert [f.index for f in got] == list(range(52, 64))
    assert all(f.jpeg == encode_jpeg(pictures[f.index], 90) for f in got)
    # Without a keyframe held: frames 21-31 (the one at 0 gone), 52-63 (the one at 32).
    copied = [p for p, a in on_gpu.items() if a.copies_down]
    assert copied == [*range(21, 32), *range(52, 64)]


def test_a_stream_without_a_keyframe_yet_keeps_its_frames_as_pictures() -> None:
    packets, pictures, fps = read_stream(hanoi_clip())
    ring = PacketRing("cam1", seconds=600.0, max_bytes=1 << 30)
    for seq, (pts, data) in enumerate(packets[2:20]):  # joined after the keyframe at 1
        ring.add_packet(SESSION, "h264", pts, data, T0 + seq / fps)
    pixels = GpuArray(pictures[10])
    ring.push_frame(10, T0 + 1, AT0, Frame("cam1", 10, T0 + 1, AT0, pixels, SourceTag(SESSION, 10)))
    assert pixels.copies_down == 1  # kept as a JPEG: the stream cannot give it back
    [kept] = ring.window(T0, T0 + 2)
    assert kept.jpeg == encode_jpeg(pictures[10], 90)


def test_nal_units_of_both_codecs() -> None:
    h264 = b"\x00\x00\x00\x01\x67AB" + b"\x00\x00\x01\x68C" + b"\x00\x00\x01\x65DEF"
    assert [(k, len(u)) for k, u in nal_units(h264, "h264")] == [(7, 7), (8, 5), (5, 7)]
    hevc = b"\x00\x00\x00\x01\x40\x01V" + b"\x00\x00\x01\x26\x01I"
    assert [k for k, _ in nal_units(hevc, "hevc")] == [32, 19]
    assert list(nal_units(b"no start code", "h264")) == []
