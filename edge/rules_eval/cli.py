"""``roadwatch eval rules``: per-rule precision and recall of the whole edge pipeline on
generated scenes with scripted violators and near misses."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser(
        "rules",
        help="precision, recall and time to emit of every violation rule on scripted scenes",
        description="Runs generated scenes (real road and vehicle imagery, a drawn traffic "
        "light, scripted violators and near misses for every rule) through a whole edge "
        "node (detector, tracker, calibration, speed, lamp reading, rules, evidence) and "
        "prints per-rule precision, recall and time to emit. Without SCENES it generates "
        "the standard seeded set.",
    )
    rules.add_argument(
        "scenes",
        type=Path,
        nargs="*",
        metavar="SCENE",
        help="NAME.mp4 with NAME.truth.json, NAME.rules.json and NAME.scene.yaml beside",
    )
    rules.add_argument("--json", action="store_true", help="print one JSON line for scripts")
    rules.add_argument("--seed", type=int, default=2026, help="seed of the standard set")
    rules.add_argument("--count", type=int, default=9, help="scenes in the standard set")
    rules.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="sample media folder (scene imagery)"
    )
    rules.add_argument(
        "--keep", type=Path, default=None, help="write the generated scenes into this folder"
    )
    rules.add_argument("--verbose", action="store_true", help="list every violation and every miss")
    rules.set_defaults(func=_rules)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _rules(args: argparse.Namespace) -> int:
    from calibration.scene_render import load_assets
    from edge.pipeline import DetectorPool
    from edge.rules_eval.run import SceneFiles, run_scene, scene_files, write_rule_scene
    from edge.rules_eval.score import Outcome, new_scores, score_scene
    from edge.rules_eval.script import RULES, SPRITES_NEEDED, standard_rule_scenes
    from models.registry import model_entry
    from roadwatch.errors import UserError

    if not 1 <= args.count <= 100:
        raise UserError("--count must be 1-100")
    started = time.monotonic()
    given = scene_files(args.scenes) if args.scenes else None
    name = "yolov8n-coco-dynamic"
    model_version = f"{name}@{model_entry(name).sha256[:12]}"
    detectors = DetectorPool()
    scores = new_scores()
    outcomes: list[Outcome] = []
    frames = packages = violations = 0
    with tempfile.TemporaryDirectory(prefix="roadwatch-rule-scenes-") as tmp:
        folder = args.keep or Path(tmp)
        if not folder.is_dir():
            raise UserError(f"{folder}: folder does not exist")
        scenes = standard_rule_scenes(args.seed, args.count) if given is None else None
        assets = load_assets(args.data, max_sprites=SPRITES_NEEDED) if scenes else None
        total = len(given) if given is not None else len(scenes or [])
        for n in range(total):
            files: SceneFiles
            if given is not None:
                files = given[n]
            else:
                assert scenes is not None and assets is not None
                scene = scenes[n]
                size = f"{scene.spec.frames} frames, {len(scene.spec.vehicles)} vehicles"
                _say(f"[{n + 1}/{total}] rendering {scene.spec.name} ({size})")
                files = write_rule_scene(scene, assets, folder)
            _say(f"[{n + 1}/{total}] running {files.video.name} through the edge node")
            result = run_scene(files, detectors, model_version)
            found = score_scene(
                result.run, result.rules, result.truth.frames, result.truth.camera.height, scores
            )
            outcomes.extend(found)
            frames += len(result.run.tracks)
            packages += result.packages
            violations += result.violations
            wrong = [o for o in found if o.kind != "tp"]
            _say(f"[{n + 1}/{total}] {result.run.name}: {len(result.run.emitted)} violations, "
                 f"{len(wrong)} wrong ({result.seconds:.0f} s)")  # fmt: skip
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps({
            "rules": {r.value: scores[r].summary() for r in RULES},
            "scenes": total, "frames": frames, "evidence_packages": packages,
            "violations": violations, "seconds": round(seconds, 1),
        }))  # fmt: skip
        return 0
    if args.verbose:
        for o in outcomes:
            where = f"{o.scene} vehicle {o.vehicle_id} ({o.episode})" if o.vehicle_id else o.scene
            delay = f" after {o.delay_s:.2f} s" if o.delay_s is not None else ""
            print(
                f"{o.kind.upper()} {o.rule.value}: {where}, track {o.track_id}{delay}: {o.detail}"
            )
    else:
        for o in outcomes:
            if o.kind != "tp":
                where = f"vehicle {o.vehicle_id} ({o.episode})" if o.vehicle_id else "no vehicle"
                print(f"{o.kind.upper()} {o.rule.value} in {o.scene}, {where}: {o.detail}")
    print()
    print(f"{'rule':<15} {'precision':>9} {'recall':>7} {'TP':>4} {'FP':>4} {'FN':>4} "
          f"{'near misses (flagged)':>22} {'time to emit median / max':>26}")  # fmt: skip
    for rule in RULES:
        s = scores[rule]
        d = s.summary()
        emit = (f"{d['median_time_to_emit_s']:.2f} / {d['max_time_to_emit_s']:.2f} s"
                if s.delays_s else "-")  # fmt: skip
        print(f"{rule.value:<15} {s.precision:>9.3f} {s.recall:>7.3f} {s.true_positives:>4} "
              f"{s.false_positives:>4} {s.false_negatives:>4} "
              f"{f'{s.near_misses} ({s.near_misses_flagged})':>22} {emit:>26}")  # fmt: skip
    print(f"\n{total} scenes, {frames} frames, {violations} violations, {packages} evidence "
          f"packages, {seconds:.0f} s")  # fmt: skip
    return 0
