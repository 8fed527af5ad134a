"""Config push over the real Mosquitto: central validates, records, signs and publishes a
retained config; a running edge node applies it without restart and reports the version;
invalid pushes are refused, reported, and the config in force stays. On SQLite and
PostgreSQL."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select, update

from calibration.store import save_calibration
from central.app import create_app
from central.models import AuditEntry, NodeConfig
from central.node_config import UNCHECKED_THEN, read_document
from central.settings import Settings
from edge.config import load_site_config
from edge.detections import Detections
from edge.identity import write_key_pair
from edge.node import EdgeNode
from edge.pipeline import TrackedFrame
from edge.sources import Frame
from roadwatch.contract import (
    CameraHealth,
    CameraState,
    CameraTopic,
    ConfigPush,
    LampColour,
    NodeStatus,
    NodeTopic,
    SignalPhase,
    camera_topic,
    node_topic,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key, load_private_key, sign, verify
from roadwatch.contract.signing import load_public_key_pem as load_pub
from roadwatch.demo.scene import CAMERA_ID, demo_camera, scene_document, surveyed_calibration
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import Account, CentralDb, NodeIdentity
from tests.central_fixtures import Publisher as ControllerClient
from tests.delivery_support import Consumer
from tests.services import BrokerAddress

pytestmark = pytest.mark.integration


def _wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def central(
    central_settings: Settings, central_db: CentralDb, mqtt_broker: BrokerAddress
) -> Iterator[tuple[TestClient, Settings]]:
    """The API publishing to the test broker, with a config-signing key."""
    settings = central_settings.model_copy(
        update={"mqtt_host": mqtt_broker.host, "mqtt_port": mqtt_broker.port}
    )
    write_key_pair(settings.resolved_config_key.with_suffix(""))
    with TestClient(create_app(settings, engine=central_db.engine)) as client:
        yield client, settings


class Retained:
    """The retained messages of some topics, as the broker hands them out."""

    def __init__(self, broker: BrokerAddress, topics: list[str]) -> None:
        self.messages: dict[str, bytes] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"r-{uuid.uuid4().hex}")
        self.client.on_message = lambda _c, _u, m: self.messages.__setitem__(
            m.topic, bytes(m.payload)
        )
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)

    def close(self, clear: list[str]) -> None:
        for topic in clear:  # an empty retained message removes the retained one
            self.publish(topic, b"")
        self.client.disconnect()
        self.client.loop_stop()


def _site_file(folder: Path, site: str, broker: BrokerAddress, central_pub: Path) -> Path:
    write_key_pair(folder / "node")
    (folder / "cam-01.scene.yaml").write_text(yaml.safe_dump(scene_document(demo_camera())))
    calibration = surveyed_calibration(demo_camera(), 3, datetime.now(UTC))
    save_calibration(calibration, folder / "cam-01.calib.yaml")
    doc = {
        "site": site,
        "node": "node-01",
        "version": "v1",
        "plates": False,
        "cameras": [
            {"id": CAMERA_ID, "url": "clip.mp4", "scene": "cam-01.scene.yaml",
             "calibration": "cam-01.calib.yaml", "place": "QL13 Km 22"},
        ],
        "delivery": {
            "key_path": "node.key",
            "broker": {"host": broker.host, "port": broker.port, "keepalive_s": 5},
            "outbox": {"path": "outbox"},
            "status_interval_s": 0.5,
            "config_push": {"central_key": str(central_pub), "store": "pushed"},
        },
    }  # fmt: skip
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _frame(index: int) -> TrackedFrame:
    image = np.zeros((540, 960, 3), np.uint8)
    frame = Frame(CAMERA_ID, index, time.monotonic(), datetime.now(UTC), image)
    return TrackedFrame(frame, Detections.empty())


def _put(client: TestClient, admin: Account, site: str, doc: dict[str, Any]) -> Any:
    return client.put(
        f"/api/v1/nodes/{site}/node-01/config", json={"config": doc}, headers=admin.headers
    )


def test_a_running_node_applies_a_pushed_config_and_refuses_bad_ones(
    tmp_path: Path,
    central: tuple[TestClient, Settings],
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    mqtt_broker: BrokerAddress,
) -> None:
    client, settings = central
    admin = accounts["admin"]
    site = make_node().site
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    central_pub = settings.resolved_config_key.with_suffix(".pub")
    site_file = _site_file(node_dir, site, mqtt_broker, central_pub)
    status_topic = node_topic(site, "node-01", NodeTopic.STATUS)
    config_topic = node_topic(site, "node-01", NodeTopic.CONFIG)
    statuses = Consumer(mqtt_broker.host, mqtt_broker.port, [status_topic], f"s-{site}")
    raw = Retained(mqtt_broker, [config_topic])

    def status() -> NodeStatus | None:
        payload = statuses.retained.get(status_topic)
        return NodeStatus.model_validate_json(payload) if payload else None

    def reported(version: str, error: str | None) -> Callable[[], bool]:
        def check() -> bool:
            s = status()
            if s is None or s.config_version != version:
                return False
            return s.config_error is None if error is None else error in (s.config_error or "")

        return check

    node = EdgeNode.from_config(
        load_site_config(site_file), model_version="test", config_dir=node_dir
    )
    assert node.delivery is not None
    node.delivery.start()
    try:
        _wait("status v1", reported("v1", None))
        before = node.enforcement[CAMERA_ID]
        node.on_tracked(_frame(0))
        # A signal controller's message for the camera reaches the node (its scene has no
        # signal head of that id: it is said in the log and left).
        controller = ControllerClient(mqtt_broker)
        try:
            at = datetime.now(UTC)
            phase = SignalPhase(site=site, node="node-01", camera=CAMERA_ID, head="main",
                                phase=LampColour.RED, changed_at=at, sent_at=at)  # fmt: skip
            topic = camera_topic(site, "node-01", CAMERA_ID, CameraTopic.SIGNAL)
            signals = node.delivery.publisher.counters
            for _ in range(50):  # (until the node's subscription holds: QoS 0 is not kept)
                controller.publish(topic, to_wire(phase))
                if signals().signals:
                    break
                time.sleep(0.1)
            assert signals().signals >= 1
        finally:
            controller.close()

        # Central's side: the operator's copy of the file, with a new place and limit.
        desk = tmp_path / "desk"
        desk.mkdir()
        scene = scene_document(demo_camera())
        for lane in scene["lanes"]:  # type: ignore[attr-defined]
            lane["default_speed_limit_kmh"] = 50.0
        (desk / "scene.yaml").write_text(yaml.safe_dump(scene))
        (desk / "cam.calib.yaml").write_text((node_dir / "cam-01.calib.yaml").read_text())
        v2 = yaml.safe_load(site_file.read_text())
        v2.update(version="v2")
        v2["cameras"][0].update(
            place="QL13 Km 22+300", scene="scene.yaml", calibration="cam.calib.yaml"
        )
        (desk / "site.yaml").write_text(yaml.safe_dump(v2))
        document = read_document(desk / "site.yaml")
        assert "delivery" not in document and isinstance(document["cameras"][0]["scene"], dict)

        r = _put(client, admin, site, document)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "v2" and r.json()["repeated"] is False
        _wait("status v2", reported("v2", None))
        _wait("the retained push", lambda: config_topic in raw.messages)
        push = ConfigPush.model_validate_json(raw.messages[config_topic])
        verify(push, load_pub(central_pub.read_bytes()))

        # Applied at the camera's next frame: same ring, new scene and place.
        assert node.enforcement[CAMERA_ID] is before
        node.on_tracked(_frame(1))
        after = node.enforcement[CAMERA_ID]
        assert after is not before and after.ring is before.ring
        assert after.place == "QL13 Km 22+300"
        assert {lane.default_speed_limit_kmh for lane in after.scene.lanes} == {50.0}
        assert after.counters.frames == 2  # counted on across the switch
        assert node.config.version == "v2"

        # Refused pushes: each is reported; v2 stays in force.
        moved = copy.deepcopy(document)
        moved.update(version="v3")
        moved["cameras"][0]["url"] = "rtsp://10.0.0.99/stream1"
        # (central ingests no status here, so it does not know v2 runs: the node refuses)
        assert _put(client, admin, site, moved).status_code == 200
        _wait("refusal v3", reported("v2", "config v3 refused: camera cam-01: url changed"))

        key = load_private_key(settings.resolved_config_key)
        bad_scene = copy.deepcopy(document)
        bad_scene.update(version="v4")
        bad_scene["cameras"][0]["scene"]["lanes"] = "everywhere"
        r = _put(client, admin, site, bad_scene)
        assert r.status_code == 422 and "cameras.0.scene" in r.json()["detail"], r.text

        def forged(doc: dict[str, Any], signer: Any, node_id: str = "node-01") -> bytes:
            push = ConfigPush(
                site=site,
                node=node_id,
                config_version=doc["version"],
                issued_at=datetime.now(UTC),
                config=doc,
            )
            return to_wire(sign(push, signer))

        raw.publish(config_topic, forged(bad_scene, key))
        _wait("refusal v4", reported("v2", "config v4 refused: invalid: config: cameras.0.scene"))
        other = {**document, "version": "v5"}
        raw.publish(config_topic, forged(other, generate_private_key()))
        _wait("refusal v5", reported("v2", "not signed by central's config key"))
        raw.publish(config_topic, forged({**other, "node": "node-02"}, key, "node-02"))
        _wait("refusal v5 for node-02", reported("v2", "addressed to"))
        # A push naming a scene file this node does not have: refused when the node tries it,
        # and the files written for it are gone again (v2's stay).
        elsewhere = {**document, "version": "v6"}
        elsewhere["cameras"] = [{**document["cameras"][0], "scene": "not-on-this-node.yaml"}]
        raw.publish(config_topic, forged(elsewhere, key))
        _wait("refusal v6", reported("v2", "config v6 refused: not usable"))
        assert len(list((node_dir / "pushed").glob("v-*"))) == 1

        node.on_tracked(_frame(2))
        assert node.enforcement[CAMERA_ID] is after and node.config.version == "v2"
    finally:
        node.delivery.stop()
        statuses.close()
        raw.close([config_topic, status_topic])

    # A restart runs the applied push from the node's store.
    again = EdgeNode.from_config(
        load_site_config(site_file), model_version="test", config_dir=node_dir
    )
    assert again.config.version == "v2"
    assert again.enforcement[CAMERA_ID].place == "QL13 Km 22+300"
    assert again.delivery is not None
    again.delivery.stop()

    with central_db.session() as session:
        versions = session.scalars(
            select(NodeConfig.version).where(NodeConfig.site == site).order_by(NodeConfig.id)
        ).all()
        audited = [
            json.loads(d)
            for d in session.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == "config_push")
            )
        ]
    assert versions == ["v2", "v3"]
    assert {(a["site"], a["version"]) for a in audited} >= {(site, "v2"), (site, "v3")}


def test_central_records_each_version_once(
    central: tuple[TestClient, Settings],
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    mqtt_broker: BrokerAddress,
) -> None:
    client, settings = central
    admin = accounts["admin"]
    site = make_node().site
    config_topic = node_topic(site, "node-01", NodeTopic.CONFIG)
    raw = Retained(mqtt_broker, [config_topic])
    doc: dict[str, Any] = {
        "site": site,
        "node": "node-01",
        "version": "2026-11-23.1",
        "cameras": [{"id": CAMERA_ID, "url": "rtsp://10.0.0.21/s", "place": "Km 1"}],
    }
    try:
        first = _put(client, admin, site, doc)
        assert first.status_code == 200, first.text
        again = _put(client, admin, site, doc)
        assert again.status_code == 200 and again.json()["repeated"] is True
        assert again.json()["issued_at"] == first.json()["issued_at"]
        changed = {**doc, "cameras": [{**doc["cameras"][0], "place": "Km 2"}]}
        r = _put(client, admin, site, changed)
        assert r.status_code == 409 and "new version" in r.json()["detail"]
        assert _put(client, admin, "nowhere", {**doc, "site": "nowhere"}).status_code == 404
        r = _put(client, admin, site, {**doc, "node": "node-02"})
        assert r.status_code == 422 and "not " in r.json()["detail"]
        r = _put(client, admin, site, {**doc, "delivery": {"key_path": "/k"}})
        assert r.status_code == 422 and "delivery" in r.json()["detail"]
        assert _put(client, accounts["supervisor"], site, doc).status_code == 403

        history = client.get(f"/api/v1/nodes/{site}/node-01/config", headers=admin.headers)
        assert [h["version"] for h in history.json()] == ["2026-11-23.1"]
        assert history.json()[0]["config"] == doc

        _wait("the retained push", lambda: config_topic in raw.messages)
        push = ConfigPush.model_validate_json(raw.messages[config_topic])
        assert push.config == doc and push.config_version == "2026-11-23.1"
        pub = settings.resolved_config_key.with_suffix(".pub").read_bytes()
        verify(push, load_pub(pub))

        r = _put(client, admin, site, {**doc, "version": "2026-11-23.2\x00"})
        assert r.status_code == 422 and "control character" in r.json()["detail"], r.text
        # A double click with two documents of one new version: one is recorded, the
        # other refused as a conflict, never a server error (PostgreSQL's unique key).
        version = {**doc, "version": "2026-11-23.3"}
        both = [version, {**version, "cameras": [{**doc["cameras"][0], "place": "Km 3"}]}]
        answers = [0, 0]
        start = threading.Barrier(2)

        def push_one(i: int) -> None:
            start.wait()
            answers[i] = _put(client, admin, site, both[i]).status_code

        pushing = [threading.Thread(target=push_one, args=(i,)) for i in (0, 1)]
        for thread in pushing:
            thread.start()
        for thread in pushing:
            thread.join(30)
        assert sorted(answers) == [200, 409]
    finally:
        raw.close([config_topic])


def _runs(
    central_db: CentralDb, site: str, version: str, cameras: tuple[str, ...] = (CAMERA_ID,)
) -> None:
    """Central has heard node-01 say it runs ``version`` (its status, as ingested), with
    ``cameras`` up."""
    from central.models import Node

    status = NodeStatus(
        site=site, node="node-01", state="online", sent_at=datetime.now(UTC),
        config_version=version,
        cameras=[CameraHealth(camera=c, state=CameraState.UP) for c in cameras],
    )  # fmt: skip
    with central_db.session() as session:
        row = session.scalars(select(Node).where(Node.site == site, Node.node == "node-01")).one()
        row.status_json = to_wire(status).decode("utf-8")
        session.commit()


def test_central_refuses_a_push_of_what_the_node_takes_from_its_own_file(
    central: tuple[TestClient, Settings],
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    mqtt_broker: BrokerAddress,
) -> None:
    """A push that changes a stream URL, plates, a camera added: the node refuses it
    (only scenes, calibrations, places and persons_as_riders are pushed). Central said
    "pushed" and recorded it; against the push the node says it runs, it is refused up
    front, naming the fields, with nothing recorded, audited or published."""
    client, _ = central
    admin = accounts["admin"]
    site = make_node().site
    config_topic = node_topic(site, "node-01", NodeTopic.CONFIG)
    raw = Retained(mqtt_broker, [config_topic])
    camera = {"id": CAMERA_ID, "url": "rtsp://10.0.0.21/s", "place": "Km 1"}
    v1: dict[str, Any] = {"site": site, "node": "node-01", "version": "v1", "cameras": [camera]}
    try:
        # No status from the node yet: central cannot compare, and says so.
        unheard = _put(client, admin, site, {**v1, "version": "v0"})
        assert unheard.status_code == 200, unheard.text
        assert unheard.json()["checked"] is False
        assert unheard.json()["not_checked"] == (
            f"{site}/node-01 has sent no status yet: central does not know what it runs;"
            f" {UNCHECKED_THEN}"
        )
        # A node that runs its own file: central has nothing of it to compare with but
        # the cameras its status lists (a camera added is refused: the next test), and
        # says so.
        _runs(central_db, site, "file-1")
        pushed = _put(client, admin, site, {**v1, "version": "v0.9"})
        assert pushed.status_code == 200, pushed.text
        assert (pushed.json()["checked"], pushed.json()["not_checked"]) == (
            False,
            f"{site}/node-01 runs config file-1, which central did not push (its own site"
            " file), and central does not hold that file (only its cameras were checked,"
            f" against those its last status lists); {UNCHECKED_THEN}",
        )
        # Its last status lists no camera (its last will, say: offline): not even its
        # cameras were checked, and the answer does not say they were.
        _runs(central_db, site, "file-1", cameras=())
        unlisted = _put(client, admin, site, {**v1, "version": "v0.95"})
        assert unlisted.status_code == 200, unlisted.text
        assert unlisted.json()["not_checked"] == (
            f"{site}/node-01 runs config file-1, which central did not push (its own site"
            " file), and central does not hold that file (nor its cameras: its last status"
            f" lists none); {UNCHECKED_THEN}"
        )
        assert _put(client, admin, site, v1).status_code == 200
        _wait("the retained push", lambda: config_topic in raw.messages)
        _runs(central_db, site, "v1")
        refused = [
            ({**v1, "version": "v2", "cameras": [{**camera, "url": "rtsp://10.0.0.99/s"}]},
             "camera cam-01: url changed"),
            ({**v1, "version": "v2", "plates": False}, "plates changed"),
            ({**v1, "version": "v2", "cameras": [camera, {**camera, "id": "cam-02"}]},
             "camera set changed (added cam-02)"),
        ]  # fmt: skip
        for doc, why in refused:
            r = _put(client, admin, site, doc)
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == (
                f"config v2 changes what {site}/node-01 takes only from its own site file,"
                f" against v1 (the push it runs): {why}; a push changes only each camera's"
                " scene, calibration, place and persons_as_riders: change the rest in the"
                " node's own site file and restart it, or push without it"
            )
        history = client.get(f"/api/v1/nodes/{site}/node-01/config", headers=admin.headers)
        assert [h["version"] for h in history.json()] == ["v1", "v0.95", "v0.9", "v0"]
        with central_db.session() as session:
            audited = session.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == "config_push")
            ).all()
        assert [json.loads(d)["version"] for d in audited if site in d] == [
            "v0",
            "v0.9",
            "v0.95",
            "v1",
        ]
        assert ConfigPush.model_validate_json(raw.messages[config_topic]).config_version == "v1"

        # What a push changes live still goes, checked.
        live = {**v1, "version": "v2", "cameras": [{**camera, "place": "Km 2"}]}
        r = _put(client, admin, site, live)
        assert r.status_code == 200 and r.json()["checked"] is True, r.text
        assert r.json()["not_checked"] is None
        # The node's file changed and restarted (it runs that file again): pushed as before.
        _runs(central_db, site, "file-2")
        moved = {**v1, "version": "v3", "cameras": [{**camera, "url": "rtsp://10.0.0.99/s"}]}
        assert _put(client, admin, site, moved).status_code == 200
    finally:
        raw.close([config_topic])


def test_central_refuses_a_camera_added_to_a_node_that_runs_its_own_file(
    central: tuple[TestClient, Settings],
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    mqtt_broker: BrokerAddress,
) -> None:
    """A technician adding a camera pushed the node's new site file: central said
    "pushed", the node refused it (a push cannot add a camera) and, once restarted on
    that file, refused the retained push again ("the node's own file in force"). Central
    has no push of the node's to compare with, but its status names the cameras it runs:
    a camera added, removed or disabled is refused up front, nothing recorded or
    published."""
    client, _ = central
    admin = accounts["admin"]
    site = make_node().site
    config_topic = node_topic(site, "node-01", NodeTopic.CONFIG)
    raw = Retained(mqtt_broker, [config_topic])
    camera = {"id": CAMERA_ID, "url": "rtsp://10.0.0.21/s", "place": "Km 1"}
    new = {**camera, "id": "cam-02", "url": "rtsp://10.0.0.22/s"}
    off = {**camera, "id": "cam-03", "url": "rtsp://10.0.0.23/s", "enabled": False}
    doc: dict[str, Any] = {"site": site, "node": "node-01", "version": "file-2"}
    try:
        _runs(central_db, site, "file-1")
        refused = [
            ([camera, new], "added cam-02"),
            ([new], "added cam-02; removed cam-01"),
            # (a camera it runs, disabled: the node refuses it as it refuses one removed)
            ([{**camera, "enabled": False}], "disabled cam-01"),
            ([{**camera, "enabled": False}, new], "added cam-02; disabled cam-01"),
        ]
        for cameras, why in refused:
            r = _put(client, admin, site, {**doc, "cameras": cameras})
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == (
                f"config file-2 changes the cameras of {site}/node-01, against those its"
                f" last status reports ({CAMERA_ID}): camera set changed ({why}); a push"
                " changes only each camera's scene, calibration, place and"
                " persons_as_riders: change the rest in the node's own site file and"
                " restart it, or push without it"
            )
        history = client.get(f"/api/v1/nodes/{site}/node-01/config", headers=admin.headers)
        assert history.json() == []
        time.sleep(0.5)
        assert config_topic not in raw.messages
        # A disabled camera runs nothing and is in no status; the same cameras go.
        same = {**doc, "cameras": [{**camera, "place": "Km 2"}, off]}
        assert _put(client, admin, site, same).status_code == 200
    finally:
        raw.close([config_topic])


def test_central_refuses_a_push_under_the_version_of_the_nodes_own_file(
    central: tuple[TestClient, Settings],
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    mqtt_broker: BrokerAddress,
) -> None:
    """A push named as the node's own site file in force (its status says it runs
    file-1, which central did not push): the node refuses every such push ("this version
    is the node's own file in force"). Central answered "pushed", checked, without
    comparing anything; it refuses it up front, naming the version to change."""
    client, _ = central
    admin = accounts["admin"]
    site = make_node().site
    config_topic = node_topic(site, "node-01", NodeTopic.CONFIG)
    raw = Retained(mqtt_broker, [config_topic])
    camera = {"id": CAMERA_ID, "url": "rtsp://10.0.0.21/s", "place": "Km 2"}
    try:
        _runs(central_db, site, "file-1")
        doc = {"site": site, "node": "node-01", "version": "file-1", "cameras": [camera]}
        r = _put(client, admin, site, doc)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            f"config file-1 is the version of the site file {site}/node-01 runs, which"
            " central did not push: the node refuses a push under it; give the push a new"
            " version"
        )
        history = client.get(f"/api/v1/nodes/{site}/node-01/config", headers=admin.headers)
        assert history.json() == []
        time.sleep(0.5)
        assert config_topic not in raw.messages
        # Under a new version, the same document goes (its cameras checked).
        r = _put(client, admin, site, {**doc, "version": "file-2"})
        assert r.status_code == 200 and r.json()["checked"] is False, r.text
    finally:
        raw.close([config_topic])


def test_a_push_without_key_or_broker_records_nothing(
    central_settings: Settings,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    from roadwatch.net import free_port

    site = make_node().site
    doc = {"site": site, "node": "node-01", "version": "v1",
           "cameras": [{"id": CAMERA_ID, "url": "rtsp://10.0.0.21/s"}]}  # fmt: skip
    settings = central_settings.model_copy(
        update={"mqtt_port": free_port(), "config_push_timeout_s": 2.0}
    )
    with TestClient(create_app(settings, engine=central_db.engine)) as client:
        r = _put(client, accounts["admin"], site, doc)
        assert r.status_code == 503 and "config keygen" in r.json()["detail"]
        write_key_pair(settings.resolved_config_key.with_suffix(""))
        r = _put(client, accounts["admin"], site, doc)
        assert r.status_code == 503 and "unreachable" in r.json()["detail"], r.text
    # A broker that takes the connection and never answers: it was "refused the
    # connection: no answer", when nothing had refused anything.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        quiet = settings.model_copy(update={"mqtt_host": "127.0.0.1", "mqtt_port": port})
        with TestClient(create_app(quiet, engine=central_db.engine)) as client:
            r = _put(client, accounts["admin"], site, doc)
    assert r.status_code == 503, r.text
    assert r.json()["detail"] == (
        f"broker 127.0.0.1:{port} did not answer within 2 s (ROADWATCH_CONFIG_PUSH_TIMEOUT_S)"
    )
    with central_db.session() as session:
        assert session.scalar(select(NodeConfig.id).where(NodeConfig.site == site)) is None


def test_the_cli_signs_and_pushes_a_site_file(tmp_path: Path, mqtt_broker: BrokerAddress) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env.update(
        PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        ROADWATCH_DATA_DIR=str(tmp_path / "data"),
        ROADWATCH_MQTT_HOST=mqtt_broker.host,
        ROADWATCH_MQTT_PORT=str(mqtt_broker.port),
    )

    def rw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "roadwatch", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    site = f"t{uuid.uuid4().hex[:10]}"
    folder = tmp_path / "node"
    folder.mkdir()
    site_file = _site_file(folder, site, mqtt_broker, tmp_path / "data" / "config-signing.pub")
    config_topic = node_topic(site, "node-01", NodeTopic.CONFIG)
    raw = Retained(mqtt_broker, [config_topic])
    try:
        add = rw("central", "node", "add", "--site", site, "--node", "node-01",
                 "--public-key", str(folder / "node.pub"))  # fmt: skip
        assert add.returncode == 0, add.stderr
        push = ("central", "config", "push", "--node", "node-01", "--file", str(site_file))
        no_key = rw(*push)
        assert no_key.returncode != 0 and "roadwatch central config keygen" in no_key.stderr
        keygen = rw("central", "config", "keygen")
        assert keygen.returncode == 0, keygen.stderr
        assert "config-signing.pub" in keygen.stdout
        assert rw("central", "config", "keygen").returncode != 0  # never overwritten
        first = rw(*push)
        assert first.returncode == 0, first.stderr
        assert f"pushed config v1 to {site}/node-01 on {config_topic}" in first.stdout
        # (a new node has sent no status: the push could not be checked, and it says so)
        assert first.stdout.splitlines()[-1] == (
            f"NOT CHECKED against what the node runs: {site}/node-01 has sent no status yet:"
            f" central does not know what it runs; {UNCHECKED_THEN}"
        ), first.stdout
        again = rw(*push)
        assert again.returncode == 0 and "again" in again.stdout, again.stderr
        wrong = rw("central", "config", "push", "--node", "node-02", "--file", str(site_file))
        assert wrong.returncode != 0 and "no node" in wrong.stderr, wrong.stderr
        bad = yaml.safe_load(site_file.read_text())
        bad.update(version="v2")
        bad["cameras"][0]["scene"] = "bad.scene.yaml"
        (folder / "bad.scene.yaml").write_text("camera: cam-01\nlanes: everywhere\n")
        (folder / "bad.yaml").write_text(yaml.safe_dump(bad))
        invalid = rw(
            "central", "config", "push", "--node", "node-01", "--file", str(folder / "bad.yaml")
        )
        assert invalid.returncode != 0 and "cameras.0.scene" in invalid.stderr, invalid.stderr
        # The node says it runs v1: a file that changes what it takes only from its own
        # file is refused in one line, nothing recorded.
        from central.db import make_engine
        from central.models import Node

        engine = make_engine(f"sqlite:///{(tmp_path / 'data' / 'central.db').as_posix()}")
        status = NodeStatus(
            site=site, node="node-01", state="online", sent_at=datetime.now(UTC),
            config_version="v1",
        )  # fmt: skip
        try:
            with engine.begin() as db:
                db.execute(
                    update(Node)
                    .where(Node.site == site)
                    .values(status_json=to_wire(status).decode("utf-8"))
                )
        finally:
            engine.dispose()
        plates = yaml.safe_load(site_file.read_text())
        plates.update(version="v3", plates=True)
        (folder / "plates.yaml").write_text(yaml.safe_dump(plates))
        refused = rw(
            "central", "config", "push", "--node", "node-01", "--file", str(folder / "plates.yaml")
        )
        assert refused.returncode != 0, refused.stdout
        assert refused.stderr.strip().splitlines() == [
            f"roadwatch: error: config v3 changes what {site}/node-01 takes only from its own"
            " site file, against v1 (the push it runs): plates changed; a push changes only"
            " each camera's scene, calibration, place and persons_as_riders: change the rest"
            " in the node's own site file and restart it, or push without it"
        ]

        _wait("the retained push", lambda: config_topic in raw.messages)
        pushed = ConfigPush.model_validate_json(raw.messages[config_topic])
        verify(pushed, load_pub((tmp_path / "data" / "config-signing.pub").read_bytes()))
        [camera] = pushed.config["cameras"]
        assert camera["scene"]["camera"] == CAMERA_ID and camera["calibration"]["camera"]
        assert "delivery" not in pushed.config and pushed.config_version == "v1"
    finally:
        raw.close([config_topic])
