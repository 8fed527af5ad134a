from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.evidence.clip import clip_schedule, encode_clip, ffmpeg_binary, frame_rate
from edge.evidence.overlay import Box, caption_lines, render_text
from edge.evidence.package import EvidenceBuilder, EvidenceError, EvidenceRequest
from edge.evidence.ring import FrameRing, decode_jpeg
from edge.outbox import sha256_hex
from roadwatch.contract import EvidenceRole, LampColour, Measurement, ViolationType
from roadwatch.contract.signing import verify
from tests.delivery_support import KEY
from tests.factories import violation_event
from tests.services import require_shared_file

FPS = 6.0  # vn_redlight_16h30.mp4 is real time at 6 fps, 640x480
T0 = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)


def real_frames(count: int) -> list[np.ndarray]:
    path = require_shared_file("vn_redlight_16h30.mp4")
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < count:
            ok, frame = capture.read()
            assert ok, "the sample clip ended early"
            frames.append(frame)
    finally:
        capture.release()
    return frames


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return real_frames(48)


def filled_ring(frames: list[np.ndarray], seconds: float = 60.0) -> FrameRing:
    ring = FrameRing("cam-01", seconds=seconds, max_bytes=64 << 20)
    for i, image in enumerate(frames):
        ring.push(i, 100.0 + i / FPS, T0 + timedelta(seconds=i / FPS), image)
    return ring


def test_ring_keeps_the_last_seconds_and_bounds_bytes(frames: list[np.ndarray]) -> None:
    ring = filled_ring(frames, seconds=2.0)
    kept = ring.frames()
    assert [f.index for f in kept] == list(range(35, 48))  # 2 s at 6 fps, plus the newest
    assert ring.bytes == sum(len(f.jpeg) for f in kept)
    assert ring.bytes < sum(f.nbytes for f in frames[35:]) / 5  # JPEG, not raw BGR
    small = FrameRing("cam-01", seconds=60, max_bytes=3 * len(kept[0].jpeg))
    for i, image in enumerate(frames[:10]):
        small.push(i, float(i), T0, image)
    assert 1 <= len(small) <= 3
    assert small.bytes <= 3 * len(kept[0].jpeg) or len(small) == 1
    decoded = kept[-1].image()
    assert decoded.shape == frames[-1].shape
    assert float(np.abs(decoded.astype(int) - frames[-1].astype(int)).mean()) < 4.0


def test_ring_refuses_bad_frames() -> None:
    ring = FrameRing("cam-01", seconds=1, max_bytes=1 << 20)
    with pytest.raises(ValueError, match="BGR"):
        ring.push(0, 0.0, T0, np.zeros((4, 4), np.uint8))
    ring.push(0, 5.0, T0, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="time order"):
        ring.push(1, 4.0, T0, np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("text", ["Thuận An", "Quốc lộ 13", "Vượt đèn đỏ", "giới hạn", "Đè vạch"])
def test_vietnamese_diacritics_render(text: str) -> None:
    plain = text.translate(str.maketrans("ậốộượđỏớạĐè", "aooouodoaDe"))
    assert not np.array_equal(render_text(text), render_text(plain))
    # No letter falls back to the font's missing-glyph box.
    missing = render_text("\ue000")
    for char in set(text) - {" "}:
        glyph = render_text(char)
        assert glyph.shape != missing.shape or not np.array_equal(glyph, missing), char


def test_caption_names_time_camera_place_lane_and_value() -> None:
    event = violation_event()
    lines = caption_lines(event, EvidenceRole.FRAME_AT, event.occurred_at)
    assert lines[0].startswith("23/11/2026 14:03:05.120 (UTC+7)")
    assert "cam-01" in lines[1] and "QL13 Km 22+300, Thuận An" in lines[1]
    assert lines[2] == "Làn lane-2 · Quá tốc độ: 92,4 km/h ± 1,1 (giới hạn 80,0 km/h)"


def red_light_request() -> EvidenceRequest:
    event = violation_event(
        type=ViolationType.RED_LIGHT,
        measured=Measurement(signal_phase=LampColour.RED, time_since_red_s=2.5),
        evidence=[],
    )
    return EvidenceRequest(
        event=event,
        decisive_mono_s=100.0 + 24 / FPS,
        # The white car at the zebra crossing, its plate and the red lamp on the right pole.
        vehicle_box=Box(195, 335, 320, 450),
        plate_box=Box(225, 405, 255, 425),
        lamp_box=Box(548, 150, 572, 232),
        frame_offset_s=1.0,
        clip_half_s=3.0,
    )


def test_package_from_real_frames(frames: list[np.ndarray]) -> None:
    ring = filled_ring(frames)
    request = red_light_request()
    package = EvidenceBuilder(KEY).build(ring, request)
    verify(package.event, KEY.public_key())
    by_role = {b.ref.role: b for b in package.blobs}
    assert set(by_role) == set(EvidenceRole)
    assert package.event.evidence == [b.ref for b in package.blobs]
    for blob in package.blobs:
        assert sha256_hex(blob.data) == blob.ref.sha256 and len(blob.data) == blob.ref.size
    full = {r: decode_jpeg(by_role[r].data) for r in ROLES_FULL}
    for role, image in full.items():
        assert image.shape == (480, 640, 3), role
    # The caption band darkens and writes on the top of the frame only.
    raw_at = frames[24].astype(int)
    diff = np.abs(full[EvidenceRole.FRAME_AT].astype(int) - raw_at).mean(axis=(1, 2))
    assert diff[:40].mean() > 30 and diff[300:].mean() < 6
    crop_sizes = {
        role: decode_jpeg(by_role[role].data).shape[:2]
        for role in (EvidenceRole.VEHICLE_CROP, EvidenceRole.PLATE_CROP, EvidenceRole.LAMP_CROP)
    }
    # The boxes grown by their margins (10 %, 15 %, 30 %), rounded outwards.
    assert crop_sizes == {
        EvidenceRole.VEHICLE_CROP: (139, 151),
        EvidenceRole.PLATE_CROP: (26, 40),
        EvidenceRole.LAMP_CROP: (132, 40),
    }
    clip = by_role[EvidenceRole.CLIP].data
    assert clip[4:8] == b"ftyp"
    probe = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-i", "pipe:0", "-f", "null", "-"],
        input=clip, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    info = probe.stderr.decode()
    assert "Video: h264" in info and "640x480" in info
    assert "frame=   37" in info or "frame=37" in info.replace(" ", "")  # +/-3 s at 6 fps


ROLES_FULL = (EvidenceRole.FRAME_BEFORE, EvidenceRole.FRAME_AT, EvidenceRole.FRAME_AFTER)


def test_dropping_blobs_resigns_the_event(frames: list[np.ndarray]) -> None:
    package = EvidenceBuilder(KEY).build(filled_ring(frames), red_light_request())
    smaller = package.without([EvidenceRole.CLIP], KEY)
    assert EvidenceRole.CLIP not in {e.role for e in smaller.event.evidence}
    assert len(smaller.blobs) == len(package.blobs) - 1
    verify(smaller.event, KEY.public_key())


def test_package_needs_frames_before_and_after(frames: list[np.ndarray]) -> None:
    ring = filled_ring(frames[:25])  # nothing after the decisive frame yet
    with pytest.raises(EvidenceError, match="before or after"):
        EvidenceBuilder(KEY).build(ring, red_light_request())
    request = red_light_request()
    off_frame = EvidenceRequest(
        event=request.event, decisive_mono_s=request.decisive_mono_s,
        vehicle_box=Box(700, 500, 800, 600),
    )  # fmt: skip
    with pytest.raises(EvidenceError, match="outside"):
        EvidenceBuilder(KEY).build(filled_ring(frames), off_frame)


def test_clip_refuses_mixed_sizes(frames: list[np.ndarray], tmp_path: Path) -> None:
    ring = FrameRing("c", seconds=10, max_bytes=1 << 24)
    ring.push(0, 0.0, T0, frames[0])
    ring.push(1, 0.2, T0, frames[1][:240])
    with pytest.raises(RuntimeError, match="one size"):
        encode_clip(ring.frames())


SCHEDULES = {
    "steady 10 fps": ([0.0, 0.1, 0.2, 0.3], [0, 1, 2, 3]),
    "one frame skipped holds the one before": ([0.0, 0.1, 0.3, 0.4], [0, 1, 1, 2, 3]),
    "jitter keeps every frame": ([0.0, 0.11, 0.19, 0.31, 0.4], [0, 1, 2, 3, 4]),
    "10 fps, then 2 fps": (
        [i / 10 for i in range(31)] + [3.0 + 0.5 * i for i in range(1, 7)],
        list(range(30)) + [n for n in range(30, 36) for _ in range(5)] + [36],
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_each_frame_is_shown_at_its_own_time(name: str) -> None:
    times, shown = SCHEDULES[name]
    rate = frame_rate(times)
    assert rate == pytest.approx(10.0)
    assert clip_schedule(times, rate) == shown


def test_a_clip_with_frames_skipped_lasts_as_long_as_they_took(
    frames: list[np.ndarray], tmp_path: Path
) -> None:
    """10 fps for 3 s, then 2 fps for 3 s (a pipeline behind): the clip lasts 6 s at 10 fps,
    so its middle frame shows what happened 3 s in; evened out, it showed it at 5 s."""
    ring = FrameRing("c", seconds=60, max_bytes=1 << 26)
    times = [i / 10 for i in range(31)] + [3.0 + 0.5 * i for i in range(1, 7)]
    for i, t in enumerate(times):
        ring.push(i, t, T0 + timedelta(seconds=t), frames[i % len(frames)])
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_clip(ring.frames()))
    video = cv2.VideoCapture(str(path))
    try:
        assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0, abs=0.01)
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 61
    finally:
        video.release()


def test_a_resolution_changed_within_the_clip_keeps_the_evidence(
    frames: list[np.ndarray],
) -> None:
    """A pushed config gave the camera another resolution 1 s before the decisive frame:
    the package is built from the frames of the decisive one's size (it was refused whole,
    the clip's frames not sharing one size)."""
    smaller = [cv2.resize(f, (320, 240)) for f in frames[:18]]
    ring = filled_ring(smaller + frames[18:])
    package = EvidenceBuilder(KEY).build(ring, red_light_request())
    roles = {b.ref.role for b in package.blobs}
    assert {EvidenceRole.FRAME_BEFORE, EvidenceRole.CLIP} <= roles
    before = next(b for b in package.blobs if b.ref.role is EvidenceRole.FRAME_BEFORE)
    assert decode_jpeg(before.data).shape[:2] == (480, 640)
