"""Speed estimation on a busy road: a frame's tracks in one array pass, against one
estimate per track measured in the same run.

Each camera frame, every track on the road gets its ground sample and a fresh speed
estimate over its last 4 s (``edge.enforcement``'s settings). The Hanoi clip carries 16.6
tracks per frame on average (27 at most), so this runs once per frame per camera with
about that many tracks. Simulated: ``--tracks`` vehicles at a time driving through the
density bench's 1080p camera at 30 fps, each leaving after 2-6 s for a new one (tracks of
every age), contact points with 1 px noise. Both ways see the same samples; their
estimates are compared.

Then one camera's whole enforcement per frame (road-plane points, speeds, the demo road's
rules, traffic counts; the evidence ring left out, its cost is in bench/gpu_density.py)
with ``--vehicles`` in view, against the same enforcement estimating one track at a time.

    .venv/bin/python bench/speed_estimation.py
    .venv/bin/python bench/speed_estimation.py --tracks 1 17 40 --frames 600 --vehicles 17
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from gpu_density import density_camera  # noqa: E402  (beside this script)

from calibration.projector import RoadProjector  # noqa: E402
from calibration.speed import (  # noqa: E402
    GroundSample,
    SampleWindow,
    SpeedEstimate,
    estimate_speed,
    estimate_speeds,
)
from edge.enforcement import SPEED_CONFIG  # noqa: E402

FPS = 30.0
CAMERA = density_camera()  # the density bench's 1080p camera
Feed = list[list[tuple[int, GroundSample]]]  # per frame: (track id, its sample)
Estimates = list[list[SpeedEstimate | None]]


def road(tracks: int, frames: int, seed: int = 7) -> Feed:
    """Per frame, (track id, sample) of each vehicle on the road."""
    rng = np.random.default_rng(seed)
    out: Feed = [[] for _ in range(frames)]
    for slot in range(tracks):
        start, next_id = -int(rng.integers(0, int(6 * FPS))), slot
        while start < frames:
            length = int(rng.uniform(2.0, 6.0) * FPS)
            t = np.arange(length) / FPS
            lane = rng.choice([-5.25, -1.75, 1.75, 5.25])
            kmh = rng.uniform(25, 110) * (1 if lane > 0 else -1)
            y0 = rng.uniform(12, 40) if kmh > 0 else rng.uniform(60, 90)
            world = np.column_stack([np.full(length, lane), y0 + t * kmh / 3.6])
            pixels = CAMERA.project(world) + rng.normal(0, 1.0, (length, 2))
            height = 40 + 2000 / world[:, 1].clip(5)
            for k in range(length):
                frame = start + k
                if 0 <= frame < frames and np.isfinite(pixels[k]).all():
                    sample = GroundSample(
                        frame / FPS, (float(pixels[k, 0]), float(pixels[k, 1])), float(height[k])
                    )
                    out[frame].append((next_id, sample))
            start += length
            next_id += tracks
    return out


def one_by_one(feed: Feed, projector: RoadProjector) -> tuple[float, Estimates]:
    """Seconds and estimates with one ``estimate_speed`` call per track per frame."""
    history: dict[int, deque[GroundSample]] = {}
    out = []
    started = time.perf_counter()
    for frame in feed:
        estimates = []
        for tid, sample in frame:
            samples = history.setdefault(tid, deque())
            samples.append(sample)
            while samples[0].t < sample.t - SPEED_CONFIG.max_window_s:
                samples.popleft()
            estimates.append(estimate_speed(list(samples), projector, SPEED_CONFIG))
        out.append(estimates)
    return time.perf_counter() - started, out


def at_once(feed: Feed, projector: RoadProjector) -> tuple[float, Estimates]:
    """Seconds and estimates with a ``SampleWindow`` per track and one ``estimate_speeds``
    call per frame (what the enforcement does)."""
    history: dict[int, SampleWindow] = {}
    out = []
    started = time.perf_counter()
    for frame in feed:
        rows = []
        for tid, sample in frame:
            window = history.setdefault(tid, SampleWindow(SPEED_CONFIG.max_window_s))
            window.add(sample)
            rows.append(window.rows)
        out.append(estimate_speeds(rows, projector, SPEED_CONFIG))
    return time.perf_counter() - started, out


class _NoRing:
    """An evidence ring that keeps nothing (its cost is not what is measured here)."""

    camera, jpeg_quality, newest_mono_s = "cam-0001", 90, None

    def push_frame(self, *_: object) -> None:
        pass

    def window(self, *_: object) -> list[Any]:
        return []

    def frames_at(self, *_: object) -> list[Any]:
        return []


def enforcement(vehicles: int, frames: int, folder: Path, one_at_a_time: bool) -> tuple[float, int]:
    """Seconds of one camera's enforcement over ``frames`` frames with ``vehicles`` in
    view (boxes driven through the demo road's lanes), and the violations it found."""
    from datetime import UTC, datetime, timedelta

    import yaml

    from calibration.scenes import LANES
    from calibration.speed_eval import surveyed_calibration
    from calibration.store import save_calibration
    from edge import enforcement as module
    from edge.config import parse_site_config
    from edge.detections import Detections, ObjectClass
    from edge.node import EdgeNode
    from edge.pipeline import TrackedFrame
    from edge.sources import Frame
    from roadwatch.demo.scene import scene_document

    scene, calibration = folder / "scene.yaml", folder / "cam.calib.yaml"
    scene.write_text(yaml.safe_dump({**scene_document(CAMERA), "camera": "cam-0001"}))
    now = datetime.now(UTC)
    save_calibration(
        surveyed_calibration(CAMERA, 7, now, camera_id="cam-0001", calibrated_by="bench"),
        calibration,
    )
    config = parse_site_config(
        {"site": "bench", "node": "speed", "plates": False, "integrity": {"enabled": False},
         "cameras": [{"id": "cam-0001", "url": str(folder / "none.mp4"), "scene": str(scene),
                      "calibration": str(calibration)}]}
    )  # fmt: skip
    node = EdgeNode.from_config(config, model_version="bench")
    node.enforcement["cam-0001"].ring = _NoRing()
    rng = np.random.default_rng(3)
    # (lane centre, metres along, km/h, track id); one leaving at 75 m is a new one at 12 m
    cars = [
        [rng.choice(LANES), rng.uniform(12, 75), rng.uniform(30, 90), i + 1]
        for i in range(vehicles)
    ]
    next_id = vehicles + 1
    image = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
    feed = []
    for f in range(frames):
        boxes = []
        for car in cars:
            car[1] += car[2] / 3.6 / FPS
            if car[1] > 75:
                car[1], car[3], next_id = 12.0, next_id, next_id + 1
            (u, v), size = CAMERA.project(np.array([car[:2]]))[0], 1800 / car[1]
            boxes.append([u - 0.9 * size, v - 0.75 * size, u + 0.9 * size, v])
        ids = np.array([car[3] for car in cars])
        found = Detections(
            np.array(boxes), np.full(vehicles, 0.8), np.full(vehicles, ObjectClass.CAR.value), ids
        )
        frame = Frame("cam-0001", f, f / FPS, now + timedelta(seconds=f / FPS), image)
        feed.append(TrackedFrame(frame, found))

    def alone(rows: Any, projector: RoadProjector, config: Any) -> list[SpeedEstimate | None]:
        return [estimate_speeds([r], projector, config)[0] for r in rows]

    with mock.patch.object(module, "estimate_speeds", alone if one_at_a_time else estimate_speeds):
        started = time.perf_counter()
        for item in feed:
            node.on_tracked(item)
        elapsed = time.perf_counter() - started
    node.finish()
    return elapsed, node.violations


def largest_difference(a: Estimates, b: Estimates) -> float:
    """The largest relative difference of the two ways' speeds (inf if one has none)."""
    worst = 0.0
    for x, y in zip((e for f in a for e in f), (e for f in b for e in f), strict=True):
        if (x is None) != (y is None):
            return float("inf")
        if x is not None and y is not None:
            worst = max(worst, abs(x.speed_mps - y.speed_mps) / max(x.speed_mps, 1e-9))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[1, 5, 17, 30])
    parser.add_argument("--frames", type=int, default=300, help="camera frames per count")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way; best kept")
    parser.add_argument(
        "--vehicles", type=int, nargs="*", default=[17, 30],
        help="vehicles in view for the enforcement figures",
    )  # fmt: skip
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # evidence is not built here (no ring): said per case
    projector = RoadProjector(image_to_world=CAMERA.image_to_world, rms_m=0.05)
    print(f"{args.frames} frames at {FPS:.0f} fps, best of {args.repeat} runs per way")
    for tracks in args.tracks:
        feed = road(tracks, args.frames)
        samples = sum(len(f) for f in feed)
        alone, batched = [], []
        for _ in range(args.repeat):
            seconds, peer = one_by_one(feed, projector)
            alone.append(seconds)
            seconds, ours = at_once(feed, projector)
            batched.append(seconds)
        diff = largest_difference(peer, ours)
        per_frame = 1000 / args.frames
        print(
            f"{tracks:3d} tracks per frame ({samples / args.frames:5.1f} on average):"
            f" one by one {min(alone) * per_frame:6.2f} ms per frame, at once"
            f" {min(batched) * per_frame:6.2f} ms; ratio {min(alone) / min(batched):4.1f};"
            f" estimates agree to {diff:.1e}"
        )
        if diff > 1e-9:
            print("the two ways disagree", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as folder:
        for vehicles in args.vehicles:
            runs = [
                [
                    enforcement(vehicles, args.frames, Path(folder), alone)
                    for _ in range(args.repeat)
                ]
                for alone in (True, False)
            ]
            (alone_s, found_alone), (together_s, found) = (min(r) for r in runs)
            print(
                f"enforcement, {vehicles:3d} vehicles in view:"
                f" {1000 * together_s / args.frames:5.2f} ms per frame,"
                f" {1000 * alone_s / args.frames:5.2f} ms estimating one track at a time;"
                f" ratio {alone_s / together_s:4.1f}; {found} violations"
                f" ({found_alone} the other way)"
            )
            if found != found_alone:
                print("the two ways found different violations", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
