"""``roadwatch edge run`` and ``roadwatch edge detect``: the perception commands."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any


def register_perception(edge_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = edge_sub.add_parser(
        "run",
        help="run the edge node: detection, tracking, the rules, evidence and delivery on"
        " the configured cameras (or on one video)",
        description="With --config: run every camera of the site configuration until"
        " SIGINT/SIGTERM: detection and tracking; on each camera with a scene, speed on the"
        " calibrated road plane, the violation rules, the violator's plate and a signed"
        " evidence package, stored in the outbox and, with a delivery section, published to"
        " the broker and uploaded to central, which may also push the node new scenes"
        " (delivery.config_push). With --source: the same on one video file, on its own"
        " clock (the configuration is then optional; with one of several cameras, name the"
        " camera whose settings and scene apply with --camera)."
        " Nothing is written beside the outbox unless asked with --annotate, --tracks or"
        " --violations.",
    )
    run.add_argument("--config", type=Path, help="site configuration YAML")
    run.add_argument("--source", help="a video file to run instead of the cameras")
    run.add_argument(
        "--camera",
        metavar="ID",
        help="with --source and a configuration of several cameras: the camera whose"
        " settings, scene and calibration apply to the video",
    )
    run.add_argument(
        "--annotate", type=Path, help="with --source: write the video with the tracks drawn here"
    )
    run.add_argument(
        "--tracks", type=Path, help="with --source: write per-frame tracks as JSON lines here"
    )
    run.add_argument(
        "--violations", type=Path, help="write the signed violations found as JSON lines here"
    )
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument(
        "--check",
        action="store_true",
        help="with --config: check the file and every file it names (sources, model, scenes,"
        " calibrations, keys) as a start does, then exit; nothing is started or written"
        " (refused with --camera, --annotate, --tracks, --violations or --quiet)",
    )
    run.set_defaults(func=_run)

    detect = edge_sub.add_parser(
        "detect",
        help="detect vehicles in one image",
        description="Print the detections of one image (class, confidence, box in pixels).",
    )
    detect.add_argument("image", type=Path)
    detect.add_argument("--json", action="store_true", help="print JSON")
    detect.add_argument("--config", type=Path, help="site configuration (detector section)")
    detect.add_argument("--model", help="manifest name of the detector")
    detect.add_argument("--confidence", type=float, help="minimum confidence for every class")
    detect.set_defaults(func=_detect)


def _detector_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from edge.config import error_line, load_site_config
    from edge.detector import DetectorConfig
    from roadwatch.errors import UserError

    config = load_site_config(args.config).detector if args.config else DetectorConfig()
    update: dict[str, Any] = {}
    if args.model:
        update["model"] = args.model
    if args.confidence is not None:
        update["confidence"] = args.confidence
        update["class_confidence"] = {}
    try:
        return DetectorConfig.model_validate({**config.model_dump(), **update})
    except ValidationError as exc:
        raise UserError(f"--model/--confidence: {error_line(exc)}") from exc


def _detect(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from edge.detector import Detector
    from roadwatch.errors import UserError

    if not args.image.exists():
        raise UserError(f"no such file: {args.image}")
    if not args.image.is_file():
        raise UserError(f"{args.image} is not a file")
    image = cv2.imread(str(args.image))
    if image is None:
        raise UserError(f"cannot read image {args.image}: not a picture OpenCV reads")
    dets = Detector.from_manifest(_detector_config(args)).detect([image.astype(np.uint8)])[0]
    rows = [
        {
            "class": label,
            "confidence": round(float(conf), 4),
            "box": [round(float(v), 1) for v in box],
        }
        for label, conf, box in zip(dets.labels, dets.confidence, dets.xyxy, strict=True)
    ]
    if args.json:
        print(json.dumps({"image": str(args.image), "detections": rows}, indent=1))
    else:
        for row in rows:
            print(f"{row['class']:<11} {row['confidence']:.2f}  {row['box']}")
        print(f"{len(rows)} detections")
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        print(f"roadwatch: {signal.Signals(signum).name}, stopping", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _progress(done: int, total: int, summary: Any) -> None:
    if done % 25 and done != total:
        return
    pct = f" ({100 * done // total}%)" if total else ""
    print(
        f"\rframe {done}/{total or '?'}{pct}, {summary.fps:.1f} frames/s,"
        f" {len(summary.track_classes)} tracks",
        end="" if done != total else "\n",
        file=sys.stderr,
        flush=True,
    )


def _run(args: argparse.Namespace) -> int:
    from edge.config import load_site_config
    from roadwatch.errors import UserError

    if not args.config and not args.source:
        raise UserError("give --config site.yaml, --source VIDEO, or both")
    if args.check and (not args.config or args.source):
        raise UserError(
            "--check checks a --config file as the node would start it; give no --source"
        )
    if args.check:
        ignored = [option for option, given in (
            ("--camera", args.camera), ("--annotate", args.annotate),
            ("--tracks", args.tracks), ("--violations", args.violations),
            ("--quiet", args.quiet),
        ) if given]  # fmt: skip
        if ignored:
            raise UserError(
                f"--check starts nothing and writes nothing: leave out {', '.join(ignored)}"
                " (an option of a run)"
            )
    if (args.annotate or args.tracks) and not args.source:
        raise UserError("--annotate and --tracks need --source")
    if args.camera and not (args.source and args.config):
        raise UserError("--camera names a camera of --config to run --source as; give both")
    named = (("--violations", args.violations), ("--tracks", args.tracks),
             ("--annotate", args.annotate))  # fmt: skip
    outputs_named = [(option, path) for option, path in named if path is not None]
    for option, path in outputs_named:
        _check_writable(option, path)
    inputs = [("the --source video", Path(args.source))] if args.source else []
    if args.config:
        inputs.append(("the --config file", args.config))
    _refuse_overwriting(outputs_named, inputs)
    if not getattr(args, "verbose", 0):  # OpenCV's and FFmpeg's own lines only with -v
        import cv2

        from edge.sources import quiet_ffmpeg

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        quiet_ffmpeg()
    config = load_site_config(args.config) if args.config else None
    if config is not None:
        _refuse_overwriting(outputs_named, _config_files(config))
        if args.source:
            config = _source_camera(config, args.camera, args.config)
    stop = _stop_on_signals()
    outputs: list[Any] = []
    try:
        return _run_with(args, config, stop, outputs)
    finally:
        for out in outputs:
            out.close()


def _check_writable(option: str, path: Path) -> None:
    """Refuse an output the run could not write, before anything is loaded; the file
    itself is opened (and an old one replaced) only once the run is about to start."""
    from roadwatch.errors import UserError

    folder = path.parent
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; name a file")
    if not folder.is_dir():
        raise UserError(f"{option} {path}: no folder {folder}")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise UserError(f"{option} {path}: not writable")


def _source_camera(config: Any, camera: str | None, path: Path) -> Any:
    """The configuration with only the camera whose settings apply to --source: the one
    named, or the only one. A run on one of several cameras took the first without a word,
    with that camera's scene and calibration, which may not be the video's."""
    from roadwatch.errors import UserError

    ids = [cam.id for cam in config.cameras]
    if camera is None:
        if len(ids) > 1:
            raise UserError(
                f"{path} has {len(ids)} cameras ({', '.join(ids)}): name the one the video"
                " is from with --camera"
            )
        camera = ids[0]
    if camera not in ids:
        raise UserError(f"--camera {camera}: {path} has no such camera ({', '.join(ids)})")
    chosen = [cam for cam in config.cameras if cam.id == camera]
    return config.model_copy(update={"cameras": chosen})


def _refuse_overwriting(outputs: list[tuple[str, Path]], inputs: list[tuple[str, Path]]) -> None:
    """Refuse an output that names one of the run's inputs or another output: writing it
    would destroy the clip or the configuration (or two outputs would share one file)."""
    from roadwatch.errors import UserError
    from roadwatch.files import same_file

    for i, (option, path) in enumerate(outputs):
        for other_option, other in outputs[:i]:
            if same_file(path, other):
                raise UserError(f"{option} {path}: also given to {other_option}; name another file")
        for what, source in inputs:
            if same_file(path, source):
                raise UserError(f"{option} {path}: that is {what}; name another file")


def _config_files(config: Any) -> list[tuple[str, Path]]:
    """The files a site configuration reads: camera videos, scenes, calibrations, reference
    views, and the delivery section's key and TLS files."""
    files: list[tuple[str, Path]] = []
    for cam in config.cameras:
        if "://" not in cam.url:
            files.append((f"camera {cam.id}'s video", Path(cam.url)))
        for key in ("scene", "calibration", "reference_view"):
            if (path := getattr(cam, key)) is not None:
                files.append((f"camera {cam.id}'s {key.replace('_', ' ')} file", path))
    if (delivery := config.delivery) is not None:
        files.append(("the node key", delivery.key_path))
        if delivery.config_push is not None:
            files += [("central's config key", p) for p in delivery.config_push.central_keys]
        if (tls := delivery.broker.tls) is not None:
            files += [(f"the TLS {key}", p) for key in ("ca_file", "cert_file", "key_file")
                      if (p := getattr(tls, key)) is not None]  # fmt: skip
    return files


def _open_violations(args: argparse.Namespace, outputs: list[Any]) -> Any:
    from roadwatch.errors import UserError

    if args.violations is None:
        return None
    try:
        out = args.violations.open("w", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {args.violations}: {exc.strerror}") from exc
    outputs.append(out)
    return out


def _model_version(name: str) -> str:
    from models.registry import model_entry

    return f"{name}@{model_entry(name).sha256[:12]}"


def _run_with(
    args: argparse.Namespace, config: Any, stop: threading.Event, outputs: list[Any]
) -> int:
    from edge.config import SiteConfig
    from edge.node import EdgeNode
    from edge.nvdec import check_decoder
    from edge.outputs import AnnotatedVideo, TrackLog
    from edge.pipeline import (
        LivePipeline,
        Sink,
        TrackedFrame,
        check_detectors,
        check_sources,
    )
    from edge.sources import probe_file
    from edge.workers import deal_cameras

    if args.source is None and args.check:
        return _check_only(args.config, config)
    if args.source is None:
        assert config is not None
        # A missing file camera, detector model or NVDEC is refused before the node opens
        # its outbox (a push cannot change a camera's url, its model or the decoder, so
        # the node's are these).
        cameras = check_sources(config.cameras)
        check_decoder(config.decode.decoder)
        check_detectors(config, cameras)
        node = EdgeNode.from_config(
            config,
            model_version=_model_version(config.detector.model),
            config_dir=Path(args.config).resolve().parent,
        )
        if node.delivery is not None:
            # (another process delivering from the outbox: refused before "running …")
            node.delivery.claim()
        # node.config: the node's file, or the config central last pushed when it fits.
        if node.config.processes > 1:
            cameras = check_sources(node.config.cameras)  # refuses missing files first
            processes = len(deal_cameras(cameras, node.config.processes))
            plural = "es" if processes > 1 else ""
            print(
                f"running {len(cameras)} camera(s) in {processes} worker process{plural},"
                f" enforcement on {len(node.enforcement)}; stop with Ctrl-C",
                file=sys.stderr,
            )
            node.violations_out = _open_violations(args, outputs)
            summary = node.run_live(stop)
        else:
            pipeline = LivePipeline(node.config)  # opens nothing yet; refuses missing files
            print(
                f"running {len(pipeline.cameras)} camera(s) decoded by {pipeline.decoder},"
                f" enforcement on {len(node.enforcement)}; stop with Ctrl-C",
                file=sys.stderr,
            )
            node.violations_out = _open_violations(args, outputs)
            summary = node.run_live(stop, pipeline=pipeline)
        print(summary.describe(), file=sys.stderr)
        print(_enforcement_line(node), file=sys.stderr)
        return 0

    source = Path(args.source)
    info = probe_file(source)
    if config is None:
        config = SiteConfig.for_source(str(source))
    else:
        [camera] = config.cameras  # (the one --camera names, or the only one)
        camera = camera.model_copy(update={"url": str(source)})
        config = config.model_copy(update={"cameras": [camera], "processes": 1})
    check_detectors(config, config.cameras)  # before the node opens its outbox
    node = EdgeNode.from_config(config, model_version=_model_version(config.detector.model))
    sinks: list[Sink] = []
    closers = []
    if args.tracks:
        log = TrackLog(args.tracks)
        sinks.append(lambda item: log.write(item.frame, item.tracks))
        closers.append(log.close)
    if args.annotate:
        video = AnnotatedVideo(args.annotate, info.fps)

        def annotate(item: TrackedFrame) -> None:
            video.write(item.frame, item.tracks)

        sinks.append(annotate)
        closers.append(video.close)
    node.violations_out = _open_violations(args, outputs)
    if node.delivery is not None:
        node.delivery.start()
    finished = False
    try:
        summary = node.run_file(
            source, sinks=sinks, stop=stop, progress=None if args.quiet else _progress
        )
        finished = True  # (also when stopped: what was written so far is kept)
    finally:
        for close in closers:
            close(finished)  # a failed run leaves the files of an earlier run as they were
        left = _stop_delivery(node.delivery, 0.0 if stop.is_set() else DRAIN_S)
    print(summary.describe(), file=sys.stderr)
    if node.enforcement:
        print(_enforcement_line(node), file=sys.stderr)
    if left:
        print(left, file=sys.stderr)
    return 130 if stop.is_set() else 0


# How long a recording's run waits at its end for its events and evidence to be sent.
DRAIN_S = 30.0


def _check_only(path: Path, config: Any) -> int:
    """What a start refuses, refused the same way; nothing opened or written."""
    from datetime import UTC, datetime

    from edge.node import check_site_files
    from edge.nvdec import check_decoder
    from edge.pipeline import check_detectors, check_sources

    cameras = check_sources(config.cameras)
    check_decoder(config.decode.decoder)
    check_detectors(config, cameras)
    enforced = check_site_files(config, datetime.now(UTC))
    rules = ", ".join(enforced) if enforced else "none"
    print(
        f"{path}: valid, version {config.version}: {len(cameras)} camera(s), rules on {rules};"
        " nothing was started (a stored config push is laid over it at the start when it"
        " fits)"
    )
    return 0


def _stop_delivery(delivery: Any, drain_s: float) -> str | None:
    """Stop delivery after up to ``drain_s`` for the outbox to empty; what is left to
    send, said for the operator (it is sent at the next start or by `edge deliver`)."""
    if delivery is None:
        return None
    delivery.drain(drain_s)
    stats = delivery.outbox.stats()
    delivery.stop()
    if stats.pending == 0 and stats.blobs_pending == 0:
        return None
    return (
        f"still to send: {stats.pending} message(s) and {stats.blobs_pending} evidence"
        " file(s); they wait in the outbox (`roadwatch edge deliver --config FILE` sends them)"
    )


def _enforcement_line(node: Any) -> str:
    c = node.counters
    return (
        f"violations {node.violations} (evidence packages {node.packages}, stored in the"
        f" outbox {c.stored}); traffic minutes {c.traffic_minutes}"
    )
