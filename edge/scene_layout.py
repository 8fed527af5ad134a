"""A straight road described in road metres, turned into a camera's scene file.

Generated scenes know their road exactly: lanes as strips across the road, a stop line,
a solid lane line, a no-stopping zone. ``scene_document`` draws that road into the image
of a known camera (the pixels a person would mark on a picture) and keeps the road-plane
geometry beside it; ``road_markings`` gives the paint the scene renderer puts on the road.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.camera import PinholeCamera
from calibration.scenes import RoadMarking
from roadwatch.contract import VehicleClass

LINE_WIDTH_M = 0.2
STOP_LINE_WIDTH_M = 0.4
YELLOW_PAINT = (40, 200, 230)


@dataclass(frozen=True)
class LaneStrip:
    """A lane between two offsets across the road; traffic goes along +y (away)."""

    id: str
    x0: float
    x1: float
    name: str | None = None
    closed_to: tuple[VehicleClass, ...] = ()

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass(frozen=True)
class SolidStretch:
    """A solid line along the road at ``x`` from ``y0`` to ``y1`` (no lane change there)."""

    id: str
    x: float
    y0: float
    y1: float


@dataclass(frozen=True)
class ZoneStretch:
    """A no-stopping zone over lanes ``x0``..``x1`` from ``y0`` to ``y1``."""

    id: str
    x0: float
    x1: float
    y0: float
    y1: float
    dwell_s: float | None = None


@dataclass(frozen=True)
class RoadLayout:
    """A one-way road seen from behind its traffic, in road metres of the camera's plane."""

    version: str
    camera_id: str
    lanes: tuple[LaneStrip, ...]
    near_m: float
    far_m: float
    speed_limit_kmh: float
    stop_line_m: float | None = None
    went_on_m: float | None = None
    lamp_boxes: tuple[tuple[int, int, int, int], ...] | None = None
    """Red, yellow and green lamp rectangles of the signal head, image pixels."""
    solid_lines: tuple[SolidStretch, ...] = ()
    zones: tuple[ZoneStretch, ...] = ()
    rules: dict[str, object] = field(default_factory=dict)

    def lane_at(self, x: float) -> LaneStrip | None:
        return next((lane for lane in self.lanes if lane.x0 <= x < lane.x1), None)


def _pixels(camera: PinholeCamera, world: list[tuple[float, float]]) -> list[list[float]]:
    pixels = camera.project(np.array(world, dtype=np.float64))
    if not np.isfinite(pixels).all():
        raise ValueError("a scene point is behind the camera")
    return [[round(float(u), 1), round(float(v), 1)] for u, v in pixels]


def near_edge_m(camera: PinholeCamera, x: float = 0.0) -> float:
    """The road distance (m) seen on the image's bottom row at offset ``x``, plus a margin."""
    lo, hi = 0.5, 500.0
    for _ in range(60):
        mid = (lo + hi) / 2
        v = camera.project(np.array([[x, mid]]))[0, 1]
        if np.isfinite(v) and v < camera.height - 1:
            hi = mid
        else:
            lo = mid
    return hi + 0.1


def _strip(x0: float, x1: float, y0: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def scene_document(layout: RoadLayout, camera: PinholeCamera) -> dict[str, object]:
    """The scene file (``edge.rules.scene``) of ``layout`` seen by ``camera``."""
    near = max(layout.near_m, max(near_edge_m(camera, x) for lane in layout.lanes
                                  for x in (lane.x0, lane.x1)))  # fmt: skip
    lanes: list[dict[str, object]] = []
    for lane in layout.lanes:
        entry: dict[str, object] = {
            "id": lane.id,
            "polygon": _pixels(camera, _strip(lane.x0, lane.x1, near, layout.far_m)),
            "world_polygon": [list(p) for p in _strip(lane.x0, lane.x1, near, layout.far_m)],
            "direction": {"vector": [0.0, 1.0]},
            "default_speed_limit_kmh": layout.speed_limit_kmh,
        }
        if lane.name:
            entry["name"] = lane.name
        if lane.closed_to:
            entry["closures"] = [{"classes": [c.value for c in lane.closed_to]}]
        if layout.stop_line_m is not None and layout.went_on_m is not None:
            # A little wider than the lane, so a vehicle off its lane's centre still crosses.
            x0, x1 = lane.x0 - 0.5, lane.x1 + 0.5
            entry["stop_line"] = _pixels(
                camera, [(x0, layout.stop_line_m), (x1, layout.stop_line_m)]
            )
            entry["went_on_line"] = _pixels(
                camera, [(x0, layout.went_on_m), (x1, layout.went_on_m)]
            )
        lanes.append(entry)
    doc: dict[str, object] = {
        "version": layout.version,
        "camera": layout.camera_id,
        "image_size": {"width": camera.width, "height": camera.height},
        "lanes": lanes,
        "solid_lines": [
            {"id": s.id, "points": _pixels(camera, [(s.x, s.y0), (s.x, s.y1)])}
            for s in layout.solid_lines
        ],
        "no_stopping_zones": [
            {"id": z.id, "polygon": _pixels(camera, _strip(z.x0, z.x1, z.y0, z.y1))}
            | ({"dwell_s": z.dwell_s} if z.dwell_s is not None else {})
            for z in layout.zones
        ],
        "rules": dict(layout.rules),
    }
    if layout.lamp_boxes is not None:
        red, yellow, green = layout.lamp_boxes
        doc["signal_heads"] = [{"id": "main", "red": list(red), "yellow": list(yellow),
                                "green": list(green)}]  # fmt: skip
    return doc


def road_markings(layout: RoadLayout) -> tuple[RoadMarking, ...]:
    """The paint of ``layout``: stop line, second line (dashed across), solid lines."""
    out: list[RoadMarking] = []
    x0 = min(lane.x0 for lane in layout.lanes)
    x1 = max(lane.x1 for lane in layout.lanes)
    if layout.stop_line_m is not None:
        y = layout.stop_line_m
        out.append(RoadMarking(tuple(_strip(x0, x1, y, y + STOP_LINE_WIDTH_M))))
    for s in layout.solid_lines:
        half = LINE_WIDTH_M / 2
        out.append(RoadMarking(tuple(_strip(s.x - half, s.x + half, s.y0, s.y1))))
    for z in layout.zones:
        for x in (z.x0 + 0.15, z.x1 - 0.15):
            out.append(
                RoadMarking(tuple(_strip(x - 0.1, x + 0.1, z.y0, z.y1)), colour=YELLOW_PAINT)
            )
    return tuple(out)
