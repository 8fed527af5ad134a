"""A whole edge node on a generated, calibrated scene with known violations: the real
detector, tracker, calibration, speed, rules and evidence, as `edge run` runs a file."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calibration.scene_render import load_assets, write_scene
from calibration.scenes import LANES, Effects, SceneSpec, VehiclePath
from calibration.store import save_calibration
from edge.config import parse_site_config
from edge.node import EdgeNode
from edge.pipeline import DetectorPool
from roadwatch.contract import EvidenceRole, ViolationEvent, ViolationType, parse_payload
from roadwatch.demo.scene import CAMERA_ID, demo_camera, surveyed_calibration, write_scene_file
from tests.edge_support import shared_detector
from tests.services import SHARED_DATA, require_shared_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEEDER_KMH = 100.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared_file("kraten_cars.mp4")
    folder = tmp_path_factory.mktemp("scene")
    spec = SceneSpec(
        name="enforcement",
        seed=11,
        camera=demo_camera(),
        fps=10.0,
        frames=60,
        vehicles=(
            VehiclePath(1, 2, (LANES[1], 13.0), (0.0, SPEEDER_KMH), 0.0),
            VehiclePath(2, 5, (LANES[0], 14.0), (0.0, 45.0), 0.0),  # within the limit
            VehiclePath(3, 1, (LANES[2], 60.0), (0.0, -40.0), 0.5),  # against the traffic
        ),
        effects=Effects(noise_sigma=2.0, crf=23),
    )
    write_scene(spec, load_assets(SHARED_DATA), folder)
    write_scene_file(folder / "scene.yaml", spec.camera)
    save_calibration(
        surveyed_calibration(spec.camera, 3, datetime.now(UTC)), folder / "cam.calib.yaml"
    )
    return folder


def test_a_node_finds_the_known_violations_with_checkable_evidence(scene: Path) -> None:
    config = parse_site_config(
        {
            "site": "test",
            "node": "node-01",
            "cameras": [
                {"id": CAMERA_ID, "url": str(scene / "enforcement.mp4"),
                 "scene": str(scene / "scene.yaml"),
                 "calibration": str(scene / "cam.calib.yaml"), "place": "QL13 Km 22+300"},
            ],
            "plates": False,
        }
    )  # fmt: skip
    out = io.StringIO()
    node = EdgeNode.from_config(config, model_version="yolov8n-coco-dynamic", violations_out=out)
    pool = DetectorPool(load=lambda _cfg: shared_detector())
    node.run_file(scene / "enforcement.mp4", detectors=pool)

    events = [parse_payload(ViolationEvent, line) for line in out.getvalue().splitlines()]
    by_type = {e.type: e for e in events}
    assert set(by_type) == {ViolationType.SPEEDING, ViolationType.WRONG_WAY}, [
        (e.type, e.lane, e.explanation) for e in events
    ]
    assert len(events) == 2, "each violating vehicle is reported once"
    speeding = by_type[ViolationType.SPEEDING]
    assert speeding.lane == "lane-2"
    assert speeding.measured.speed_kmh == pytest.approx(SPEEDER_KMH, abs=5.0)
    assert speeding.measured.speed_limit_kmh == 60.0
    assert by_type[ViolationType.WRONG_WAY].lane == "lane-3"
    for event in events:
        roles = {e.role for e in event.evidence}
        assert {EvidenceRole.FRAME_BEFORE, EvidenceRole.FRAME_AT, EvidenceRole.FRAME_AFTER,
                EvidenceRole.VEHICLE_CROP, EvidenceRole.CLIP} <= roles  # fmt: skip
        assert event.signature is not None
        assert event.place == "QL13 Km 22+300"
        assert event.explanation
    assert node.counters.traffic_minutes >= 1
    assert json.loads(out.getvalue().splitlines()[0])["site"] == "test"
