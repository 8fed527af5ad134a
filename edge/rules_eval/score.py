"""Scoring emitted violations against scripted ground truth, per rule.

A violation names a track; the track is the scripted vehicle whose true boxes it overlaps
(IoU >= ``MATCH_IOU``) in most of its frames up to the moment the violation was emitted.
Per rule: a true positive is the first violation of that rule for a vehicle scripted to
break it; any other violation of the rule (another vehicle, an unmatched track, a second
one for the same vehicle) is a false positive; a scripted violator without one is a false
negative. Time to emit runs from the scripted moment (or from when the vehicle came into
full view, if later) to the frame on which the rule fired.

Pure: no I/O.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from calibration.scenes import FrameTruth
from edge.rules_eval.script import RULES, RulesTruth
from roadwatch.contract import ViolationType

MATCH_IOU = 0.3
MATCH_WINDOW_FRAMES = 40
IN_VIEW_VISIBLE = 0.6

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class TrackBox:
    track_id: int
    xyxy: Box


@dataclass(frozen=True, slots=True)
class Emitted:
    """A violation as the rules emitted it: rule, track and the frame it fired on."""

    rule: ViolationType
    track_id: int
    frame: int
    explanation: str = ""


@dataclass(frozen=True)
class SceneRun:
    """What the pipeline did on one scene: tracked boxes per frame and violations."""

    name: str
    fps: float
    tracks: tuple[tuple[TrackBox, ...], ...]
    emitted: tuple[Emitted, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    scene: str
    rule: ViolationType
    kind: str
    """``tp``, ``fp`` or ``fn``."""
    vehicle_id: int | None
    episode: str | None
    track_id: int | None
    delay_s: float | None
    detail: str


@dataclass
class RuleScore:
    rule: ViolationType
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    violators: int = 0
    near_misses: int = 0
    near_misses_flagged: int = 0
    delays_s: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        emitted = self.true_positives + self.false_positives
        return self.true_positives / emitted if emitted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.violators if self.violators else 0.0

    def summary(self) -> dict[str, float | int | None]:
        delays = self.delays_s
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "violators": self.violators,
            "near_misses": self.near_misses,
            "near_misses_flagged": self.near_misses_flagged,
            "median_time_to_emit_s": round(statistics.median(delays), 2) if delays else None,
            "max_time_to_emit_s": round(max(delays), 2) if delays else None,
        }


def iou(a: Box, b: Box) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def track_vehicle(
    track_id: int,
    until_frame: int,
    tracks: Sequence[Sequence[TrackBox]],
    truth: Sequence[FrameTruth],
    window: int = MATCH_WINDOW_FRAMES,
) -> int | None:
    """The vehicle a track followed in most of its last ``window`` frames up to
    ``until_frame``; None when no vehicle has the majority."""
    votes: Counter[int] = Counter()
    seen = 0
    for index in range(max(0, until_frame - window + 1), min(until_frame + 1, len(tracks))):
        box = next((b.xyxy for b in tracks[index] if b.track_id == track_id), None)
        if box is None or index >= len(truth):
            continue
        seen += 1
        best, best_iou = None, MATCH_IOU
        for t in truth[index].boxes:
            overlap = iou(box, t.xyxy)
            if overlap >= best_iou:
                best, best_iou = t.vehicle_id, overlap
        if best is not None:
            votes[best] += 1
    if not votes:
        return None
    vehicle, count = votes.most_common(1)[0]
    return vehicle if count * 2 > seen else None


def in_view_from(truth: Sequence[FrameTruth], image_height: int) -> dict[int, float]:
    """When each vehicle is first in full view: mostly visible, touching the road in view."""
    out: dict[int, float] = {}
    for frame in truth:
        for box in frame.boxes:
            if box.vehicle_id in out:
                continue
            if box.visible >= IN_VIEW_VISIBLE and box.contact_px[1] < image_height - 1:
                out[box.vehicle_id] = frame.t
    return out


def score_scene(
    run: SceneRun,
    rules: RulesTruth,
    truth: Sequence[FrameTruth],
    image_height: int,
    scores: dict[ViolationType, RuleScore],
) -> list[Outcome]:
    """Add one scene's outcomes to ``scores`` (per rule); the outcomes, for reporting."""
    vehicles = {v.vehicle_id: v for v in rules.vehicles}
    in_view = in_view_from(truth, image_height)
    outcomes: list[Outcome] = []
    credited: set[tuple[ViolationType, int]] = set()
    flagged: set[tuple[ViolationType, int]] = set()
    for e in sorted(run.emitted, key=lambda e: e.frame):
        if e.rule not in scores:
            scores[e.rule] = RuleScore(e.rule)
        score = scores[e.rule]
        vehicle_id = track_vehicle(e.track_id, e.frame, run.tracks, truth)
        vehicle = vehicles.get(vehicle_id) if vehicle_id is not None else None
        t = e.frame / run.fps
        if (
            vehicle is not None
            and e.rule in vehicle.violations
            and (e.rule, vehicle.vehicle_id) not in credited
        ):
            credited.add((e.rule, vehicle.vehicle_id))
            moment = max(vehicle.violations[e.rule], in_view.get(vehicle.vehicle_id, 0.0))
            delay = t - moment
            score.true_positives += 1
            score.delays_s.append(delay)
            outcomes.append(
                Outcome(
                    run.name,
                    e.rule,
                    "tp",
                    vehicle.vehicle_id,
                    vehicle.episode,
                    e.track_id,
                    delay,
                    e.explanation,
                )
            )
            continue
        score.false_positives += 1
        why = (
            "no scripted vehicle under the track"
            if vehicle is None
            else (
                "second violation for the same vehicle"
                if e.rule in vehicle.violations
                else vehicle.near_misses.get(e.rule, "not scripted to break this rule")
            )
        )
        if vehicle is not None and e.rule in vehicle.near_misses:
            flagged.add((e.rule, vehicle.vehicle_id))
        outcomes.append(
            Outcome(
                run.name,
                e.rule,
                "fp",
                vehicle_id,
                vehicle.episode if vehicle else None,
                e.track_id,
                None,
                f"{why} at {t:.1f} s: {e.explanation}",
            )
        )
    for rule in RULES:
        score = scores.setdefault(rule, RuleScore(rule))
        for v in rules.vehicles:
            if rule in v.near_misses:
                score.near_misses += 1
                score.near_misses_flagged += (rule, v.vehicle_id) in flagged
            if rule not in v.violations:
                continue
            score.violators += 1
            if (rule, v.vehicle_id) not in credited:
                score.false_negatives += 1
                outcomes.append(
                    Outcome(
                        run.name,
                        rule,
                        "fn",
                        v.vehicle_id,
                        v.episode,
                        None,
                        None,
                        f"scripted at {v.violations[rule]:.1f} s, no {rule.value} emitted",
                    )
                )
    return outcomes


def new_scores() -> dict[ViolationType, RuleScore]:
    return {rule: RuleScore(rule) for rule in RULES}
