"""Speed accuracy of the whole pipeline on generated scenes with exact ground truth.

Each scene is run as a camera would be: its camera is calibrated from surveyed road marks
(picked with pixel noise), every frame goes through the edge detector and tracker as the
node runs them (``Detector.detect_for_tracking``, ``edge.pipeline.track_frame``), each
track's bottom-centre contact points go through the calibration, and the speed estimator
reports speed +/- uncertainty per track. Tracks are matched to the scripted vehicles by
box overlap and compared with their true speed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from calibration.camera import PinholeCamera
from calibration.config import CalibrationFile, PointsFile, SurveyPoint
from calibration.errors import CalibrationError
from calibration.projector import RoadProjector, build_calibration, require_calibration
from calibration.scene_render import ScenePaths, read_truth
from calibration.scenes import FrameTruth, SceneTruth
from calibration.speed import GroundSample, SpeedConfig, SpeedEstimate, estimate_speed

if TYPE_CHECKING:
    from edge.detections import Detections
    from edge.detector import Detector

Image = npt.NDArray[np.uint8]

# Road marks a surveyor picks: lane-line dash ends across and along the measured stretch.
SURVEY_X_M = (-3.5, 0.0, 3.5, 7.0)
SURVEY_Y_M = (14.0, 18.0, 24.0, 30.0, 40.0, 50.0, 60.0)
SURVEY_CLICK_SIGMA_PX = 0.5
# A truth box counts for recall when this much of the vehicle is in view and it is this tall.
RECALL_MIN_VISIBLE = 0.6
RECALL_MIN_HEIGHT_PX = 12.0
RECALL_LARGE_HEIGHT_PX = 40.0
MATCH_IOU = 0.5
# Boxes cut by the frame's edge do not show where the vehicle touches the road.
EDGE_MARGIN_PX = 2.0

# Measured by `roadwatch eval speed`: the stock detector's box bottom sits on average 1.9 %
# of the box height above the vehicle's lowest point, scattering by 2.2 %; an offset that
# persists over a track is what biases speed, and 5 % covers both with margin.
DEFAULT_SPEED_CONFIG = SpeedConfig(pixel_sigma_px=1.0, box_edge_sigma=0.05)


@dataclass(frozen=True)
class TrackResult:
    scene: str
    track_id: int
    vehicle_id: int
    true_kmh: float
    estimate: SpeedEstimate

    @property
    def error_kmh(self) -> float:
        return self.estimate.speed_kmh - self.true_kmh


@dataclass(frozen=True)
class SceneResult:
    name: str
    tracks: tuple[TrackResult, ...]
    vehicles: int
    unmatched_tracks: int
    truth_boxes: int
    detected_boxes: int
    large_truth_boxes: int = 0
    large_detected_boxes: int = 0
    bottom_offsets: tuple[float, ...] = ()
    """Detected box bottom minus the true contact row, as shares of the true box height."""


@dataclass(frozen=True)
class SpeedReport:
    scenes: tuple[SceneResult, ...]

    @property
    def tracks(self) -> tuple[TrackResult, ...]:
        return tuple(t for s in self.scenes for t in s.tracks)

    def summary(self) -> dict[str, float | int]:
        errors = np.array([abs(t.error_kmh) for t in self.tracks])
        covered = [t.estimate.contains(t.true_kmh) for t in self.tracks]
        truth = sum(s.truth_boxes for s in self.scenes)
        large = sum(s.large_truth_boxes for s in self.scenes)
        offsets = np.array([o for s in self.scenes for o in s.bottom_offsets])
        measured = {(t.scene, t.vehicle_id) for t in self.tracks}
        return {
            "mean_abs_error_kmh": float(errors.mean()) if errors.size else math.nan,
            "p95_abs_error_kmh": float(np.percentile(errors, 95)) if errors.size else math.nan,
            "interval_coverage": float(np.mean(covered)) if covered else math.nan,
            "mean_uncertainty_kmh": float(
                np.mean([t.estimate.uncertainty_kmh for t in self.tracks])
            )
            if self.tracks
            else math.nan,
            "scenes": len(self.scenes),
            "tracks": len(self.tracks),
            "vehicles": sum(s.vehicles for s in self.scenes),
            "vehicles_measured": len(measured),
            "unmatched_tracks": sum(s.unmatched_tracks for s in self.scenes),
            "detector_recall": sum(s.detected_boxes for s in self.scenes) / truth
            if truth
            else math.nan,
            "truth_boxes": truth,
            "detector_recall_40px": sum(s.large_detected_boxes for s in self.scenes) / large
            if large
            else math.nan,
            "box_bottom_offset_mean": float(np.mean(offsets)) if offsets.size else math.nan,
            "box_bottom_offset_std": float(np.std(offsets)) if offsets.size else math.nan,
        }


def survey_calibration(camera: PinholeCamera, seed: int, at: datetime) -> RoadProjector:
    """Calibrate ``camera`` as a surveyor would: visible lane marks, clicked with noise."""
    return require_calibration(surveyed_calibration(camera, seed, at), "scene", at)


def surveyed_calibration(
    camera: PinholeCamera,
    seed: int,
    at: datetime,
    *,
    camera_id: str = "scene",
    calibrated_by: str = "scene survey",
) -> CalibrationFile:
    """The calibration file of ``camera`` from visible lane marks clicked with noise."""
    rng = np.random.default_rng(seed)
    world = np.array([(x, y) for x in SURVEY_X_M for y in SURVEY_Y_M], dtype=np.float64)
    pixels = camera.project(world)
    inside = (
        np.isfinite(pixels).all(axis=1)
        & (pixels[:, 0] > 5)
        & (pixels[:, 0] < camera.width - 5)
        & (pixels[:, 1] > 5)
        & (pixels[:, 1] < camera.height - 5)
    )
    clicked = pixels[inside] + rng.normal(0, SURVEY_CLICK_SIGMA_PX, (int(inside.sum()), 2))
    survey = PointsFile(
        camera=camera_id,
        points=[
            SurveyPoint(name=f"m{i}", pixel=(float(u), float(v)), world=(float(x), float(y)))
            for i, ((u, v), (x, y)) in enumerate(zip(clicked, world[inside], strict=True))
        ],
    )
    calibration, _ = build_calibration(survey, (camera.width, camera.height), calibrated_by, at)
    return calibration


def _iou(box: Sequence[float], boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if boxes.size == 0:
        return np.zeros(0)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / (area + areas - inter), dtype=np.float64)


@dataclass
class _TrackLog:
    samples: list[GroundSample] = field(default_factory=list)
    votes: Counter[int] = field(default_factory=Counter)
    frames: int = 0


def _vehicle_boxes(dets: Detections) -> Detections:
    from edge.detections import ObjectClass, vehicle_class

    keep = np.array([vehicle_class(ObjectClass(int(c))) is not None for c in dets.class_id])
    return dets.select(keep) if len(dets) else dets


@dataclass
class _Recall:
    truth: int = 0
    found: int = 0
    large_truth: int = 0
    large_found: int = 0
    bottom_offsets: list[float] = field(default_factory=list)

    def add(self, frame: FrameTruth, detections: Detections) -> None:
        """Count the frame's well-visible truth boxes and those a detection overlaps."""
        xyxy = np.asarray(detections.xyxy, dtype=np.float64).reshape(-1, 4)
        for box in frame.boxes:
            height = box.xyxy[3] - box.xyxy[1]
            if box.visible < RECALL_MIN_VISIBLE or height < RECALL_MIN_HEIGHT_PX:
                continue
            overlaps = _iou(box.xyxy, xyxy)
            found = bool(overlaps.size and overlaps.max() >= MATCH_IOU)
            if found and box.contact_px[1] == box.xyxy[3]:  # bottom not cut by the frame
                bottom = float(xyxy[int(overlaps.argmax()), 3])
                self.bottom_offsets.append((bottom - box.contact_px[1]) / height)
            self.truth += 1
            self.found += found
            if height >= RECALL_LARGE_HEIGHT_PX:
                self.large_truth += 1
                self.large_found += found


class _Frames:
    """Decoded frames of a scene video, one at a time."""

    def __init__(self, path: Path) -> None:
        import cv2

        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise CalibrationError(f"{path}: cannot open the scene video")

    def __iter__(self) -> _Frames:
        return self

    def __next__(self) -> Image:
        ok, frame = self._capture.read()
        if not ok:
            self._capture.release()
            raise StopIteration
        return np.asarray(frame, dtype=np.uint8)

    def close(self) -> None:
        self._capture.release()


def evaluate_scene(
    paths: ScenePaths,
    detector: Detector,
    config: SpeedConfig = DEFAULT_SPEED_CONFIG,
    at: datetime | None = None,
) -> SceneResult:
    """Run detector, tracker, calibration and speed over one generated scene.

    Each frame is detected and tracked as the node does it (``detect_for_tracking`` and
    ``track_frame``: every class, the low boxes continuing tracks); the tracks of vehicle
    classes are measured, and the detector's recall is that of its confident vehicle boxes."""
    from edge.pipeline import track_frame
    from edge.tracking import Tracker

    truth: SceneTruth = read_truth(paths.truth)
    camera = truth.camera.camera()
    projector = survey_calibration(camera, truth.seed, at or datetime.now(UTC))
    tracker = Tracker(fps=truth.fps)
    logs: dict[int, _TrackLog] = {}
    recall = _Recall()
    frames = _Frames(paths.video)
    try:
        for frame_truth, image in zip(truth.frames, frames, strict=False):
            found = detector.detect_for_tracking([image])[0]
            recall.add(frame_truth, _vehicle_boxes(found.confident))
            tracked = _vehicle_boxes(track_frame(tracker, found, frame_truth.t))
            if tracked.tracker_id is None:
                continue
            truth_xyxy = np.array([b.xyxy for b in frame_truth.boxes], dtype=np.float64)
            rows = zip(tracked.xyxy, tracked.tracker_id, tracked.low_rows, strict=True)
            for box, track_id, low in rows:
                x1, y1, x2, y2 = (float(v) for v in box)
                log = logs.setdefault(int(track_id), _TrackLog())
                log.frames += 1
                overlaps = _iou((x1, y1, x2, y2), truth_xyxy)
                if overlaps.size and overlaps.max() >= MATCH_IOU:
                    log.votes[frame_truth.boxes[int(overlaps.argmax())].vehicle_id] += 1
                cut = (
                    x1 <= EDGE_MARGIN_PX
                    or y2 >= camera.height - EDGE_MARGIN_PX
                    or x2 >= camera.width - EDGE_MARGIN_PX
                )
                if not cut and not low:  # (as the node: a low box is no speed sample)
                    log.samples.append(
                        GroundSample(
                            t=frame_truth.t, pixel=((x1 + x2) / 2, y2), box_height_px=y2 - y1
                        )
                    )
    finally:
        frames.close()
    speeds = {v.vehicle_id: v.speed_kmh for v in truth.vehicles}
    results, unmatched = [], 0
    for track_id, log in sorted(logs.items()):
        vehicle, votes = log.votes.most_common(1)[0] if log.votes else (0, 0)
        if votes < log.frames / 2:
            unmatched += 1
            continue
        estimate = estimate_speed(log.samples, projector, config)
        if estimate is not None:
            results.append(TrackResult(truth.name, track_id, vehicle, speeds[vehicle], estimate))
    return SceneResult(
        name=truth.name,
        tracks=tuple(results),
        vehicles=len(truth.vehicles),
        unmatched_tracks=unmatched,
        truth_boxes=recall.truth,
        detected_boxes=recall.found,
        large_truth_boxes=recall.large_truth,
        large_detected_boxes=recall.large_found,
        bottom_offsets=tuple(recall.bottom_offsets),
    )


def scene_paths(arguments: Sequence[Path]) -> list[ScenePaths]:
    """Scene videos (NAME.mp4) or truth files (NAME.truth.json) -> both paths of each."""
    out = []
    for arg in arguments:
        stem = arg.name.removesuffix(".truth.json").removesuffix(".mp4")
        paths = ScenePaths(arg.with_name(f"{stem}.mp4"), arg.with_name(f"{stem}.truth.json"))
        for p in (paths.video, paths.truth):
            if not p.is_file():
                raise CalibrationError(
                    f"{p}: scene file missing (need NAME.mp4 and NAME.truth.json)"
                )
        out.append(paths)
    return out


def evaluate(
    scenes: Sequence[ScenePaths],
    detector: Detector,
    config: SpeedConfig = DEFAULT_SPEED_CONFIG,
    progress: Callable[[SceneResult], None] | None = None,
) -> SpeedReport:
    results = []
    at = datetime.now(UTC)
    for paths in scenes:
        result = evaluate_scene(paths, detector, config, at)
        if progress is not None:
            progress(result)
        results.append(result)
    return SpeedReport(scenes=tuple(results))
