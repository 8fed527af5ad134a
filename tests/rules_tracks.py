"""Synthetic scenes and tracks for the violation-rule tables.

The synthetic camera is 1000x1000 px looking straight down at 10 px per metre, so image
point (x, y) is road point (x/10, y/10) m. Lawful travel in lanes 1 and 2 is up the image
(y decreasing). Times are UTC epoch seconds from T0 = 14:03:00 local (Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.rules.base import Signals, TrackRule
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry
from edge.rules.scene import SceneConfig, parse_scene
from edge.rules.signal import PhaseHistory
from edge.rules.tracks import ImageBox, TrackFrame, Violation, WorldTrackPoint
from roadwatch.contract import LampColour, SignalSource, VehicleClass

T0 = datetime(2026, 11, 23, 7, 3, 0, tzinfo=UTC).timestamp()  # 14:03:00 in Hanoi
PX_PER_M = 10.0
FPS = 10.0

BASE: dict[str, Any] = {
    "version": "synthetic/7",
    "camera": "cam-test",
    "image_size": {"width": 1000, "height": 1000},
    "lanes": [
        {
            "id": "1",
            "polygon": [[400, 0], [600, 0], [600, 1000], [400, 1000]],
            "direction": {
                "lines": {"first": [[400, 800], [600, 800]], "second": [[400, 600], [600, 600]]}
            },
            "speed_limits_kmh": {"car": 60, "motorcycle": 50},
            "default_speed_limit_kmh": 60,
            "closures": [{"classes": ["truck"]}],
            "stop_line": [[400, 500], [600, 500]],
            "went_on_line": [[400, 400], [600, 400]],
            "signal_head": "main",
            "turn_exemptions": [
                {"name": "right turn", "polygon": [[560, 410], [600, 410], [600, 490], [560, 490]]}
            ],
        },
        {
            "id": "2",
            "polygon": [[600, 0], [800, 0], [800, 1000], [600, 1000]],
            "direction": {"vector": [0, -1]},
            "default_speed_limit_kmh": 80,
            "closures": [
                {"classes": ["motorcycle"], "windows": [{"start": "06:00", "end": "09:00"}]}
            ],
        },
    ],
    "solid_lines": [{"id": "divider", "points": [[600, 100], [600, 900]]}],
    "no_stopping_zones": [
        {"id": "shoulder", "polygon": [[800, 200], [1000, 200], [1000, 800], [800, 800]]}
    ],
    "signal_heads": [
        {
            "id": "main",
            "red": [10, 10, 20, 20],
            "yellow": [10, 20, 20, 30],
            "green": [10, 30, 20, 40],
        }
    ],
    "speed_traps": [
        {
            "id": "t1",
            "entry": [[400, 900], [600, 900]],
            "exit": [[400, 700], [600, 700]],
            "length_m": 20,
            "lane": "1",
        }
    ],
}


def scene_config(**changes: Any) -> SceneConfig:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return parse_scene(data)


def to_world(p: Point) -> Point:
    return Point(p.x / PX_PER_M, p.y / PX_PER_M)


def geometry(metric: bool = True, **changes: Any) -> SceneGeometry:
    return SceneGeometry(scene_config(**changes), to_world if metric else None)


@dataclass(frozen=True)
class Track:
    """A scripted track: ground point (px) and optional speed at each sample time (s from T0)."""

    track_id: int
    samples: Sequence[tuple[float, float, float]]  # (s, x, y)
    vehicle: VehicleClass = VehicleClass.CAR
    speeds: Sequence[tuple[float, float]] | None = None  # (km/h, uncertainty) per sample
    classes: Sequence[VehicleClass] | None = None  # per-sample class override

    def points(self, metric: bool) -> list[WorldTrackPoint]:
        out = []
        for i, (s, x, y) in enumerate(self.samples):
            speed = self.speeds[i] if self.speeds is not None else (None, None)
            vehicle = self.classes[i] if self.classes is not None else self.vehicle
            ground = Point(x, y)
            out.append(
                WorldTrackPoint(
                    track_id=self.track_id,
                    t=T0 + s,
                    vehicle_class=vehicle,
                    box=ImageBox(x - 20, y - 40, x + 20, y),
                    ground_px=ground,
                    world=to_world(ground) if metric else None,
                    speed_kmh=speed[0],
                    speed_uncertainty_kmh=speed[1],
                )
            )
        return out


def line_path(
    start: tuple[float, float], end: tuple[float, float], t0: float, t1: float
) -> list[tuple[float, float, float]]:
    """Samples at FPS from (x, y) ``start`` at t0 to ``end`` at t1, straight and steady."""
    n = max(1, round((t1 - t0) * FPS))
    return [
        (
            t0 + (t1 - t0) * k / n,
            start[0] + (end[0] - start[0]) * k / n,
            start[1] + (end[1] - start[1]) * k / n,
        )
        for k in range(n + 1)
    ]


def hold(
    at: tuple[float, float], t0: float, t1: float, jitter: float = 0.0
) -> list[tuple[float, float, float]]:
    """Samples standing at ``at`` from t0 to t1 (exclusive of t0), with +-jitter px alternating."""
    n = max(1, round((t1 - t0) * FPS))
    return [
        (t0 + (t1 - t0) * k / n, at[0] + jitter * (-1) ** k, at[1] - jitter * (-1) ** k)
        for k in range(1, n + 1)
    ]


def frames(tracks: Iterable[Track], metric: bool) -> list[TrackFrame]:
    by_time: dict[float, list[WorldTrackPoint]] = {}
    for track in tracks:
        for p in track.points(metric):
            by_time.setdefault(round(p.t, 6), []).append(p)
    return [TrackFrame(t, tuple(ps)) for t, ps in sorted(by_time.items())]


def run(
    rule: TrackRule[Any], tracks: Iterable[Track], signals: Signals | None = None
) -> list[Violation]:
    found: list[Violation] = []
    for frame in frames(tracks, rule.scene.metric):
        found.extend(rule.update(frame, signals))
    return found


def signal_plan(
    *phases: tuple[float, LampColour], source: SignalSource = SignalSource.LAMP
) -> dict[str, PhaseHistory]:
    """Signal head 'main' with phases beginning at the given seconds from T0, read from
    the lamp image (or told by ``source``)."""
    history = PhaseHistory()
    for s, colour in phases:
        history.record(colour, T0 + s, source)
    return {"main": history}


def perspective(p: Point) -> Point:
    """A camera 8 m above the road looking along it (focal 900 px), its horizon at image
    row 50: row 880 is 8.7 m away, row 150 72 m, row 60 720 m (one pixel there: 72 m).
    Road y grows away from the camera."""
    if p.y <= 50:
        return Point(math.nan, math.nan)
    ahead = 7200.0 / (p.y - 50.0)
    return Point((p.x - 500.0) * ahead / 900.0, ahead)


def frames_in_perspective(tracks: Iterable[Track]) -> list[TrackFrame]:
    """The tracks' frames with each road position as ``perspective`` places it."""
    return [
        TrackFrame(
            f.t, tuple(dataclasses.replace(p, world=perspective(p.ground_px)) for p in f.points)
        )
        for f in frames(tracks, True)
    ]
