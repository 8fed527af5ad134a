"""Tracks with and without ByteTrack's low boxes, on the same detections of real clips.

Each clip's frames go through the product's detector once (``detect_for_tracking``: each
frame's confident boxes and, apart, its low ones); then one tracker takes the confident
boxes alone (as the node tracked before low boxes reached it) and another takes the low
ones too. Printed per clip: track ids, tracked boxes (and the low ones among them), and
gaps inside tracks (a track missing from frames between two frames where it is seen).

    .venv/bin/python bench/tracking_low.py [--motorcycle 0.2] [CLIP...]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench.tracking import detections  # noqa: E402
from edge.detections import Detections, ObjectClass  # noqa: E402
from edge.detector import Detector, DetectorConfig, FrameDetections  # noqa: E402
from edge.tracking import Tracker  # noqa: E402

CLIPS = ("vn_redlight_16h30.mp4", "kraten_cars.mp4", "vn_saigon.mp4")


def tracked(feed: list[FrameDetections], fps: float, low: bool) -> list[tuple[Detections, int]]:
    """Each frame's tracks, and how many of them are low boxes."""
    tracker = Tracker(fps=fps)
    out = []
    for i, found in enumerate(feed):
        tracks = tracker.update(found.confident, i / fps, found.low if low else None)
        confident = {tuple(b) for b in found.confident.xyxy.tolist()}
        out.append((tracks, sum(tuple(b) not in confident for b in tracks.xyxy.tolist())))
    return out


Band = tuple[float, float]


def in_band(dets: Detections, band: Band) -> int:
    """Motorcycle boxes scored within ``band``."""
    moto = (dets.class_id == ObjectClass.MOTORCYCLE) & (dets.confidence >= band[0])
    return int((moto & (dets.confidence < band[1])).sum())


def describe(frames: list[tuple[Detections, int]], band: Band | None) -> str:
    seen: dict[int, list[int]] = {}
    for i, (tracks, _) in enumerate(frames):
        for tid in [] if tracks.tracker_id is None else tracks.tracker_id.tolist():
            seen.setdefault(tid, []).append(i)
    gaps = sum(1 for at in seen.values() for a, b in itertools.pairwise(at) if b - a > 1)
    boxes, low = sum(len(t) for t, _ in frames), sum(n for _, n in frames)
    text = (
        f"ids {len(seen):4d}, tracked boxes {boxes:6d} ({low:5d} low), gaps inside tracks {gaps:4d}"
    )
    if band is not None:
        moto = sum(in_band(t, band) for t, _ in frames)
        text += f", motorcycle boxes at {band[0]:.2f}-{band[1]:.2f}: {moto}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument(
        "--motorcycle", type=float, default=None, help="class_confidence for motorcycles"
    )
    args = parser.parse_args()
    clips = args.clips or [ROOT.parent / "shared" / "data" / name for name in CLIPS]
    thresholds = {} if args.motorcycle is None else {"motorcycle": args.motorcycle}
    config = DetectorConfig(providers=("CPUExecutionProvider",), class_confidence=thresholds)
    detector = Detector.from_manifest(config)
    band = None
    if args.motorcycle is not None and args.motorcycle < config.confidence:
        band = (args.motorcycle, config.confidence)
    for clip in clips:
        feed, fps = detections(clip, detector)
        head = f"{clip.name}: {len(feed)} frames"
        if band is not None:
            passed = sum(in_band(f.confident, band) for f in feed)
            head += f", {passed} motorcycle boxes at {band[0]:.2f}-{band[1]:.2f} detected"
        print(head)
        print(f"  confident boxes alone: {describe(tracked(feed, fps, low=False), band)}")
        print(f"  with the low boxes:    {describe(tracked(feed, fps, low=True), band)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
