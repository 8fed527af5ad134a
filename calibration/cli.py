"""``roadwatch calibrate ...``: fit a camera's road-plane calibration and check it by eye."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from roadwatch import cli_args

if TYPE_CHECKING:
    from calibration.homography import HomographyFit


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calibrate = sub.add_parser(
        "calibrate", help="fit and check camera calibrations (road-plane homography, lens)"
    )
    cal_sub = calibrate.add_subparsers(
        dest="calibrate_command", metavar="SUBCOMMAND", required=True
    )

    frame = cal_sub.add_parser(
        "frame",
        help="save a still of a camera (its stream URL or a recording) to measure points on",
        description="Save one frame of a camera's stream (rtsp://…, as the site file's url) "
        "or of a video or image file as a picture, at the camera's own size: measure the "
        "survey's pixel points and draw the scene's lanes, lines and zones on it.",
    )
    frame.add_argument("source", help="the camera's stream URL, or a video or image file")
    frame.add_argument(
        "--frame-index",
        type=cli_args.frame_index,
        default=0,
        help="frame of the video, or frames of the stream to pass first (default 0)",
    )
    frame.add_argument(
        "-o", "--out", type=Path, required=True, help="picture to write (.png, .jpg)"
    )
    frame.add_argument("--replace", action="store_true", help="write over an existing picture")
    frame.set_defaults(func=_frame)

    fit = cal_sub.add_parser(
        "fit",
        help="fit the image -> road-plane homography from surveyed points",
        description="Fit the homography with RANSAC, print each point's reprojection error "
        "and write the calibration file.",
    )
    fit.add_argument("--points", type=Path, required=True, help="survey YAML (points, lanes, lens)")
    fit.add_argument("--frame", type=Path, required=True, help="a frame (image or video file)")
    fit.add_argument(
        "--frame-index", type=cli_args.frame_index, default=0, help="frame of a video (default 0)"
    )
    fit.add_argument("-o", "--out", type=Path, required=True, help="calibration YAML to write")
    fit.add_argument(
        "--replace",
        action="store_true",
        help="write over an existing calibration file (a new survey of the camera)",
    )
    fit.add_argument("--by", default=None, help="who calibrated (default: the current user)")
    fit.set_defaults(func=_fit)

    check = cal_sub.add_parser(
        "check",
        help="draw the calibration (1 m / 5 m grid, lanes, point errors) over a frame",
    )
    check.add_argument("calibration", type=Path, help="calibration YAML")
    check.add_argument("--frame", type=Path, required=True, help="a frame (image or video file)")
    check.add_argument(
        "--frame-index", type=cli_args.frame_index, default=0, help="frame of a video (default 0)"
    )
    check.add_argument("-o", "--out", type=Path, required=True, help="picture to write (.png)")
    check.set_defaults(func=_check)

    lens = cal_sub.add_parser(
        "lens",
        help="lens intrinsics and distortion from checkerboard images",
        description="Writes a YAML lens section to paste under 'lens:' in a survey file.",
    )
    lens.add_argument("images", type=Path, nargs="+", help="checkerboard images")
    lens.add_argument("--pattern", required=True, help="inner corners, COLSxROWS (e.g. 9x6)")
    lens.add_argument("--square-mm", type=float, required=True, help="square size in mm")
    lens.add_argument("-o", "--out", type=Path, required=True, help="lens YAML to write")
    lens.add_argument("--replace", action="store_true", help="write over an existing lens file")
    lens.set_defaults(func=_lens)


def _print_residuals(fit: HomographyFit) -> None:
    print(f"{'point':<20} {'pixel':>16} {'road m':>16} {'err px':>7} {'err cm':>7}  kept")
    for r in fit.residuals:
        print(
            f"{r.name:<20} {r.pixel[0]:>7.1f},{r.pixel[1]:>7.1f} "
            f"{r.world[0]:>7.2f},{r.world[1]:>7.2f} {r.error_px:>7.2f} "
            f"{r.error_m * 100:>7.1f}  {'yes' if r.inlier else 'NO'}"
        )
    print(
        f"RMS {fit.rms_px:.2f} px, {fit.rms_m * 100:.1f} cm over "
        f"{fit.inliers}/{len(fit.residuals)} points"
    )


def _frame(args: argparse.Namespace) -> int:
    from calibration.frames import (
        check_image_name,
        is_stream_url,
        read_source_frame,
        write_image,
    )
    from calibration.store import check_output
    from roadwatch.net import redact_url

    source: str = args.source
    inputs = [] if is_stream_url(source) else [("source", Path(source))]
    check_output(args.out, what="picture", inputs=inputs, replace=args.replace)
    check_image_name(args.out)  # (before a camera's stream is opened and read)
    image = read_source_frame(source, args.frame_index)
    write_image(image, args.out)
    height, width = image.shape[:2]
    shown = redact_url(source) if is_stream_url(source) else source
    print(
        f"wrote {args.out}: frame {args.frame_index} of {shown}, {width}x{height}"
        f" (the scene's image_size: {{width: {width}, height: {height}}}); measure the"
        " survey's pixel points and the scene's lines on it"
    )
    return 0


def _fit(args: argparse.Namespace) -> int:
    from calibration.frames import read_frame
    from calibration.projector import build_calibration
    from calibration.store import check_output, load_points, save_calibration

    check_output(
        args.out,
        what="calibration",
        inputs=[("survey file", args.points), ("frame", args.frame)],
        replace=args.replace,
    )
    survey = load_points(args.points)
    frame = read_frame(args.frame, args.frame_index)
    by = args.by or getpass.getuser()
    calibration, fit = build_calibration(
        survey, (frame.shape[1], frame.shape[0]), by, datetime.now(UTC)
    )
    save_calibration(calibration, args.out)
    _print_residuals(fit)
    print(f"wrote {args.out} (valid {calibration.valid_from} .. {calibration.valid_until})")
    return 0


def _check(args: argparse.Namespace) -> int:
    import numpy as np

    from calibration.check import check_picture
    from calibration.errors import CalibrationError
    from calibration.frames import read_frame, write_image
    from calibration.homography import evaluate
    from calibration.store import load_calibration

    calibration = load_calibration(args.calibration)
    frame = read_frame(args.frame, args.frame_index)
    size = (frame.shape[1], frame.shape[0])
    if size != calibration.image_size:
        raise CalibrationError(
            f"frame is {size[0]}x{size[1]}, the calibration is for "
            f"{calibration.image_size[0]}x{calibration.image_size[1]}"
        )
    now = datetime.now(UTC)
    write_image(check_picture(calibration, frame, now), args.out)
    _print_residuals(
        evaluate(calibration.matrix(), calibration.pairs(), np.asarray(calibration.inliers))
    )
    try:
        calibration.check_valid(now)
    except CalibrationError as exc:
        print(f"warning: {exc}")
    print(f"wrote {args.out}")
    return 0


def _lens(args: argparse.Namespace) -> int:
    from calibration.config import LensSpec
    from calibration.errors import CalibrationError
    from calibration.frames import read_frame
    from calibration.lens import calibrate_lens
    from calibration.store import check_output, dump_yaml, write_text_atomic

    try:
        cols, rows = (int(n) for n in args.pattern.lower().split("x"))
    except ValueError as exc:
        raise CalibrationError(f"--pattern {args.pattern!r}: expected COLSxROWS, e.g. 9x6") from exc
    check_output(
        args.out,
        what="lens",
        inputs=[("checkerboard image", p) for p in args.images],
        replace=args.replace,
    )
    images = [read_frame(p) for p in args.images]
    fit = calibrate_lens(images, (cols, rows), args.square_mm / 1000)
    write_text_atomic(args.out, dump_yaml(LensSpec.from_model(fit.lens, fit.rms_px)), "lens")
    print(
        f"lens from {fit.views_used} views ({fit.views_rejected} without the board): "
        f"RMS {fit.rms_px:.2f} px; wrote {args.out}"
    )
    return 0
