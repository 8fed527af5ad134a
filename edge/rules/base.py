"""What every rule shares: per-track memory, firing once, forgetting old tracks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Generic, Protocol, TypeVar

from edge.rules.plane import LaneGeometry, SceneGeometry
from edge.rules.tracks import (
    ClassVote,
    EvidenceTimes,
    TrackFrame,
    Violation,
    WorldTrackPoint,
)
from roadwatch.contract import LampColour, Measurement, SignalSource, VehicleClass, ViolationType


class PhaseSource(Protocol):
    """A signal head's phase history (edge.rules.signal.SignalState provides it)."""

    def phase_at(self, t: float) -> LampColour: ...

    def red_began(self, t: float) -> float | None: ...

    def source_at(self, t: float) -> SignalSource | None: ...

    def told_until(self) -> float:
        """Up to when the controller's account of the phases is told after the fact: the
        sent time of its latest message (a later message says whether a phase it reported
        still held). Infinite for a history known whole."""
        ...


Signals = Mapping[str, PhaseSource]
"""Signal heads by id."""


class RuleUnavailableError(Exception):
    """A rule cannot run on this scene as configured (for example, no calibration)."""


S = TypeVar("S")


class TrackMemory(Generic[S]):
    __slots__ = ("fired", "last_seen", "state", "vote")

    def __init__(self, state: S, t: float) -> None:
        self.state = state
        self.vote = ClassVote()
        self.last_seen = t
        self.fired = False


class TrackRule(ABC, Generic[S]):
    """A rule fed every frame's tracks; keeps bounded state per track, fires at most once."""

    rule: ClassVar[ViolationType]
    version: ClassVar[str]

    def __init__(self, scene: SceneGeometry) -> None:
        self.scene = scene
        self._tracks: dict[int, TrackMemory[S]] = {}
        self._local: tuple[float, datetime] | None = None  # the last local_time asked

    @abstractmethod
    def new_state(self) -> S: ...

    @abstractmethod
    def step(
        self, memory: TrackMemory[S], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        """Advance one track by one sample; a violation when the rule is satisfied."""

    def update(self, frame: TrackFrame, signals: Signals | None = None) -> list[Violation]:
        found: list[Violation] = []
        for p in frame.points:
            memory = self._tracks.get(p.track_id)
            if memory is None:
                memory = self._tracks[p.track_id] = TrackMemory(self.new_state(), p.t)
            memory.vote.add(p.vehicle_class)
            if not memory.fired:
                violation = self.step(memory, p, signals or {})
                if violation is not None:
                    memory.fired = True
                    found.append(violation)
            memory.last_seen = p.t
        horizon = frame.t - self.scene.config.rules.forget_after_s
        for track_id in [k for k, m in self._tracks.items() if m.last_seen < horizon]:
            del self._tracks[track_id]
        return found

    def carry_fired(self, old: TrackRule[S]) -> None:
        """Go on from ``old`` (this rule on the camera's scene before a new one): its
        tracks that fired stay fired, so a vehicle in view while the scene changed is not
        fined twice for one act; their other state starts afresh with the new scene."""
        for track_id, before in old._tracks.items():
            if before.fired:
                memory = self._tracks[track_id] = TrackMemory(self.new_state(), before.last_seen)
                memory.fired = True

    @property
    def tracks_held(self) -> int:
        return len(self._tracks)

    def violation(
        self,
        p: WorldTrackPoint,
        vehicle: VehicleClass,
        lane: LaneGeometry | None,
        t: float,
        evidence: EvidenceTimes,
        measured: Measurement,
        explanation: str,
        explanation_vi: str,
    ) -> Violation:
        config = self.scene.config
        return Violation(
            rule=self.rule,
            rule_version=self.version,
            config_version=config.version,
            camera=config.camera,
            track_id=p.track_id,
            vehicle_class=vehicle,
            lane=None if lane is None else lane.id,
            t=t,
            evidence=evidence,
            measured=measured,
            explanation=explanation,
            explanation_vi=explanation_vi,
        )

    def local_time(self, t: float) -> datetime:
        """The scene's local wall-clock time of frame time ``t``: worked out once per
        frame (every vehicle of a frame shares its time), not once per vehicle."""
        local = self._local
        if local is None or local[0] != t:
            local = self._local = (t, self.scene.config.local_time(t))
        return local[1]

    def clock(self, t: float) -> str:
        """A time of day as the evidence overlay prints it (in either language)."""
        return self.scene.config.clock_text(t)
