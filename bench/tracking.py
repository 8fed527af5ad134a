"""Tracking per frame on the Hanoi clip: a camera's Kalman steps for all of its tracks in
one array operation, against the same tracker stepping each track alone, in the same run.

The clip's detections are made once (the stock detector, CPU; each frame's confident and
low boxes, as the node makes them), then each way tracks all 384 frames; the best of
``--repeat`` runs is kept and the two ways' tracks are compared.
The peer steps each track in the filter's matrix form, as the tracker did before its
tracks stepped together.

    .venv/bin/python bench/tracking.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge import bytetrack  # noqa: E402
from edge.detections import Detections  # noqa: E402
from edge.detector import Detector, DetectorConfig, FrameDetections  # noqa: E402
from edge.pipeline import track_frame  # noqa: E402
from edge.tracking import Tracker  # noqa: E402


def detections(clip: Path, detector: Detector | None = None) -> tuple[list[FrameDetections], float]:
    """Every frame's detections for the tracker (confident and low boxes), read and
    detected 8 frames at a time; and the clip's frame rate."""
    detector = detector or Detector.from_manifest(
        DetectorConfig(providers=("CPUExecutionProvider",))
    )
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    out: list[FrameDetections] = []
    batch: list[np.ndarray] = []
    while True:
        ok, frame = capture.read()
        if ok:
            batch.append(np.asarray(frame, dtype=np.uint8))
        if batch and (not ok or len(batch) == 8):
            out.extend(detector.detect_for_tracking(batch))
            batch = []
        if not ok:
            break
    capture.release()
    return out, fps


def track(feed: list[FrameDetections], fps: float) -> tuple[float, list[Detections]]:
    tracker = Tracker(fps=fps)
    started = time.perf_counter()
    out = [track_frame(tracker, d, i / fps) for i, d in enumerate(feed)]
    return time.perf_counter() - started, out


_H = np.eye(4, 8)
_POSITION, _VELOCITY = 1.0 / 20, 1.0 / 160  # edge.bytetrack's process noise per box height


def predict_alone(boxes: list[bytetrack.KalmanBox], steps: float = 1.0) -> None:
    f = np.eye(8)
    f[:4, 4:] = steps * np.eye(4)
    for box in boxes:
        h = box.mean[3]
        p, v = _POSITION * h, _VELOCITY * h
        box.mean = f @ box.mean
        q = np.diag(np.square([p, p, 1e-2, p, v, v, 1e-5, v])) * steps
        box.cov = f @ box.cov @ f.T + q


def update_alone(boxes: list[bytetrack.KalmanBox], measured: np.ndarray) -> None:
    for box, xyxy in zip(boxes, measured, strict=True):
        w, hb = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
        z = np.array([xyxy[0] + w / 2, xyxy[1] + hb / 2, w / max(hb, 1e-6), hb])
        h = box.mean[3]
        r = np.diag(np.square([_POSITION * h, _POSITION * h, 1e-1, _POSITION * h]))
        s = _H @ box.cov @ _H.T + r
        gain = np.linalg.solve(s, _H @ box.cov).T
        box.mean = box.mean + gain @ (z - _H @ box.mean)
        box.cov = box.cov - gain @ s @ gain.T


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each way; best kept")
    parser.add_argument(
        "--clip", type=Path, default=ROOT.parent / "shared" / "data" / "vn_redlight_16h30.mp4"
    )
    args = parser.parse_args()
    feed, fps = detections(args.clip)

    def one_by_one() -> tuple[float, list[Detections]]:
        with (
            mock.patch.object(bytetrack, "predict_all", predict_alone),
            mock.patch.object(bytetrack, "update_all", update_alone),
        ):
            return track(feed, fps)

    together = [track(feed, fps) for _ in range(args.repeat)]
    alone = [one_by_one() for _ in range(args.repeat)]
    ours, peer = min(s for s, _ in together), min(s for s, _ in alone)
    same = all(
        np.array_equal(a.xyxy, b.xyxy)
        and np.array_equal(np.asarray(a.tracker_id), np.asarray(b.tracker_id))
        for a, b in zip(together[0][1], alone[0][1], strict=True)
    )
    n = len(feed)
    print(
        f"{args.clip.name}: {n} frames, {sum(len(d.confident) for d in feed) / n:.1f} detections"
        f" (and {sum(len(d.low) for d in feed) / n:.1f} low) and"
        f" {sum(len(d) for d in together[0][1]) / n:.1f} tracked per frame"
    )
    print(
        f"tracking: {1000 * ours / n:.2f} ms per frame with the tracks' Kalman steps together,"
        f" {1000 * peer / n:.2f} ms stepping each track alone; ratio {peer / ours:.2f};"
        f" the same tracks: {'yes' if same else 'NO'}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
