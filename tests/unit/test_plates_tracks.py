from __future__ import annotations

import numpy as np
import pytest

from edge.plates.grammar import parse_plate
from edge.plates.reader import FrameRead, unreadable
from edge.plates.tracks import TrackPlates, TrackPlatesConfig
from roadwatch.contract import PlateColour

FRAME = np.zeros((200, 400, 3), np.uint8)


class FakeReader:
    """Reads a plate from the crop's width: 100 px wide reads 51F-123.45, others nothing."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def __call__(self, crop: np.ndarray) -> FrameRead:
        self.widths.append(crop.shape[1])
        if crop.shape[1] != 100:
            return unreadable("no text found")
        plate = parse_plate(["51F-123.45"])
        return FrameRead(plate, 0.9, (0.9,) * 8, PlateColour.WHITE, crop)


def boxes(*xyxy: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(xyxy, np.float32).reshape(-1, 4)


def test_reads_tracks_and_votes_per_track() -> None:
    fake = FakeReader()
    tracks = TrackPlates(fake)
    for _ in range(3):
        tracks.observe(FRAME, boxes((10, 10, 110, 90), (150, 10, 230, 90)), np.array([7, 8]))
    assert tracks.plate(7).reading.text == "51F-123.45"
    assert tracks.plate(7).frames == 3
    assert not tracks.plate(8).reading.valid
    assert tracks.finish(7).reading.valid
    assert len(tracks) == 1  # 7 is forgotten, 8 is still there
    assert not tracks.finish(99).reading.valid  # never seen


def test_small_vehicles_and_vehicles_cut_by_the_frame_are_not_read() -> None:
    fake = FakeReader()
    tracks = TrackPlates(fake, TrackPlatesConfig(min_vehicle_width=48))
    assert tracks.observe(FRAME, boxes((10, 10, 40, 90)), np.array([1])) == 0
    # Cut by the right edge (a cut plate reads as another, valid one), or by the top.
    assert tracks.observe(FRAME, boxes((300, 10, 480, 90), (10, 0, 110, 80)), np.array([2, 3])) == 0
    assert tracks.observe(FRAME, boxes((290, 10, 390, 90)), np.array([2])) == 1
    assert fake.widths == [100]


def test_a_settled_track_is_not_read_again() -> None:
    fake = FakeReader()
    tracks = TrackPlates(fake, TrackPlatesConfig(settled_frames=2, max_attempts=4))
    for _ in range(6):
        tracks.observe(FRAME, boxes((10, 10, 110, 90), (150, 10, 220, 90)), np.array([1, 2]))
    assert fake.widths.count(100) == 2  # settled after two agreeing frames
    assert fake.widths.count(70) == 4  # never readable: stops at max_attempts


def test_memory_is_bounded_least_recent_first() -> None:
    tracks = TrackPlates(FakeReader(), TrackPlatesConfig(max_tracks=3))
    for tid in range(5):
        tracks.observe(FRAME, boxes((10, 10, 110, 90)), np.array([tid]))
    assert len(tracks) == 3
    assert not tracks.plate(0).reading.valid and tracks.plate(4).reading.valid


def test_mismatched_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="tracker ids"):
        TrackPlates(FakeReader()).observe(FRAME, boxes((0, 0, 100, 80)), np.array([1, 2]))
