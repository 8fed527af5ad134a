"""Plane geometry for the rules: points, polylines, polygons and debounced line sides.

The same code serves the road plane in metres (calibrated camera) and the image plane in
pixels (no calibration); the caller picks the margins in the matching unit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Point:
    """A point in one plane: image pixels or road-plane metres, depending on context."""

    x: float
    y: float

    def __sub__(self, other: Point) -> Point:
        return Point(self.x - other.x, self.y - other.y)

    def __add__(self, other: Point) -> Point:
        return Point(self.x + other.x, self.y + other.y)

    def scaled(self, k: float) -> Point:
        return Point(self.x * k, self.y * k)

    def dot(self, other: Point) -> float:
        return self.x * other.x + self.y * other.y

    def cross(self, other: Point) -> float:
        return self.x * other.y - self.y * other.x

    def norm(self) -> float:
        return math.hypot(self.x, self.y)

    def distance(self, other: Point) -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


ImageToWorld = Callable[[Point], Point]
"""Maps an image point (pixels) to the road plane (metres): the camera calibration's seam."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a point lies against a polyline: signed distance and arc length of its foot."""

    signed_distance: float
    along: float
    within: bool


class Polyline:
    """An open chain of segments. Positive side: left of the direction of travel a -> b."""

    def __init__(self, points: Sequence[Point]) -> None:
        if len(points) < 2:
            raise ValueError("a line needs at least two points")
        self.points: tuple[Point, ...] = tuple(points)
        lengths = [a.distance(b) for a, b in zip(self.points, self.points[1:], strict=False)]
        if any(n <= 0.0 for n in lengths):
            raise ValueError("a line has two equal consecutive points")
        # Per segment: start x, y, direction x, y, length, arc length at its start.
        self._segments: list[tuple[float, float, float, float, float, float]] = []
        total = 0.0
        for (a, b), n in zip(itertools.pairwise(self.points), lengths, strict=True):
            self._segments.append((a.x, a.y, b.x - a.x, b.y - a.y, n, total))
            total += n
        self.length = total

    def place(self, p: Point) -> Placement:
        """Signed distance to the nearest segment and arc length of the foot point.

        ``within`` is false when the foot falls beyond either end of the chain.
        """
        best_dist = math.inf
        best = Placement(0.0, 0.0, False)
        last = len(self._segments) - 1
        for i, (ax, ay, dx, dy, n, start) in enumerate(self._segments):
            px, py = p.x - ax, p.y - ay
            u = (px * dx + py * dy) / (n * n)
            uc = 0.0 if u < 0.0 else 1.0 if u > 1.0 else u
            fx, fy = px - dx * uc, py - dy * uc
            dist = math.hypot(fx, fy)
            if dist >= best_dist:
                continue
            best_dist = dist
            extend = (i == 0 and u < 0.0) or (i == last and u > 1.0)
            side = dx * py - dy * px
            best = Placement(
                signed_distance=math.copysign(dist, side) if dist > 0.0 else 0.0,
                along=start + (u if extend else uc) * n,
                within=(u >= 0.0 or i > 0) and (u <= 1.0 or i < last),
            )
        return best

    def midpoint(self) -> Point:
        return self.point_at(self.length / 2.0)

    def point_at(self, along: float) -> Point:
        along = min(max(along, 0.0), self.length)
        segment = next((s for s in self._segments if along <= s[5] + s[4]), self._segments[-1])
        ax, ay, dx, dy, n, start = segment
        u = (along - start) / n
        return Point(ax + dx * u, ay + dy * u)


class Polygon:
    """A simple polygon; membership by ray casting (boundary points may fall either way)."""

    def __init__(self, points: Sequence[Point]) -> None:
        if len(points) < 3:
            raise ValueError("a polygon needs at least three points")
        self.points: tuple[Point, ...] = tuple(points)

    def contains(self, p: Point) -> bool:
        inside = False
        pts = self.points
        j = len(pts) - 1
        for i in range(len(pts)):
            a, b = pts[i], pts[j]
            if (a.y > p.y) != (b.y > p.y):
                x_cross = a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y)
                if p.x < x_cross:
                    inside = not inside
            j = i
        return inside


@dataclass(frozen=True, slots=True)
class Crossing:
    """A confirmed crossing of a line by a track's reference point.

    ``t`` is interpolated where the signed distance changed sign; ``t_before`` and
    ``t_after`` are the sample times that bracket it (the evidence frames).
    """

    t: float
    t_before: float
    t_after: float
    to_side: int
    at: Point


class SideTracker:
    """The side of a line a moving point is on, with hysteresis against box jitter.

    The confirmed side changes only after ``confirm`` consecutive samples lie farther than
    ``margin`` on the other side; samples inside the band change nothing. A point whose foot
    falls beyond the line's ends resets the tracker, so going round the end of a line is
    not a crossing.
    """

    __slots__ = (
        "_confirm",
        "_last",
        "_line",
        "_margin",
        "_pending",
        "_pending_count",
        "_side",
        "_zero",
    )

    def __init__(self, line: Polyline, margin: float, confirm: int = 2) -> None:
        if margin < 0.0 or confirm < 1:
            raise ValueError("margin must be >= 0 and confirm >= 1")
        self._line = line
        self._margin = margin
        self._confirm = confirm
        self._side = 0
        self._pending = 0
        self._pending_count = 0
        self._last: tuple[float, float, Point] | None = None  # (t, signed distance, point)
        self._zero: tuple[float, float, float, Point] | None = None  # (t, before, after, at)

    @property
    def side(self) -> int:
        """+1 (left of the line's direction), -1 (right) or 0 (not yet known)."""
        return self._side

    def update(self, t: float, p: Point) -> Crossing | None:
        place = self._line.place(p)
        if not place.within:
            self._side = self._pending = self._pending_count = 0
            self._last = self._zero = None
            return None
        d = place.signed_distance
        if self._last is not None:
            t0, d0, p0 = self._last
            if (d0 < 0.0 <= d) or (d0 >= 0.0 > d):
                k = d0 / (d0 - d) if d0 != d else 0.0
                self._zero = (t0 + k * (t - t0), t0, t, p0 + (p - p0).scaled(k))
        self._last = (t, d, p)
        if abs(d) <= self._margin:
            return None
        s = 1 if d > 0.0 else -1
        if s == self._side:
            self._pending = self._pending_count = 0
            return None
        if s != self._pending:
            self._pending, self._pending_count = s, 0
        self._pending_count += 1
        if self._pending_count < self._confirm:
            return None
        previous = self._side
        self._side, self._pending, self._pending_count = s, 0, 0
        if previous == 0 or self._zero is None:
            return None
        zt, zb, za, at = self._zero
        return Crossing(t=zt, t_before=zb, t_after=za, to_side=s, at=at)


def side_of(line: Polyline, p: Point) -> int:
    """+1 or -1: which side of the line (by its nearest segment) a point lies on."""
    return 1 if line.place(p).signed_distance >= 0.0 else -1
