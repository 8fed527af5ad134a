"""Speeding: the lower bound of the measured speed above the limit plus a tolerance.

Two measurements: the calibration's per-frame speed estimate (with its uncertainty),
sustained over a few samples so one spike does not fire, and section speed through a
speed trap of measured length, bounded by the frames that bracket each crossing.
The Decree 168/2024 band of the excess is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.rules import vi
from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Crossing, SideTracker
from edge.rules.plane import LaneGeometry, SceneGeometry, TrapGeometry
from edge.rules.tracks import EvidenceTimes, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, VehicleClass, ViolationType

# Decree 168/2024's speeding bands as it words them: "from 5 to under 10", "from 10 to
# 20", "over 20 to 35", "over 35" km/h: (lowest excess in it, highest, label), each end
# taken or not. An excess of exactly 20 km/h is in the 10-20 band, exactly 35 in 20-35.
DECREE_168_BANDS: tuple[tuple[tuple[float, bool], tuple[float, bool], str], ...] = (
    ((5.0, True), (10.0, False), "from 5 to under 10 km/h over"),
    ((10.0, True), (20.0, True), "from 10 to 20 km/h over"),
    ((20.0, False), (35.0, True), "over 20 to 35 km/h over"),
    ((35.0, False), (float("inf"), False), "over 35 km/h over"),
)


def shown_excess(excess_kmh: float) -> float:
    """The excess as the explanation and the review page write it, to 0.1 km/h."""
    return float(vi.rounded(excess_kmh, 1))


def decree_band(excess_kmh: float) -> str | None:
    """The Decree 168/2024 speeding band of an excess over the limit, judged on the
    excess as written (``shown_excess``), so the band and the figure beside it agree;
    None below 5 km/h."""
    x = shown_excess(excess_kmh)
    for (low, with_low), (high, with_high), label in DECREE_168_BANDS:
        if (x >= low if with_low else x > low) and (x <= high if with_high else x < high):
            return label
    return None


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float
    speed: float
    uncertainty: float
    limit: float

    @property
    def lower(self) -> float:
        return self.speed - self.uncertainty


@dataclass(slots=True)
class _TrapState:
    entry: SideTracker
    exit: SideTracker
    entered: Crossing | None = None


@dataclass(slots=True)
class SpeedingState:
    run: list[_Sample] = field(default_factory=list)
    traps: dict[str, _TrapState] = field(default_factory=dict)


class SpeedingRule(TrackRule[SpeedingState]):
    rule = ViolationType.SPEEDING
    version = "speeding/3"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        if not scene.metric and not scene.traps:
            raise RuleUnavailableError(
                "speeding needs metres: calibrate the camera, or configure a speed trap "
                "with its measured length"
            )
        self._settings = scene.config.rules.speeding

    def new_state(self) -> SpeedingState:
        return SpeedingState()

    def step(
        self, memory: TrackMemory[SpeedingState], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        vehicle = memory.vote.winner
        lane = self.scene.lane_at(p)
        found = self._trap_step(memory, p, vehicle, lane)
        if found is not None:
            return found
        limit = None if lane is None else lane.config.speed_limit(vehicle)
        run = memory.state.run
        if (
            not self.scene.metric
            or limit is None
            or p.speed_kmh is None
            or p.speed_uncertainty_kmh is None
        ):
            run.clear()
            return None
        sample = _Sample(p.t, p.speed_kmh, p.speed_uncertainty_kmh, limit)
        if sample.lower <= limit + self._settings.tolerance_kmh:
            run.clear()
            return None
        if run and run[-1].limit != limit:
            # A run is judged against one limit: samples taken under another lane's or
            # class's limit do not count towards this one (nor report a speed below it).
            run.clear()
        run.append(sample)
        if len(run) < self._settings.min_samples:
            return None
        slowest = min(run, key=lambda s: s.lower)
        return self._fire(
            p,
            vehicle,
            lane,
            limit,
            slowest,
            EvidenceTimes(before=run[0].t, at=slowest.t, after=p.t),
            ("measured", "đo được tốc độ"),
        )

    def _trap_step(
        self,
        memory: TrackMemory[SpeedingState],
        p: WorldTrackPoint,
        vehicle: VehicleClass,
        lane: LaneGeometry | None,
    ) -> Violation | None:
        pos = self.scene.position(p)
        if pos is None:
            return None
        margin, confirm = self.scene.line_margin, self.scene.config.rules.confirm_samples
        for trap in self.scene.traps:
            st = memory.state.traps.get(trap.config.id)
            if st is None:
                st = memory.state.traps[trap.config.id] = _TrapState(
                    SideTracker(trap.lines.first, margin, confirm),
                    SideTracker(trap.lines.second, margin, confirm),
                )
            entry = st.entry.update(p.t, pos)
            if entry is not None:
                st.entered = entry if entry.to_side == trap.lines.first_forward else None
            out = st.exit.update(p.t, pos)
            if out is None or out.to_side != trap.lines.second_forward or st.entered is None:
                continue
            entered, st.entered = st.entered, None
            found = self._trap_judge(p, vehicle, lane, trap, entered, out)
            if found is not None:
                return found
        return None

    def _trap_judge(
        self,
        p: WorldTrackPoint,
        vehicle: VehicleClass,
        lane: LaneGeometry | None,
        trap: TrapGeometry,
        entered: Crossing,
        out: Crossing,
    ) -> Violation | None:
        if trap.config.lane is not None:
            lane = self.scene.lane_by_id(trap.config.lane)
        limit = None if lane is None else lane.config.speed_limit(vehicle)
        elapsed = out.t - entered.t
        longest = out.t_after - entered.t_before
        if limit is None or elapsed <= 0.0 or longest <= 0.0:
            return None
        speed = trap.config.length_m / elapsed * 3.6
        lower = trap.config.length_m / longest * 3.6
        if lower <= limit + self._settings.tolerance_kmh:
            return None
        return self._fire(
            p,
            vehicle,
            lane,
            limit,
            _Sample(out.t, speed, speed - lower, limit),
            EvidenceTimes(before=entered.t_after, at=out.t_before, after=out.t_after),
            (
                f"timed over the {trap.config.length_m:g} m of speed trap {trap.config.id} at",
                f"đo trên quãng {vi.number(trap.config.length_m, 3)} m của đoạn đo tốc độ "
                f"{trap.config.id} được tốc độ trung bình",
            ),
        )

    def _fire(
        self,
        p: WorldTrackPoint,
        vehicle: VehicleClass,
        lane: LaneGeometry | None,
        limit: float,
        sample: _Sample,
        evidence: EvidenceTimes,
        how: tuple[str, str],
    ) -> Violation:
        """``how``: how the speed was measured, in English and in Vietnamese."""
        excess = sample.lower - limit
        band = decree_band(excess)
        where = "" if lane is None else f" in {lane.label}"
        text = (
            f"{vehicle.value}{where} {how[0]} {vi.number_en(sample.speed)} ± "
            f"{vi.number_en(sample.uncertainty)} km/h (at least {vi.number_en(sample.lower)} km/h) "
            f"at {self.clock(sample.t)}; the limit for {vehicle.value} is {limit:g} km/h: "
            f"{vi.number_en(excess)} km/h over" + (f", Decree 168/2024 band {band}" if band else "")
        )
        text_vi = (
            vi.capitalized(vi.vehicle(vehicle))
            + ("" if lane is None else f" trên {lane.label_vi}")
            + f" chạy quá tốc độ: {how[1]} {vi.number(sample.speed)} ± "
            f"{vi.speed(sample.uncertainty)} (ít nhất {vi.speed(sample.lower)}) lúc "
            f"{self.clock(sample.t)}; tốc độ tối đa cho phép đối với {vi.vehicle(vehicle)} là "
            f"{vi.speed(limit)}, vượt {vi.speed(excess)}"
            + (f", khung mức phạt {vi.BAND_VI[band]} (Nghị định 168/2024)" if band else "")
        )
        return self.violation(
            p,
            vehicle,
            lane,
            sample.t,
            evidence,
            Measurement(
                speed_kmh=min(sample.speed, 400.0),
                speed_uncertainty_kmh=min(sample.uncertainty, 100.0),
                speed_limit_kmh=limit,
            ),
            text,
            text_vi,
        )
