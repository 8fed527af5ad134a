"""A node restarts on the config central last pushed, or, when that no longer builds, on
its own file: central cannot push a fix to a node that does not start."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from calibration.store import save_calibration
from central.node_config import read_document
from edge.config import load_site_config
from edge.identity import write_key_pair
from edge.node import EdgeNode
from roadwatch.contract import ConfigPush, NodeState, NodeStatus, to_wire
from roadwatch.contract.signing import load_private_key, sign
from roadwatch.demo.scene import CAMERA_ID, demo_camera, scene_document, surveyed_calibration

T0 = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def _start(site_file: Path, at: datetime) -> tuple[EdgeNode, NodeStatus]:
    """The node as it starts at ``at``, and the status it would send."""
    node = EdgeNode.from_config(
        load_site_config(site_file), model_version="m@1", now=at, config_dir=site_file.parent
    )
    assert node.delivery is not None
    try:
        return node, node.delivery.publisher._status(NodeState.ONLINE)
    finally:
        node.delivery.stop()  # (never started: closes the outbox)


def test_a_stored_push_whose_calibration_expired_gives_way_to_the_nodes_file(
    tmp_path: Path,
) -> None:
    write_key_pair(tmp_path / "central")
    central = load_private_key(tmp_path / "central.key")
    folder = tmp_path / "node"
    folder.mkdir()
    write_key_pair(folder / "node")
    (folder / "cam.scene.yaml").write_text(yaml.safe_dump(scene_document(demo_camera())))
    own = surveyed_calibration(demo_camera(), 3, T0)
    own = own.model_copy(update={"valid_until": (T0 + timedelta(days=3650)).date()})
    save_calibration(own, folder / "cam.calib.yaml")
    camera = {"id": CAMERA_ID, "url": "clip.mp4", "scene": "cam.scene.yaml",
              "calibration": "cam.calib.yaml", "place": "QL13 Km 22"}  # fmt: skip
    doc: dict[str, Any] = {
        "site": "ql13", "node": "node-01", "version": "v1", "plates": False,
        "cameras": [camera],
        "delivery": {
            "key_path": "node.key", "outbox": {"path": "outbox"},
            "broker": {"host": "127.0.0.1", "port": 1},
            "config_push": {"central_key": str(tmp_path / "central.pub"), "store": "pushed"},
        },
    }  # fmt: skip
    site_file = folder / "site.yaml"
    site_file.write_text(yaml.safe_dump(doc))
    # Central pushes v2: another place, and a calibration valid for 5 days only.
    desk = tmp_path / "desk"
    desk.mkdir()
    short = own.model_copy(update={"valid_until": (T0 + timedelta(days=5)).date()})
    save_calibration(short, desk / "cam.calib.yaml")
    (desk / "cam.scene.yaml").write_text((folder / "cam.scene.yaml").read_text())
    v2 = copy.deepcopy(doc)
    v2["version"] = "v2"
    v2["cameras"][0]["place"] = "QL13 Km 22+300"
    (desk / "site.yaml").write_text(yaml.safe_dump(v2))
    push = ConfigPush(
        site="ql13", node="node-01", config_version="v2", issued_at=T0,
        config=read_document(desk / "site.yaml"),
    )  # fmt: skip
    node = EdgeNode.from_config(
        load_site_config(site_file), model_version="m@1", now=T0, config_dir=folder
    )
    assert node.config_applier is not None and node.delivery is not None
    node.config_applier.handle(to_wire(sign(push, central)))
    node.delivery.stop()
    assert _start(site_file, T0 + timedelta(days=1))[0].config.version == "v2"  # (stored)

    later, status = _start(site_file, T0 + timedelta(days=30))
    assert later.config.version == "v1"
    assert later.config.cameras[0].place == "QL13 Km 22"
    assert status.config_version == "v1"
    assert "stored config v2 not used" in (status.config_error or ""), status.config_error
    assert "expired" in (status.config_error or "")
