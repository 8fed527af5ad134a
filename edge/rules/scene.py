"""Scene configuration of one camera: lanes, lines, zones, lamp regions, speed traps.

Geometry is given in image pixels of the camera's frame (what a person marks on a picture)
and, where a calibration exists, projected onto the road plane in metres. World geometry
(lane polygon or centreline, direction vector) is in road-plane metres of the camera's
calibration. Unknown keys are refused and every error names its key path.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from roadwatch.contract import VehicleClass
from roadwatch.contract.models import no_control_chars
from roadwatch.errors import UserError, validator_words
from roadwatch.yaml_load import YamlError, load_yaml

MAX_VERTICES = 64
MAX_ITEMS = 32

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


# Names go into explanations, which refuse the control characters the event does; a
# name is one line, without tabs either.
def _one_line_name(value: str) -> str:
    bad = re.search("[\x00-\x1f\x7f]", value)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad.group()):04X} is not allowed")
    return no_control_chars(value)


Name = Annotated[
    str, StringConstraints(min_length=1, max_length=80), AfterValidator(_one_line_name)
]
Coordinate = Annotated[float, Field(ge=-100_000.0, le=100_000.0, allow_inf_nan=False)]
XY = tuple[Coordinate, Coordinate]


def _distinct_steps(points: list[XY]) -> list[XY]:
    for j, (a, b) in enumerate(itertools.pairwise(points)):
        if a == b:
            raise ValueError(f"points {j} and {j + 1} are the same")
    return points


def _orientation(a: XY, b: XY, c: XY) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: XY, b: XY, p: XY) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: XY, b: XY, c: XY, d: XY) -> bool:
    """Whether segments ab and cd cross or touch."""
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0) != (o2 > 0) and o1 != 0 and o2 != 0) and (
        (o3 > 0) != (o4 > 0) and o3 != 0 and o4 != 0
    ):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def _simple_polygon(points: list[XY]) -> list[XY]:
    """An area a point can be inside of: distinct corners, not all on one line, and edges
    that meet only their neighbours, at their shared corner (a bow-tie's inside is not the
    area meant). A last point repeating the first (the polygon closed by hand) is allowed."""
    corners = points[:-1] if len(points) > 3 and points[0] == points[-1] else points
    n = len(corners)
    for j in range(n):
        if corners[j] == corners[(j + 1) % n]:
            raise ValueError(f"points {j} and {(j + 1) % n} are the same")
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    tiny = 1e-9 * max(max(xs) - min(xs), max(ys) - min(ys), 1.0) ** 2
    if all(abs(_orientation(corners[0], corners[1], c)) <= tiny for c in corners[2:]):
        raise ValueError("the polygon has no area: its points lie on one line")
    edges = [(corners[j], corners[(j + 1) % n]) for j in range(n)]
    for j in range(n):
        a, b = edges[j]
        for k in range(j + 2, n):
            if j == 0 and k == n - 1:
                continue  # neighbours across the closing corner
            if _segments_meet(a, b, *edges[k]):
                raise ValueError(
                    f"edges {j}-{(j + 1) % n} and {k}-{(k + 1) % n} cross: list the points in "
                    "order around the area (not a bow-tie)"
                )
        # The next edge shares corner b: it may turn, but not fold back along this one.
        c = edges[(j + 1) % n][1]
        back = (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1]) < 0
        if back and abs(_orientation(a, b, c)) <= tiny:
            raise ValueError(f"the polygon folds back on itself at point {(j + 1) % n}")
    return points


ImageLine = Annotated[
    list[XY], Field(min_length=2, max_length=MAX_VERTICES), AfterValidator(_distinct_steps)
]
ImagePolygon = Annotated[
    list[XY], Field(min_length=3, max_length=MAX_VERTICES), AfterValidator(_simple_polygon)
]
Kmh = Annotated[float, Field(gt=0.0, le=200.0)]


class SceneError(UserError):
    """A scene file that cannot be used; the message names the file and the key path."""


class SceneModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEKDAYS = tuple(Weekday)


_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")


def _local_clock(value: Any) -> Any:
    """A wall-clock time of the scene's zone, written ``'HH:MM'``. YAML reads an unquoted
    ``22:00`` as the number 1320 (base 60), which would otherwise pass as 00:22 UTC; a time
    with an offset would not compare with the local clock at all."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str) and _CLOCK.fullmatch(value):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and 60 <= value < 24 * 60:
            clock = f"{value // 60:02d}:{value % 60:02d}"
            raise ValueError(
                f"{value} is a number, not a time (YAML reads an unquoted {clock} as the "
                f"number {value}): quote it, '{clock}'"
            )
        raise ValueError(f"{value!r} is a number, not a time: quote it as 'HH:MM', e.g. '22:00'")
    raise ValueError(
        f"{value!r} is not a local time: write it quoted as 'HH:MM', e.g. '22:00', "
        "without a time zone (the scene's timezone applies)"
    )


LocalClock = Annotated[time, BeforeValidator(_local_clock)]


class TimeWindow(SceneModel):
    """Local-time window (the scene's time zone); ``end`` before ``start`` runs past midnight."""

    start: LocalClock = Field(description="local start time, 'HH:MM' (quoted in YAML)")
    end: LocalClock = Field(description="local end time, 'HH:MM' (quoted in YAML)")
    days: Annotated[list[Weekday], Field(min_length=1, max_length=7)] = list(WEEKDAYS)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError(
                "start and end are the same: the window is empty (to be in force at all"
                " times, leave out 'windows')"
            )
        return self

    def contains(self, local: datetime) -> bool:
        now = local.time()
        day = WEEKDAYS[local.weekday()]
        if self.start <= self.end:
            return day in self.days and self.start <= now < self.end
        if now >= self.start:
            return day in self.days
        # After midnight: the window belongs to the day it started on.
        return now < self.end and WEEKDAYS[(local.weekday() - 1) % 7] in self.days


class LaneClosure(SceneModel):
    """Vehicle classes barred from a lane, always or inside the given local-time windows."""

    classes: Annotated[list[VehicleClass], Field(min_length=1, max_length=8)]
    windows: Annotated[list[TimeWindow], Field(max_length=MAX_ITEMS)] = Field(
        default=[], description="empty: closed at all times"
    )


class OrderedLines(SceneModel):
    """Lawful travel crosses ``first`` and then ``second`` (image pixels)."""

    first: ImageLine
    second: ImageLine

    @model_validator(mode="after")
    def _two_lines(self) -> Self:
        if _same_line(self.first, self.second):
            raise ValueError(
                "first and second are the same line: lawful travel crosses one, then the other"
            )
        return self


class LaneDirection(SceneModel):
    """The lawful direction: a road-plane vector (metres) or two lines crossed in order."""

    vector: XY | None = Field(default=None, description="road-plane direction of travel")
    lines: OrderedLines | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.vector is None) == (self.lines is None):
            raise ValueError("give exactly one of 'vector' or 'lines'")
        if self.vector is not None and self.vector[0] == 0.0 and self.vector[1] == 0.0:
            raise ValueError("vector: must not be zero")
        return self


class TurnExemption(SceneModel):
    """A turn allowed on red (for example right turn where signed): its path region."""

    name: Name
    polygon: ImagePolygon


class Lane(SceneModel):
    id: Ident
    name: Name | None = None
    polygon: ImagePolygon = Field(description="lane surface in image pixels")
    world_polygon: (
        Annotated[
            list[XY], Field(min_length=3, max_length=MAX_VERTICES), AfterValidator(_simple_polygon)
        ]
        | None
    ) = None
    world_centreline: (
        Annotated[
            list[XY], Field(min_length=2, max_length=MAX_VERTICES), AfterValidator(_distinct_steps)
        ]
        | None
    ) = Field(default=None, description="road-plane centreline, ordered in travel direction")
    direction: LaneDirection | None = None
    allowed_classes: Annotated[list[VehicleClass], Field(min_length=1, max_length=8)] | None = (
        Field(default=None, description="classes allowed at all times; absent: every class")
    )
    closures: Annotated[list[LaneClosure], Field(max_length=MAX_ITEMS)] = []
    speed_limits_kmh: dict[VehicleClass, Kmh] = Field(
        default={}, description="limit per class; classes not listed use default_speed_limit_kmh"
    )
    default_speed_limit_kmh: Kmh | None = None
    stop_line: ImageLine | None = None
    went_on_line: ImageLine | None = Field(
        default=None, description="second line beyond the stop line: proof the vehicle went on"
    )
    signal_head: Ident = "main"
    turn_exemptions: Annotated[list[TurnExemption], Field(max_length=8)] = []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.world_polygon is not None and self.world_centreline is not None:
            raise ValueError("give at most one of 'world_polygon' or 'world_centreline'")
        if (self.stop_line is None) != (self.went_on_line is None):
            raise ValueError("'stop_line' and 'went_on_line' go together")
        stop, went_on = self.stop_line, self.went_on_line
        if stop is not None and went_on is not None and _same_line(stop, went_on):
            raise ValueError(
                "'stop_line' and 'went_on_line' are the same line: the second lies beyond"
                " the stop line"
            )
        return self

    def speed_limit(self, vehicle: VehicleClass) -> float | None:
        return self.speed_limits_kmh.get(vehicle, self.default_speed_limit_kmh)

    def closed_to(self, vehicle: VehicleClass, local: datetime) -> bool:
        if self.allowed_classes is not None and vehicle not in self.allowed_classes:
            return True
        return any(
            vehicle in c.classes and (not c.windows or any(w.contains(local) for w in c.windows))
            for c in self.closures
        )


class SolidLine(SceneModel):
    id: Ident
    name: Name | None = None
    points: ImageLine


class NoStoppingZone(SceneModel):
    id: Ident
    name: Name | None = None
    polygon: ImagePolygon
    windows: Annotated[list[TimeWindow], Field(max_length=MAX_ITEMS)] = Field(
        default=[], description="empty: in force at all times"
    )
    dwell_s: Annotated[float, Field(gt=0.0, le=3600.0)] | None = Field(
        default=None, description="overrides rules.no_stopping.dwell_s for this zone"
    )


Rect = tuple[
    Annotated[int, Field(ge=0, le=20_000)],
    Annotated[int, Field(ge=0, le=20_000)],
    Annotated[int, Field(ge=0, le=20_000)],
    Annotated[int, Field(ge=0, le=20_000)],
]


class SignalHead(SceneModel):
    """A signal head: image rectangles [x0, y0, x1, y1] (pixels, x1/y1 exclusive) of its
    lamps, or none when only the controller reports its phase."""

    id: Ident = "main"
    red: Rect | None = None
    yellow: Rect | None = None
    green: Rect | None = None

    @field_validator("red", "yellow", "green")
    @classmethod
    def _non_empty(cls, value: Rect | None) -> Rect | None:
        if value is not None and (value[2] <= value[0] or value[3] <= value[1]):
            raise ValueError("rectangle [x0, y0, x1, y1] needs x1 > x0 and y1 > y0")
        return value

    @model_validator(mode="after")
    def _all_or_none(self) -> Self:
        given = [r is not None for r in (self.red, self.yellow, self.green)]
        if any(given) and not all(given):
            raise ValueError("give all three lamp rectangles (red, yellow, green) or none")
        return self

    def lamps(self) -> tuple[Rect, Rect, Rect] | None:
        """The red, yellow and green rectangles; None for a controller-only head."""
        if self.red is None or self.yellow is None or self.green is None:
            return None
        return self.red, self.yellow, self.green


class SpeedTrap(SceneModel):
    """Two lines across the road a measured distance apart: section speed needs no homography."""

    id: Ident
    entry: ImageLine
    exit: ImageLine
    length_m: Annotated[float, Field(gt=0.5, le=2000.0)] = Field(
        description="distance between the lines measured on the road"
    )
    lane: Ident | None = None

    @model_validator(mode="after")
    def _two_lines(self) -> Self:
        if _same_line(self.entry, self.exit):
            raise ValueError(
                "entry and exit are the same line: a vehicle is timed from one to the other,"
                " length_m apart"
            )
        return self


class SpeedingSettings(SceneModel):
    enabled: bool = True
    tolerance_kmh: Annotated[float, Field(ge=0.0, le=50.0)] = Field(
        default=5.0, description="the lower bound must exceed the limit by more than this"
    )
    min_samples: Annotated[int, Field(ge=1, le=100)] = 3


class RedLightSettings(SceneModel):
    enabled: bool = True
    grace_s: Annotated[float, Field(ge=0.0, le=10.0)] = 0.5
    max_went_on_s: Annotated[float, Field(gt=0.0, le=600.0)] = Field(
        default=180.0, description="longest time from the stop line to the second line"
    )
    stopped_s: Annotated[float, Field(gt=0.0, le=60.0)] = Field(
        default=1.0,
        description="standing still this long over the line counts as having stopped",
    )


class WrongWaySettings(SceneModel):
    enabled: bool = True
    min_distance_m: Annotated[float, Field(gt=0.0, le=500.0)] = 8.0
    smoothing_samples: Annotated[int, Field(ge=1, le=50)] = 5


class ForbiddenLaneSettings(SceneModel):
    enabled: bool = True
    min_time_s: Annotated[float, Field(gt=0.0, le=600.0)] = 3.0
    min_distance_m: Annotated[float, Field(gt=0.0, le=1000.0)] = 20.0
    max_gap_s: Annotated[float, Field(ge=0.0, le=10.0)] = 0.5


class SolidLineSettings(SceneModel):
    enabled: bool = True


class NoStoppingSettings(SceneModel):
    enabled: bool = True
    dwell_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 30.0
    stationary_radius_m: Annotated[float, Field(gt=0.0, le=20.0)] = 1.5
    stationary_radius_px: Annotated[float, Field(gt=0.0, le=500.0)] = 12.0
    max_gap_s: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        default=0.5,
        description="longest absence from a zone (box jitter over its edge) that keeps a stop",
    )
    same_stop_gap_s: Annotated[float, Field(ge=0.0, le=3600.0)] = Field(
        default=300.0,
        description="a vehicle found standing where one was fined, within this long of that"
        " one's last sighting there, is taken as the same vehicle come back under a new"
        " track id (hidden meanwhile) and is not fined again for the same stop",
    )


class RuleSettings(SceneModel):
    line_margin_m: Annotated[float, Field(ge=0.0, le=5.0)] = Field(
        default=0.3, description="hysteresis band either side of a line, road plane"
    )
    line_margin_px: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        default=4.0, description="hysteresis band either side of a line, image plane"
    )
    confirm_samples: Annotated[int, Field(ge=1, le=30)] = 2
    forget_after_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 5.0
    speeding: SpeedingSettings = SpeedingSettings()
    red_light: RedLightSettings = RedLightSettings()
    wrong_way: WrongWaySettings = WrongWaySettings()
    forbidden_lane: ForbiddenLaneSettings = ForbiddenLaneSettings()
    solid_line: SolidLineSettings = SolidLineSettings()
    no_stopping: NoStoppingSettings = NoStoppingSettings()


class LampSettings(SceneModel):
    enter_ratio: Annotated[float, Field(gt=1.0, le=20.0)] = Field(
        default=1.8, description="a lamp turns on at this many times the others' colour strength"
    )
    exit_ratio: Annotated[float, Field(gt=1.0, le=20.0)] = Field(
        default=1.3, description="a lit lamp stays on down to this many times the others' strength"
    )
    min_strength: Annotated[float, Field(ge=0.0, le=255.0)] = Field(
        default=20.0, description="below this colour strength on every lamp the head reads off"
    )
    min_dwell_s: Annotated[float, Field(ge=0.0, le=10.0)] = 0.25
    controller_ttl_s: Annotated[float, Field(gt=0.0, le=600.0)] = Field(
        default=3.0, description="a controller message older than this no longer overrides the lamp"
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.exit_ratio > self.enter_ratio:
            raise ValueError("exit_ratio must not exceed enter_ratio")
        return self


class ImageSize(SceneModel):
    width: Annotated[int, Field(ge=16, le=16_384)]
    height: Annotated[int, Field(ge=16, le=16_384)]


class SceneConfig(SceneModel):
    version: Annotated[str, Field(pattern=r"^[ -~]{1,128}$")] = Field(
        description="configuration version, recorded in every violation"
    )
    camera: Ident
    timezone: str = "Asia/Ho_Chi_Minh"
    image_size: ImageSize
    lanes: Annotated[list[Lane], Field(min_length=1, max_length=16)]
    solid_lines: Annotated[list[SolidLine], Field(max_length=MAX_ITEMS)] = []
    no_stopping_zones: Annotated[list[NoStoppingZone], Field(max_length=MAX_ITEMS)] = []
    signal_heads: Annotated[list[SignalHead], Field(max_length=8)] = []
    lamp: LampSettings = LampSettings()
    speed_traps: Annotated[list[SpeedTrap], Field(max_length=MAX_ITEMS)] = []
    rules: RuleSettings = RuleSettings()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except IsADirectoryError:
            # tzdata keeps a region's zones in a folder of its name: not a zone itself.
            raise ValueError(
                f"{value!r} is a region, not a time zone (e.g. 'Asia/Ho_Chi_Minh')"
            ) from None
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        _unique("lanes", [lane.id for lane in self.lanes])
        _unique("solid_lines", [s.id for s in self.solid_lines])
        _unique("no_stopping_zones", [z.id for z in self.no_stopping_zones])
        _unique("signal_heads", [h.id for h in self.signal_heads])
        _unique("speed_traps", [s.id for s in self.speed_traps])
        heads = {h.id for h in self.signal_heads}
        lanes = {lane.id for lane in self.lanes}
        w, h = self.image_size.width, self.image_size.height
        for i, lane in enumerate(self.lanes):
            if lane.stop_line is not None and lane.signal_head not in heads:
                raise ValueError(
                    f"lanes.{i}.signal_head: {lane.signal_head!r} is not one of signal_heads"
                )
            _inside(f"lanes.{i}.polygon", lane.polygon, w, h)
            for key in ("stop_line", "went_on_line"):
                _inside(f"lanes.{i}.{key}", getattr(lane, key) or [], w, h)
            if lane.direction is not None and lane.direction.lines is not None:
                _inside(f"lanes.{i}.direction.lines.first", lane.direction.lines.first, w, h)
                _inside(f"lanes.{i}.direction.lines.second", lane.direction.lines.second, w, h)
        for i, lane in enumerate(self.lanes):
            for k, turn in enumerate(lane.turn_exemptions):
                _inside(f"lanes.{i}.turn_exemptions.{k}.polygon", turn.polygon, w, h)
        for i, s in enumerate(self.solid_lines):
            _inside(f"solid_lines.{i}.points", s.points, w, h)
        for i, z in enumerate(self.no_stopping_zones):
            _inside(f"no_stopping_zones.{i}.polygon", z.polygon, w, h)
        for i, head in enumerate(self.signal_heads):
            for key, r in zip(("red", "yellow", "green"), head.lamps() or (), strict=False):
                if r[2] > w or r[3] > h:
                    raise ValueError(f"signal_heads.{i}.{key}: rectangle leaves the {w}x{h} image")
        for i, trap in enumerate(self.speed_traps):
            if trap.lane is not None and trap.lane not in lanes:
                raise ValueError(f"speed_traps.{i}.lane: {trap.lane!r} is not one of lanes")
            _inside(f"speed_traps.{i}.entry", trap.entry, w, h)
            _inside(f"speed_traps.{i}.exit", trap.exit, w, h)
        return self

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_time(self, t: float) -> datetime:
        """The scene's local wall-clock time of a UTC epoch time ``t``."""
        return datetime.fromtimestamp(t, tz=self.zone())

    def clock_text(self, t: float) -> str:
        """``HH:MM:SS.mmm`` in local time, as a person reads it off the evidence overlay."""
        return self.local_time(t).strftime("%H:%M:%S.%f")[:-3]


def _same_line(a: list[XY], b: list[XY]) -> bool:
    """The same points, in either order: one line given twice."""
    return a == b or a == b[::-1]


def _unique(key: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"{key}.{i}.id: {value!r} is used twice")
        seen.add(value)


def _inside(key: str, points: list[XY], width: int, height: int) -> None:
    for j, (x, y) in enumerate(points):
        if not (0.0 <= x <= width and 0.0 <= y <= height):
            raise ValueError(f"{key}.{j}: ({x:g}, {y:g}) is outside the {width}x{height} image")


def _format_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = validator_words(err["msg"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_scene(data: Any, source: str = "scene") -> SceneConfig:
    """Validate a scene document; SceneError names the source and the key path."""
    if not isinstance(data, dict):
        raise SceneError(f"{source}: a scene is a mapping of keys, not {type(data).__name__}")
    try:
        return SceneConfig.model_validate(data)
    except ValidationError as exc:
        raise SceneError(f"{source}: {_format_error(exc)}") from None


def load_scene(path: Path) -> SceneConfig:
    """Read and validate a scene YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SceneError(f"scene file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneError(f"scene file {path} cannot be read: {exc}") from None
    try:
        data = load_yaml(text)
    except YamlError as exc:
        raise SceneError(f"{path}: not valid YAML: {exc}") from None
    return parse_scene(data, str(path))
