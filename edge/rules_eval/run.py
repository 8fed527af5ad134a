"""Generated rule scenes on disk, and each one through a real edge node.

A scene is four files side by side: ``NAME.mp4`` (the video), ``NAME.truth.json`` (boxes
per frame, signal phases), ``NAME.rules.json`` (who breaks which rule, when) and
``NAME.scene.yaml`` (the camera's scene file). The node is built as ``edge run`` builds
it (site configuration, scene file, a calibration from surveyed road marks) and runs the
video as a recording; the rules' violations and the tracked boxes are recorded.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from calibration.scene_render import SceneAssets, read_truth, write_scene
from calibration.scenes import SceneTruth
from edge.pipeline import DetectorPool, TrackedFrame
from edge.rules.tracks import Violation
from edge.rules_eval.score import Emitted, SceneRun, TrackBox
from edge.rules_eval.script import RuleScene, RulesTruth
from edge.scene_layout import scene_document
from roadwatch.errors import UserError

# The scenes' clock: a weekday morning in Vietnam.
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SceneFiles:
    video: Path
    truth: Path
    rules: Path
    scene: Path

    @classmethod
    def of(cls, folder: Path, name: str) -> SceneFiles:
        return cls(
            folder / f"{name}.mp4",
            folder / f"{name}.truth.json",
            folder / f"{name}.rules.json",
            folder / f"{name}.scene.yaml",
        )


def write_rule_scene(scene: RuleScene, assets: SceneAssets, folder: Path) -> SceneFiles:
    """Render ``scene`` and write its four files into ``folder``."""
    paths = write_scene(scene.spec, assets, folder)
    files = SceneFiles.of(folder, scene.spec.name)
    assert paths.video == files.video and paths.truth == files.truth
    files.rules.write_text(scene.truth.model_dump_json(indent=1), encoding="utf-8")
    document = scene_document(scene.layout, scene.spec.camera)
    files.scene.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return files


def scene_files(arguments: list[Path]) -> list[SceneFiles]:
    """Scene arguments (NAME.mp4 or any of its side files) -> all four files of each."""
    out = []
    for arg in arguments:
        name = arg.name
        for suffix in (".truth.json", ".rules.json", ".scene.yaml", ".mp4"):
            name = name.removesuffix(suffix)
        files = SceneFiles.of(arg.parent, name)
        for p in (files.video, files.truth, files.rules, files.scene):
            if not p.is_file():
                raise UserError(
                    f"{p}: scene file missing (a rule scene is NAME.mp4, NAME.truth.json, "
                    "NAME.rules.json and NAME.scene.yaml)"
                )
        out.append(files)
    return out


def read_rules(path: Path) -> RulesTruth:
    try:
        return RulesTruth.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise UserError(f"{path}: not a rules truth file ({exc})") from exc


@dataclass(frozen=True)
class NodeRun:
    run: SceneRun
    truth: SceneTruth
    rules: RulesTruth
    packages: int
    violations: int
    seconds: float


def run_scene(files: SceneFiles, detectors: DetectorPool, model_version: str) -> NodeRun:
    """The scene's video through a whole edge node; what its rules emitted, and when."""
    from calibration.speed_eval import surveyed_calibration
    from calibration.store import save_calibration
    from edge.config import parse_site_config
    from edge.node import EdgeNode
    from edge.rules.scene import load_scene

    truth = read_truth(files.truth)
    rules = read_rules(files.rules)
    camera_id = load_scene(files.scene).camera
    with tempfile.TemporaryDirectory(prefix="roadwatch-rules-") as tmp:
        calibration = Path(tmp) / "camera.calib.yaml"
        survey = surveyed_calibration(
            truth.camera.camera(), truth.seed, datetime.now(UTC), camera_id=camera_id
        )
        save_calibration(survey, calibration)
        config = parse_site_config(
            {
                "site": "eval",
                "node": "eval",
                "cameras": [
                    {
                        "id": camera_id,
                        "url": str(files.video),
                        "scene": str(files.scene),
                        "calibration": str(calibration),
                    }
                ],
                "plates": False,
            },
            "rules evaluation",
        )
        node = EdgeNode.from_config(config, model_version=model_version)
        frames: list[tuple[TrackBox, ...]] = []
        emitted: list[Emitted] = []

        def record(item: TrackedFrame) -> None:
            tracks = item.tracks
            boxes: tuple[TrackBox, ...] = ()
            if tracks.tracker_id is not None:
                boxes = tuple(
                    TrackBox(int(tid), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
                    for tid, b in zip(tracks.tracker_id.tolist(), tracks.xyxy.tolist(), strict=True)
                )
            while len(frames) < item.frame.index:
                frames.append(())
            frames.append(boxes)

        def found(violation: Violation) -> None:
            emitted.append(
                Emitted(violation.rule, violation.track_id, len(frames) - 1, violation.explanation)
            )

        for enforcement in node.enforcement.values():
            enforcement.listeners.append(found)
        summary = node.run_file(files.video, sinks=[record], start=START, detectors=detectors)
    return NodeRun(
        run=SceneRun(truth.name, truth.fps, tuple(frames), tuple(emitted)),
        truth=truth,
        rules=rules,
        packages=node.packages,
        violations=node.violations,
        seconds=summary.seconds,
    )


def describe_truth(rules: RulesTruth) -> str:
    return json.dumps(
        {v.vehicle_id: [v.episode, sorted(r.value for r in v.violations)] for v in rules.vehicles}
    )
