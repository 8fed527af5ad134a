"""Red light: crossed the stop line after red began (plus grace) and went on past a second line.

The second line proves the vehicle went on. A vehicle that stops over the stop line is not
a violation: it either never reaches the second line or reaches it once the light is green.
Going on while the same red is still showing is a violation whether or not the vehicle
stopped first; a vehicle that never stopped is one even if it reaches the second line just
after green. A vehicle whose path enters a turn exemption (for example right turn on red,
where signed) after the stop line is exempt.

A red the signal controller reported is judged once the controller has spoken again
after the vehicle went on: its messages go over the network and may be lost, and until
a later one says otherwise the last red stands for ``controller_ttl_s``, though a lost
message may have turned it green. The later message says when the phase in force began,
so the crossing is judged again on what it tells (a red that began later, or a green,
fines nobody). Without such a message within twice ``controller_ttl_s`` (at most
``AWAIT_MAX_S``) the crossing is not judged: the lenient side. A red read from the lamp
image is judged at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.rules import vi
from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Crossing, Point, SideTracker
from edge.rules.plane import LaneGeometry, SceneGeometry
from edge.rules.tracks import EvidenceTimes, TrackFrame, Violation, WorldTrackPoint
from roadwatch.contract import LampColour, Measurement, SignalSource, ViolationType


@dataclass(slots=True)
class _LaneState:
    stop: SideTracker
    went_on: SideTracker
    crossed: Crossing | None = None
    exempt: bool = False
    # Stillness is timed on every sample, apart from the crossings: a box whose bottom
    # jitters across the stop line re-crosses it every few frames, and a timer restarted at
    # each crossing would never let a vehicle waiting on the line count as stopped.
    still_at: Point | None = None
    still_since: float = 0.0
    # When this pass first crossed the stop line forward (kept across jitter re-crossings):
    # only stillness from then on counts, so waiting behind the line and then driving over
    # it on red is not a stop over the line.
    first_crossed: float | None = None
    # Last time the vehicle stood still over the stop line. Kept across re-crossings of the
    # line; the judgement compares it with the red in force, so a stop in an earlier red
    # does not excuse this one.
    stood_at: float | None = None

    def crossed_at(self, crossing: Crossing | None) -> None:
        self.crossed, self.exempt = crossing, False
        if crossing is not None and self.first_crossed is None:
            self.first_crossed = crossing.t

    def went_on_past(self) -> None:
        """The vehicle reached the second line: its pass over this lane's lines is over."""
        self.crossed, self.exempt, self.stood_at, self.first_crossed = None, False, None, None

    def moved(self, t: float, pos: Point, radius: float, stopped_s: float) -> None:
        """Note whether the vehicle stands still (within ``radius``) for ``stopped_s``
        since it first crossed the stop line."""
        if self.still_at is None or pos.distance(self.still_at) > radius:
            self.still_at, self.still_since = pos, t
        elif (
            self.crossed is not None  # (over the line now, not backed out behind it)
            and self.first_crossed is not None
            and t - max(self.still_since, self.first_crossed) >= stopped_s
        ):
            self.stood_at = t


# The longest a crossing waits for the controller's next message, whatever its ttl (up
# to 600 s): the frames and boxes for its evidence are kept only seconds.
AWAIT_MAX_S = 6.0


@dataclass(slots=True)
class _Awaiting:
    """A crossing judged a violation on a red the controller reported, waiting for its
    next message (sent after the vehicle went on) to judge it again, by the rule of the
    scene it crossed under (a scene pushed meanwhile takes it over)."""

    judge: RedLightRule
    memory: TrackMemory[RedLightState]
    p: WorldTrackPoint
    lane: LaneGeometry
    crossed: Crossing
    went: Crossing
    stood_at: float | None


@dataclass(slots=True)
class RedLightState:
    lanes: dict[str, _LaneState] = field(default_factory=dict)


class RedLightRule(TrackRule[RedLightState]):
    rule = ViolationType.RED_LIGHT
    version = "red_light/4"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        self._lanes = [lane for lane in scene.lanes if lane.stop is not None]
        if not self._lanes:
            raise RuleUnavailableError("red light needs a lane with a stop line and a went-on line")
        self._settings = scene.config.rules.red_light
        self._awaiting: list[_Awaiting] = []

    def new_state(self) -> RedLightState:
        return RedLightState()

    def _lane_state(self, state: RedLightState, lane: LaneGeometry) -> _LaneState:
        got = state.lanes.get(lane.id)
        if got is None:
            assert lane.stop is not None
            margin, confirm = self.scene.line_margin, self.scene.config.rules.confirm_samples
            got = state.lanes[lane.id] = _LaneState(
                stop=SideTracker(lane.stop.first, margin, confirm),
                went_on=SideTracker(lane.stop.second, margin, confirm),
            )
        return got

    def step(
        self, memory: TrackMemory[RedLightState], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        pos = self.scene.position(p)
        if pos is None:
            return None
        for lane in self._lanes:
            assert lane.stop is not None
            st = self._lane_state(memory.state, lane)
            crossing = st.stop.update(p.t, pos)
            if crossing is not None:
                # Backing out behind the line undoes the crossing.
                st.crossed_at(crossing if crossing.to_side == lane.stop.first_forward else None)
            if st.crossed is not None and not st.exempt:
                st.exempt = any(area.contains(p.ground_px) for _, area in lane.exemptions)
            st.moved(p.t, pos, self.scene.stationary_radius, self._settings.stopped_s)
            went = st.went_on.update(p.t, pos)
            if went is None or went.to_side != lane.stop.second_forward:
                continue
            crossed, stood_at, exempt = st.crossed, st.stood_at, st.exempt
            st.went_on_past()
            if crossed is None or exempt:
                continue
            violation = self._judge(memory, p, lane, crossed, went, stood_at, signals)
            if violation is None:
                continue
            head = signals[lane.config.signal_head]  # (a violation means it is there)
            told = (head.source_at(crossed.t), head.source_at(went.t))
            if SignalSource.CONTROLLER not in told or head.told_until() >= went.t:
                return violation
            self._awaiting.append(_Awaiting(self, memory, p, lane, crossed, went, stood_at))
        return None

    def update(self, frame: TrackFrame, signals: Signals | None = None) -> list[Violation]:
        found = super().update(frame, signals)
        if self._awaiting:
            found.extend(self._judge_awaiting(frame.t, signals or {}))
        return found

    def carry_fired(self, old: TrackRule[RedLightState]) -> None:
        """Also take over the crossings waiting on the controller: each is judged, when
        its message comes, on the lines and settings of the scene it crossed under."""
        super().carry_fired(old)
        if isinstance(old, RedLightRule):
            self._awaiting.extend(a for a in old._awaiting if not a.memory.fired)

    @property
    def awaiting(self) -> int:
        """Crossings waiting for the controller's next message to be judged."""
        return len(self._awaiting)

    def _judge_awaiting(self, t: float, signals: Signals) -> list[Violation]:
        """The crossings waiting on the controller whose next message has come, judged
        again on what it told; those it has not spoken after in twice its ttl are let go."""
        found, still = [], []
        for a in self._awaiting:
            wait_s = min(2.0 * a.judge.scene.config.lamp.controller_ttl_s, AWAIT_MAX_S)
            head = signals.get(a.lane.config.signal_head)
            # (a crossing taken over from the scene before: the vehicle may have been
            # fined under this scene since, for the same act)
            now = self._tracks.get(a.p.track_id)
            fired = a.memory.fired or (now is not None and now.fired)
            if head is None or fired or t - a.went.t > wait_s:
                continue
            if head.told_until() < a.went.t:
                still.append(a)
                continue
            violation = a.judge._judge(
                a.memory, a.p, a.lane, a.crossed, a.went, a.stood_at, signals
            )
            if violation is not None:
                a.memory.fired = True
                if now is None:  # (not seen under this scene yet: it must not fire there)
                    now = self._tracks[a.p.track_id] = TrackMemory(self.new_state(), t)
                now.fired = True  # (under a scene pushed since it crossed)
                found.append(violation)
        self._awaiting = still
        return found

    def _judge(
        self,
        memory: TrackMemory[RedLightState],
        p: WorldTrackPoint,
        lane: LaneGeometry,
        crossed: Crossing,
        went: Crossing,
        stood_at: float | None,
        signals: Signals,
    ) -> Violation | None:
        head = signals.get(lane.config.signal_head)
        if head is None:
            return None
        began = head.red_began(crossed.t)
        if began is None:
            return None
        since = crossed.t - began
        if since < self._settings.grace_s:
            return None
        if went.t - crossed.t > self._settings.max_went_on_s:
            return None
        same_red = head.red_began(went.t) == began
        stopped = stood_at is not None and stood_at >= began
        if stopped and not same_red:
            return None
        vehicle = memory.vote.winner
        distance = crossed.at.distance(went.at)
        # (a phase the controller reported has no lamp in the pictures: the text says so)
        controller = head.source_at(crossed.t) is SignalSource.CONTROLLER
        told = " (signal controller)" if controller else ""
        text = (
            f"{vehicle.value} crossed the stop line of {lane.label} at {self.clock(crossed.t)}, "
            f"{vi.number_en(since)} s after red began at {self.clock(began)}{told}, and went on "
            f"past the second line at {self.clock(went.t)}"
            + (", while still red" if same_red else ", without stopping")
        )
        if self.scene.metric:
            text += f", {vi.number_en(distance)} m beyond where it crossed"
        text_vi = (
            f"{vi.capitalized(vi.vehicle(vehicle))} vượt đèn đỏ: qua vạch dừng của "
            f"{lane.label_vi} lúc {self.clock(crossed.t)}, {vi.seconds(since)} sau khi đèn đỏ "
            f"bật lúc {self.clock(began)}"
            + (" (theo bộ điều khiển đèn tín hiệu)" if controller else "")
            + f", rồi đi tiếp qua vạch thứ hai lúc {self.clock(went.t)}"
            + (", khi đèn vẫn đỏ" if same_red else " mà không dừng lại")
        )
        if self.scene.metric:
            text_vi += f", cách chỗ qua vạch dừng {vi.distance(distance, True)}"
        return self.violation(
            p,
            vehicle,
            lane,
            crossed.t,
            EvidenceTimes(before=crossed.t_before, at=crossed.t_after, after=went.t_after),
            Measurement(
                signal_phase=LampColour.RED,
                time_since_red_s=since,
                distance_m=min(distance, 10_000.0) if self.scene.metric else None,
            ),
            text,
            text_vi,
        )
