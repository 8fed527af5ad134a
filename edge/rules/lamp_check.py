"""Checking a lamp configuration against hand-labelled phases of a recording."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.rules.scene import LampSettings
from edge.rules.signal import LampStrengths, SignalState
from roadwatch.contract import LampColour


class PhaseLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first_frame: Annotated[int, Field(ge=0)]
    phase: LampColour


class PhaseLabels(BaseModel):
    """Hand-labelled phases of one signal head in a clip: the first frame of each phase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: str
    frames: Annotated[int, Field(ge=1)]
    head: str = "main"
    phases: Annotated[list[PhaseLabel], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> PhaseLabels:
        starts = [p.first_frame for p in self.phases]
        if starts[0] != 0 or starts != sorted(set(starts)) or starts[-1] >= self.frames:
            raise ValueError("phases must start at frame 0 and increase within the clip")
        return self

    def per_frame(self) -> list[LampColour]:
        out: list[LampColour] = []
        bounds = [p.first_frame for p in self.phases[1:]] + [self.frames]
        for label, end in zip(self.phases, bounds, strict=True):
            out.extend([label.phase] * (end - label.first_frame))
        return out


@dataclass(frozen=True, slots=True)
class LampCheck:
    frames: int
    online_accuracy: float
    """Share of frames whose phase, as known at that frame, matches the label."""
    history_accuracy: float
    """Share of frames whose phase, as the history tells it at the end, matches the label."""
    worst_start_error_frames: int
    """Largest difference between a labelled phase start and the recorded one, in frames."""


def check_lamps(
    strengths: Sequence[LampStrengths], fps: float, labels: PhaseLabels, settings: LampSettings
) -> LampCheck:
    """Run the lamp reader over a clip's per-frame lamp strengths and score it."""
    if len(strengths) != labels.frames:
        raise ValueError(f"clip has {len(strengths)} frames, the labels say {labels.frames}")
    truth = labels.per_frame()
    state = SignalState(labels.head, settings)
    online = [state.on_lamp(i / fps, x) for i, x in enumerate(strengths)]
    history = [state.phase_at(i / fps) for i in range(len(strengths))]
    errors = []
    for label in labels.phases[1:]:
        starts = [round(s.began_at * fps) for s in state.history.spans if s.colour is label.phase]
        errors.append(min((abs(s - label.first_frame) for s in starts), default=labels.frames))
    n = len(truth)
    return LampCheck(
        frames=n,
        online_accuracy=sum(a is b for a, b in zip(online, truth, strict=True)) / n,
        history_accuracy=sum(a is b for a, b in zip(history, truth, strict=True)) / n,
        worst_start_error_frames=max(errors, default=0),
    )
