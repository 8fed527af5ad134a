"""Wrong way: sustained motion against the lane's lawful direction over a minimum distance.

With two ordered lines the direction comes from the order the lines are crossed (each
crossing debounced), so box jitter cannot flip it. With a road-plane direction (vector or
centreline, calibrated cameras only) the position along the lane is smoothed by a running
median and the rule fires once the vehicle has gone back the minimum distance from the
farthest point it reached: a brief reverse is not enough. A road position so far up the
road (near the calibration's horizon) that one pixel of the image moves it by more than
1.5 m is not measured along the lane: box jitter there would read as metres of travel.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from edge.rules import vi
from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Crossing, Point, SideTracker
from edge.rules.plane import LaneGeometry, SceneGeometry
from edge.rules.tracks import EvidenceTimes, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType


@dataclass(slots=True)
class _LinesState:
    first: SideTracker
    second: SideTracker
    against: Crossing | None = None


@dataclass(slots=True)
class _AxisState:
    lane: str
    recent: deque[float]
    farthest: float = float("-inf")
    farthest_t: float = 0.0
    farthest_at: Point | None = None


@dataclass(slots=True)
class WrongWayState:
    lines: dict[str, _LinesState] = field(default_factory=dict)
    axis: _AxisState | None = None


class WrongWayRule(TrackRule[WrongWayState]):
    rule = ViolationType.WRONG_WAY
    version = "wrong_way/2"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        self._line_lanes = [lane for lane in scene.lanes if lane.direction_lines is not None]
        self._axis_lanes = [lane for lane in scene.lanes if lane.axis is not None and scene.metric]
        if not self._line_lanes and not self._axis_lanes:
            why = "" if scene.metric else " (a direction vector or centreline needs a calibration)"
            raise RuleUnavailableError(f"wrong way needs a lane with a usable direction{why}")
        self._settings = scene.config.rules.wrong_way

    def new_state(self) -> WrongWayState:
        return WrongWayState()

    def step(
        self, memory: TrackMemory[WrongWayState], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        pos = self.scene.position(p)
        if pos is None:
            return None
        for lane in self._line_lanes:
            found = self._lines_step(memory, p, pos, lane)
            if found is not None:
                return found
        return self._axis_step(memory, p, pos)

    def _lines_step(
        self, memory: TrackMemory[WrongWayState], p: WorldTrackPoint, pos: Point, lane: LaneGeometry
    ) -> Violation | None:
        pair = lane.direction_lines
        assert pair is not None
        st = memory.state.lines.get(lane.id)
        if st is None:
            margin, confirm = self.scene.line_margin, self.scene.config.rules.confirm_samples
            st = memory.state.lines[lane.id] = _LinesState(
                SideTracker(pair.first, margin, confirm), SideTracker(pair.second, margin, confirm)
            )
        second = st.second.update(p.t, pos)
        if second is not None:
            st.against = second if second.to_side != pair.second_forward else None
        first = st.first.update(p.t, pos)
        if first is None or first.to_side == pair.first_forward or st.against is None:
            return None
        against, st.against = st.against, None
        vehicle = memory.vote.winner
        distance = against.at.distance(first.at)
        text = (
            f"{vehicle.value} drove against the direction of {lane.label}: it crossed the lane's "
            f"far line at {self.clock(against.t)} and then its near line at "
            f"{self.clock(first.t)}, {self.scene.distance_text(distance)} further on"
        )
        text_vi = (
            f"{vi.capitalized(vi.vehicle(vehicle))} đi ngược chiều trên {lane.label_vi}: qua "
            f"vạch xa của làn lúc {self.clock(against.t)} rồi qua vạch gần lúc "
            f"{self.clock(first.t)}, cách đó {self.scene.distance_text_vi(distance)}"
        )
        return self.violation(
            p,
            vehicle,
            lane,
            first.t,
            EvidenceTimes(before=against.t_before, at=first.t_before, after=first.t_after),
            Measurement(distance_m=min(distance, 10_000.0) if self.scene.metric else None),
            text,
            text_vi,
        )

    def _axis_step(
        self, memory: TrackMemory[WrongWayState], p: WorldTrackPoint, pos: Point
    ) -> Violation | None:
        lane = self.scene.lane_at(p)
        if lane is None or lane.axis is None or lane not in self._axis_lanes:
            memory.state.axis = None
            return None
        st = memory.state.axis
        if st is None or st.lane != lane.id:
            st = memory.state.axis = _AxisState(
                lane.id, deque(maxlen=self._settings.smoothing_samples)
            )
        if not self.scene.measures_distance(p.ground_px):
            # Far up the road a pixel of box jitter moves the position by metres: such a
            # position neither advances the farthest point nor counts as going back.
            return None
        st.recent.append(lane.axis.along(pos))
        if len(st.recent) < self._settings.smoothing_samples:
            return None
        along = statistics.median(st.recent)
        if along > st.farthest:
            st.farthest, st.farthest_t, st.farthest_at = along, p.t, pos
            return None
        back = st.farthest - along
        if back < self._settings.min_distance_m:
            return None
        vehicle = memory.vote.winner
        text = (
            f"{vehicle.value} moved {vi.number_en(back)} m against the direction of {lane.label} "
            f"between {self.clock(st.farthest_t)} and {self.clock(p.t)}"
        )
        text_vi = (
            f"{vi.capitalized(vi.vehicle(vehicle))} đi ngược chiều {vi.distance(back, True)} "
            f"trên {lane.label_vi} từ {self.clock(st.farthest_t)} đến {self.clock(p.t)}"
        )
        return self.violation(
            p,
            vehicle,
            lane,
            p.t,
            EvidenceTimes(before=st.farthest_t, at=p.t, after=p.t),
            Measurement(distance_m=min(back, 10_000.0)),
            text,
            text_vi,
        )
