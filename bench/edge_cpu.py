"""Frames per second of decode -> detect -> track on a real clip, against Ultralytics' own loop.

    PYTHONPATH=$PWD .venv/bin/python bench/edge_cpu.py [--clip PATH] [--frames N]

Ours: OpenCV decode, the batch-dynamic YOLOv8n through onnxruntime (CPU provider here),
ByteTrack (edge.tracking). The peer: Ultralytics' ``YOLO(...).track(stream=True)`` with
its ByteTrack on the same clip and the same weights (the stock ONNX file), which a user
would pick instead. Each side runs in its own process, one after the other, so peak
memory (max RSS) is each side's own. The ratio is printed only when both sides ran:
Ultralytics needs torch and torchvision, and where they are missing the peer is reported
as not measured rather than estimated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "vn_redlight_16h30.mp4"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(clip: Path, frames: int) -> dict[str, Any]:
    from edge.detector import Detector, DetectorConfig
    from edge.pipeline import track_frame
    from edge.sources import probe_file, read_file
    from edge.tracking import Tracker

    config = DetectorConfig(providers=("CPUExecutionProvider",))
    detector = Detector.from_manifest(config)  # loaded and warmed up before the clock starts
    tracker = Tracker(fps=probe_file(clip).fps)
    done = 0
    seen: set[int] = set()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for frame in read_file(clip):
        found = detector.detect_for_tracking([frame.image])[0]  # as the node detects
        tracks = track_frame(tracker, found, frame.index / tracker.fps)
        if tracks.tracker_id is not None:
            seen.update(tracks.tracker_id.tolist())
        done += 1
        if done >= frames:
            break
    elapsed = time.perf_counter() - started
    return {
        "frames": done,
        "seconds": elapsed,
        "cpu_seconds": time.process_time() - cpu_started,
        "track_ids": len(seen),
        "peak_rss_mib": _peak_rss_mib(),
    }


def run_peer(clip: Path, frames: int) -> dict[str, Any]:
    try:
        from ultralytics import YOLO
    except Exception as exc:  # ImportError, or torchvision failing inside the import
        return {"error": f"ultralytics not importable: {type(exc).__name__}: {exc}"[:300]}
    from models.registry import model_path

    model = YOLO(str(model_path("yolov8n-coco")), task="detect")
    done = 0
    seen: set[int] = set()
    stream = model.track(
        source=str(clip), stream=True, tracker="bytetrack.yaml", device="cpu", verbose=False,
        classes=[0, 1, 2, 3, 5, 7], conf=0.25,
    )  # fmt: skip
    started = None
    cpu_started = 0.0
    for result in stream:
        if started is None:  # the first frame pays the model load and warm-up: not counted
            started = time.perf_counter()
            cpu_started = time.process_time()
            continue
        if result.boxes is not None and result.boxes.id is not None:
            seen.update(int(i) for i in result.boxes.id.tolist())
        done += 1
        if done >= frames - 1:
            break
    elapsed = time.perf_counter() - (started or time.perf_counter())
    return {
        "frames": done,
        "seconds": elapsed,
        "cpu_seconds": time.process_time() - cpu_started,
        "track_ids": len(seen),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _child(side: str, clip: Path, frames: int) -> dict[str, Any]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--side", side, "--clip", str(clip), "--frames", str(frames)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": f"{side} run failed: {tail}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _fps(r: dict[str, Any]) -> float:
    return float(r["frames"]) / float(r["seconds"]) if r.get("seconds") else 0.0


def _line(name: str, r: dict[str, Any]) -> str:
    cpu_ms = 1000 * float(r["cpu_seconds"]) / max(1, int(r["frames"]))
    return (
        f"{name}: {_fps(r):.2f} frames/s over {r['frames']} frames ({cpu_ms:.0f} ms CPU per"
        f" frame), {r['track_ids']} track ids, peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=10**9, help="stop after this many frames")
    parser.add_argument("--side", choices=["ours", "peer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.clip.is_file():
        print(f"bench: no clip at {args.clip}", file=sys.stderr)
        return 2
    if args.side:
        run = run_ours if args.side == "ours" else run_peer
        print(json.dumps(run(args.clip, args.frames)))
        return 0

    print(f"clip: {args.clip.name}; cores: {os.cpu_count()}")
    load = os.getloadavg()[0]
    ours = _child("ours", args.clip, args.frames)
    peer = _child("peer", args.clip, args.frames)
    if "error" in ours:
        print(f"ours: {ours['error']}")
        return 1
    print(f"load average before the run: {load:.1f} (other work on the cores slows both sides)")
    print(_line("ours (onnxruntime + ByteTrack)", ours))
    if "error" in peer:
        print(f"peer (Ultralytics model.track): not measured here: {peer['error']}")
        print("ratio: not available (the peer did not run on this machine)")
        return 0
    print(_line("peer (Ultralytics model.track)", peer))
    print(f"ratio ours/peer: {_fps(ours) / _fps(peer):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
