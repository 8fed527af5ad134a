"""Forbidden lane: a vehicle class in a lane closed to it, sustained over time or distance.

The class is the track's majority vote, the lane closure honours its local-time windows,
and a short absence (a box flickering over the lane edge) does not restart the count, so
a brief touch of the lane never adds up to the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry
from edge.rules.tracks import EvidenceTimes, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType


@dataclass(slots=True)
class ForbiddenLaneState:
    lane: str | None = None
    entered: float = 0.0
    last_in: float = 0.0
    path: float = 0.0
    last_pos: Point | None = None


class ForbiddenLaneRule(TrackRule[ForbiddenLaneState]):
    rule = ViolationType.FORBIDDEN_LANE
    version = "forbidden_lane/1"

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
        local = self.scene.config.local_time(p.t)
        if lane is None or not lane.config.closed_to(vehicle, local):
            if st.lane is not None and p.t - st.last_in > self._settings.max_gap_s:
                st.lane, st.last_pos = None, None
            return None
        pos = self.scene.position(p)
        if st.lane != lane.id:
            st.lane, st.entered, st.path, st.last_pos = lane.id, p.t, 0.0, pos
        elif pos is not None and st.last_pos is not None:
            st.path += pos.distance(st.last_pos)
            st.last_pos = pos
        elif pos is not None:
            st.last_pos = pos
        st.last_in = p.t
        duration = p.t - st.entered
        far = self.scene.metric and st.path >= self._settings.min_distance_m
        if duration < self._settings.min_time_s and not far:
            return None
        text = (
            f"{vehicle.value} drove in {lane.label}, which is closed to {vehicle.value} at "
            f"{local.strftime('%H:%M')} on {local.strftime('%a')}, for {duration:.1f} s"
            + (f" and {st.path:.1f} m" if self.scene.metric else "")
            + f" from {self.clock(st.entered)} to {self.clock(p.t)}"
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
        )
