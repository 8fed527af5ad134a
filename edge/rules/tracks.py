"""What the rules eat (world track points) and what they emit (violations)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from edge.rules.geometry import Point
from roadwatch.contract import (
    Measurement,
    PlateReading,
    VehicleClass,
    ViolationEvent,
    ViolationType,
    new_event_id,
)
from roadwatch.contract.models import MAX_LONG_TEXT


@dataclass(frozen=True, slots=True)
class ImageBox:
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True, slots=True)
class WorldTrackPoint:
    """One tracked vehicle in one frame.

    ``t`` is the frame's capture time in UTC epoch seconds (camera clock corrected), so
    rules can read local time windows and controller messages share the clock.
    ``ground_px`` is the image point where the vehicle meets the road (bottom centre of the
    box unless the tracker knows better); ``world`` is that point on the road plane in
    metres, None without a calibration. Speeds come from the calibration's estimator.
    """

    track_id: int
    t: float
    vehicle_class: VehicleClass
    box: ImageBox
    ground_px: Point
    world: Point | None = None
    speed_kmh: float | None = None
    speed_uncertainty_kmh: float | None = None


@dataclass(frozen=True, slots=True)
class TrackFrame:
    """Every tracked vehicle of one frame, at time ``t`` (the rules' clock)."""

    t: float
    points: tuple[WorldTrackPoint, ...]


@dataclass(frozen=True, slots=True)
class EvidenceTimes:
    """Frame times for the evidence pictures: before, at and after the decisive moment."""

    before: float
    at: float
    after: float


@dataclass(frozen=True, slots=True)
class Violation:
    rule: ViolationType
    rule_version: str
    config_version: str
    camera: str
    track_id: int
    vehicle_class: VehicleClass
    lane: str | None
    t: float
    evidence: EvidenceTimes
    measured: Measurement
    explanation: str
    # (the same in Vietnamese, for the reviewing officer: edge.rules.vi)
    explanation_vi: str | None = None

    def to_event(
        self,
        *,
        site: str,
        node: str,
        model_version: str,
        plate: PlateReading | None = None,
        camera_clock_offset_s: float = 0.0,
        place: str | None = None,
    ) -> ViolationEvent:
        """The unsigned contract event for this violation (evidence is added by delivery)."""
        return ViolationEvent(
            event_id=new_event_id(),
            type=self.rule,
            site=site,
            node=node,
            camera=self.camera,
            lane=self.lane,
            occurred_at=datetime.fromtimestamp(self.t, tz=UTC),
            camera_clock_offset_s=camera_clock_offset_s,
            vehicle_class=self.vehicle_class,
            track_id=self.track_id,
            plate=plate,
            measured=self.measured,
            explanation=_fitted(self.explanation),
            explanation_vi=None if self.explanation_vi is None else _fitted(self.explanation_vi),
            place=place,
            model_version=model_version,
            rule_version=self.rule_version,
            config_version=self.config_version,
        )


def _fitted(text: str) -> str:
    """An explanation cut to what the event holds (a stop across many named zones can be
    explained past it): the violation is kept, its text ending in an ellipsis."""
    if len(text) <= MAX_LONG_TEXT:
        return text
    return text[: MAX_LONG_TEXT - 1] + "…"


class ClassVote:
    """A track's vehicle class by majority over its frames, so one mislabelled box is outvoted."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[VehicleClass] = Counter()

    def add(self, vehicle: VehicleClass) -> None:
        self._counts[vehicle] += 1

    @property
    def winner(self) -> VehicleClass:
        if not self._counts:
            return VehicleClass.UNKNOWN
        return max(self._counts.items(), key=lambda kv: (kv[1], kv[0].value))[0]
