"""How closely a model variant (half precision, say) reproduces its reference's detections.

Detections of the same frames from both models are paired greedily by IoU (highest first,
same class not required, so a class flip shows up as disagreement rather than as a miss).
The report gives, over the reference's confident boxes, the share found again, the worst
and the 99th-percentile corner shift in pixels, the worst score difference and the share
whose class agrees; boxes near the threshold may appear in one model and not the other
without meaning anything, so only boxes at or above ``confident`` count as misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.boxes import iou
from edge.detections import Detections


@dataclass(frozen=True)
class ParityReport:
    frames: int
    reference_boxes: int
    matched: int
    class_agreement: float
    max_shift_px: float
    p99_shift_px: float
    max_score_diff: float

    @property
    def recall(self) -> float:
        return self.matched / self.reference_boxes if self.reference_boxes else 1.0

    def within(self, *, shift_px: float, score: float, recall: float, classes: float) -> bool:
        return (
            self.recall >= recall
            and self.class_agreement >= classes
            and self.max_shift_px <= shift_px
            and self.max_score_diff <= score
        )

    def describe(self) -> str:
        return (
            f"{self.frames} frames, {self.reference_boxes} confident reference boxes:"
            f" {self.recall:.1%} found again, classes agree {self.class_agreement:.1%},"
            f" corner shift max {self.max_shift_px:.2f} px (p99 {self.p99_shift_px:.2f}),"
            f" score difference max {self.max_score_diff:.4f}"
        )


def _pairs(a: Detections, b: Detections, min_iou: float) -> list[tuple[int, int]]:
    if len(a) == 0 or len(b) == 0:
        return []
    overlap = iou(a.xyxy, b.xyxy)
    pairs: list[tuple[int, int]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        i, j = divmod(int(flat), overlap.shape[1])
        if overlap[i, j] < min_iou:
            break
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def compare(
    reference: Sequence[Detections],
    candidate: Sequence[Detections],
    *,
    confident: float = 0.5,
    min_iou: float = 0.5,
) -> ParityReport:
    """Agreement of ``candidate`` with ``reference``, frame by frame."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference frames but {len(candidate)} candidate")
    counted = matched = same_class = 0
    shifts: list[float] = []
    score_diffs: list[float] = [0.0]
    for ref, cand in zip(reference, candidate, strict=True):
        strong = ref.confidence >= confident
        counted += int(strong.sum())
        for i, j in _pairs(ref, cand, min_iou):
            if not strong[i]:
                continue
            matched += 1
            same_class += int(ref.class_id[i] == cand.class_id[j])
            shifts.append(float(np.abs(ref.xyxy[i] - cand.xyxy[j]).max()))
            score_diffs.append(abs(float(ref.confidence[i]) - float(cand.confidence[j])))
    return ParityReport(
        frames=len(reference),
        reference_boxes=counted,
        matched=matched,
        class_agreement=same_class / matched if matched else 1.0,
        max_shift_px=max(shifts, default=0.0),
        p99_shift_px=float(np.percentile(shifts, 99)) if shifts else 0.0,
        max_score_diff=max(score_diffs),
    )
