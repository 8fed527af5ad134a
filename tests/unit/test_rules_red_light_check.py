"""Scoring the red-light rule against hand labels; the Hanoi labels themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.rules.geometry import Point
from edge.rules.red_light_check import RedLightLabels, score_red_light
from edge.rules.tracks import EvidenceTimes, Violation
from roadwatch.contract import Measurement, VehicleClass, ViolationType
from roadwatch.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
HANOI = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.redlight.yaml"
PHASES = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.phases.yaml"
FPS = 10.0

LABELS = RedLightLabels.model_validate(
    {
        "clip": "clip.mp4",
        "clip_start": "2022-09-25T16:44:47",
        "red_frames": [0, 500],
        "vehicles": [
            {
                "id": "x",
                "kind": "motorcycle",
                "stop_line": {"frame": 100, "at": [300, 400]},
                "violation": True,
            },
            {
                "id": "y",
                "kind": "motorcycle",
                "stop_line": {"frame": 104, "at": [360, 400]},
                "violation": True,
            },
            {
                "id": "z",
                "kind": "car",
                "stop_line": {"frame": 300, "at": [200, 400]},
                "violation": True,
            },
            {
                "id": "w",
                "kind": "car",
                "stop_line": {"frame": 320, "at": [200, 400]},
                "violation": False,
            },
        ],
    }
)


def violation(track_id: int, frame: int) -> Violation:
    t = frame / FPS
    return Violation(
        rule=ViolationType.RED_LIGHT,
        rule_version="red_light/1",
        config_version="c",
        camera="cam",
        track_id=track_id,
        vehicle_class=VehicleClass.MOTORCYCLE,
        lane="1",
        t=t,
        evidence=EvidenceTimes(t, t, t),
        measured=Measurement(),
        explanation="",
    )


def test_each_violation_takes_the_nearest_labelled_violator_once() -> None:
    found = [violation(1, 103), violation(2, 101), violation(3, 102), violation(4, 321)]
    ground = {
        1: {103: Point(362, 398)},  # y, by place though x is nearer in time
        2: {100: Point(305, 401)},  # x (nearest recorded frame)
        3: {102: Point(330, 400)},  # a second track near both, after they are taken
        4: {321: Point(200, 400)},  # the car that is labelled as no violation
    }
    score = score_red_light(found, ground, LABELS, t0=0.0, fps=FPS)
    assert [(m.label, m.track_id) for m in score.matches] == [("x", 2), ("y", 1)]
    assert [f.track_id for f in score.false_alarms] == [3, 4]
    assert score.missed == ("z",)
    assert score.precision == pytest.approx(0.5) and score.recall == pytest.approx(2 / 3)


def test_the_hanoi_labels_are_consistent_with_the_phase_labels() -> None:
    labels = RedLightLabels.load(HANOI)
    phases = yaml.safe_load(PHASES.read_text("utf-8"))["phases"]
    red = next(p["first_frame"] for p in phases if p["phase"] == "red")
    green = next(p["first_frame"] for p in phases if p["phase"] == "green")
    assert tuple(labels.red_frames) == (red, green - 1)
    assert len({v.id for v in labels.vehicles}) == len(labels.vehicles) == 15
    for v in labels.vehicles:
        assert red <= v.stop_line.frame < green, v.id
        assert v.second_line is None or v.second_line > v.stop_line.frame, v.id
        x, y = v.stop_line.at
        assert 0 <= x < 640 and 380 <= y <= 400, v.id


def test_bad_labels_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "labels.yaml"
    bad.write_text("clip: c.mp4\nred_frames: [1, 2]\nvehicles: []\nextra: 1\n", "utf-8")
    with pytest.raises(UserError, match=r"labels .*labels\.yaml"):
        RedLightLabels.load(bad)
