"""The scene's geometry in the plane the rules work in.

With a calibration (an image -> road-plane mapping) lines are projected to metres and the
rules measure distances on the road; without one they work in image pixels and the rules
that need metres say so. Areas (lanes, zones, turn paths) are tested in the image, where
they were drawn, on the vehicle's ground point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.rules import vi
from edge.rules.geometry import ImageToWorld, Point, Polygon, Polyline, side_of
from edge.rules.scene import XY, Lane, NoStoppingZone, SceneConfig, SceneError, SpeedTrap
from edge.rules.tracks import WorldTrackPoint

# Box jitter allowed between two road positions of a vehicle (m). A road position farther
# up the road than where one pixel of the image is this many metres is too far off to
# measure a distance from (about 100 m for a camera 8 m high with a focal length of 900 px).
JITTER_M = 1.5
MAX_M_PER_PX = JITTER_M


def _pts(xys: list[XY]) -> list[Point]:
    return [Point(float(x), float(y)) for x, y in xys]


@dataclass(frozen=True, slots=True)
class OrderedPair:
    """Two lines crossed in order by lawful travel; ``*_forward`` is the lawful side sign."""

    first: Polyline
    second: Polyline
    first_forward: int
    second_forward: int

    @classmethod
    def of(cls, first: Polyline, second: Polyline) -> OrderedPair:
        return cls(
            first=first,
            second=second,
            first_forward=side_of(first, second.midpoint()),
            second_forward=-side_of(second, first.midpoint()),
        )


@dataclass(frozen=True, slots=True)
class LaneAxis:
    """Road-plane coordinate along the lawful direction (metres); needs a calibration."""

    unit: Point | None
    centreline: Polyline | None

    def along(self, p: Point) -> float:
        if self.unit is not None:
            return p.dot(self.unit)
        assert self.centreline is not None
        return self.centreline.place(p).along


@dataclass(frozen=True, slots=True)
class LaneGeometry:
    config: Lane
    area: Polygon
    stop: OrderedPair | None
    direction_lines: OrderedPair | None
    axis: LaneAxis | None
    exemptions: tuple[tuple[str, Polygon], ...]

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def label(self) -> str:
        return vi.label("lane", self.config.id, self.config.name)

    @property
    def label_vi(self) -> str:
        return vi.lane_label(self.config.id, self.config.name)


@dataclass(frozen=True, slots=True)
class NamedLine:
    id: str
    name: str | None
    line: Polyline

    @property
    def label(self) -> str:
        return vi.label("solid line", self.id, self.name)

    @property
    def label_vi(self) -> str:
        return vi.solid_line_label(self.id, self.name)


@dataclass(frozen=True, slots=True)
class ZoneGeometry:
    config: NoStoppingZone
    area: Polygon

    @property
    def label(self) -> str:
        return vi.label("no-stopping zone", self.config.id, self.config.name)

    @property
    def label_vi(self) -> str:
        return vi.zone_label(self.config.id, self.config.name)


@dataclass(frozen=True, slots=True)
class TrapGeometry:
    config: SpeedTrap
    lines: OrderedPair


class SceneGeometry:
    """A scene config placed in the rules' plane (metres when calibrated, else pixels)."""

    def __init__(self, config: SceneConfig, to_world: ImageToWorld | None = None) -> None:
        self.config = config
        self._to_world = to_world
        self.metric = to_world is not None
        self.unit = "m" if self.metric else "px"

        def line(xys: list[XY]) -> Polyline:
            image = Polyline(_pts(xys))
            if to_world is None:
                return image
            world = [to_world(p) for p in image.points]
            if not all(math.isfinite(p.x) and math.isfinite(p.y) for p in world):
                raise SceneError(
                    f"scene {config.version}: the line through {xys} does not reach the road "
                    "plane (above the horizon of the calibration); redraw it lower in the image"
                )
            try:
                return Polyline(world)
            except ValueError as exc:
                raise SceneError(f"scene {config.version}: line {xys}: {exc}") from None

        settings = config.rules
        self.line_margin = settings.line_margin_m if self.metric else settings.line_margin_px
        self.stationary_radius = (
            settings.no_stopping.stationary_radius_m
            if self.metric
            else settings.no_stopping.stationary_radius_px
        )
        lanes = []
        for lane in config.lanes:
            stop = None
            if lane.stop_line is not None and lane.went_on_line is not None:
                stop = OrderedPair.of(line(lane.stop_line), line(lane.went_on_line))
            pair = axis = None
            d = lane.direction
            if d is not None and d.lines is not None:
                pair = OrderedPair.of(line(d.lines.first), line(d.lines.second))
            elif d is not None and d.vector is not None:
                v = Point(*d.vector)
                axis = LaneAxis(unit=v.scaled(1.0 / v.norm()), centreline=None)
            elif lane.world_centreline is not None:
                axis = LaneAxis(unit=None, centreline=Polyline(_pts(lane.world_centreline)))
            lanes.append(
                LaneGeometry(
                    config=lane,
                    area=Polygon(_pts(lane.polygon)),
                    stop=stop,
                    direction_lines=pair,
                    axis=axis,
                    exemptions=tuple(
                        (e.name, Polygon(_pts(e.polygon))) for e in lane.turn_exemptions
                    ),
                )
            )
        self.lanes: tuple[LaneGeometry, ...] = tuple(lanes)
        self.solid_lines: tuple[NamedLine, ...] = tuple(
            NamedLine(s.id, s.name, line(s.points)) for s in config.solid_lines
        )
        self.zones: tuple[ZoneGeometry, ...] = tuple(
            ZoneGeometry(z, Polygon(_pts(z.polygon))) for z in config.no_stopping_zones
        )
        self._lane_memo: dict[Point, LaneGeometry | None] = {}
        self.traps: tuple[TrapGeometry, ...] = tuple(
            TrapGeometry(t, OrderedPair.of(line(t.entry), line(t.exit))) for t in config.speed_traps
        )

    def position(self, p: WorldTrackPoint) -> Point | None:
        """The point in the rules' plane: road metres when calibrated, else image pixels."""
        if self.metric:
            return p.world
        return p.ground_px

    def place(self, ground_px: Point) -> Point | None:
        """An image point in the rules' plane (None where it does not reach the road)."""
        if self._to_world is None:
            return ground_px
        at = self._to_world(ground_px)
        return at if math.isfinite(at.x) and math.isfinite(at.y) else None

    def metres_per_px(self, ground_px: Point) -> float:
        """How far one pixel of the image moves a ground point there on the road: the
        farthest of its four neighbours a pixel away (infinite where one is off the road
        plane). Near the calibration's horizon it grows without bound, so a pixel or two
        of box jitter moves the road position there by metres. 0 without a calibration."""
        if self._to_world is None:
            return 0.0
        at = self._to_world(ground_px)
        far = 0.0
        for dx, dy in ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)):
            step = self._to_world(Point(ground_px.x + dx, ground_px.y + dy)).distance(at)
            if not math.isfinite(step):
                return math.inf
            far = max(far, step)
        return far

    def measures_distance(self, ground_px: Point) -> bool:
        """Whether a road position there can measure a distance: calibrated, and not so far
        up the road (near the calibration's horizon) that a pixel of box jitter moves it
        farther than the jitter allowed between two positions."""
        return self.metric and self.metres_per_px(ground_px) <= MAX_M_PER_PX

    def lane_at(self, p: WorldTrackPoint) -> LaneGeometry | None:
        # Several rules ask for the same point in the same frame: remember recent answers.
        key = p.ground_px
        if key in self._lane_memo:
            return self._lane_memo[key]
        found = next((lane for lane in self.lanes if lane.area.contains(key)), None)
        if len(self._lane_memo) >= 4096:
            self._lane_memo.clear()
        self._lane_memo[key] = found
        return found

    def lane_by_id(self, lane_id: str) -> LaneGeometry | None:
        return next((lane for lane in self.lanes if lane.id == lane_id), None)

    def distance_text(self, d: float) -> str:
        return f"{vi.number_en(d)} m" if self.metric else f"{vi.number_en(d, 0)} px"

    def distance_text_vi(self, d: float) -> str:
        return vi.distance(d, self.metric)
