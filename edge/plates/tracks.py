"""Plates for tracked vehicles: read each track's crops over frames and vote per track.

Fed with a frame and its tracked boxes (``Detections.xyxy`` and ``Detections.tracker_id``),
it reads the vehicles large enough to hold a legible plate, stops reading a track once
enough frames agree (the rest of its frames add nothing but CPU), and hands out the
voted plate when a violation needs it or the track ends. Memory is bounded: the least
recently seen tracks are dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.plates.reader import FrameRead
from edge.plates.vote import PlateVote, TrackPlate

Image8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class TrackPlatesConfig:
    min_vehicle_width: int = 48  # pixels; narrower vehicles are not read
    settled_frames: int = 5  # valid readings after which a track is not read again
    max_attempts: int = 30  # reads per track, valid or not
    max_tracks: int = 1024  # tracks remembered at once


# A box this close to the frame's edge is a vehicle cut by it (and maybe its plate).
EDGE_MARGIN_PX = 2.0


@dataclass
class _Track:
    vote: PlateVote
    attempts: int = 0


class TrackPlates:
    """Per-track plate votes; ``read`` reads one vehicle crop (``PlateReader.read``)."""

    def __init__(
        self, read: Callable[[Image8], FrameRead], config: TrackPlatesConfig | None = None
    ) -> None:
        self._read = read
        self.config = config or TrackPlatesConfig()
        self._tracks: OrderedDict[int, _Track] = OrderedDict()

    def observe(
        self,
        image: Image8,
        xyxy: npt.NDArray[np.float32],
        tracker_id: npt.NDArray[np.int64],
    ) -> int:
        """Read the plates of this frame's tracked vehicles; returns how many were read."""
        if len(xyxy) != len(tracker_id):
            raise ValueError(f"{len(xyxy)} boxes but {len(tracker_id)} tracker ids")
        h, w = image.shape[:2]
        read = 0
        for box, tid in zip(xyxy, tracker_id, strict=True):
            track = self._touch(int(tid))
            if not self._wants(track):
                continue
            if min(box[0], box[1], w - box[2], h - box[3]) <= EDGE_MARGIN_PX:
                continue  # (cut by the frame: a cut plate reads as another, valid one)
            x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
            x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
            if x1 - x0 < self.config.min_vehicle_width or y1 - y0 < 2:
                continue
            track.attempts += 1
            track.vote.add(self._read(np.ascontiguousarray(image[y0:y1, x0:x1])))
            read += 1
        return read

    def plate(self, track_id: int) -> TrackPlate:
        """The track's voted plate so far (unreadable when never read)."""
        track = self._tracks.get(track_id)
        return (track.vote if track else PlateVote()).result()

    def finish(self, track_id: int) -> TrackPlate:
        """The track's voted plate; the track is forgotten."""
        track = self._tracks.pop(track_id, None)
        return (track.vote if track else PlateVote()).result()

    def __len__(self) -> int:
        return len(self._tracks)

    def _touch(self, track_id: int) -> _Track:
        track = self._tracks.pop(track_id, None) or _Track(PlateVote())
        self._tracks[track_id] = track
        while len(self._tracks) > self.config.max_tracks:
            self._tracks.popitem(last=False)
        return track

    def _wants(self, track: _Track) -> bool:
        return (
            track.vote.frames < self.config.settled_frames
            and track.attempts < self.config.max_attempts
        )
