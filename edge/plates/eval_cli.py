"""``roadwatch eval plates``: plate reading accuracy on the seeded synthetic set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_SEED = 2026
DEFAULT_COUNT = 150  # per condition


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plates = sub.add_parser(
        "plates",
        help="plate reading accuracy on seeded synthetic Vietnamese plates (day and night)",
        description=(
            "Renders the seeded set of synthetic Vietnamese plates on real vehicle crops from"
            " the sample media and reads them with the packaged OCR models. Prints exact-match"
            " and character accuracy per condition."
        ),
    )
    plates.add_argument("--json", action="store_true", help="print one JSON line")
    plates.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="set seed (default %(default)s)"
    )
    plates.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help="samples per condition (default %(default)s)",
    )
    plates.add_argument(
        "--data",
        type=Path,
        default=None,
        help="sample media folder (default: ROADWATCH_SHARED_DATA or ../shared/data)",
    )
    plates.add_argument(
        "--plate-scale",
        type=float,
        default=1.0,
        help="plate size on the image relative to the standard set (default %(default)s)",
    )
    plates.add_argument("--threads", type=int, default=None, help="CPU threads for the OCR models")
    plates.set_defaults(func=_eval_plates)


def _eval_plates(args: argparse.Namespace) -> int:
    from edge.plates.evaluate import evaluate
    from edge.plates.reader import PlateReader
    from edge.plates.synth import generate, shared_data_dir
    from roadwatch.errors import UserError

    if not 1 <= args.count <= 5000:
        raise UserError(f"--count must be between 1 and 5000, not {args.count}")
    if not 0.2 <= args.plate_scale <= 3.0:
        raise UserError(f"--plate-scale must be between 0.2 and 3, not {args.plate_scale}")
    data = args.data if args.data is not None else shared_data_dir()
    if not data.is_dir():
        raise UserError(f"sample media folder {data} is not there")
    reader = PlateReader.from_packaged_models(args.threads)
    samples = generate(args.count, args.seed, data, plate_scale=args.plate_scale)
    result = evaluate(reader.read, samples).report()
    result["seed"] = args.seed
    result["plate_scale"] = args.plate_scale
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(
        f"plate reading, seed {args.seed}, {result['samples']} samples,"
        f" plate scale {args.plate_scale:g}"
    )
    print(f"{'condition':<10} {'exact':>7} {'char':>7} {'wrong+valid':>12} {'colour':>7} {'n':>5}")
    for name in ("day", "night"):
        row = result.get(name)
        if isinstance(row, dict):
            print(
                f"{name:<10} {row['exact']:>7.1%} {row['char']:>7.1%}"
                f" {row['wrong_valid']:>12.1%} {row['colour']:>7.1%} {row['samples']:>5}"
            )
    return 0
