"""Per-minute traffic flow of one camera, by lane: counts by class, mean speed, occupancy.

Pure: fed the tracked vehicles seen in each lane on each frame, it returns a
``TrafficStats`` for every minute that a frame closes.

- A vehicle counts once, in the lane and the minute its track is first seen in (a slow
  vehicle seen across a minute boundary, or one changing lanes, is not counted twice:
  the camera's total, the sum of its lanes, is the vehicles that passed).
- Mean speed: the mean over the vehicles observed in the lane during the minute that have
  a speed, each vehicle weighted once by the mean of its samples in that minute.
- Occupancy: the fraction of the minute's frames on which at least one vehicle was in
  the lane.
- Time: a frame counts in the minute it is stamped in. One stamped a little before the
  open minute (less than ``STEP_BACK_TOLERANCE``) counts in the open one; one further back
  means the clock was set back (a wrong time corrected): the open minute closes and the
  frame's begins, so the traffic after a correction is not all filed under the wrong time.
- Parts: counting that begins within a minute (the first frame of an aggregator, made
  when the node starts or its camera's lanes change) makes a part of that minute whose
  ``counted_from`` is that frame's time; so does every minute counted again after a
  clock set back, up to the latest minute sent before. Another part of the same minute,
  sent before, is then kept beside it, not replaced.
- Where a part ends: a minute closed by a frame of a later one ran to its end; one
  closed before it (the node stopping, its camera's lanes changing: ``flush``; the clock
  set back), or by a frame more than ``MAX_FRAME_GAP`` after its last (the camera's
  stream down meanwhile), says when its counting stopped in ``counted_until``, its last
  frame's time, so that central weighs it by the time it ran, not to the minute's end;
  the minute such a frame opens is a part begun at it.
- The latest minute sent before: the aggregator's own, and what it is told was sent
  before it began (``sent_up_to``, ``note_sent``): a node started again learns it from
  its outbox, so that a clock set back across the restart (a node that ran fast until
  then) still counts the minutes it comes back to as parts, not as whole minutes the
  outbox would take for those it holds and drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from roadwatch.contract import LaneFlow, TrafficStats, VehicleClass
from roadwatch.contract.models import MAX_LANES_PER_CAMERA

# A track not seen for this long may count again (ids are reused by some trackers).
_FORGET_AFTER = timedelta(minutes=2)
STEP_BACK_TOLERANCE = timedelta(minutes=1)
# Frames further apart than this are not one run of counting: the camera's stream was
# down (or the node stalled) between them, so the minute of the first stopped at it and
# the minute of the second began at it.
MAX_FRAME_GAP = timedelta(seconds=30)
_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class LaneObservation:
    """One tracked vehicle in one lane on one frame."""

    lane: str
    track_id: int
    vehicle_class: VehicleClass
    speed_kmh: float | None = None


@dataclass(slots=True)
class _LaneMinute:
    counts: dict[VehicleClass, int] = field(default_factory=dict)
    speeds: dict[int, list[float]] = field(default_factory=dict)
    occupied_frames: int = 0


def minute_of(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("frame time must carry a timezone")
    return at.astimezone(UTC).replace(second=0, microsecond=0)


class TrafficAggregator:
    """Accumulates one camera's lanes minute by minute."""

    def __init__(
        self,
        *,
        site: str,
        node: str,
        camera: str,
        lanes: Sequence[str],
        sent_up_to: datetime | None = None,
    ) -> None:
        if not lanes or len(lanes) > MAX_LANES_PER_CAMERA or len(set(lanes)) != len(lanes):
            raise ValueError(f"a camera has 1 to {MAX_LANES_PER_CAMERA} distinct lanes")
        self.site, self.node, self.camera = site, node, camera
        self.lanes = tuple(lanes)
        self._minute: datetime | None = None
        self._counted_from: datetime | None = None
        self._last_frame: datetime | None = None  # (the open minute's latest frame)
        self._sent_up_to: datetime | None = None  # the latest minute closed, or sent before
        self._frames = 0
        self._lanes: dict[str, _LaneMinute] = {}
        self._last_seen: dict[int, datetime] = {}  # by track id
        self.note_sent(sent_up_to)

    @property
    def sent_up_to(self) -> datetime | None:
        """The latest minute sent: closed here, or sent before this aggregator began."""
        return self._sent_up_to

    def note_sent(self, up_to: datetime | None) -> None:
        """The camera's minutes up to ``up_to`` (its minute) were sent before this
        aggregator began (by a process before a restart, or the aggregator before a
        change of lanes): counted again, each is a part. An earlier one than it knows
        changes nothing."""
        if up_to is None:
            return
        minute = minute_of(up_to)
        if self._sent_up_to is None or minute > self._sent_up_to:
            self._sent_up_to = minute

    def add_frame(
        self, at: datetime, observations: Sequence[LaneObservation]
    ) -> list[TrafficStats]:
        """Account one frame; returns the statistics of the minute it closed, if any."""
        minute = minute_of(at)
        for obs in observations:
            if obs.lane not in self.lanes:
                raise ValueError(f"lane {obs.lane!r} is not one of {', '.join(self.lanes)}")
        closed: list[TrafficStats] = []
        now = at.astimezone(UTC)
        open_minute = self._minute
        if open_minute is None or minute > open_minute or at < open_minute - STEP_BACK_TOLERANCE:
            # (a later minute's frame soon after the last: the open one ran to its end; a
            # clock set back, or the stream down in between: it stopped at its last frame)
            gap = self._last_frame is not None and now - self._last_frame > MAX_FRAME_GAP
            later = open_minute is not None and minute > open_minute
            closed.extend(self._close(ran_to_end=later and not gap))
            # A part of the minute: counting begun within it (no minute open, or again
            # after the stream was down), or a minute at or before one already sent,
            # counted again (its first frame may be this aggregator's first: the node
            # restarted with its clock set back).
            again = self._sent_up_to is not None and minute <= self._sent_up_to
            part = open_minute is None or again or (later and gap)
            self._start(minute, counted_from=now if part else None, again=again)
        self._frames += 1
        if self._last_frame is None or now > self._last_frame:
            self._last_frame = now
        for name in {o.lane for o in observations}:
            self._lanes[name].occupied_frames += 1
        for obs in observations:
            lane = self._lanes[obs.lane]
            last = self._last_seen.get(obs.track_id)
            if last is None or now - last > _FORGET_AFTER:
                lane.counts[obs.vehicle_class] = lane.counts.get(obs.vehicle_class, 0) + 1
            self._last_seen[obs.track_id] = now
            if obs.speed_kmh is not None:
                lane.speeds.setdefault(obs.track_id, []).append(obs.speed_kmh)
        self._forget(now)
        return closed

    def flush(self) -> list[TrafficStats]:
        """Close the open minute before its end (at shutdown, or as the camera's lanes
        change: a partial minute, ``counted_until`` its last frame); empty if none."""
        return self._close(ran_to_end=False)

    def _close(self, *, ran_to_end: bool) -> list[TrafficStats]:
        if self._minute is None or self._frames == 0:
            return []
        until = None if ran_to_end else self._last_frame
        if until is not None:
            # (a frame stamped a little before its minute counts in it: the part's end
            # is never before its start)
            until = max(until, self._counted_from or self._minute)
        flows = []
        for name in self.lanes:
            lane = self._lanes[name]
            means = [sum(s) / len(s) for s in lane.speeds.values() if s]
            flows.append(
                LaneFlow(
                    lane=name,
                    counts=dict(sorted(lane.counts.items())),
                    mean_speed_kmh=round(sum(means) / len(means), 2) if means else None,
                    occupancy=round(lane.occupied_frames / self._frames, 4),
                )
            )
        stats = TrafficStats(
            site=self.site,
            node=self.node,
            camera=self.camera,
            minute_start=self._minute,
            counted_from=self._counted_from,
            counted_until=until,
            lanes=flows,
        )
        self.note_sent(self._minute)
        self._minute = None
        self._frames = 0
        return [stats]

    def _start(
        self, minute: datetime, *, counted_from: datetime | None, again: bool = False
    ) -> None:
        self._minute = minute
        if counted_from == minute:
            # A part begun on the minute's first instant is the whole minute, unless the
            # minute is counted again: then it is said to begin a microsecond in, to stay
            # apart from the whole minute sent before.
            counted_from = minute + _ONE_US if again else None
        self._counted_from = counted_from
        self._last_frame = None
        self._frames = 0
        self._lanes = {name: _LaneMinute() for name in self.lanes}

    def _forget(self, now: datetime) -> None:
        if len(self._last_seen) < 4096:
            return
        self._last_seen = {k: t for k, t in self._last_seen.items() if now - t <= _FORGET_AFTER}
