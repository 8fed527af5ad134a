"""Forbidden lane: a vehicle class in a lane closed to it, sustained over time or distance.

The class is the track's majority vote, the lane closure honours its local-time windows,
and a short absence (a box flickering over the lane edge) does not restart the count, so
a brief touch of the lane never adds up to the minimum. The distance is how far the
vehicle got from where it entered the lane (the evidence's first and last pictures show
it), not the sum of its steps, which box jitter would add up to metres of a standing
vehicle. A road position where one pixel of the image moves the ground point farther
than the jitter allowed between two positions (near the calibration's horizon: box
jitter of a pixel or two is metres there, and a box bottom that lands there for a few
frames is hundreds of metres up the road) measures no distance; the time still counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge.rules import vi
from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Point
from edge.rules.plane import JITTER_M, SceneGeometry
from edge.rules.tracks import EvidenceTimes, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType


@dataclass(slots=True)
class ForbiddenLaneState:
    lane: str | None = None
    entered: float = 0.0
    last_in: float = 0.0
    path: float = 0.0  # from where it entered the lane, in the rules' plane
    start: Point | None = None  # its first position in the lane, once steady
    # Its last positions in the lane (time, position): a distance counts only when they
    # follow each other at a speed a vehicle can drive, so a far-off road position (a
    # ground point near the calibration's horizon), or two in a row, neither starts nor
    # ends it.
    recent: deque[tuple[float, Point]] = field(default_factory=lambda: deque(maxlen=STEADY))


# The last positions that must follow each other plausibly (three: two far-off ones in
# a row follow each other), and the fastest plausible speed (m/s) between two of them,
# with a slack for box jitter (m).
STEADY = 3
MAX_SPEED_MS = 50.0


def _steady(recent: deque[tuple[float, Point]]) -> bool:
    if len(recent) < STEADY:
        return False
    pairs = zip(list(recent)[:-1], list(recent)[1:], strict=True)
    return all(b.distance(a) <= MAX_SPEED_MS * (tb - ta) + JITTER_M for (ta, a), (tb, b) in pairs)


class ForbiddenLaneRule(TrackRule[ForbiddenLaneState]):
    rule = ViolationType.FORBIDDEN_LANE
    version = "forbidden_lane/5"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        if not any(lane.config.allowed_classes or lane.config.closures for lane in scene.lanes):
            raise RuleUnavailableError("forbidden lane needs a lane closed to some vehicle class")
        self._settings = scene.config.rules.forbidden_lane

    def new_state(self) -> ForbiddenLaneState:
        return ForbiddenLaneState()

    def step(
        self, memory: TrackMemory[ForbiddenLaneState], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        st = memory.state
        vehicle = memory.vote.winner
        lane = self.scene.lane_at(p)
        local = self.local_time(p.t)
        if lane is None or not lane.config.closed_to(vehicle, local):
            if st.lane is not None and p.t - st.last_in > self._settings.max_gap_s:
                st.lane, st.start = None, None
                st.recent.clear()
            return None
        pos = self.scene.position(p)
        if st.lane != lane.id:
            st.lane, st.entered, st.path, st.start = lane.id, p.t, 0.0, None
            st.recent.clear()
        if pos is not None and self.scene.measures_distance(p.ground_px):
            st.recent.append((p.t, pos))
            steady = _steady(st.recent)
            if st.start is None and steady:
                st.start = st.recent[0][1]
            if st.start is not None and steady:
                st.path = pos.distance(st.start)
        st.last_in = p.t
        duration = p.t - st.entered
        far = self.scene.metric and st.path >= self._settings.min_distance_m
        if duration < self._settings.min_time_s and not far:
            return None
        text = (
            f"{vehicle.value} drove in {lane.label}, which is closed to {vehicle.value} at "
            f"{local.strftime('%H:%M')} on {local.strftime('%a')}, for {vi.number_en(duration)} s"
            + (f" and {vi.number_en(st.path)} m" if self.scene.metric else "")
            + f" from {self.clock(st.entered)} to {self.clock(p.t)}"
        )
        text_vi = (
            f"{vi.capitalized(vi.vehicle(vehicle))} đi sai làn đường: đi trong {lane.label_vi}, "
            f"làn cấm {vi.vehicle(vehicle)} lúc {local.strftime('%H:%M')} "
            f"{vi.WEEKDAY_VI[local.weekday()]}, trong {vi.seconds(duration)}"
            + (f" và {vi.distance(st.path, True)}" if self.scene.metric else "")
            + f" từ {self.clock(st.entered)} đến {self.clock(p.t)}"
        )
        return self.violation(
            p,
            vehicle,
            lane,
            p.t,
            EvidenceTimes(before=st.entered, at=p.t, after=p.t),
            Measurement(
                dwell_s=duration, distance_m=min(st.path, 10_000.0) if self.scene.metric else None
            ),
            text,
            text_vi,
        )
