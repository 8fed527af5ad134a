"""Solid line: the vehicle's ground point crosses a solid line (debounced against jitter)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge.rules import vi
from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import SideTracker
from edge.rules.plane import LaneGeometry, SceneGeometry
from edge.rules.tracks import EvidenceTimes, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType


@dataclass(slots=True)
class SolidLineState:
    lines: dict[str, SideTracker] = field(default_factory=dict)
    # (time, lane) at each change of lane: the lane it was in before any recent moment,
    # however many frames it has since run along a line.
    lanes: deque[tuple[float, LaneGeometry | None]] = field(
        default_factory=lambda: deque(maxlen=64)
    )


class SolidLineRule(TrackRule[SolidLineState]):
    rule = ViolationType.SOLID_LINE
    version = "solid_line/1"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        if not scene.solid_lines:
            raise RuleUnavailableError("solid line needs at least one solid line in the scene")

    def new_state(self) -> SolidLineState:
        return SolidLineState()

    def step(
        self, memory: TrackMemory[SolidLineState], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        pos = self.scene.position(p)
        if pos is None:
            return None
        lane = self.scene.lane_at(p)
        lanes = memory.state.lanes
        if not lanes or lanes[-1][1] is not lane:
            lanes.append((p.t, lane))
        margin, confirm = self.scene.line_margin, self.scene.config.rules.confirm_samples
        for line in self.scene.solid_lines:
            tracker = memory.state.lines.get(line.id)
            if tracker is None:
                tracker = memory.state.lines[line.id] = SideTracker(line.line, margin, confirm)
            crossing = tracker.update(p.t, pos)
            if crossing is None:
                continue
            vehicle = memory.vote.winner
            before = next((g for t, g in reversed(memory.state.lanes) if t < crossing.t), None)
            text = (
                f"{vehicle.value} crossed {line.label} at {self.clock(crossing.t)}, from "
                f"{before.label if before else 'outside the lanes'} into "
                f"{lane.label if lane else 'outside the lanes'}, and stayed across it"
            )
            outside = "ngoài các làn đường"
            text_vi = (
                f"{vi.capitalized(vi.vehicle(vehicle))} đè vạch liền: vượt qua {line.label_vi} "
                f"lúc {self.clock(crossing.t)}, từ {before.label_vi if before else outside} sang "
                f"{lane.label_vi if lane else outside}, và ở lại bên kia vạch"
            )
            return self.violation(
                p,
                vehicle,
                lane,
                crossing.t,
                EvidenceTimes(before=crossing.t_before, at=crossing.t_after, after=p.t),
                Measurement(),
                text,
                text_vi,
            )
        return None
