"""Throughput of the six violation rules, against the lamp reading measured in the same run.

Feeds a synthetic scene (tests/rules_tracks.py's layout) with 40 vehicles per frame through
all six rules (road-plane metres), and times the lamp reading of one signal head on a
1080p frame as the peer: both run once per camera frame on the edge node's CPU.

    PYTHONPATH=. .venv/bin/python bench/rules_throughput.py
"""

from __future__ import annotations

import time

import numpy as np

from edge.rules.engine import RuleSet
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry
from edge.rules.scene import SignalHead
from edge.rules.signal import SignalState, lamp_strengths
from edge.rules.tracks import ImageBox, TrackFrame, WorldTrackPoint
from roadwatch.contract import VehicleClass
from tests.rules_tracks import T0, scene_config, to_world

VEHICLES = 40
FRAMES = 500
FPS = 25.0


def frames() -> list[TrackFrame]:
    rng = np.random.default_rng(7)
    xs = rng.uniform(410, 990, VEHICLES)
    starts = rng.uniform(950, 1000, VEHICLES)
    speeds = rng.uniform(20, 120, VEHICLES)  # px/s, 2-12 m/s
    out = []
    for k in range(FRAMES):
        t = k / FPS
        points = []
        for i in range(VEHICLES):
            y = (starts[i] - speeds[i] * t) % 1000
            ground = Point(float(xs[i] + rng.normal(0, 1)), float(y))
            points.append(
                WorldTrackPoint(
                    track_id=i + VEHICLES * int((starts[i] - speeds[i] * t) // -1000),
                    t=T0 + t,
                    vehicle_class=VehicleClass.CAR if i % 3 else VehicleClass.MOTORCYCLE,
                    box=ImageBox(ground.x - 20, ground.y - 40, ground.x + 20, ground.y),
                    ground_px=ground,
                    world=to_world(ground),
                    speed_kmh=float(speeds[i] * 0.36),
                    speed_uncertainty_kmh=1.5,
                )
            )
        out.append(TrackFrame(T0 + t, tuple(points)))
    return out


def main() -> None:
    scene = SceneGeometry(scene_config(), to_world)
    feed = frames()
    rules = RuleSet(scene)
    state = SignalState("main", scene.config.lamp)
    start = time.perf_counter()
    for frame in feed:
        rules.update(frame, {"main": state})
    rules_s = (time.perf_counter() - start) / FRAMES

    image = np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    head = SignalHead(
        red=(1500, 200, 1520, 220), yellow=(1500, 225, 1520, 245), green=(1500, 250, 1520, 270)
    )
    start = time.perf_counter()
    for k in range(FRAMES):
        state.on_lamp(T0 + k / FPS, lamp_strengths(image, head))
    lamp_s = (time.perf_counter() - start) / FRAMES

    print(
        f"six rules, {VEHICLES} vehicles/frame: {rules_s * 1e3:.3f} ms per frame "
        f"({VEHICLES / rules_s:,.0f} vehicle-frames/s)"
    )
    print(f"lamp reading of one head (peer):   {lamp_s * 1e3:.3f} ms per frame")
    print(f"ratio rules / lamp reading: {rules_s / lamp_s:.1f}")
    print(
        f"camera frames per second one core can judge at {VEHICLES} vehicles: {1 / rules_s:,.0f} "
        f"({1 / rules_s / FPS:.0f} cameras at {FPS:g} fps)"
    )


if __name__ == "__main__":
    main()
