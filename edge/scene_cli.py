"""``roadwatch scene ...``: check a camera's scene file and draw it over a frame."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadwatch import cli_args

if TYPE_CHECKING:
    from edge.rules.scene import ImageSize

from roadwatch.errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scene = sub.add_parser("scene", help="check and draw a camera's scene configuration")
    scene_sub = scene.add_subparsers(dest="scene_command", metavar="SUBCOMMAND", required=True)

    check = scene_sub.add_parser(
        "check",
        help="validate a scene file and list the rules it enables",
        description="Validate a scene file; errors name the key path.",
    )
    check.add_argument("scene", type=Path, help="scene YAML file")
    check.add_argument(
        "--calibration",
        type=Path,
        help="the camera's calibration file (as site.yaml gives it): the rules that need "
        "one are checked with it, as the node runs them",
    )
    check.set_defaults(func=_check)

    draw = scene_sub.add_parser(
        "draw",
        help="draw a scene file over a camera frame",
        description="Draw lanes, stop lines, solid lines, zones, lamp regions and speed traps "
        "over a frame (an image, or a frame of a video).",
    )
    draw.add_argument("scene", type=Path, help="scene YAML file")
    draw.add_argument("--frame", type=Path, required=True, help="image or video file")
    draw.add_argument(
        "--index",
        type=cli_args.frame_index,
        default=0,
        help="frame index when --frame is a video (default 0)",
    )
    draw.add_argument("-o", "--out", type=Path, required=True, help="output picture (.png, .jpg)")
    draw.set_defaults(func=_draw)

    lamps = scene_sub.add_parser(
        "lamps",
        help="read a signal head's lamps over a recording; score against labelled phases",
        description="Print the phases read from a signal head's lamp regions over a video and, "
        "with --labels, the accuracy against hand-labelled phases.",
    )
    lamps.add_argument("scene", type=Path, help="scene YAML file")
    lamps.add_argument("--video", type=Path, required=True, help="recording of the camera")
    lamps.add_argument("--head", default="main", help="signal head id (default main)")
    lamps.add_argument("--labels", type=Path, help="YAML of hand-labelled phases to score against")
    lamps.set_defaults(func=_lamps)


def _check(args: argparse.Namespace) -> int:
    from edge.rules.engine import RuleSet
    from edge.rules.plane import SceneGeometry
    from edge.rules.scene import load_scene

    scene = load_scene(args.scene)
    to_world = None
    if args.calibration is not None:
        from datetime import UTC, datetime

        from edge.node import scene_projector
        from edge.rules.calibrated import image_to_world

        at = datetime.now(UTC)
        to_world = image_to_world(scene_projector(scene, args.scene, args.calibration, at))
    geometry = SceneGeometry(scene, to_world)
    rules = RuleSet(geometry)
    with_calibration = f" with {args.calibration}" if args.calibration is not None else ""
    print(f"{args.scene}: camera {scene.camera}, version {scene.version}: valid{with_calibration}")
    for rule in rules.rules:
        print(f"  {rule.rule.value}: runs ({rule.version})")
    # With the calibration given, only more scene can make a rule run.
    lacking = "more scene" if args.calibration is not None else "calibration or more scene"
    for rule_type, why in rules.unavailable.items():
        print(f"  {rule_type.value}: does not run without {lacking}: {why}")
    if rules.unavailable and args.calibration is None:
        print("  (with the camera's calibration: scene check SCENE --calibration CALIB.yaml)")
    for head in scene.signal_heads:
        source = (
            "read from its lamps in the picture (a signal controller's messages win while fresh)"
            if head.lamps() is not None
            else "no lamps drawn: known only from a signal controller's messages"
        )
        print(f"  signal head {head.id}: {source}")
    from edge.scene_overlaps import scene_warnings

    for warning in scene_warnings(geometry):
        print(f"  warning: {warning}")
    return 0


def _read_frame(path: Path, index: int) -> object:
    import cv2

    if not path.is_file():
        raise UserError(f"frame file {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        return image
    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise UserError(f"{path} is not a picture or a video with a frame {index}")
    return frame


def _require_scene_size(frame: Any, size: ImageSize) -> None:
    height, width = frame.shape[:2]
    if (width, height) != (size.width, size.height):
        raise UserError(
            f"frame is {width}x{height} but the scene is drawn for {size.width}x{size.height}"
        )


def _draw(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from edge.rules.scene import load_scene
    from edge.scene_draw import draw_scene

    scene = load_scene(args.scene)
    frame = np.asarray(_read_frame(args.frame, args.index), dtype=np.uint8)
    _require_scene_size(frame, scene.image_size)
    if args.out.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
        raise UserError(f"output {args.out} must end in .png, .jpg or .jpeg")
    if not args.out.parent.is_dir():
        raise UserError(f"output folder {args.out.parent} does not exist")
    if not cv2.imwrite(str(args.out), draw_scene(frame, scene)):
        raise UserError(f"could not write {args.out}")
    print(f"wrote {args.out}")
    return 0


def _lamps(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    from pydantic import ValidationError

    from edge.rules.lamp_check import PhaseLabels, check_lamps
    from edge.rules.scene import load_scene
    from edge.rules.signal import LampStrengths, SignalState, lamp_strengths
    from roadwatch.yaml_load import YamlError, load_yaml

    scene = load_scene(args.scene)
    head = next((h for h in scene.signal_heads if h.id == args.head), None)
    if head is None or head.lamps() is None:
        raise UserError(f"{args.scene} has no signal head {args.head!r} with lamp regions")
    labels = None
    if args.labels is not None:
        try:
            labels = PhaseLabels.model_validate(load_yaml(args.labels.read_text("utf-8")))
        except (OSError, YamlError, ValidationError) as exc:
            raise UserError(f"labels {args.labels}: {str(exc).splitlines()[0]}") from None
    if not args.video.is_file():
        raise UserError(f"video {args.video} does not exist")
    capture = cv2.VideoCapture(str(args.video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    strengths: list[LampStrengths] = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if not strengths:
                _require_scene_size(frame, scene.image_size)
            strengths.append(lamp_strengths(np.asarray(frame, dtype=np.uint8), head))
    finally:
        capture.release()
    if not strengths or fps <= 0.0:
        raise UserError(f"{args.video} has no readable frames")
    state = SignalState(head.id, scene.lamp)
    for i, x in enumerate(strengths):
        state.on_lamp(i / fps, x)
    for span in state.history.spans:
        print(f"frame {round(span.began_at * fps):5d}  {span.began_at:7.2f} s  {span.colour.value}")
    if labels is not None:
        try:
            result = check_lamps(strengths, fps, labels, scene.lamp)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        print(
            f"lamp state over {result.frames} frames: online accuracy "
            f"{result.online_accuracy:.3f}, history accuracy {result.history_accuracy:.3f}, "
            f"worst phase-start error {result.worst_start_error_frames} frame(s)"
        )
    return 0
