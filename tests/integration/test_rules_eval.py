"""`roadwatch eval rules` on one small scripted scene: a whole edge node (detector,
tracker, calibration, lamp reading, rules, evidence) and the per-rule scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration.camera import PinholeCamera
from calibration.scene_render import load_assets
from calibration.scenes import Effects
from edge.pipeline import DetectorPool
from edge.rules_eval.run import run_scene, scene_files, write_rule_scene
from edge.rules_eval.score import new_scores, score_scene
from edge.rules_eval.script import SPRITES_NEEDED, Cycle, script_scene
from roadwatch.contract import ViolationType
from tests.edge_support import shared_detector
from tests.services import SHARED_DATA, require_shared_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIX = (
    (("red-runner", 2), ("yellow-crosser", 1)),
    (("truck-closed-lane", 1), ("speeder", 1), ("solid-line", 1)),
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared_file("kraten_cars.mp4")
    folder = tmp_path_factory.mktemp("rules")
    camera = PinholeCamera(height_m=8, tilt_deg=14, focal_px=900, width=960, height=540)
    scripted = script_scene(
        "small", 5, camera, Cycle(13.0, red_s=5.0, green_s=11.0), MIX, 8.0, Effects(crf=23)
    )
    assert not scripted.dropped
    assets = load_assets(SHARED_DATA, max_sprites=SPRITES_NEEDED)
    return write_rule_scene(scripted, assets, folder).video


def test_a_scripted_scene_through_a_node_scores_every_rule(scene: Path) -> None:
    files = scene_files([scene])[0]
    result = run_scene(files, DetectorPool(load=lambda _cfg: shared_detector()), "test-model")
    scores = new_scores()
    outcomes = score_scene(
        result.run, result.rules, result.truth.frames, result.truth.camera.height, scores
    )
    red = scores[ViolationType.RED_LIGHT]
    assert red.violators == 2 and red.near_misses == 1
    assert red.true_positives == 2, outcomes
    for rule in (ViolationType.FORBIDDEN_LANE, ViolationType.SPEEDING, ViolationType.SOLID_LINE):
        assert scores[rule].violators == 1
        assert scores[rule].true_positives == 1, (rule, outcomes)
    assert sum(s.false_positives for s in scores.values()) == 0, outcomes
    assert all(0.0 <= d < 3.0 for s in scores.values() for d in s.delays_s)
    assert result.packages == result.violations == len(result.run.emitted)


def test_scene_arguments_need_all_four_files(scene: Path, tmp_path: Path) -> None:
    from roadwatch.errors import UserError

    (tmp_path / "lonely.mp4").write_bytes(scene.read_bytes())
    with pytest.raises(UserError, match=r"lonely\.truth\.json"):
        scene_files([tmp_path / "lonely.mp4"])
