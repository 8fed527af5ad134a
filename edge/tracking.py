"""Multi-object tracking for one camera: ByteTrack association plus per-track class and history.

The association is ``edge.bytetrack`` (written here, see its docstring for why). Around it
this module adds what the pipeline needs:

* ids that are always positive and stable; detections that have not been confirmed as a
  track yet are left out rather than given a sentinel id;
* a per-track class decided by vote over the track's life, so one vehicle keeps one
  class when the detector flickers between "person" and "motorcycle";
* a bounded motion history per track (the newest samples only) and forgetting of tracks
  lost for longer than the lost-track buffer (in seconds of the frames' own times, however
  many frames came meanwhile), so memory stays flat on a 24/7 stream;
* two-wheeler recovery: a person track that moves at vehicle speed is re-classed as a
  motorcycle (riders sitting on a detected two-wheeler are already folded into it by the
  detector).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.bytetrack import TIME_SLACK_S, ByteTracker
from edge.detections import Detections, ObjectClass
from edge.two_wheelers import (
    TWO_WHEELERS,
    MotionSample,
    moving_like_a_vehicle,
)


class TrackerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    activation_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.0,
        description="confidence a detection needs to start a track besides its class's"
        " threshold in the detector (0: that threshold alone decides)",
    )
    match_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.8, description="largest 1 - IoU at which a detection still continues a track"
    )
    lost_buffer_s: Annotated[float, Field(gt=0.0, le=60.0)] = Field(
        2.0,
        description="how long (seconds of the frames' own times, however many frames come"
        " meanwhile) a lost track can come back with the same id",
    )
    min_consecutive_frames: Annotated[int, Field(ge=1, le=30)] = Field(
        2, description="frames a new track must be seen before it gets an id"
    )
    history: Annotated[int, Field(ge=2, le=10_000)] = Field(
        60, description="motion samples kept per track (newest first out)"
    )
    promote_moving_persons: bool = Field(
        True, description="treat a person track moving at vehicle speed as a motorcycle"
    )
    promote_speed: Annotated[float, Field(gt=0.0, le=100.0)] = Field(
        1.5, description="box heights per second above which a person track is a two-wheeler"
    )


@dataclass
class TrackState:
    track_id: int
    first_seen: float
    last_seen: float
    samples: deque[MotionSample]
    votes: dict[ObjectClass, float] = field(default_factory=dict)
    promoted: bool = False

    @property
    def object_class(self) -> ObjectClass:
        if self.promoted:
            return ObjectClass.MOTORCYCLE
        plurality = max(self.votes, key=lambda c: self.votes[c])
        if plurality is not ObjectClass.PERSON:
            return plurality
        # A rider seen as "person" for most frames is still on a two-wheeler. Only against
        # "person": a car seen now and then as a motorcycle is still a car.
        total = sum(self.votes.values())
        bikes = {c: v for c, v in self.votes.items() if c in TWO_WHEELERS}
        if bikes and sum(bikes.values()) >= total / 3:
            return max(bikes, key=lambda c: bikes[c])
        return plurality


@dataclass
class TrackerStats:
    persons_promoted: int = 0
    tracks_started: int = 0


class Tracker:
    """Per-camera tracker: ``update`` takes one frame's detections and returns tracked ones."""

    def __init__(self, config: TrackerConfig | None = None, fps: float = 30.0) -> None:
        """``fps``: the camera's nominal frame rate, the motion model's time unit. Frames
        may come at any times (``update``'s ``t``): predictions span the real time between
        them and lost tracks are forgotten after ``lost_buffer_s`` seconds."""
        self.config = config or TrackerConfig()
        self.fps = fps
        # Which detections lead and which may only continue a track is the detector's
        # call, made per class (``update``'s ``dets`` and ``low``).
        self._byte = ByteTracker(
            low_threshold=0.0,
            new_track_threshold=self.config.activation_threshold,
            match_cost=self.config.match_threshold,
            max_lost_s=self.config.lost_buffer_s,
            frame_period_s=1.0 / fps,
            confirm_hits=self.config.min_consecutive_frames,
        )
        self._tracks: dict[int, TrackState] = {}
        self.stats = TrackerStats()

    @property
    def tracks(self) -> dict[int, TrackState]:
        return self._tracks

    def update(self, dets: Detections, t: float, low: Detections | None = None) -> Detections:
        """Tracked detections of this frame at time ``t`` (seconds), class decided per track.

        ``dets`` passed their class's threshold: they continue tracks and start new ones.
        ``low`` (under it, ``Detector.detect_for_tracking``) only continue a track that was
        tracked on the frame before, where no confident box did (ByteTrack's second
        association): such a row comes out with its track's id and class, never as a new
        track, and does not vote on the track's class."""
        both = dets if low is None or len(low) == 0 else Detections.merge([dets, low])
        confident = np.arange(len(both)) < len(dets)
        assoc = self._byte.update(both.xyxy, both.confidence, t, confident)
        picked = assoc.detection_index  # rows of ``both``, already validated
        ids, xyxy = assoc.track_id, both.xyxy[picked]
        conf, cls = both.confidence[picked], both.class_id[picked]
        resolved = np.empty(len(ids), dtype=np.int64)
        rows = zip(
            ids.tolist(), xyxy.tolist(), conf.tolist(), cls.tolist(), confident[picked].tolist(),
            strict=True,
        )  # fmt: skip
        for i, (tid, box, score, seen, sure) in enumerate(rows):
            resolved[i] = self._observe(tid, box, score if sure else 0.0, ObjectClass(seen), t)
        self._forget(t)
        return Detections(xyxy, conf, resolved, ids, ~confident[picked])

    def _observe(
        self, tid: int, box: list[float], vote: float, cls: ObjectClass, t: float
    ) -> ObjectClass:
        """Add a detection to its track, its class voted for with weight ``vote``; the
        track's class after it."""
        state = self._tracks.get(tid)
        if state is None:
            state = TrackState(tid, t, t, deque(maxlen=self.config.history))
            self._tracks[tid] = state
            self.stats.tracks_started += 1
        state.last_seen = t
        if vote > 0 or not state.votes:
            state.votes[cls] = state.votes.get(cls, 0.0) + vote
        x1, y1, x2, y2 = box
        state.samples.append(MotionSample(t, (x1 + x2) / 2, (y1 + y2) / 2, y2 - y1))
        decided = state.object_class
        if (
            self.config.promote_moving_persons
            and decided is ObjectClass.PERSON
            and moving_like_a_vehicle(list(state.samples), min_speed=self.config.promote_speed)
        ):
            state.promoted = True
            self.stats.persons_promoted += 1
            decided = ObjectClass.MOTORCYCLE
        return decided

    def _forget(self, t: float) -> None:
        """The tracks the association has forgotten (lost for longer than the buffer)."""
        horizon = t - self.config.lost_buffer_s - TIME_SLACK_S
        for tid in [k for k, s in self._tracks.items() if s.last_seen < horizon]:
            del self._tracks[tid]
