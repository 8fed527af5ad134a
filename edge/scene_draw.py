"""Draws a scene configuration over a camera frame, so a person can check it by eye."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import numpy.typing as npt

from edge.rules.scene import XY, SceneConfig

Image = npt.NDArray[np.uint8]

# BGR colours by element kind.
LANE = (255, 200, 0)
STOP = (0, 0, 255)
WENT_ON = (0, 140, 255)
DIRECTION = (0, 255, 0)
SOLID = (255, 255, 255)
ZONE = (255, 0, 255)
TRAP = (255, 255, 0)
EXEMPT = (0, 255, 255)
LAMPS = {"red": (0, 0, 255), "yellow": (0, 215, 255), "green": (0, 200, 0)}


def _poly(points: list[XY]) -> npt.NDArray[np.int32]:
    return np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)


def _label(image: Image, text: str, at: XY, colour: tuple[int, int, int]) -> None:
    x, y = round(at[0]), round(at[1])
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def _line(image: Image, points: list[XY], colour: tuple[int, int, int], width: int) -> None:
    cv2.polylines(image, [_poly(points)], False, colour, width, cv2.LINE_AA)


def _dashed(image: Image, points: list[XY], colour: tuple[int, int, int], dash: float = 8) -> None:
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) // dash))
        for k in range(0, n, 2):
            a = (x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n)
            b = (x0 + (x1 - x0) * (k + 1) / n, y0 + (y1 - y0) * (k + 1) / n)
            _line(image, [a, b], colour, 2)


def _mid(points: list[XY]) -> XY:
    xs, ys = zip(*points, strict=True)
    return (sum(xs) / len(xs), sum(ys) / len(ys))


def draw_scene(frame: Image, scene: SceneConfig) -> Image:
    """A copy of ``frame`` (BGR) with the scene's lanes, lines, zones and lamps drawn on it."""
    image = frame.copy()
    shade = image.copy()
    for zone in scene.no_stopping_zones:
        cv2.fillPoly(shade, [_poly(zone.polygon)], ZONE)
    for lane in scene.lanes:
        for exemption in lane.turn_exemptions:
            cv2.fillPoly(shade, [_poly(exemption.polygon)], EXEMPT)
    cv2.addWeighted(shade, 0.25, image, 0.75, 0.0, dst=image)
    for lane in scene.lanes:
        cv2.polylines(image, [_poly(lane.polygon)], True, LANE, 1, cv2.LINE_AA)
        closed = [c.value for c in lane.allowed_classes] if lane.allowed_classes else []
        limits = ", ".join(f"{k.value} {v:g}" for k, v in lane.speed_limits_kmh.items())
        text = f"lane {lane.id}" + (f" only {'/'.join(closed)}" if closed else "")
        cx, cy = _mid(lane.polygon)
        _label(image, text, (cx - 30, cy), LANE)
        if limits or lane.default_speed_limit_kmh:
            limit = limits or f"{lane.default_speed_limit_kmh:g}"
            _label(image, f"{limit} km/h", (cx - 30, cy + 16), LANE)
        if lane.stop_line is not None:
            _line(image, lane.stop_line, STOP, 3)
            _label(image, f"stop {lane.id}", lane.stop_line[-1], STOP)
        if lane.went_on_line is not None:
            _dashed(image, lane.went_on_line, WENT_ON)
            _label(image, f"went on {lane.id}", lane.went_on_line[-1], WENT_ON)
        if lane.direction is not None and lane.direction.lines is not None:
            first, second = lane.direction.lines.first, lane.direction.lines.second
            _dashed(image, first, DIRECTION)
            _dashed(image, second, DIRECTION)
            a, b = _mid(first), _mid(second)
            cv2.arrowedLine(
                image,
                (int(a[0]), int(a[1])),
                (int(b[0]), int(b[1])),
                DIRECTION,
                2,
                cv2.LINE_AA,
                tipLength=0.08,
            )
        for exemption in lane.turn_exemptions:
            _label(image, exemption.name, _mid(exemption.polygon), EXEMPT)
    for solid in scene.solid_lines:
        _line(image, solid.points, SOLID, 2)
        _label(image, f"solid {solid.id}", solid.points[0], SOLID)
    for zone in scene.no_stopping_zones:
        cv2.polylines(image, [_poly(zone.polygon)], True, ZONE, 2, cv2.LINE_AA)
        _label(image, f"no stopping {zone.id}", _mid(zone.polygon), ZONE)
    for trap in scene.speed_traps:
        _line(image, trap.entry, TRAP, 2)
        _line(image, trap.exit, TRAP, 2)
        _label(image, f"trap {trap.id} {trap.length_m:g} m", trap.entry[-1], TRAP)
    for head in scene.signal_heads:
        lamps = head.lamps()
        if lamps is None:
            continue
        for (x0, y0, x1, y1), colour in zip(lamps, LAMPS.values(), strict=True):
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, 1)
        _label(image, head.id, (lamps[0][2] + 3, lamps[0][1] + 8), LAMPS["red"])
    _label(image, f"{scene.camera} scene {scene.version}", (8, scene.image_size.height - 10), LANE)
    return image
