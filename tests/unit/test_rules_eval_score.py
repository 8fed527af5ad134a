"""Scoring emitted violations against scripted truth: matching, TP/FP/FN, time to emit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from calibration.scenes import BoxTruth, FrameTruth
from edge.rules_eval.score import (
    Emitted,
    SceneRun,
    TrackBox,
    iou,
    new_scores,
    score_scene,
    track_vehicle,
)
from edge.rules_eval.script import Kind, RulesTruth, VehicleRules
from roadwatch.contract import ViolationType

FPS = 10.0
HEIGHT = 540
A = (100.0, 100.0, 200.0, 200.0)  # vehicle 1's box
B = (400.0, 100.0, 500.0, 200.0)  # vehicle 2's box


def _truth(frames: int, *, b_from: int = 0) -> list[FrameTruth]:
    out = []
    for i in range(frames):
        boxes = [
            BoxTruth(
                vehicle_id=1,
                xyxy=A,
                world_m=(0.0, 20.0),
                contact_px=(150.0, 200.0),
                speed_kmh=40.0,
                visible=1.0,
            )
        ]
        if i >= b_from:
            boxes.append(
                BoxTruth(
                    vehicle_id=2,
                    xyxy=B,
                    world_m=(3.0, 20.0),
                    contact_px=(450.0, 200.0),
                    speed_kmh=40.0,
                    visible=1.0,
                )
            )
        out.append(FrameTruth(index=i, t=i / FPS, boxes=boxes))
    return out


def _tracks(
    frames: int, boxes: dict[int, tuple[float, float, float, float]]
) -> tuple[tuple[TrackBox, ...], ...]:
    return tuple(tuple(TrackBox(t, b) for t, b in boxes.items()) for _ in range(frames))


RULES_TRUTH = RulesTruth(
    name="s",
    seed=1,
    duration_s=2.0,
    vehicles=[
        VehicleRules(
            vehicle_id=1,
            kind=Kind.CAR,
            episode="red-runner",
            violations={ViolationType.RED_LIGHT: 0.5},
        ),
        VehicleRules(
            vehicle_id=2,
            kind=Kind.CAR,
            episode="yellow-crosser",
            near_misses={ViolationType.RED_LIGHT: "crossed before red"},
        ),
    ],
)


def test_iou_table() -> None:
    assert iou(A, A) == pytest.approx(1.0)
    assert iou(A, B) == 0.0
    assert iou(A, (150.0, 100.0, 250.0, 200.0)) == pytest.approx(1 / 3)


def test_a_track_is_the_vehicle_under_most_of_its_recent_boxes() -> None:
    truth = _truth(10)
    shifted = (110.0, 105.0, 210.0, 205.0)
    tracks = _tracks(10, {7: shifted, 8: (700.0, 300.0, 720.0, 320.0)})
    assert track_vehicle(7, 9, tracks, truth) == 1
    assert track_vehicle(8, 9, tracks, truth) is None  # over no vehicle
    assert track_vehicle(9, 9, tracks, truth) is None  # no such track


def test_a_track_that_switched_vehicles_counts_as_the_recent_one() -> None:
    truth = _truth(60)
    tracks = tuple((TrackBox(5, A if i < 20 else B),) for i in range(60))
    assert track_vehicle(5, 59, tracks, truth, window=40) == 2


@pytest.mark.parametrize(
    ("emitted", "tp", "fp", "fn", "flagged"),
    [
        ([], 0, 0, 1, 0),
        ([Emitted(ViolationType.RED_LIGHT, 7, 9)], 1, 0, 0, 0),
        ([Emitted(ViolationType.RED_LIGHT, 8, 9)], 0, 1, 1, 1),  # the near miss flagged
        (
            [Emitted(ViolationType.RED_LIGHT, 7, 8), Emitted(ViolationType.RED_LIGHT, 7, 9)],
            1,
            1,
            0,
            0,
        ),  # a second violation for one vehicle is a false alarm
        ([Emitted(ViolationType.RED_LIGHT, 99, 9)], 0, 1, 1, 0),  # a track over nothing
        ([Emitted(ViolationType.SPEEDING, 7, 9)], 0, 1, 1, 0),  # right vehicle, wrong rule
    ],
)
def test_scoring_table(emitted: list[Emitted], tp: int, fp: int, fn: int, flagged: int) -> None:
    truth = _truth(10)
    tracks = tuple(
        (TrackBox(7, A), TrackBox(8, B), TrackBox(99, (700.0, 300.0, 720.0, 320.0)))
        for _ in range(10)
    )
    scores = new_scores()
    score_scene(SceneRun("s", FPS, tracks, tuple(emitted)), RULES_TRUTH, truth, HEIGHT, scores)
    red = scores[ViolationType.RED_LIGHT]
    wrong = sum(s.false_positives for r, s in scores.items() if r is not ViolationType.RED_LIGHT)
    assert (red.true_positives, red.false_positives + wrong, red.false_negatives) == (tp, fp, fn)
    assert red.violators == 1 and red.near_misses == 1
    assert red.near_misses_flagged == flagged


def test_time_to_emit_runs_from_the_moment_or_from_coming_into_view() -> None:
    truth = _truth(20)
    tracks = _tracks(20, {7: A})
    scores = new_scores()
    run = SceneRun("s", FPS, tracks, (Emitted(ViolationType.RED_LIGHT, 7, 12),))
    score_scene(run, RULES_TRUTH, truth, HEIGHT, scores)
    assert scores[ViolationType.RED_LIGHT].delays_s == pytest.approx([0.7])
    # Came into full view only at frame 10 (its contact point was below the image before).
    late = [
        f.model_copy(
            update={"boxes": [b.model_copy(update={"contact_px": (150.0, 600.0)}) for b in f.boxes]}
        )
        if f.index < 10
        else f
        for f in truth
    ]
    scores = new_scores()
    score_scene(run, RULES_TRUTH, late, HEIGHT, scores)
    assert scores[ViolationType.RED_LIGHT].delays_s == pytest.approx([0.2])


def test_precision_and_recall_of_nothing_are_zero_not_undefined() -> None:
    s = new_scores()[ViolationType.SPEEDING]
    assert s.precision == 0.0 and s.recall == 0.0
    assert s.summary()["median_time_to_emit_s"] is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "roadwatch", "eval", "rules", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count must be 1-100"),
        (["missing.mp4"], "missing.mp4: scene file missing"),
    ],
)
def test_eval_rules_refuses_bad_arguments_with_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    proc = _cli(*[str(tmp_path / a) if a.endswith(".mp4") else a for a in args])
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
