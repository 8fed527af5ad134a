"""The demo's files: the sample scene (rendered once), its calibration, the node's keys."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from roadwatch.errors import UserError

SCENE_VERSION = "demo-ql13/2"  # 2: 1080p, Vietnamese plates on the vehicles


@dataclass(frozen=True)
class DemoAssets:
    camera: str
    video: Path
    scene: Path
    calibration: Path
    private_key: Path
    public_key: Path
    model_version: str


def default_workdir() -> Path:
    """``var/demo`` of the checkout, beside the models (the set-up renders the scene there)."""
    return Path(__file__).resolve().parents[2] / "var" / "demo"


def default_data_dir() -> Path:
    """The sample media beside the checkout (../shared/data)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def prepare_demo(workdir: Path, data_dir: Path, *, quiet: bool = False) -> DemoAssets:
    """Make what the demo needs under ``workdir``; the rendered scene is reused."""
    from calibration.scene_render import load_assets, write_scene
    from calibration.store import save_calibration
    from edge.identity import key_paths, write_key_pair
    from models.registry import model_entry, model_path
    from roadwatch.demo.scene import (
        CAMERA_ID,
        demo_plates,
        demo_spec,
        surveyed_calibration,
        write_scene_file,
    )

    folder = workdir / "scene"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--workdir {workdir}: cannot make {folder}: {exc.strerror}") from exc
    spec = demo_spec()
    marker = folder / "scene.json"
    video = folder / f"{spec.name}.mp4"
    wanted = {"version": SCENE_VERSION, "seed": spec.seed, "frames": spec.frames}
    current = json.loads(marker.read_text()) if marker.is_file() else None
    if current != wanted or not video.is_file():
        if not (data_dir / "kraten_cars.mp4").is_file():
            raise UserError(
                f"the demo scene is composed from the sample clips in {data_dir}, which is "
                "not there (give --data DIR)"
            )
        if not quiet:
            print("rendering the demo's sample scene once (a few minutes)...", file=sys.stderr)
        started = time.monotonic()
        write_scene(spec, load_assets(data_dir), folder, plates=demo_plates(spec.seed))
        marker.write_text(json.dumps(wanted), encoding="utf-8")
        if not quiet:
            print(f"rendered in {time.monotonic() - started:.0f} s: {video}", file=sys.stderr)
    scene = folder / "scene.yaml"
    write_scene_file(scene, spec.camera)
    calibration = folder / f"{CAMERA_ID}.calib.yaml"
    save_calibration(surveyed_calibration(spec.camera, spec.seed, datetime.now(UTC)), calibration)
    keys = key_paths(workdir / "node")
    if not keys.private.exists():
        write_key_pair(workdir / "node")
    name = "yolov8n-coco-dynamic"
    model_path(name)  # verified now, so a missing model is reported before anything starts
    return DemoAssets(
        camera=CAMERA_ID,
        video=video,
        scene=scene,
        calibration=calibration,
        private_key=keys.private,
        public_key=keys.public,
        model_version=f"{name}@{model_entry(name).sha256[:12]}",
    )
