"""``roadwatch eval speed``: speed accuracy of the real pipeline on ground-truth scenes."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    speed = sub.add_parser(
        "speed",
        help="speed error and interval coverage of detector+tracker+calibration+speed",
        description="Runs the real pipeline on generated scenes with exact ground truth "
        "(30-130 km/h, several camera heights and angles) and prints mean and 95th "
        "percentile |error| and the share of true speeds inside the reported interval. "
        "Without SCENES it generates the standard seeded set.",
    )
    speed.add_argument(
        "scenes", type=Path, nargs="*", metavar="SCENE", help="NAME.mp4 with NAME.truth.json beside"
    )
    speed.add_argument("--json", action="store_true", help="print one JSON line for scripts")
    speed.add_argument("--seed", type=int, default=2026, help="seed of the standard set")
    speed.add_argument("--count", type=int, default=10, help="scenes in the standard set")
    speed.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="sample media folder (scene imagery)"
    )
    speed.add_argument(
        "--keep", type=Path, default=None, help="write the generated scenes into this folder"
    )
    speed.set_defaults(func=_speed)


def _speed(args: argparse.Namespace) -> int:
    from calibration.errors import CalibrationError
    from calibration.scene_render import load_assets, write_scene
    from calibration.scenes import standard_scenes
    from calibration.speed_eval import SceneResult, evaluate, scene_paths
    from edge.detector import Detector, DetectorConfig

    if not 1 <= args.count <= 200:
        raise CalibrationError("--count must be 1-200")
    given = scene_paths(args.scenes) if args.scenes else None
    detector = Detector.from_manifest(DetectorConfig())

    def progress(result: SceneResult) -> None:
        if not args.json:
            errors = ", ".join(
                f"{t.true_kmh:.0f}->{t.estimate.speed_kmh:.1f}±{t.estimate.uncertainty_kmh:.1f}"
                for t in result.tracks
            )
            print(f"{result.name}: {errors or 'no track measured'}", flush=True)

    with tempfile.TemporaryDirectory(prefix="roadwatch-scenes-") as tmp:
        if given is not None:
            scenes = given
        else:
            folder = args.keep or Path(tmp)
            if not folder.is_dir():
                raise CalibrationError(f"{folder}: folder does not exist")
            assets = load_assets(args.data)
            specs = standard_scenes(seed=args.seed, count=args.count, sprites=len(assets.sprites))
            scenes = []
            for spec in specs:
                scenes.append(write_scene(spec, assets, folder))
        report = evaluate(scenes, detector, progress=progress)
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print()
    print(f"scenes {summary['scenes']}, tracks measured {summary['tracks']} "
          f"({summary['vehicles_measured']} of {summary['vehicles']} vehicles), "
          f"unmatched tracks {summary['unmatched_tracks']}")  # fmt: skip
    print(f"mean |error|       {summary['mean_abs_error_kmh']:.2f} km/h")
    print(f"p95 |error|        {summary['p95_abs_error_kmh']:.2f} km/h")
    print(f"interval coverage  {summary['interval_coverage']:.1%} "
          f"(mean half-width {summary['mean_uncertainty_kmh']:.2f} km/h)")  # fmt: skip
    print(f"detector recall    {summary['detector_recall']:.1%} of {summary['truth_boxes']} "
          "vehicle boxes (>= 60 % in view, >= 12 px tall); "
          f"{summary['detector_recall_40px']:.1%} of those >= 40 px tall")  # fmt: skip
    offset, scatter = summary["box_bottom_offset_mean"], summary["box_bottom_offset_std"]
    print(f"box bottom         {offset:+.1%} of the box height from the contact point "
          f"(+ = below), scatter {scatter:.1%}")  # fmt: skip
    sys.stdout.flush()
    return 0
