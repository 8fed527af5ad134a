"""``roadwatch eval red-light``: the red-light rule on a real recording, against hand labels.

The recording goes through the real perception (detector and tracker, every frame in
order, as ``edge run`` reads a file), the lamp reading of the scene's signal head and the
red-light rule; without a calibration the rule works in image pixels.
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from roadwatch.errors import UserError

if TYPE_CHECKING:
    from edge.rules.red_light_check import RedLightScore


@dataclass(frozen=True)
class RedLightRun:
    frames: int
    score: RedLightScore
    explanations: tuple[str, ...]


def run_red_light(
    video: Path,
    scene_path: Path,
    labels_path: Path,
    *,
    persons_as_riders: bool = True,
    last_frame: int | None = None,
) -> RedLightRun:
    """The clip through detector, tracker, lamp reading and red-light rule, scored.

    ``last_frame`` ends the run early (the labels must not need later frames).
    """
    from edge.config import SiteConfig
    from edge.detections import ObjectClass, vehicle_class
    from edge.pipeline import TrackedFrame, process_file
    from edge.rules.geometry import Point
    from edge.rules.plane import SceneGeometry
    from edge.rules.red_light import RedLightRule
    from edge.rules.red_light_check import RedLightLabels, score_red_light
    from edge.rules.scene import load_scene
    from edge.rules.signal import SignalState, lamp_strengths
    from edge.rules.tracks import ImageBox, TrackFrame, Violation, WorldTrackPoint
    from edge.sources import probe_file
    from roadwatch.contract import VehicleClass

    scene = load_scene(scene_path)
    labels = RedLightLabels.load(labels_path)
    head = next((h for h in scene.signal_heads if h.lamps() is not None), None)
    if head is None:
        raise UserError(f"{scene_path} has no signal head with lamp regions")
    if not video.is_file():
        raise UserError(f"video {video} does not exist")
    fps = probe_file(video).fps
    t0 = labels.clip_start.replace(tzinfo=scene.zone()).timestamp()
    rule = RedLightRule(SceneGeometry(scene))
    signal = SignalState(head.id, scene.lamp)
    ground: dict[int, dict[int, Point]] = {}
    found: list[Violation] = []
    frames = 0
    stop = threading.Event()

    def sink(item: TrackedFrame) -> None:
        nonlocal frames
        t = t0 + item.frame.index / fps
        signal.on_lamp(t, lamp_strengths(item.frame.image, head))
        points: list[WorldTrackPoint] = []
        tracks = item.tracks
        if tracks.tracker_id is not None:
            rows = zip(
                tracks.xyxy.tolist(),
                tracks.class_id.tolist(),
                tracks.tracker_id.tolist(),
                strict=True,
            )
            for (x0, y0, x1, y1), cls, tid in rows:
                kind = vehicle_class(ObjectClass(cls))
                if kind is None and persons_as_riders:
                    # Seen from behind, a rider is often all the detector finds of a
                    # two-wheeler; the rule's lines, crossed in order, keep pedestrians out.
                    kind = VehicleClass.MOTORCYCLE
                if kind is None:
                    continue
                at = Point((x0 + x1) / 2.0, y1)
                ground.setdefault(tid, {})[item.frame.index] = at
                points.append(WorldTrackPoint(tid, t, kind, ImageBox(x0, y0, x1, y1), at))
        found.extend(rule.update(TrackFrame(t, tuple(points)), {head.id: signal}))
        frames += 1
        if last_frame is not None and item.frame.index >= last_frame:
            stop.set()

    site = SiteConfig.for_source(str(video), camera=scene.camera)
    process_file(video, site, [sink], stop=stop)
    score = score_red_light(found, ground, labels, t0=t0, fps=fps)
    return RedLightRun(frames, score, tuple(v.explanation for v in found))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    red = sub.add_parser(
        "red-light",
        help="score the red-light rule on a recording against hand-labelled violators",
        description="Run a recording through the detector, tracker, lamp reading and "
        "red-light rule, and print precision and recall against hand labels.",
    )
    red.add_argument("--video", type=Path, required=True, help="the recording")
    red.add_argument("--scene", type=Path, required=True, help="the camera's scene YAML")
    red.add_argument("--labels", type=Path, required=True, help="hand labels (YAML)")
    red.add_argument(
        "--no-persons",
        action="store_true",
        help="do not count person-only tracks as two-wheelers with their riders",
    )
    red.add_argument("--json", action="store_true", help="print one JSON line")
    red.set_defaults(func=_red_light)


def _red_light(args: argparse.Namespace) -> int:
    run = run_red_light(args.video, args.scene, args.labels, persons_as_riders=not args.no_persons)
    s = run.score
    if args.json:
        print(
            json.dumps(
                {
                    "rules": {
                        "red_light": {
                            "precision": round(s.precision, 4),
                            "recall": round(s.recall, 4),
                            "true_positives": len(s.matches),
                            "false_positives": len(s.false_alarms),
                            "false_negatives": len(s.missed),
                        }
                    }
                }
            )
        )
        return 0
    for text in run.explanations:
        print(f"  {text}")
    for m in s.matches:
        off = f"{m.frame_error} frame(s) and {m.x_error_px:.0f} px off"
        print(f"matched {m.label}: track {m.track_id}, {off}")
    for f in s.false_alarms:
        print(f"false alarm: track {f.track_id} at frame {f.frame} ({f.at.x:.0f}, {f.at.y:.0f})")
    for label in s.missed:
        print(f"missed: {label}")
    print(
        f"red light over {run.frames} frames: precision {s.precision:.3f} "
        f"({len(s.matches)} of {len(s.matches) + len(s.false_alarms)}), recall "
        f"{s.recall:.3f} ({len(s.matches)} of {len(s.matches) + len(s.missed)})"
    )
    return 0
