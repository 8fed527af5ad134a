"""Scoring the red-light rule against hand labels of a real recording."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.rules.geometry import Point
from edge.rules.tracks import Violation
from roadwatch.contract import VehicleClass
from roadwatch.errors import UserError
from roadwatch.yaml_load import YamlError, load_yaml


class _Label(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelledCrossing(_Label):
    frame: Annotated[int, Field(ge=0)]
    at: tuple[float, float]


class LabelledVehicle(_Label):
    """One vehicle that passed the stop line during red, as a person saw it."""

    id: Annotated[str, Field(min_length=1, max_length=40)]
    kind: VehicleClass
    stop_line: LabelledCrossing
    second_line: Annotated[int, Field(ge=0)] | None = None
    violation: bool
    beside_stop_line: bool = False
    note: str = ""


class RedLightLabels(_Label):
    clip: str
    clip_start: datetime = Field(description="local time of the first frame (camera overlay)")
    red_frames: tuple[int, int]
    vehicles: list[LabelledVehicle]

    @classmethod
    def load(cls, path: Path) -> RedLightLabels:
        try:
            return cls.model_validate(load_yaml(path.read_text("utf-8")))
        except (OSError, YamlError, ValidationError) as exc:
            raise UserError(f"labels {path}: {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True, slots=True)
class Match:
    label: str
    track_id: int
    frame_error: int
    x_error_px: float


@dataclass(frozen=True, slots=True)
class FalseAlarm:
    track_id: int
    frame: int
    at: Point


@dataclass(frozen=True, slots=True)
class RedLightScore:
    matches: tuple[Match, ...]
    false_alarms: tuple[FalseAlarm, ...]
    missed: tuple[str, ...]

    @property
    def precision(self) -> float:
        found = len(self.matches) + len(self.false_alarms)
        return len(self.matches) / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = len(self.matches) + len(self.missed)
        return len(self.matches) / wanted if wanted else 1.0


def score_red_light(
    violations: Sequence[Violation],
    ground: Mapping[int, Mapping[int, Point]],
    labels: RedLightLabels,
    *,
    t0: float,
    fps: float,
    max_frames: int = 6,
    max_px: float = 40.0,
) -> RedLightScore:
    """Pair violations with labelled violators, closest pairs first, each at most once.

    A violation's frame is that of its stop-line crossing; its place is the track's ground
    point in the frame nearest to it (``ground``: track id -> frame -> point). A pair needs
    both within ``max_frames`` and ``max_px`` (across the road); closeness is the frame
    difference plus a tenth of the pixel difference.
    """
    wanted = [v for v in labels.vehicles if v.violation]
    places: list[tuple[int, Point]] = []
    for v in violations:
        frame = round((v.t - t0) * fps)
        seen = ground.get(v.track_id, {})
        near = min(seen, key=lambda f: abs(f - frame), default=None)
        places.append((frame, seen[near] if near is not None else Point(math.nan, math.nan)))
    pairs: list[tuple[float, int, int]] = []
    for i, (frame, at) in enumerate(places):
        for j, label in enumerate(wanted):
            df = abs(label.stop_line.frame - frame)
            dx = abs(at.x - label.stop_line.at[0])
            if df <= max_frames and dx <= max_px:
                pairs.append((df + dx / 10.0, i, j))
    matches: list[Match] = []
    used_v: set[int] = set()
    used_l: set[int] = set()
    for _, i, j in sorted(pairs):
        if i in used_v or j in used_l:
            continue
        used_v.add(i)
        used_l.add(j)
        frame, at = places[i]
        label = wanted[j]
        matches.append(
            Match(
                label.id,
                violations[i].track_id,
                abs(label.stop_line.frame - frame),
                abs(at.x - label.stop_line.at[0]),
            )
        )
    false_alarms = [
        FalseAlarm(violations[i].track_id, places[i][0], places[i][1])
        for i in range(len(violations))
        if i not in used_v
    ]
    missed = sorted(label.id for j, label in enumerate(wanted) if j not in used_l)
    matches.sort(key=lambda m: m.label)
    return RedLightScore(tuple(matches), tuple(false_alarms), tuple(missed))
