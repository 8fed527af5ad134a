"""Plate reading accuracy on the seeded synthetic set, per condition (day, night)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.plates.grammar import clean
from edge.plates.reader import FrameRead
from edge.plates.synth import Condition, PlateSample

Image8 = npt.NDArray[np.uint8]


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(read: str, truth: str) -> float:
    """1 - (edits to turn the reading into the truth) / truth length, plate characters only."""
    want = clean(truth)
    return max(0.0, 1.0 - edit_distance(clean(read), want) / max(len(want), 1))


@dataclass
class ConditionScore:
    samples: int = 0
    exact: int = 0
    chars: float = 0.0
    wrong_valid: int = 0  # read as a valid plate, but not the right one
    colour: int = 0

    def add(self, read: FrameRead, sample: PlateSample) -> None:
        self.samples += 1
        right = read.plate.valid and read.plate.text == sample.spec.text
        self.exact += right
        self.wrong_valid += read.plate.valid and not right
        self.chars += char_accuracy(read.plate.text, sample.spec.text)
        self.colour += read.colour is sample.spec.colour

    def summary(self) -> dict[str, float | int]:
        n = max(self.samples, 1)
        return {
            "exact": round(self.exact / n, 4),
            "char": round(self.chars / n, 4),
            "wrong_valid": round(self.wrong_valid / n, 4),
            "colour": round(self.colour / n, 4),
            "samples": self.samples,
        }


@dataclass
class PlateEval:
    by_condition: dict[Condition, ConditionScore] = field(default_factory=dict)

    def add(self, read: FrameRead, sample: PlateSample) -> None:
        self.by_condition.setdefault(sample.condition, ConditionScore()).add(read, sample)

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.by_condition.values())

    def report(self) -> dict[str, object]:
        out: dict[str, object] = {c.value: s.summary() for c, s in self.by_condition.items()}
        out["samples"] = self.samples
        return out


def evaluate(read: Callable[[Image8], FrameRead], samples: Iterable[PlateSample]) -> PlateEval:
    result = PlateEval()
    for sample in samples:
        result.add(read(sample.image), sample)
    return result
