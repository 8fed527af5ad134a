"""Central's checks of a config before it is pushed, and the site file as a document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from central.node_config import (
    InvalidConfigError,
    outline_version,
    read_document,
    validate_document,
)
from roadwatch.errors import UserError

CAM = {"id": "cam-01", "url": "rtsp://10.0.0.21/s"}
DOC: dict[str, Any] = {"site": "ql13", "node": "node-01", "version": "v1", "cameras": [CAM]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**DOC, "delivery": {}}, "delivery stays in the node's own file"),
        ({k: v for k, v in DOC.items() if k != "version"}, "version is required"),
        ({**DOC, "version": ""}, "version is required"),
        ({**DOC, "cameras": []}, "cameras must be a non-empty list"),
        ({**DOC, "cameras": [CAM, CAM]}, "unique id"),
        ({**DOC, "cameras": [{"url": "x"}]}, "unique id"),
    ],
)
def test_the_outline_central_checks_without_the_edge_code(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        outline_version(document)


def test_the_outline_of_a_good_document_gives_its_version() -> None:
    assert outline_version(DOC) == "v1"


def test_a_site_file_becomes_a_document_with_its_files_inline(tmp_path: Path) -> None:
    (tmp_path / "cam.scene.yaml").write_text("camera: cam-01\nlanes: []\n")
    (tmp_path / "cam.calib.yaml").write_text("camera: cam-01\nvalid_from: 2026-11-23\n")
    site = {
        **DOC,
        "cameras": [{**CAM, "scene": "cam.scene.yaml", "calibration": "cam.calib.yaml"}],
        "delivery": {"key_path": "node.key", "broker": {"password": "secret"}},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    document = read_document(tmp_path / "site.yaml")
    assert "delivery" not in document
    [camera] = document["cameras"]
    assert camera["scene"] == {"camera": "cam-01", "lanes": []}
    assert camera["calibration"] == {"camera": "cam-01", "valid_from": "2026-11-23"}

    (tmp_path / "missing.yaml").write_text(
        yaml.safe_dump({**DOC, "cameras": [{**CAM, "scene": "nowhere.yaml"}]})
    )
    with pytest.raises(UserError, match="cannot read scene file"):
        read_document(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(UserError, match="expected a mapping"):
        read_document(tmp_path / "list.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"\xff\xfe site: x")
    with pytest.raises(UserError, match=r"latin1.yaml: not UTF-8 text$"):
        read_document(tmp_path / "latin1.yaml")
    (tmp_path / "scene-latin1.yaml").write_text(
        yaml.safe_dump({**DOC, "cameras": [{**CAM, "scene": "latin1.yaml"}]})
    )
    with pytest.raises(UserError, match=r"^scene file .*latin1.yaml: not UTF-8 text$"):
        read_document(tmp_path / "scene-latin1.yaml")
    (tmp_path / "deep.yaml").write_text("z: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(UserError, match="nested too deeply"):
        read_document(tmp_path / "deep.yaml")


def test_a_scene_with_an_unquoted_time_is_not_pushed(tmp_path: Path) -> None:
    # YAML reads `start: 22:00` as 1320; central took it, and the node crashed on every start.
    from tests.rules_tracks import BASE

    scene = {**BASE, "camera": "cam-01"}
    scene.pop("no_stopping_zones")
    (tmp_path / "cam.scene.yaml").write_text(
        yaml.safe_dump(scene)
        + "no_stopping_zones:\n  - id: z\n    polygon: [[800, 200], [1000, 200], [1000, 800]]\n"
        + "    windows: [{start: 22:00, end: '06:00'}]\n"
    )
    site = {**DOC, "cameras": [{**CAM, "scene": "cam.scene.yaml"}]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    document = read_document(tmp_path / "site.yaml")
    with pytest.raises(InvalidConfigError, match=r"start: 1320 is a number, not a time .*'22:00'"):
        validate_document(document, site="ql13", node="node-01")


def _camera_with(calibration: dict[str, Any]) -> dict[str, Any]:
    from roadwatch.demo.scene import CAMERA_ID, demo_camera, scene_document

    camera = {"id": CAMERA_ID, "url": "rtsp://10.0.0.21/s", "scene": scene_document(demo_camera())}
    return {**DOC, "cameras": [{**camera, "calibration": calibration}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": [1920, 1080]}, "the calibration is for 1920x1080, the scene for 960x540"),
        ({"valid_from": "2025-01-01", "valid_until": "2026-01-01"}, "expired on 2026-01-01"),
        ({"valid_from": "2099-01-01", "valid_until": "2099-12-31"}, "valid only from 2099-01-01"),
    ],
)
def test_a_calibration_the_node_could_not_use_is_not_pushed(
    change: dict[str, Any], message: str
) -> None:
    # Central took these and published them; the node refused each only when it built
    # the camera's enforcement ("not usable"), and its status was the only word of it.
    from datetime import UTC, datetime

    from roadwatch.demo.scene import demo_camera, surveyed_calibration

    calibration = surveyed_calibration(demo_camera(), 3, datetime.now(UTC)).model_dump(mode="json")
    assert validate_document(_camera_with(calibration), site="ql13", node="node-01") == "v1"
    with pytest.raises(InvalidConfigError, match=rf"cameras\.0\.calibration: .*{message}"):
        validate_document(_camera_with({**calibration, **change}), site="ql13", node="node-01")
    # Without a scene the camera runs no rules: its calibration is not used (the node warns).
    [camera] = _camera_with({**calibration, **change})["cameras"]
    unused = {**DOC, "cameras": [{**camera, "scene": None}]}
    assert validate_document(unused, site="ql13", node="node-01") == "v1"
