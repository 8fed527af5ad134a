"""Scripted traffic with known violations: who breaks which rule, when, and who nearly does.

Every scene is the same road (``ROAD``): three lanes away from the camera, the inner one
closed to trucks and buses, a stop line with a second line beyond it and a traffic light,
solid lane lines on the approach to the stop line, and a no-stopping zone over the outer
two lanes near the camera. Vehicles come from episodes: a red-light runner, a car that
stops in the zone past its dwell time, a speeder, a wrong-way driver... and for every
rule the near misses a rule must not fire for (crossing on yellow or within the grace
time, stopping over the line and waiting for green, a short stop in the zone, a drift
towards a solid line, a short reverse, a speed just within tolerance, a car in the
truck-free lane). Episodes are placed in lanes and times by a seeded scheduler that
refuses any placement where two vehicles would come closer than a car's length plus a
gap, so the traffic is physically possible and every truth is scripted, not guessed.

Pure: no imagery, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from calibration.camera import PinholeCamera
from calibration.scenes import (
    Effects,
    LampColourName,
    LampPhase,
    Leg,
    SceneSpec,
    SignalHeadSpec,
    VehiclePath,
)
from edge.scene_layout import LaneStrip, RoadLayout, SolidStretch, ZoneStretch
from roadwatch.contract import VehicleClass, ViolationType

RULES: tuple[ViolationType, ...] = (
    ViolationType.SPEEDING,
    ViolationType.RED_LIGHT,
    ViolationType.WRONG_WAY,
    ViolationType.FORBIDDEN_LANE,
    ViolationType.SOLID_LINE,
    ViolationType.NO_STOPPING,
)

# The road, in metres: x across (lane edges), y along, away from the camera.
LANE_EDGES = (-7.0, -3.5, 0.0, 3.5, 7.0)
LANE_X = (-5.25, -1.75, 1.75, 5.25)
CLOSED_LANES = (0, 1)  # trucks and buses keep to the outer lanes
STOP_M = 40.0
WENT_ON_M = 48.0
SOLID_Y = (22.0, 40.0)
ZONE_X = (-7.0, 7.0)
ZONE_Y = (15.0, 25.0)
ZONE_DWELL_S = 3.0
# Box bottoms of a standing car scatter by about 0.15 m here; the rule counts the last
# stretch of braking and the first of pulling away inside this radius as standing.
STATIONARY_RADIUS_M = 0.7
SPEED_LIMIT_KMH = 60.0
SPEED_TOLERANCE_KMH = 5.0
RED_GRACE_S = 0.5
FAR_M = 75.0
START_M = 6.0  # forward traffic starts below the view
WRONG_WAY_START_M = 62.0
# Two vehicles in one lane keep this far apart, rear to rear (a car and a short gap).
MIN_GAP_M = 8.0
LANE_HALF_M = 1.3
QUEUE_FRONT_M = STOP_M - 5.5  # rear of the first car waiting at the stop line
TRUCK_SPRITE = 0  # the sample clip's box truck; the other cut-outs are cars
CAR_SPRITES = (1, 2, 3, 4, 5, 6, 7)
SPRITES_NEEDED = 8


def road_layout(lamp_boxes: tuple[tuple[int, int, int, int], ...] | None) -> RoadLayout:
    return RoadLayout(
        version="rules-eval/1",
        camera_id="cam-01",
        lanes=tuple(
            LaneStrip(
                id=f"lane-{i + 1}",
                x0=LANE_EDGES[i],
                x1=LANE_EDGES[i + 1],
                closed_to=(VehicleClass.TRUCK, VehicleClass.BUS) if i in CLOSED_LANES else (),
            )
            for i in range(len(LANE_X))
        ),
        near_m=10.0,
        far_m=FAR_M,
        speed_limit_kmh=SPEED_LIMIT_KMH,
        stop_line_m=STOP_M,
        went_on_m=WENT_ON_M,
        lamp_boxes=lamp_boxes,
        solid_lines=tuple(
            SolidStretch(f"solid-{i}", LANE_EDGES[i], *SOLID_Y) for i in range(1, len(LANE_X))
        ),
        zones=(ZoneStretch("zone-1", *ZONE_X, *ZONE_Y, dwell_s=ZONE_DWELL_S),),
        rules={
            "speeding": {"tolerance_kmh": SPEED_TOLERANCE_KMH},
            "red_light": {"grace_s": RED_GRACE_S},
            "no_stopping": {"stationary_radius_m": STATIONARY_RADIUS_M},
        },
    )


# -- motion -------------------------------------------------------------------------------


class Motion:
    """Builds a path leg by leg: ``then`` ramps the velocity, ``keep`` holds it."""

    def __init__(self, x: float, y: float, vx_kmh: float, vy_kmh: float, enter_s: float) -> None:
        self.start = (x, y)
        self.velocity = (vx_kmh, vy_kmh)
        self.enter_s = enter_s
        self.legs: list[Leg] = []

    @property
    def current(self) -> tuple[float, float]:
        return self.legs[-1].velocity_kmh if self.legs else self.velocity

    def then(self, duration_s: float, vx_kmh: float, vy_kmh: float) -> Motion:
        if duration_s > 1e-6:
            self.legs.append(Leg(duration_s, (vx_kmh, vy_kmh)))
        return self

    def keep(self, duration_s: float) -> Motion:
        return self.then(duration_s, *self.current)

    def path(self, vehicle_id: int, sprite: int) -> VehiclePath:
        return VehiclePath(
            vehicle_id, sprite, self.start, self.velocity, self.enter_s, tuple(self.legs)
        )


def approach_stop(
    x: float, y_stop: float, t_stop: float, kmh: float, decel: float, y_start: float = START_M
) -> Motion:
    """Cruise at ``kmh`` from ``y_start`` and brake at ``decel`` m/s² to stand at ``y_stop``
    at ``t_stop`` (a lower start speed when the stretch is too short to brake in)."""
    v = kmh / 3.6
    braking = v * v / (2 * decel)
    if braking > y_stop - y_start:
        v = math.sqrt(2 * decel * (y_stop - y_start))
        braking = y_stop - y_start
    cruise = (y_stop - y_start - braking) / v
    enter = t_stop - v / decel - cruise
    return Motion(x, y_start, 0.0, v * 3.6, enter).keep(cruise).then(v / decel, 0.0, 0.0)


def lateral(motion: Motion, shift_m: float, duration_s: float) -> Motion:
    """Move ``shift_m`` across at the current speed along: ramp up, then down."""
    vy = motion.current[1]
    peak = 2 * shift_m / duration_s * 3.6
    return motion.then(duration_s / 2, peak, vy).then(duration_s / 2, 0.0, vy)


def crossing_times(
    path: VehiclePath, axis: int, value: float, t_end: float, step: float = 0.01
) -> list[tuple[float, int]]:
    """Times the path's ``axis`` coordinate passes ``value`` and the direction (+1/-1)."""
    times = np.arange(path.enter_s, max(path.enter_s, t_end) + step, step)
    d = path.positions(times)[:, axis] - value
    out: list[tuple[float, int]] = []
    for i in np.flatnonzero((d[:-1] < 0.0) != (d[1:] < 0.0)).tolist():
        a, b = float(d[i]), float(d[i + 1])
        k = a / (a - b) if a != b else 0.0
        out.append((float(times[i]) + k * step, 1 if b > a else -1))
    return out


# -- truth --------------------------------------------------------------------------------


class Kind(StrEnum):
    CAR = "car"
    TRUCK = "truck"


class _Truth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class VehicleRules(_Truth):
    """One scripted vehicle: the rules it breaks (and when) and those it nearly breaks."""

    vehicle_id: int
    kind: Kind
    episode: str
    violations: dict[ViolationType, float] = {}
    """Rule -> the moment (scene seconds) the vehicle broke it."""
    near_misses: dict[ViolationType, str] = {}
    """Rule -> what the vehicle did that the rule must not fire for."""


class RulesTruth(_Truth):
    """The rules' ground truth of one generated scene (written beside its video)."""

    name: str
    seed: int
    duration_s: float
    vehicles: list[VehicleRules]


@dataclass(frozen=True)
class Scripted:
    path: VehiclePath
    rules: VehicleRules


# -- the signal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """The signal over one scene: red from ``red_s`` to ``green_s`` (None: green throughout)."""

    duration_s: float
    red_s: float | None = None
    green_s: float | None = None
    yellow_s: float = 3.0

    def phases(self) -> tuple[LampPhase, ...]:
        if self.red_s is None or self.green_s is None:
            return (LampPhase(0.0, LampColourName.GREEN),)
        return (
            LampPhase(0.0, LampColourName.GREEN),
            LampPhase(self.red_s - self.yellow_s, LampColourName.YELLOW),
            LampPhase(self.red_s, LampColourName.RED),
            LampPhase(self.green_s, LampColourName.GREEN),
        )

    def red_at(self, t: float) -> bool:
        return (
            self.red_s is not None and self.green_s is not None and (self.red_s <= t < self.green_s)
        )


# -- episodes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    lane: int
    anchor: float


Behaviour = tuple[Motion, Kind, dict[ViolationType, float], dict[ViolationType, str]]
"""How a vehicle moves, what it is, the rules it breaks (and when) and those it nearly breaks."""
Build = Callable[[np.random.Generator, Placement, Cycle], Behaviour]


@dataclass(frozen=True)
class Episode:
    """One kind of scripted behaviour: lanes it can use, its anchor window, how it moves."""

    name: str
    lanes: tuple[int, ...]
    window: Callable[[Cycle], tuple[float, float] | None]
    build: Build
    red_light: bool = False
    """It is about the stop line: it may cross it while red (as scripted)."""


def _cruise(x: float, kmh: float, enter: float) -> Motion:
    return Motion(x, START_M, 0.0, kmh, enter)


def _cross_stop_at(x: float, kmh: float, t_cross: float) -> Motion:
    return _cruise(x, kmh, t_cross - (STOP_M - START_M) / (kmh / 3.6))


def _green_window(c: Cycle) -> tuple[float, float]:
    # From before the first frame (traffic already on the road) to shortly before the end.
    return (-2.0, c.duration_s - 4.0)


def _entering_window(c: Cycle) -> tuple[float, float]:
    # Fast traffic crosses the view in two seconds: it enters after the first frame.
    return (0.0, c.duration_s - 4.0)


def _stop_window(c: Cycle) -> tuple[float, float]:
    return (1.0, c.duration_s - 6.0)


def _speeder(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(85, 105))
    return _cruise(LANE_X[p.lane], kmh, p.anchor), Kind.CAR, {ViolationType.SPEEDING: p.anchor}, {}


def _speed_near(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(52, SPEED_LIMIT_KMH + 2))
    return (
        _cruise(LANE_X[p.lane], kmh, p.anchor),
        Kind.CAR,
        {},
        {ViolationType.SPEEDING: f"{kmh:.0f} km/h, within the limit's tolerance"},
    )


def _red_runner(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(38, 50))
    return (
        _cross_stop_at(LANE_X[p.lane], kmh, p.anchor),
        Kind.CAR,
        {ViolationType.RED_LIGHT: p.anchor},
        {},
    )


def _yellow_crosser(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(38, 50))
    assert c.red_s is not None
    text = f"crossed the stop line {c.red_s - p.anchor:.1f} s before red"
    return (
        _cross_stop_at(LANE_X[p.lane], kmh, p.anchor),
        Kind.CAR,
        {},
        {ViolationType.RED_LIGHT: text},
    )


def _grace_crosser(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(38, 50))
    assert c.red_s is not None
    text = f"crossed the stop line {p.anchor - c.red_s:.2f} s after red, within the grace time"
    return (
        _cross_stop_at(LANE_X[p.lane], kmh, p.anchor),
        Kind.CAR,
        {},
        {ViolationType.RED_LIGHT: text},
    )


def _go_at_green(motion: Motion, c: Cycle, delay: float) -> Motion:
    assert c.green_s is not None
    t_now = motion.enter_s + sum(leg.duration_s for leg in motion.legs)
    return motion.keep(max(0.1, c.green_s + delay - t_now)).then(4.5, 0.0, 40.0)


def _queue(rng: np.random.Generator, p: Placement, c: Cycle, place: int) -> Behaviour:
    y = QUEUE_FRONT_M - MIN_GAP_M * place
    motion = approach_stop(LANE_X[p.lane], y, p.anchor, float(rng.uniform(35, 45)), 2.5)
    motion = _go_at_green(motion, c, 0.6 + 1.3 * place)
    near = {ViolationType.RED_LIGHT: "waited behind the stop line for green"}
    if ZONE_X[0] <= LANE_X[p.lane] <= ZONE_X[1] and y - ZONE_Y[1] < 3.0:
        near[ViolationType.NO_STOPPING] = f"waited for green {y - ZONE_Y[1]:.1f} m beyond the zone"
    return motion, Kind.CAR, {}, near


def _stop_over(rng: np.random.Generator, p: Placement, c: Cycle, back_out: bool) -> Behaviour:
    over = float(rng.uniform(1.0, 2.0))
    motion = approach_stop(LANE_X[p.lane], STOP_M + over, p.anchor, 30.0, 2.5)
    near = {ViolationType.RED_LIGHT: f"stopped {over:.1f} m over the stop line, waited for green"}
    if back_out:
        back = over + float(rng.uniform(2.0, 3.0))
        motion.keep(1.5)
        peak = 2 * back / 3.0 * 3.6
        motion.then(1.5, 0.0, -peak).then(1.5, 0.0, 0.0)
        near[ViolationType.RED_LIGHT] = f"stopped over the stop line and backed {back:.1f} m out"
        near[ViolationType.WRONG_WAY] = f"reversed {back:.1f} m"
    return _go_at_green(motion, c, 0.5), Kind.CAR, {}, near


def _truck_closed(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(32, 45))
    return (
        _cruise(LANE_X[p.lane], kmh, p.anchor),
        Kind.TRUCK,
        {ViolationType.FORBIDDEN_LANE: p.anchor},
        {},
    )


def _truck_open(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(32, 45))
    return (
        _cruise(LANE_X[p.lane], kmh, p.anchor),
        Kind.TRUCK,
        {},
        {ViolationType.FORBIDDEN_LANE: "truck in a lane open to trucks"},
    )


def _truck_brush(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(32, 40))
    depth = float(rng.uniform(0.4, 0.8))
    x = LANE_X[2]
    shift = x - LANE_EDGES[2] + depth
    start_y = STOP_M + 4.0
    motion = _cruise(x, kmh, p.anchor).keep((start_y - START_M) / (kmh / 3.6))
    lateral(motion, -shift, 1.4).keep(0.3)
    lateral(motion, shift, 1.4)
    text = f"truck with its wheels {depth:.1f} m into the closed lane for a moment"
    return motion, Kind.TRUCK, {}, {ViolationType.FORBIDDEN_LANE: text}


def _lane_change(
    p: Placement, kmh: float, to_lane: int, y_cross: float, span_s: float
) -> tuple[Motion, float]:
    """Change from ``p.lane`` to ``to_lane`` so the lane line is crossed at ``y_cross``."""
    x0 = LANE_X[p.lane]
    v = kmh / 3.6
    start_y = y_cross - v * span_s / 2
    motion = _cruise(x0, kmh, p.anchor).keep((start_y - START_M) / v)
    lateral(motion, LANE_X[to_lane] - x0, span_s)
    t_cross = p.anchor + (y_cross - START_M) / v
    return motion, t_cross


def _neighbour(rng: np.random.Generator, lane: int) -> int:
    return int(rng.choice([n for n in (lane - 1, lane + 1) if 0 <= n < len(LANE_X)]))


def _solid_violator(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(32, 45))
    y_cross = float(rng.uniform(SOLID_Y[0] + 5.0, SOLID_Y[1] - 5.0))
    motion, t_cross = _lane_change(p, kmh, _neighbour(rng, p.lane), y_cross, 2.5)
    return motion, Kind.CAR, {ViolationType.SOLID_LINE: t_cross}, {}


def _solid_late_change(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(32, 45))
    y_cross = float(rng.uniform(SOLID_Y[1] + 8.0, SOLID_Y[1] + 12.0))
    motion, _ = _lane_change(p, kmh, _neighbour(rng, p.lane), y_cross, 2.0)
    text = f"changed lanes {y_cross - SOLID_Y[1]:.0f} m past the end of the solid line"
    return motion, Kind.CAR, {}, {ViolationType.SOLID_LINE: text}


def _solid_drift(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(32, 45))
    gap = float(rng.uniform(0.7, 0.9))
    x0 = LANE_X[p.lane]
    to = _neighbour(rng, p.lane)
    edge = LANE_EDGES[max(p.lane, to)]
    shift = (edge - x0) - math.copysign(gap, edge - x0)
    v = kmh / 3.6
    start_y = float(rng.uniform(SOLID_Y[0] + 1.0, SOLID_Y[0] + 4.0))
    motion = _cruise(x0, kmh, p.anchor).keep((start_y - START_M) / v)
    lateral(motion, shift, 1.5).keep(0.5)
    lateral(motion, -shift, 1.5)
    text = f"drifted to {gap:.1f} m from the solid line and back"
    return motion, Kind.CAR, {}, {ViolationType.SOLID_LINE: text}


def _wrong_way(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(28, 45))
    motion = Motion(LANE_X[p.lane], WRONG_WAY_START_M, 0.0, -kmh, p.anchor)
    return motion, Kind.CAR, {ViolationType.WRONG_WAY: p.anchor}, {}


def _reverse(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    y_stop = float(rng.uniform(29, 34))
    back = float(rng.uniform(2.5, 3.5))
    motion = approach_stop(LANE_X[p.lane], y_stop, p.anchor, 30.0, 2.5).keep(1.0)
    peak = 2 * back / 3.0 * 3.6
    motion.then(1.5, 0.0, -peak).then(1.5, 0.0, 0.0).keep(1.0).then(4.5, 0.0, 40.0)
    return motion, Kind.CAR, {}, {ViolationType.WRONG_WAY: f"stopped and reversed {back:.1f} m"}


def _zone_stop(rng: np.random.Generator, p: Placement, c: Cycle, hold: float) -> Motion:
    y_stop = float(rng.uniform(ZONE_Y[0] + 1.5, ZONE_Y[1] - 1.5))
    motion = approach_stop(LANE_X[p.lane], y_stop, p.anchor, 25.0, 2.0)
    return motion.keep(hold).then(4.0, 0.0, 35.0)


def _zone_violator(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    hold = float(rng.uniform(ZONE_DWELL_S + 1.5, ZONE_DWELL_S + 3.0))
    motion = _zone_stop(rng, p, c, hold)
    return motion, Kind.CAR, {ViolationType.NO_STOPPING: p.anchor + ZONE_DWELL_S}, {}


def _zone_short(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    hold = float(rng.uniform(1.0, ZONE_DWELL_S / 2))
    motion = _zone_stop(rng, p, c, hold)
    text = f"stopped {hold:.1f} s in the zone (allowed {ZONE_DWELL_S:g} s)"
    return motion, Kind.CAR, {}, {ViolationType.NO_STOPPING: text}


def _zone_creep(rng: np.random.Generator, p: Placement, c: Cycle) -> Behaviour:
    kmh = float(rng.uniform(5, 8))
    start = ZONE_Y[0] - 4.0
    motion = Motion(LANE_X[p.lane], start, 0.0, kmh, p.anchor)
    motion.keep((ZONE_Y[1] + 1.0 - start) / (kmh / 3.6)).then(4.0, 0.0, 35.0)
    return (
        motion,
        Kind.CAR,
        {},
        {ViolationType.NO_STOPPING: f"crept through the zone at {kmh:.0f} km/h"},
    )


def _red_window(
    lo: float, hi: float, *, to_green: bool = True
) -> Callable[[Cycle], tuple[float, float] | None]:
    """Anchors from ``lo`` s after red began to ``hi`` s after green (or red) began."""

    def window(c: Cycle) -> tuple[float, float] | None:
        if c.red_s is None or c.green_s is None:
            return None
        return (c.red_s + lo, (c.green_s if to_green else c.red_s) + hi)

    return window


ALL_LANES = (0, 1, 2, 3)
EPISODES: dict[str, Episode] = {
    e.name: e
    for e in (
        Episode("speeder", ALL_LANES, _entering_window, _speeder),
        Episode("speed-near-miss", ALL_LANES, _green_window, _speed_near),
        Episode(
            "red-runner",
            ALL_LANES,
            _red_window(0.8, 5.0, to_green=False),
            _red_runner,
            red_light=True,
        ),
        Episode(
            "yellow-crosser",
            ALL_LANES,
            _red_window(-1.6, -0.4, to_green=False),
            _yellow_crosser,
            red_light=True,
        ),
        Episode(
            "grace-crosser",
            ALL_LANES,
            _red_window(0.05, 0.25, to_green=False),
            _grace_crosser,
            red_light=True,
        ),
        Episode(
            "queue-1",
            ALL_LANES,
            _red_window(3.0, -2.5),
            lambda r, p, c: _queue(r, p, c, 0),
            red_light=True,
        ),
        Episode(
            "queue-2",
            ALL_LANES,
            _red_window(4.0, -1.5),
            lambda r, p, c: _queue(r, p, c, 1),
            red_light=True,
        ),
        Episode(
            "stop-over-line",
            ALL_LANES,
            _red_window(3.0, -5.0),
            lambda r, p, c: _stop_over(r, p, c, False),
            red_light=True,
        ),
        Episode(
            "back-out",
            ALL_LANES,
            _red_window(3.0, -7.0),
            lambda r, p, c: _stop_over(r, p, c, True),
            red_light=True,
        ),
        Episode("truck-closed-lane", CLOSED_LANES, _green_window, _truck_closed),
        Episode("truck-open-lane", (2, 3), _green_window, _truck_open),
        Episode("truck-brush", (2,), _green_window, _truck_brush),
        Episode("solid-line", ALL_LANES, _green_window, _solid_violator),
        Episode("late-lane-change", ALL_LANES, _green_window, _solid_late_change),
        Episode("solid-drift", ALL_LANES, _green_window, _solid_drift),
        Episode("wrong-way", ALL_LANES, _green_window, _wrong_way),
        Episode("reverse", ALL_LANES, _stop_window, _reverse),
        Episode("zone-stop", ALL_LANES, _stop_window, _zone_violator),
        Episode("zone-short-stop", ALL_LANES, _stop_window, _zone_short),
        Episode("zone-creep", ALL_LANES, _green_window, _zone_creep),
    )
}


# -- placing episodes ---------------------------------------------------------------------


SAMPLE_S = 0.1


def _track(path: VehiclePath, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = path.positions(times)
    out[~((out[:, 1] > -10.0) & (out[:, 1] < FAR_M + 5.0))] = np.nan
    return out


def too_close(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
    """Whether two sampled paths ever share a lane closer than ``MIN_GAP_M``."""
    both = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    d = np.abs(a[both] - b[both])
    return bool(np.any((d[:, 0] < 2 * LANE_HALF_M) & (d[:, 1] < MIN_GAP_M - 1e-6)))


def _fits(path: VehiclePath, episode: Episode, cycle: Cycle) -> bool:
    """Outside its own episode a vehicle does not touch the stop line while red, and every
    vehicle is gone from the zone and the stop line before the scene ends."""
    if episode.red_light:
        return True
    return all(
        not cycle.red_at(t) and not cycle.red_at(t + 0.3) and not cycle.red_at(t - 0.3)
        for t, _ in crossing_times(path, 1, STOP_M, cycle.duration_s)
    )


def _allowed_class_near_miss(path: VehiclePath, rules: VehicleRules, cycle: Cycle) -> VehicleRules:
    """A car that drives in the truck-free lane for 3 s is a near miss of that rule."""
    if rules.kind is not Kind.CAR or ViolationType.FORBIDDEN_LANE in rules.near_misses:
        return rules
    inside = 0.0
    t = path.enter_s
    while t < cycle.duration_s:
        pos = path.position(t)
        if (
            pos is not None
            and LANE_EDGES[CLOSED_LANES[0]] <= pos[0] < LANE_EDGES[CLOSED_LANES[-1] + 1]
            and 16.0 < pos[1] < FAR_M
        ):
            inside += SAMPLE_S
        t += SAMPLE_S
    if inside < 3.0:
        return rules
    near = dict(rules.near_misses)
    near[ViolationType.FORBIDDEN_LANE] = "car in the lane closed to trucks and buses"
    return rules.model_copy(update={"near_misses": near})


@dataclass
class Schedule:
    cycle: Cycle
    placed: list[Scripted] = field(default_factory=list)
    tracks: list[npt.NDArray[np.float64]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def times(self) -> npt.NDArray[np.float64]:
        return np.arange(0.0, self.cycle.duration_s + 1e-9, SAMPLE_S)

    def place(self, rng: np.random.Generator, episode: Episode, tries: int = 200) -> bool:
        """Place ``episode`` at the first of its candidate lanes and anchors (a 0.1 s grid
        over its window, shuffled) where it fits; False when none does."""
        window = episode.window(self.cycle)
        if window is None or window[1] < window[0]:
            self.dropped.append(episode.name)
            return False
        times = self.times()
        grid = np.arange(window[0], window[1] + 1e-9, 0.1)
        candidates = [(lane, float(a)) for lane in episode.lanes for a in grid]
        order = rng.permutation(len(candidates))[:tries]
        for k in order:
            lane, anchor = candidates[int(k)]
            anchor = round(anchor, 2)
            motion, kind, violations, near = episode.build(rng, Placement(lane, anchor), self.cycle)
            vehicle_id = len(self.placed) + 1
            sprite = TRUCK_SPRITE if kind is Kind.TRUCK else int(rng.choice(CAR_SPRITES))
            path = motion.path(vehicle_id, sprite)
            track = _track(path, times)
            if not _fits(path, episode, self.cycle):
                continue
            if any(too_close(track, other) for other in self.tracks):
                continue
            rules = VehicleRules(
                vehicle_id=vehicle_id,
                kind=kind,
                episode=episode.name,
                violations={k: round(v, 3) for k, v in violations.items()},
                near_misses=near,
            )
            self.placed.append(Scripted(path, _allowed_class_near_miss(path, rules, self.cycle)))
            self.tracks.append(track)
            return True
        self.dropped.append(episode.name)
        return False


# -- the standard set ---------------------------------------------------------------------

Mix = tuple[tuple[tuple[str, int], ...], ...]
"""Groups of (episode, count): each group is placed, round-robin, before the next."""

JUNCTION_MIX: Mix = (
    (("back-out", 1), ("stop-over-line", 1)),
    (("red-runner", 8), ("yellow-crosser", 2), ("grace-crosser", 2)),
    (("queue-1", 3), ("queue-2", 3)),
    (
        ("truck-closed-lane", 4),
        ("speeder", 4),
        ("solid-line", 4),
        ("speed-near-miss", 3),
        ("solid-drift", 2),
        ("late-lane-change", 1),
        ("truck-open-lane", 1),
    ),
)
ROAD_MIX: Mix = (
    (("zone-stop", 5), ("wrong-way", 4), ("reverse", 5), ("zone-short-stop", 3), ("zone-creep", 1)),
    (
        ("truck-closed-lane", 3),
        ("speeder", 3),
        ("solid-line", 3),
        ("speed-near-miss", 3),
        ("solid-drift", 2),
        ("late-lane-change", 1),
        ("truck-brush", 1),
        ("truck-open-lane", 1),
    ),
)
# (height m, tilt deg, pan deg): a pole over the road's right edge looking along it.
CAMERAS: tuple[tuple[float, float, float], ...] = (
    (8.0, 14.0, 0.0),
    (9.0, 15.0, 1.5),
    (7.5, 13.0, -1.5),
    (8.5, 14.5, 1.0),
)
WIDTH, HEIGHT, FOCAL_PX = 960, 540, 900.0
SCENE_SECONDS = 28.0
JUNCTION_CYCLE = Cycle(SCENE_SECONDS, red_s=10.0, green_s=22.0)
ROAD_CYCLE = Cycle(SCENE_SECONDS)


def lamp_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the traffic light is drawn: top right, over the roadside."""
    w = max(6, width // 48)
    x1 = width - w
    y0 = max(4, height // 40)
    return (x1 - w, y0, x1, y0 + 3 * w)


@dataclass(frozen=True)
class RuleScene:
    spec: SceneSpec
    truth: RulesTruth
    layout: RoadLayout
    dropped: tuple[str, ...]


def script_scene(
    name: str,
    seed: int,
    camera: PinholeCamera,
    cycle: Cycle,
    mix: Mix,
    fps: float,
    effects: Effects,
) -> RuleScene:
    """Place the episodes of ``mix`` (in order, each as often as asked) on the road."""
    from edge.scene_layout import road_markings

    rng = np.random.default_rng(seed)
    schedule = Schedule(cycle)
    # Round by round, one of each kind still wanted, so every kind gets road space.
    for group in mix:
        for round_no in range(max(count for _, count in group)):
            for episode_name, count in group:
                if round_no < count:
                    schedule.place(rng, EPISODES[episode_name])
    head = SignalHeadSpec(lamp_box(camera.width, camera.height), cycle.phases())
    layout = road_layout(head.lamp_boxes())
    spec = SceneSpec(
        name=name,
        seed=seed,
        camera=camera,
        fps=fps,
        frames=math.ceil(cycle.duration_s * fps),
        vehicles=tuple(s.path for s in schedule.placed),
        effects=effects,
        signal=head,
        markings=road_markings(layout),
    )
    truth = RulesTruth(
        name=name,
        seed=seed,
        duration_s=cycle.duration_s,
        vehicles=[s.rules for s in schedule.placed],
    )
    return RuleScene(spec, truth, layout, tuple(schedule.dropped))


def standard_rule_scenes(seed: int = 2026, count: int = 9, fps: float = 8.0) -> list[RuleScene]:
    """The seeded standard set: junction scenes (a red phase) and road scenes (green
    throughout) in turn, cameras 7.5-9 m high, 960x540 at ``fps``, H.264."""
    rng = np.random.default_rng(seed)
    scenes = []
    for n in range(count):
        height_m, tilt, pan = CAMERAS[(n // 2) % len(CAMERAS)]
        camera = PinholeCamera(
            height_m=height_m, tilt_deg=tilt, focal_px=FOCAL_PX, width=WIDTH, height=HEIGHT,
            pan_deg=pan, offset_m=0.0,
        )  # fmt: skip
        junction = n % 3 == 0
        effects = Effects(
            blur_sigma_px=float(rng.choice([0.0, 0.6])),
            noise_sigma=float(rng.uniform(1, 3)),
            gain_start=float(rng.uniform(0.9, 1.05)),
            gain_end=float(rng.uniform(0.9, 1.05)),
            crf=int(rng.choice([21, 23, 25])),
        )
        scenes.append(
            script_scene(
                f"rules-{n:02d}-{'junction' if junction else 'road'}",
                seed + n,
                camera,
                JUNCTION_CYCLE if junction else ROAD_CYCLE,
                JUNCTION_MIX if junction else ROAD_MIX,
                fps,
                effects,
            )
        )
    return scenes


def with_name(scene: RuleScene, name: str) -> RuleScene:
    return replace(
        scene,
        spec=replace(scene.spec, name=name),
        truth=scene.truth.model_copy(update={"name": name}),
    )
