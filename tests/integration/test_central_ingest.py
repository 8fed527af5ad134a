"""MQTT ingest against the real Mosquitto and both databases, including kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from select import select as wait_readable
from typing import IO, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text, update

import central.ingest
from central.db import session_factory, transaction
from central.ingest import IngestService
from central.ingest_lock import ClientIdLock, lock_key
from central.intake import Message
from central.models import (
    Camera,
    HealthChange,
    Node,
    Quarantine,
    StatusReceived,
    TrafficMinute,
    Violation,
    utcnow,
)
from central.records import (
    HEALTH_KEPT,
    RECEIVED_MARGIN,
    KeyCache,
    check_batch,
    store_checked,
)
from central.settings import Settings
from edge.delivery_config import DeliveryConfig
from roadwatch.contract import (
    CameraHealth,
    CameraState,
    CameraTopic,
    LaneFlow,
    NodeState,
    NodeStatus,
    NodeTopic,
    TrafficStats,
    VehicleClass,
    node_topic,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key, sign
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import (
    Account,
    CentralDb,
    NodeIdentity,
    Publisher,
    ingest_settings,
    signed_event,
    store_events,
    wait_for,
)
from tests.factories import T0, status_position, violation_event
from tests.services import BrokerAddress, missing

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_ingest_accepts_dedupes_and_quarantines(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
) -> None:
    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    good = signed_event(node)
    tampered = good.model_copy(update={"event_id": violation_event().event_id})
    stranger = sign(violation_event(site=node.site, node="node-99"), generate_private_key())
    wrong_key = sign(violation_event(site=node.site, node=node.node), generate_private_key())
    other_camera = signed_event(node, camera="cam-02")
    status = _status(node)
    traffic = _traffic(node)
    topic = node.topic()
    v2 = to_wire(good).replace(b'"schema_version":"1"', b'"schema_version":"2"')
    sends = [
        (topic, to_wire(good)),
        (topic, to_wire(good)),  # replayed: stored once
        (topic, to_wire(tampered)),  # forged: the signature no longer matches
        (node.topic().replace(node.node, "node-99"), to_wire(stranger)),  # unknown node
        (topic, to_wire(wrong_key)),  # signed by another key
        (topic, b'{"event_id": '),  # malformed JSON
        (topic, v2),  # future schema
        (topic, to_wire(other_camera)),  # payload names another camera than the topic
        (topic, "Ω\x00".encode() * 10),  # hostile bytes
        (topic, b"[" * 5000),  # nested past Python's stack: refused, the ingest goes on
        (node.topic(kind=CameraTopic.TRAFFIC), to_wire(traffic)),
    ]
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        publisher.publish(node_topic(node.site, node.node, NodeTopic.STATUS), to_wire(status))
        for t, payload in sends:
            publisher.publish(t, payload)

        def quarantined() -> list[str]:
            with central_db.session() as s:
                return sorted(
                    s.scalars(
                        select(Quarantine.reason_code).where(
                            Quarantine.topic.like(f"roadwatch/v1/{node.site}/%")
                        )
                    )
                )

        wait_for("8 refusals in quarantine", lambda: len(quarantined()) >= 8)
        wait_for("traffic", lambda: _count(central_db, TrafficMinute, node.site) == 1)
    assert quarantined() == sorted(
        [
            "forged",
            "unknown_node",
            "forged",
            "malformed",
            "schema_version",
            "topic_mismatch",
            "malformed",
            "malformed",
        ]
    )
    with central_db.session() as s:
        rows = s.scalars(select(Violation).where(Violation.site == node.site)).all()
        assert [r.event_id for r in rows] == [good.event_id]
        assert rows[0].payload.encode() == to_wire(good)  # stored as signed
        reason = s.scalar(
            select(Quarantine.reason).where(
                Quarantine.topic == topic, Quarantine.reason_code == "schema_version"
            )
        )
        assert reason is not None and "'2'" in reason
        n = s.scalar(select(Node).where(Node.site == node.site))
        assert n is not None and n.state == "online"
        cam = s.scalar(select(Camera).where(Camera.site == node.site, Camera.camera == "cam-01"))
        assert cam is not None and (cam.state, cam.reason) == ("stalled", "no frames")


def _status(node: NodeIdentity, signer: Ed25519PrivateKey | None = None) -> NodeStatus:
    """A status of ``node`` with a stalled camera, signed by ``signer`` (default: the
    node's own key)."""
    status = NodeStatus(
        site=node.site,
        node=node.node,
        state=NodeState.ONLINE,
        sent_at=T0,
        cameras=[CameraHealth(camera="cam-01", state=CameraState.STALLED, reason="no frames")],
        **status_position(),
    )
    return sign(status, signer or node.key)


def _traffic(
    node: NodeIdentity, camera: str = "cam-01", signer: Ed25519PrivateKey | None = None
) -> TrafficStats:
    """Twelve cars in a minute of ``node``'s ``camera``, signed as ``_status`` is."""
    traffic = TrafficStats(
        site=node.site,
        node=node.node,
        camera=camera,
        minute_start=T0.replace(second=0, microsecond=0),
        lanes=[LaneFlow(lane="lane-1", counts={VehicleClass.CAR: 12}, occupancy=0.1)],
    )
    return sign(traffic, signer or node.key)


def _unsigned(payload: NodeStatus | TrafficStats) -> bytes:
    return to_wire(payload.model_copy(update={"signature": None}))


def _heard(db: CentralDb, site: str) -> dict[str, Any]:
    """What central stored of the site's traffic and statuses: traffic minutes by camera,
    each node's state and last status, and the cameras its statuses named."""
    with db.session() as s:
        minutes = s.execute(
            select(TrafficMinute.camera, TrafficMinute.vehicles).where(TrafficMinute.site == site)
        ).all()
        nodes = s.execute(select(Node.node, Node.state, Node.status_json).where(Node.site == site))
        cameras = s.execute(select(Camera.node, Camera.camera).where(Camera.site == site)).all()
        return {
            "traffic": sorted((c, int(v)) for c, v in minutes),
            "nodes": {n: (state, json is not None) for n, state, json in nodes},
            "cameras": sorted((n, c) for n, c in cameras),
        }


def _quarantined(db: CentralDb, site: str) -> list[tuple[str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(Quarantine.topic, Quarantine.reason_code).where(
                Quarantine.topic.like(f"roadwatch/v1/{site}/%")
            )
        ).all()
    return sorted((topic.rsplit("/", 1)[1], code) for topic, code in rows)


@pytest.mark.parametrize("accept_unsigned", [False, True], ids=["by default", "during a rollout"])
def test_traffic_and_status_are_taken_only_signed_by_their_node(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
    accept_unsigned: bool,
) -> None:
    """A traffic minute and a status signed by their node are stored. One forged (changed
    after signing, or signed by another key) is quarantined as forged and counted, and
    nothing of it is stored, whatever the setting. One unsigned (a node not yet upgraded)
    is quarantined as unsigned by default; with ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS
    (while nodes are upgraded) it is stored, and counted as taken unsigned."""
    import logging

    signed = make_node()
    forged = make_node(site=signed.site, node="node-02")
    old = make_node(site=signed.site, node="node-03")  # (not upgraded yet: signs nothing)
    settings = ingest_settings(central_settings, mqtt_broker, signed.site).model_copy(
        update={"accept_unsigned_traffic_status": accept_unsigned}
    )
    stranger = generate_private_key()
    inflated = _traffic(forged, "cam-02").model_copy(
        update={"lanes": [LaneFlow(lane="lane-1", counts={VehicleClass.CAR: 900})]}
    )
    status_of = {
        n.node: node_topic(n.site, n.node, NodeTopic.STATUS) for n in (signed, forged, old)
    }
    sends = [
        (status_of[signed.node], to_wire(_status(signed))),
        (signed.topic(kind=CameraTopic.TRAFFIC), to_wire(_traffic(signed))),
        (status_of[forged.node], to_wire(_status(forged, signer=stranger))),
        (forged.topic("cam-01", CameraTopic.TRAFFIC), to_wire(_traffic(forged, signer=stranger))),
        (forged.topic("cam-02", CameraTopic.TRAFFIC), to_wire(inflated)),
        (status_of[old.node], _unsigned(_status(old))),
        (old.topic(kind=CameraTopic.TRAFFIC), _unsigned(_traffic(old))),
    ]
    caplog.set_level(logging.INFO, logger="central.ingest")
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        for topic, payload in sends:
            publisher.publish(topic, payload)
        refused = 3 if accept_unsigned else 5
        wait_for(
            f"{refused} refusals", lambda: len(_quarantined(central_db, signed.site)) >= refused
        )
        counted = ingest.metrics.registry.get_sample_value
        wait_for("all counted", lambda: counted("roadwatch_ingest_messages_total") == len(sends))
        outcome = {
            code: counted("roadwatch_ingest_outcomes_total", {"outcome": code}) or 0.0
            for code in ("traffic", "status", "unsigned", "quarantined_forged",
                         "quarantined_unsigned")
        }  # fmt: skip
    heard = _heard(central_db, signed.site)
    said = [r.getMessage() for r in caplog.records if r.name == "central.ingest"]
    forged_said = [m for m in said if " as forged: " in m]
    assert {m.split(" on ")[1].split(" as ")[0] for m in forged_said} >= {status_of[forged.node]}
    assert all("signature does not match" in m for m in forged_said)
    if accept_unsigned:
        assert (
            _quarantined(central_db, signed.site)
            == [("status", "forged")] + [("traffic", "forged")] * 2
        )
        assert heard == {
            "traffic": [("cam-01", 12), ("cam-01", 12)],  # node-01's and node-03's
            "nodes": {"node-01": ("online", True), "node-02": ("unknown", False),
                      "node-03": ("online", True)},
            "cameras": [("node-01", "cam-01"), ("node-03", "cam-01")],
        }  # fmt: skip
        assert outcome == {"traffic": 2.0, "status": 2.0, "unsigned": 2.0,
                           "quarantined_forged": 3.0, "quarantined_unsigned": 0.0}  # fmt: skip
        assert any("took an unsigned status from node" in m and "node-03" in m for m in said)
    else:
        assert _quarantined(central_db, signed.site) == [
            ("status", "forged"), ("status", "unsigned"),
            ("traffic", "forged"), ("traffic", "forged"), ("traffic", "unsigned"),
        ]  # fmt: skip
        assert heard == {
            "traffic": [("cam-01", 12)],
            "nodes": {"node-01": ("online", True), "node-02": ("unknown", False),
                      "node-03": ("unknown", False)},
            "cameras": [("node-01", "cam-01")],
        }  # fmt: skip
        assert outcome == {"traffic": 1.0, "status": 1.0, "unsigned": 0.0,
                           "quarantined_forged": 3.0, "quarantined_unsigned": 2.0}  # fmt: skip
        unsigned_said = [m for m in said if " as unsigned: " in m]
        assert {m.split(" on ")[1].split(" as ")[0] for m in unsigned_said} == {
            status_of[old.node],
            old.topic(kind=CameraTopic.TRAFFIC),
        }
        assert all("ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS=true" in m for m in unsigned_said)


def test_a_node_s_own_traffic_and_statuses_are_taken(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    """The node's delivery signs what central verifies: a traffic minute it stores and its
    status online, then offline when it stops (central refuses unsigned ones by default)."""
    from edge.delivery_service import DeliveryService

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    assert settings.accept_unsigned_traffic_status is False
    config = _delivery(node, mqtt_broker, tmp_path)
    health = [CameraHealth(camera="cam-01", state=CameraState.UP, fps=25.0)]
    delivery = DeliveryService.from_config(config, key=node.key, cameras=lambda: health)
    traffic = _traffic(node).model_copy(update={"signature": None})

    def state() -> str:
        return str(_heard(central_db, node.site)["nodes"][node.node][0])

    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        try:
            assert delivery.submit_traffic(traffic)
            delivery.start()
            wait_for("the node online", lambda: state() == "online")
            wait_for("its minute", lambda: _heard(central_db, node.site)["traffic"] != [])
        finally:
            delivery.stop(timeout_s=5)
        wait_for("the node offline", lambda: state() == "offline")
    assert _heard(central_db, node.site)["traffic"] == [("cam-01", 12)]
    assert _quarantined(central_db, node.site) == []


def _placed(
    node: NodeIdentity,
    session: datetime,
    sequence: int,
    state: NodeState = NodeState.ONLINE,
    camera: CameraState = CameraState.UP,
) -> bytes:
    """A status of ``node`` at its place: ``sequence`` of the session begun ``session``."""
    status = NodeStatus(
        site=node.site,
        node=node.node,
        state=state,
        sent_at=session + timedelta(seconds=30 * sequence),
        cameras=[CameraHealth(camera="cam-01", state=camera)],
        session_started_at=session,
        sequence=sequence,
    )
    return to_wire(sign(status, node.key))


def test_an_old_status_sent_again_is_refused_and_the_last_will_taken(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A status signed by its node, captured and published again later, is refused as
    replayed (quarantined, counted, said once), and what central shows of the node stays
    as its newest status said. The last will, signed at connect before every other status
    of its session, is taken all the same; the status held, again (the broker's retained
    copy), changes nothing, not even when the node was last heard."""
    import logging

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    earlier, now = T0 - timedelta(hours=1), T0
    first = _placed(node, now, 1)
    stalled = _placed(node, now, 2, camera=CameraState.STALLED)
    will = _placed(node, now, 0, NodeState.OFFLINE)

    def node_row() -> tuple[str, str | None, Any]:
        with central_db.session() as s:
            row = s.execute(
                select(Node.state, Node.status_json, Node.status_received_at).where(
                    Node.site == node.site, Node.node == node.node
                )
            ).one()
            camera = s.scalar(
                select(Camera.state).where(Camera.site == node.site, Camera.node == node.node)
            )
        return f"{row[0]}/{camera}", row[1], row[2]

    caplog.set_level(logging.INFO, logger="central.ingest")
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        counted = ingest.metrics.registry.get_sample_value

        def sent(payload: bytes, outcome: str) -> None:
            """Publish, and wait until the ingest counts it as ``outcome``."""
            before = counted("roadwatch_ingest_outcomes_total", {"outcome": outcome}) or 0.0
            publisher.publish(topic, payload)
            wait_for(
                outcome,
                lambda: (
                    counted("roadwatch_ingest_outcomes_total", {"outcome": outcome}) == before + 1
                ),
            )

        sent(first, "status")
        sent(stalled, "status")
        assert node_row()[0] == "online/stalled"
        sent(first, "quarantined_replayed")  # captured, sent again: the camera is not up
        assert node_row()[0] == "online/stalled"
        heard = node_row()[2]
        sent(stalled, "status_repeated")  # the newest one again: the node not heard anew
        assert node_row()[2] == heard
        sent(will, "status")  # the connection lost: the broker publishes the will
        assert node_row()[0] == "offline/offline"
        sent(will, "status_repeated")
        sent(_placed(node, earlier, 40), "quarantined_replayed")  # a session before
        sent(_placed(node, now + timedelta(minutes=1), 1), "status")  # connected again
        assert node_row()[0] == "online/up"
        sent(first, "quarantined_replayed")
        assert node_row()[0] == "online/up"
        assert counted("roadwatch_ingest_outcomes_total", {"outcome": "quarantined_replayed"}) == 3
    stored = json.loads(node_row()[1] or "{}")
    assert (stored["session_started_at"], stored["sequence"]) == (
        "2026-11-23T07:04:05.120000Z",
        1,
    )
    with central_db.session() as s:
        rows = s.execute(
            select(Quarantine.reason_code, Quarantine.times, Quarantine.reason)
            .where(Quarantine.topic == topic)
            .order_by(Quarantine.id)
        ).all()
    assert [(code, times) for code, times, _ in rows] == [("replayed", 2), ("replayed", 1)]
    # (a row keeps its latest reason: the first status, sent again once the node
    # connected anew, is of a session before)
    assert "before the node's session of 2026-11-23T07:04:05.120+00:00" in rows[0][2]
    assert "its session began 2026-11-23T06:03:05.120+00:00, before" in rows[1][2]
    said = [
        r.getMessage()
        for r in caplog.records
        if r.name == "central.ingest" and " as replayed: " in r.getMessage()
    ]
    assert said == [
        f"ingest quarantined a message on {topic} as replayed: status 1 of the session begun"
        " 2026-11-23T07:03:05.120+00:00, after central took status 2 of it: an old status"
        " sent again"
    ]


def test_a_last_will_published_while_its_connection_lives_keeps_the_real_one(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The node's last will of its session, captured (it travels in the node's CONNECT:
    a broker link without TLS) and published while the connection lives, shows the node
    offline until its next status; that status shows the will was published again
    (quarantined as replayed, said in the log), and the node's own will, when its
    connection is then lost, still shows it offline instead of counting as the will
    again. A second will so shown leaves the session's will taken: the node is shown
    offline by a replay at most twice a session (its real loss then by its silence)."""
    import logging

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    will = _placed(node, T0, 0, NodeState.OFFLINE)

    def state() -> str:
        with central_db.session() as s:
            return str(
                s.scalar(select(Node.state).where(Node.site == node.site, Node.node == node.node))
            )

    caplog.set_level(logging.INFO, logger="central.ingest")
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        counted = ingest.metrics.registry.get_sample_value

        def sent(payload: bytes, outcome: str, *, replayed: int = 0) -> None:
            """Publish, and wait until the ingest counts it as ``outcome`` (and
            ``replayed`` quarantined as replayed with it)."""
            name = "roadwatch_ingest_outcomes_total"
            before = counted(name, {"outcome": outcome}) or 0.0
            refused = counted(name, {"outcome": "quarantined_replayed"}) or 0.0
            publisher.publish(topic, payload)
            wait_for(outcome, lambda: counted(name, {"outcome": outcome}) == before + 1)
            assert (counted(name, {"outcome": "quarantined_replayed"}) or 0.0) == refused + replayed

        sent(_placed(node, T0, 1), "status")
        sent(will, "status")  # published again while the connection lives
        assert state() == "offline"
        sent(_placed(node, T0, 2), "status", replayed=1)  # the will was not its end
        assert state() == "online"
        sent(will, "status")  # the connection lost: the broker publishes the will
        assert state() == "offline"
        sent(_placed(node, T0, 3), "status", replayed=1)  # (and that one, again)
        sent(will, "status_repeated")
        assert state() == "online"
        sent(_placed(node, T0, 4), "status")  # (nothing more to say of the will)
        sent(_placed(node, T0 + timedelta(minutes=1), 1), "status")  # connected again
        sent(_placed(node, T0 + timedelta(minutes=1), 0, NodeState.OFFLINE), "status")
        assert state() == "offline"
    with central_db.session() as s:
        rows = s.execute(
            select(Quarantine.reason_code, Quarantine.times, Quarantine.payload).where(
                Quarantine.topic == topic
            )
        ).all()
    assert [(code, times, payload) for code, times, payload in rows] == [("replayed", 2, will)]
    said = [r.getMessage() for r in caplog.records if "the last will it took" in r.getMessage()]
    assert said == [
        f"ingest quarantined the last will it took on {topic} as replayed: the last will of"
        " the session begun 2026-11-23T07:03:05.120+00:00 was published while its connection"
        " lived: central took status 2 of it after the will (an old status sent again)"
    ]


def test_a_node_killed_is_shown_offline_by_its_last_will(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    """The real node's delivery, killed with kill -9 after several statuses: the broker
    publishes its last will, signed at connect and so placed before every status of the
    session, and central takes it (the node offline) instead of refusing it as replayed."""
    from roadwatch.contract.signing import private_key_pem
    from tests.delivery_support import subprocess_env

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    key_file = tmp_path / "node.key"
    key_file.write_bytes(private_key_pem(node.key))
    delivery = {
        "site": node.site,
        "node": node.node,
        "key_path": str(key_file),
        "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port, "keepalive_s": 5},
        "outbox": {"path": str(tmp_path / "outbox")},
        "status_interval_s": 0.2,
    }
    config = tmp_path / "site.yaml"
    config.write_text(json.dumps({"delivery": delivery}), encoding="utf-8")

    def held() -> tuple[str, int | None]:
        with central_db.session() as s:
            row = s.execute(
                select(Node.state, Node.status_sequence).where(
                    Node.site == node.site, Node.node == node.node
                )
            ).one()
        return row[0], row[1]

    command = [sys.executable, "-m", "roadwatch", "edge", "deliver", "--config", str(config)]
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        edge = subprocess.Popen(
            command, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for("three statuses of the session", lambda: (held()[1] or 0) >= 3)
            assert held()[0] == "online"
        finally:
            edge.send_signal(signal.SIGKILL)
            edge.wait(timeout=10)
        sequence = held()[1]
        wait_for("the node offline", lambda: held()[0] == "offline")
    assert held() == ("offline", sequence)  # (the will's 0 does not lower the position held)
    with central_db.session() as s:
        status = json.loads(
            s.scalar(select(Node.status_json).where(Node.site == node.site)) or "{}"
        )
    assert (status["state"], status["sequence"]) == ("offline", 0)
    assert _quarantined(central_db, node.site) == []


def _rotate_key(central_db: CentralDb, node: NodeIdentity, *, reason: str) -> Ed25519PrivateKey:
    """A new key registered for ``node`` and its old one revoked, as an admin rotates."""
    from central.db import session_factory, transaction
    from central.records import add_node_key, revoke_node_key
    from roadwatch.contract.signing import key_fingerprint, public_key_pem

    new_key = generate_private_key()
    with transaction(session_factory(central_db.engine)) as s:
        add_node_key(
            s, site=node.site, node=node.node,
            public_key_pem=public_key_pem(new_key.public_key()).decode("ascii"),
        )  # fmt: skip
        revoke_node_key(
            s, site=node.site, node=node.node,
            fingerprint=key_fingerprint(node.key.public_key()), reason=reason,
        )  # fmt: skip
    return new_key


def test_traffic_minutes_not_sent_before_a_rotation_are_taken_after_the_old_key_is_revoked(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    """A node's traffic minutes are signed when stored and sent once, with no receipt, so
    "nothing awaiting a receipt" said nothing of those not sent yet. The node rotates its
    key (a new one registered, the node restarted with it) with a minute of the old key
    still in its outbox (its link down), and the old key is revoked: the node signs that
    minute again with its new key when it starts, and central stores it instead of
    quarantining it as revoked_key."""
    from edge.delivery_service import DeliveryService

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    config = _delivery(node, mqtt_broker, tmp_path)
    before = DeliveryService.from_config(config, key=node.key)
    assert before.submit_traffic(_traffic(node).model_copy(update={"signature": None}))
    before.stop(timeout_s=1)  # (never started: the minute stays in the outbox, not sent)
    new_key = _rotate_key(central_db, node, reason="rotated")
    after = DeliveryService.from_config(config, key=new_key)
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        try:
            after.start()
            wait_for("the minute", lambda: _heard(central_db, node.site)["traffic"] != [])
        finally:
            after.stop(timeout_s=5)
    assert _heard(central_db, node.site)["traffic"] == [("cam-01", 12)]
    assert _quarantined(central_db, node.site) == []


def test_a_violation_signed_with_a_key_revoked_since_is_refused_for_good_and_kept(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    """The node's old key was revoked while a violation it signed was still in the node's
    outbox. Central quarantines it as revoked_key and tells the node so for good on its
    receipt topic; the node keeps the event as refused, with central's reason (nothing
    lost), and stops sending it, where before it sent it again forever. One central held
    from before the revocation, sent again, gets its receipt instead."""
    from edge.delivery_service import DeliveryService

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    config = _delivery(node, mqtt_broker, tmp_path, receipt_timeout_s=0.5, receipt_timeout_cap_s=1)
    held, stranded = signed_event(node, evidence=[]), signed_event(node, evidence=[])
    store_events(central_db, node, [held])  # (its receipt lost: the node sends it again)
    before = DeliveryService.from_config(config, key=node.key)
    for event in (held, stranded):
        before.outbox.put_violation(event, [])
    before.stop(timeout_s=1)
    new_key = _rotate_key(central_db, node, reason="revoked too early")
    after = DeliveryService.from_config(config, key=new_key)
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        try:
            after.start()
            wait_for("the refusal", lambda: after.outbox.stats().refused == 1)
            wait_for("the receipt", lambda: after.outbox.stats().awaiting_receipt == 0)
            # Several receipt time-outs later: not sent again.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.2)
            [refused] = after.outbox.refused_events()
            counters = after.publisher.counters()
            stats = after.outbox.stats()
        finally:
            after.stop(timeout_s=5)
    assert refused.event_id == stranded.event_id and refused.code == "revoked_key"
    assert "revoked too early" in refused.reason
    assert (stats.refused, stats.awaiting_receipt, stats.receipted) == (1, 0, 1)
    assert counters.refused == 1 and counters.resent == 0
    assert ingest.refusals_sent == 1
    with central_db.session() as s:
        rows = s.execute(
            select(Quarantine.reason_code, Quarantine.times).where(
                Quarantine.topic.like(f"roadwatch/v1/{node.site}/%")
            )
        ).all()
    # (held, sent again, was refused too, as the check comes first; but received once)
    assert sorted((code, times) for code, times in rows) == [("revoked_key", 1)] * 2


def test_a_forged_violation_is_refused_for_good_and_taken_once_retried_after_its_key_is_set(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    """A node started with a new key before central's admin registered it: its violations
    verify with no key of that node, and central quarantines them as forged. It sent them
    again forever, filling its link and central's quarantine; now central tells it they are
    refused for good, and the node keeps them and stops sending them. Once the admin has
    registered the key, the technician queues them again and central takes them."""
    from central.db import session_factory, transaction
    from central.records import add_node_key
    from edge.delivery_service import DeliveryService
    from roadwatch.contract.signing import public_key_pem

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    config = _delivery(node, mqtt_broker, tmp_path, receipt_timeout_s=0.5, receipt_timeout_cap_s=1)
    new_key = generate_private_key()  # (not registered yet)
    forged = sign(violation_event(site=node.site, node=node.node, evidence=[]), new_key)
    service = DeliveryService.from_config(config, key=new_key)
    service.outbox.put_violation(forged, [])
    try:
        with IngestService(settings, central_db.engine) as ingest:
            assert ingest.wait_ready(10), "ingest did not subscribe"
            service.start()
            wait_for("the refusal", lambda: service.outbox.stats().refused == 1)
            # Several receipt time-outs later: not sent again.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.2)
            [refused] = service.outbox.refused_events()
            counters = service.publisher.counters()
            refusals_sent = ingest.refusals_sent
        assert (refused.event_id, refused.code) == (forged.event_id, "forged")
        assert counters.refused == 1 and counters.resent == 0 and refusals_sent == 1
        with transaction(session_factory(central_db.engine)) as s:
            add_node_key(
                s, site=node.site, node=node.node,
                public_key_pem=public_key_pem(new_key.public_key()).decode("ascii"),
            )  # fmt: skip
        assert service.outbox.retry_refused([forged.event_id], actor="technician") == [
            forged.event_id
        ]
        with IngestService(settings, central_db.engine) as ingest:
            assert ingest.wait_ready(10), "ingest did not subscribe"
            wait_for("the receipt", lambda: service.outbox.stats().receipted == 1)
        stats = service.outbox.stats()
    finally:
        service.stop(timeout_s=5)
    assert (stats.refused, stats.awaiting_receipt) == (0, 0)
    assert _count(central_db, Violation, node.site) == 1
    with central_db.session() as s:
        rows = s.execute(
            select(Quarantine.reason_code, Quarantine.times).where(
                Quarantine.topic.like(f"roadwatch/v1/{node.site}/%/violation")
            )
        ).all()
    assert rows == [("forged", 1)]  # (its statuses, signed with the new key, are there too)


def test_violations_central_lost_in_a_restore_are_sent_again_by_the_technician(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Central receipted two violations; its database is then restored from a backup
    taken before it took one of them (its row deleted here), while the node keeps both
    receipted and sends them no more. On the running node, `edge outbox receipted
    resend --since` queues both again: central takes the lost one again and drops the
    one it still holds as a duplicate, receipting both, each held once."""
    from edge.delivery_service import DeliveryService
    from roadwatch.cli import main

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    config = _delivery(node, mqtt_broker, tmp_path, receipt_timeout_s=0.5, receipt_timeout_cap_s=1)
    config_file = tmp_path / "site.yaml"
    config_file.write_text(
        f"delivery:\n  site: {node.site}\n  node: {node.node}\n"
        f"  key_path: {tmp_path / 'unused.key'}\n  outbox:\n    path: {config.outbox.path}\n",
        encoding="utf-8",
    )
    kept, lost = signed_event(node, evidence=[]), signed_event(node, evidence=[])
    backup_time = datetime.now(UTC) - timedelta(seconds=1)
    service = DeliveryService.from_config(config, key=node.key)
    for event in (kept, lost):
        service.outbox.put_violation(event, [])
    resend = ["edge", "outbox", "receipted", "resend", "--since", backup_time.isoformat()]
    try:
        with IngestService(settings, central_db.engine) as ingest:
            assert ingest.wait_ready(10), "ingest did not subscribe"
            service.start()
            wait_for("the receipts", lambda: service.outbox.stats().receipted == 2)
            # Central's database restored from the backup: the lost one's row is gone.
            with central_db.engine.begin() as conn:
                [vid] = conn.execute(
                    select(Violation.id).where(Violation.event_id == lost.event_id)
                ).scalars()
                conn.execute(text("DELETE FROM violations WHERE id = :id"), {"id": vid})
                if central_db.engine.dialect.name == "postgresql":
                    conn.execute(text("DELETE FROM violation_keys WHERE id = :id"), {"id": vid})
            assert _count(central_db, Violation, node.site) == 1
            # Several receipt time-outs later: the node sends nothing again by itself.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                time.sleep(0.2)
            assert service.outbox.stats().receipted == 2
            assert _count(central_db, Violation, node.site) == 1
            assert main([*resend, "--config", str(config_file)]) == 0  # (a dry run)
            assert "would send 2 receipted violation(s) again" in capsys.readouterr().out
            assert service.outbox.stats().receipted == 2
            assert main([*resend, "--yes", "--config", str(config_file)]) == 0
            out = capsys.readouterr().out
            assert "2 receipted violation(s) queued again" in out
            wait_for("the violation back", lambda: _count(central_db, Violation, node.site) == 2)
            wait_for("the receipts again", lambda: service.outbox.stats().receipted == 2)
        stats = service.outbox.stats()
    finally:
        service.stop(timeout_s=5)
    assert (stats.pending, stats.awaiting_receipt, stats.refused) == (0, 0, 0)
    with central_db.session() as s:
        held = s.execute(
            select(Violation.event_id, func.count())
            .where(Violation.site == node.site)
            .group_by(Violation.event_id)
        ).all()
    assert sorted(held) == sorted([(kept.event_id, 1), (lost.event_id, 1)])


@pytest.mark.parametrize("files_more", [True, False], ids=["files-more", "files-nothing-more"])
def test_violations_refused_for_a_key_central_lacks_are_sent_again_once_it_holds_the_key(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files_more: bool,
) -> None:
    """A node started with a new key before central's admin registered it: central refuses
    its violations as forged, for good. They verify under the node's own key, so the node
    keeps them apart, awaiting that key, instead of for good until a technician came by.
    Meanwhile the node sends the oldest again once a probe period to check: refused as
    forged again, all still await the key. The admin registers the key. A node that files
    a violation after that gets its receipt, which proves central holds the key; one that
    files nothing more gets the receipt of its next probe instead. Either way it sends the
    earlier ones again by itself: every one is taken, none lost."""
    import edge.publisher
    from central.records import add_node_key
    from edge.delivery_service import DeliveryService
    from roadwatch.contract.signing import key_fingerprint, public_key_pem

    if not files_more:  # (a probe each second; else none within the test)
        monkeypatch.setattr(edge.publisher, "KEY_PROBE_S", 1.0)
    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    config = _delivery(node, mqtt_broker, tmp_path, receipt_timeout_s=0.5, receipt_timeout_cap_s=1)
    new_key = generate_private_key()  # (not registered yet)
    earlier = [
        sign(violation_event(site=node.site, node=node.node, evidence=[]), new_key)
        for _ in range(3)
    ]
    service = DeliveryService.from_config(config, key=new_key)
    for event in earlier:
        service.outbox.put_violation(event, [])
    later = sign(violation_event(site=node.site, node=node.node, evidence=[]), new_key)
    try:
        with IngestService(settings, central_db.engine) as ingest:
            assert ingest.wait_ready(10), "ingest did not subscribe"
            service.start()
            wait_for("the refusals", lambda: service.outbox.stats().refused == 3)
            if not files_more:
                wait_for("a second probe", lambda: service.publisher.counters().key_probes >= 2)
            awaiting = {r.awaiting_key for r in service.outbox.refused_events()}
            refused = service.outbox.stats()
            with transaction(session_factory(central_db.engine)) as s:
                add_node_key(
                    s, site=node.site, node=node.node,
                    public_key_pem=public_key_pem(new_key.public_key()).decode("ascii"),
                )  # fmt: skip
            if files_more:
                service.outbox.put_violation(later, [])
            taken = 4 if files_more else 3
            wait_for("every receipt", lambda: service.outbox.stats().receipted == taken)
            stats = service.outbox.stats()
            actions = service.outbox.refused_actions()
    finally:
        service.stop(timeout_s=5)
    assert awaiting == {key_fingerprint(new_key.public_key())}
    assert (refused.refused, refused.refused_awaiting_key, refused.awaiting_receipt) == (3, 3, 0)
    assert (stats.refused, stats.refused_awaiting_key, stats.awaiting_receipt) == (0, 0, 0)
    assert _count(central_db, Violation, node.site) == taken
    # The proof: the later violation, or else the oldest awaiting, sent again to check.
    proof, resent = (later, earlier) if files_more else (earlier[0], earlier[1:])
    assert sorted((a.event_id, a.action, a.actor) for a in actions) == sorted(
        (e.event_id, "resend", "node") for e in resent
    )
    assert all(f"central took {proof.event_id}" in a.detail for a in actions)


def test_an_event_id_central_holds_with_other_content_is_refused_for_good_not_receipted(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
) -> None:
    """Central holds an event; its node's outbox holds another content under the same id
    (reused_event_id). A receipt for the id would have the node delete a violation central
    does not hold: it is refused for good instead, and kept on the node."""
    from edge.delivery_service import DeliveryService

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    config = _delivery(node, mqtt_broker, tmp_path, receipt_timeout_s=0.5)
    held = signed_event(node, evidence=[])
    store_events(central_db, node, [held])
    other = sign(held.model_copy(update={"track_id": held.track_id + 1}), node.key)
    service = DeliveryService.from_config(config, key=node.key)
    service.outbox.put_violation(other, [])
    try:
        with IngestService(settings, central_db.engine) as ingest:
            assert ingest.wait_ready(10), "ingest did not subscribe"
            service.start()
            wait_for("the refusal", lambda: service.outbox.stats().refused == 1)
            [refused] = service.outbox.refused_events()
            stats = service.outbox.stats()
    finally:
        service.stop(timeout_s=5)
    assert (refused.event_id, refused.code) == (held.event_id, "reused_event_id")
    assert (stats.receipted, stats.awaiting_receipt) == (0, 0)


def test_a_batch_that_cannot_be_checked_is_checked_again_not_dropped(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database away while a node's key is looked up: the batch is checked again
    until it can be. Dropped unacknowledged, each message would hold a place of the
    broker's Receive Maximum until a reconnect, and two such would stop delivery here."""
    from sqlalchemy.exc import OperationalError

    from central.records import check_batch as real_check

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site).model_copy(
        update={"ingest_receive_maximum": 2, "ingest_batch": 1}
    )
    failures = [OperationalError("SELECT", {}, Exception("the database system is starting up"))] * 2

    def check_batch(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return real_check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("central.ingest.check_batch", check_batch)
    events = [signed_event(node) for _ in range(5)]
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        for event in events:
            publisher.publish(node.topic(), to_wire(event))
        wait_for("all 5 stored", lambda: _count(central_db, Violation, node.site) == 5)
    assert failures == []


def test_a_batch_that_fails_every_time_does_not_hold_back_the_rest(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch whose writing fails otherwise than by the database being away is tried a
    few times, then left unacknowledged; the batches behind it are stored."""
    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site).model_copy(
        update={"ingest_batch": 1}
    )
    poison = signed_event(node)
    real = IngestService._commit_then_ack
    tries: list[int] = []

    def commit_then_ack(self: IngestService, batch: Any) -> None:
        if any(d.message.payload == to_wire(poison) for d in batch.deliveries):
            tries.append(1)
            raise RuntimeError("a fault that comes back every time")
        real(self, batch)

    monkeypatch.setattr(IngestService, "_commit_then_ack", commit_then_ack)
    rest = [signed_event(node) for _ in range(3)]
    with IngestService(settings, central_db.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        for event in [poison, *rest]:
            publisher.publish(node.topic(), to_wire(event))
        wait_for("the 3 behind it stored", lambda: _count(central_db, Violation, node.site) == 3)
    assert len(tries) == 3


def _count(db: CentralDb, model: type[Violation] | type[TrafficMinute], site: str) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.site == site)) or 0)


def _ingest_env(
    db: CentralDb, broker: BrokerAddress, site: str, data: Path, **more: str
) -> dict[str, str]:
    """The environment of a `central ingest` of the test's own, for ``site``."""
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ROADWATCH_DATABASE_URL": db.url,
        "ROADWATCH_DATA_DIR": str(data),
        "ROADWATCH_MQTT_HOST": broker.host,
        "ROADWATCH_MQTT_PORT": str(broker.port),
        "ROADWATCH_MQTT_SITE": site,
        "ROADWATCH_MQTT_SHARE_GROUP": f"g{uuid.uuid4().hex[:10]}",
        # (a client id of the test's own: the default one's broker session may hold the
        # subscriptions of another run, which would deliver every message twice)
        "ROADWATCH_MQTT_CLIENT_ID": f"central-test-{uuid.uuid4().hex[:10]}",
        **more,
    }


def _start_ingest(env: dict[str, str], log: IO[str], *options: str) -> subprocess.Popen[bytes]:
    """Start ``roadwatch central ingest`` and wait until it says it has subscribed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadwatch", "central", "ingest", *options],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"subscribed" not in seen:
        ready, _w, _x = wait_readable([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    if b"subscribed" not in seen:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
        raise AssertionError(f"ingest did not subscribe: {seen.decode(errors='replace')}")
    return proc


def _run_central(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_second_ingest_with_the_same_client_id_is_refused_at_its_start(
    central_db: CentralDb, mqtt_broker: BrokerAddress, tmp_path: Path
) -> None:
    """Two ingests with one MQTT client id closed each other's broker connection about
    every second, forever, each saying "ingest lost the broker". The second is refused at
    its start now, with one line, by `central ingest` and `serve --with-ingest` alike; an
    ingest with another id starts beside the first."""
    env = _ingest_env(central_db, mqtt_broker, "ql13-km22", tmp_path / "data")
    client_id = env["ROADWATCH_MQTT_CLIENT_ID"]
    said = (
        f"roadwatch: error: another ingest runs with the MQTT client id '{client_id}': give"
        " each ingest its own ROADWATCH_MQTT_CLIENT_ID (two with one id close each other's"
        " broker connection, forever)\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "ingest.log").open("w")
    first = _start_ingest(env, log)
    others: list[subprocess.Popen[bytes]] = []
    try:
        second = _run_central(env, "ingest")
        assert (second.returncode, second.stderr) == (2, said), second
        serve = _run_central(env, "serve", "--with-ingest", "--port", str(port))
        assert (serve.returncode, serve.stderr) == (2, said), serve
        assert "serving on" not in serve.stdout
        others.append(_start_ingest({**env, "ROADWATCH_MQTT_CLIENT_ID": f"{client_id}-b"}, log))
        assert first.poll() is None
    finally:
        for proc in (first, *others):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            assert proc.stdout is not None
            proc.stdout.close()
        log.close()
    # Stopped, the first ingest let go of its id: the next one with it starts.
    again = _start_ingest(env, (tmp_path / "again.log").open("w"))
    again.send_signal(signal.SIGTERM)
    assert again.wait(20) == 0
    assert again.stdout is not None
    again.stdout.close()
    assert "lost the broker" not in (tmp_path / "ingest.log").read_text()


def _lock_holders(db: CentralDb, client_id: str) -> list[int]:
    """The PostgreSQL backends holding the advisory lock on ``client_id``."""
    key = lock_key(client_id) & 0xFFFFFFFFFFFFFFFF
    with db.engine.connect() as conn:
        return list(
            conn.scalars(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :hi AND objid = :lo AND objsubid = 1"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            )
        )


# (PostgreSQL's lock alone: an OS file lock, SQLite's, is not lost while its process lives)
@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
def test_an_ingest_whose_lock_connection_is_lost_takes_it_again_or_stops(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lock on the client id lives as long as its PostgreSQL connection: when that is
    lost, the ingest takes the lock again on a new one; if another ingest took it
    meanwhile, the ingest stops and says why, instead of fighting it over the broker.
    Served beside the API (``serve --with-ingest``), /health then says so, 503."""
    from fastapi.testclient import TestClient

    from central.app import create_app

    assert central_db.kind == "postgresql"
    monkeypatch.setattr(central.ingest, "KEEP_S", 0.1)
    settings = ingest_settings(central_settings, mqtt_broker, "ql13-km22")
    client_id = str(settings.mqtt_client_id)

    def terminate(pid: int) -> None:
        with central_db.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    app = create_app(settings, engine=central_db.engine, with_ingest=True)
    with TestClient(app) as client:
        ingest: IngestService = app.state.ingest
        assert ingest.wait_ready(10)
        health = client.get("/health")
        assert (health.status_code, health.json()["ingest"]) == (200, "connected")
        [held] = _lock_holders(central_db, client_id)
        terminate(held)
        wait_for(
            "the lock taken again", lambda: _lock_holders(central_db, client_id) not in ([], [held])
        )
        assert ingest.failure is None
        # Lost again, and another ingest takes the id first this time.
        [held] = _lock_holders(central_db, client_id)
        monkeypatch.setattr(central.ingest, "KEEP_S", 1.0)
        time.sleep(0.2)  # (the keeper waits the longer interval from its next check)
        thief = ClientIdLock(central_db.url, client_id)
        terminate(held)
        wait_for("the lock free", lambda: _lock_holders(central_db, client_id) == [])
        thief.take()
        try:
            wait_for("the ingest stopped", lambda: ingest.failure is not None, 10)
            assert ingest.failure is not None
            assert f"another ingest runs with the MQTT client id '{client_id}'" in ingest.failure
            wait_for("the broker let go", lambda: not ingest.wait_ready(0), 10)
            health = client.get("/health")
            assert health.status_code == 503
            assert health.json() == {
                "status": "degraded", "database": "ok", "ingest": f"stopped: {ingest.failure}"
            }  # fmt: skip
        finally:
            thief.release()


@pytest.mark.reliability
def test_ingest_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    node = make_node()
    env = _ingest_env(
        central_db, mqtt_broker, node.site, tmp_path,
        ROADWATCH_MQTT_CLIENT_ID=f"central-kill-{uuid.uuid4().hex[:10]}",
        ROADWATCH_MQTT_SESSION_EXPIRY_S="120",
        ROADWATCH_INGEST_BATCH="10",
    )  # fmt: skip
    events = [signed_event(node, camera=f"cam-{i % 3}") for i in range(300)]
    log = (tmp_path / "ingest.log").open("w")
    proc = _start_ingest(env, log)
    killed = threading.Event()
    try:
        done = threading.Event()

        def publish_all() -> None:
            for i, e in enumerate(events):
                publisher.publish(node.topic(e.camera), to_wire(e))
                if i % 50 == 49:
                    time.sleep(0.05)
            done.set()

        sender = threading.Thread(target=publish_all, name="test-publisher")
        sender.start()
        try:
            wait_for("a third stored", lambda: _count(central_db, Violation, node.site) >= 100, 60)
            proc.send_signal(signal.SIGKILL)  # mid-stream, no chance to clean up
            proc.wait(10)
            killed.set()
            at_kill = _count(central_db, Violation, node.site)
            assert at_kill < len(events), "the stream was over before the kill"
            proc = _start_ingest(env, log)
            wait_for(
                "every event stored",
                lambda: _count(central_db, Violation, node.site) >= len(events),
                90,
            )
        finally:
            sender.join(60)
        assert done.is_set()
        time.sleep(0.5)  # any re-delivery still in flight would land now
        with central_db.session() as s:
            stored = list(s.scalars(select(Violation.event_id).where(Violation.site == node.site)))
        assert sorted(stored) == sorted(e.event_id for e in events)
        assert killed.is_set()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()
    assert proc.returncode == 0, "ingest did not stop cleanly on SIGTERM"


def test_an_ingest_of_its_own_serves_its_counters_on_its_metrics_port(
    central_db: CentralDb,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    """`central ingest --metrics-port`: what the ingest took is counted where Prometheus
    can read it; the port closes when the ingest stops."""
    import urllib.request

    from roadwatch.net import free_port

    node = make_node()
    port = free_port()
    env = _ingest_env(central_db, mqtt_broker, node.site, tmp_path)
    log = (tmp_path / "ingest.log").open("w")
    proc = _start_ingest(env, log, "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        events = [signed_event(node) for _ in range(3)]
        for event in events:
            publisher.publish(node.topic(event.camera), to_wire(event))
        publisher.publish(node.topic("cam-01"), b"{not json")
        wait_for("all stored", lambda: _count(central_db, Violation, node.site) == 3, 30)

        def counted() -> str:
            with urllib.request.urlopen(url, timeout=10) as r:
                return str(r.read().decode("utf-8"))

        wait_for("all counted", lambda: "roadwatch_ingest_messages_total 4.0" in counted(), 30)
        text = counted()
        assert 'roadwatch_ingest_outcomes_total{outcome="accepted"} 3.0' in text
        assert 'roadwatch_ingest_outcomes_total{outcome="quarantined_malformed"} 1.0' in text
    finally:
        proc.terminate()
        try:
            assert proc.wait(15) == 0, "ingest did not stop cleanly on SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
            log.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_a_broker_out_of_reach_is_said_once(
    central_db: CentralDb, central_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker nobody answers at (ROADWATCH_MQTT_HOST or _PORT wrong, the broker down) is
    said in the log at the default level, once for the outage: `central ingest` printed
    "ingesting from …" and then nothing, however long it tried."""
    import logging

    from roadwatch.net import free_port

    port = free_port()  # (nobody listens on it)
    settings = central_settings.model_copy(
        update={"mqtt_host": "127.0.0.1", "mqtt_port": port,
                "mqtt_client_id": f"central-test-{uuid.uuid4().hex[:10]}"}
    )  # fmt: skip
    caplog.set_level(logging.WARNING, logger="central.ingest")
    service = IngestService(settings, central_db.engine)
    service.start()
    try:
        time.sleep(3.5)  # (tries after 0, 1 and 2 s or so)
    finally:
        service.stop(5)
    said = [r.getMessage() for r in caplog.records if "cannot reach the broker" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert f"127.0.0.1:{port}" in said[0]


def test_a_broker_refusing_centrals_login_is_said_once_naming_the_account(
    tmp_path: Path,
    central_db: CentralDb,
    central_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong ROADWATCH_MQTT_PASSWORD is said once for the outage, with the broker and the
    account central logged in as: the log said "MQTT connect refused: Not authorized"
    at each try, each followed by "ingest lost the broker (Protocol error)", a broker
    it never had."""
    import getpass
    import shutil

    from roadwatch.net import free_port

    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    hasher = shutil.which("mosquitto_passwd")
    if binary is None or hasher is None:
        missing("the mosquitto binaries are not installed")
        raise AssertionError  # unreachable
    passwd = tmp_path / "passwd"
    subprocess.run([hasher, "-b", "-c", str(passwd), "central", "the-right-one"], check=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous false\n"
        f"password_file {passwd}\n",
        encoding="utf-8",
    )
    settings = central_settings.model_copy(
        update={"mqtt_host": "127.0.0.1", "mqtt_port": port, "mqtt_password": "a-wrong-one",
                "mqtt_client_id": f"central-test-{uuid.uuid4().hex[:10]}"}
    )  # fmt: skip
    # (tries after 0, 1 and 2 s or so)
    said = _said_by_an_ingest(binary, conf, settings, central_db, caplog, seconds=3.5)
    assert len(said) == 1, said
    assert said[0].startswith(
        f"the broker at 127.0.0.1:{port} refused central's connection as central: "
    ), said
    assert "ROADWATCH_MQTT_PASSWORD" in said[0], said


def _said_by_an_ingest(
    binary: str,
    conf: Path,
    settings: Settings,
    central_db: CentralDb,
    caplog: pytest.LogCaptureFixture,
    *,
    seconds: float,
) -> list[str]:
    """What an ingest logs (warnings and worse) in its first ``seconds`` against a broker of
    its own, Mosquitto (``binary``) run on ``conf``."""
    import logging

    broker = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    caplog.set_level(logging.WARNING, logger="central.ingest")
    try:
        time.sleep(0.5)  # (the broker listening)
        service = IngestService(settings, central_db.engine)
        service.start()
        try:
            time.sleep(seconds)
        finally:
            service.stop(5)
    finally:
        broker.terminate()
        broker.wait(10)
    return [r.getMessage() for r in caplog.records]


def test_a_broker_whose_certificate_expired_is_said_with_the_reason(
    tmp_path: Path,
    central_db: CentralDb,
    central_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker's TLS certificate out of date is named in the log: it said only "ingest
    cannot reach the broker", with the broker up and listening."""
    import getpass
    import ipaddress
    import shutil

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from roadwatch.net import free_port

    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        missing("the mosquitto binary is not installed")
        raise AssertionError  # unreachable
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roadwatch test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - timedelta(days=400)).not_valid_after(now + timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - timedelta(days=100)).not_valid_after(now - timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.crt").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.crt").write_bytes(server.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
        f"certfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n",
        encoding="utf-8",
    )
    settings = central_settings.model_copy(
        update={"mqtt_host": "127.0.0.1", "mqtt_port": port,
                "mqtt_tls_ca": tmp_path / "ca.crt",
                "mqtt_client_id": f"central-test-{uuid.uuid4().hex[:10]}"}
    )  # fmt: skip
    conf = tmp_path / "mosquitto.conf"
    said = _said_by_an_ingest(binary, conf, settings, central_db, caplog, seconds=2.5)
    assert said == [
        f"ingest cannot reach the broker at 127.0.0.1:{port} (its TLS certificate:"
        " certificate has expired); trying again"
    ], said


def test_the_broker_back_after_an_outage_is_said_at_the_outage_level(
    tmp_path: Path,
    central_db: CentralDb,
    central_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Central's log read at its default level (warnings) ends an outage of the broker
    with a line saying it is back, not with "cannot reach the broker" while it ingests."""
    import logging
    import re
    import shutil

    from roadwatch.net import free_port
    from tests.delivery_support import PrivateBroker

    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        missing("the mosquitto binary is not installed")
        raise AssertionError  # unreachable
    (tmp_path / "broker").mkdir()
    broker = PrivateBroker(directory=tmp_path / "broker", port=free_port(), binary=binary)
    settings = central_settings.model_copy(
        update={"mqtt_host": "127.0.0.1", "mqtt_port": broker.port,
                "mqtt_client_id": f"central-test-{uuid.uuid4().hex[:10]}"}
    )  # fmt: skip
    caplog.set_level(logging.WARNING, logger="central.ingest")
    service = IngestService(settings, central_db.engine)
    service.start()
    try:
        time.sleep(1.0)  # (out of reach: the broker is not started yet)
        connected = "roadwatch_ingest_broker_connected"  # (for a scraper to alert on)
        assert service.metrics.registry.get_sample_value(connected) == 0
        broker.start()
        assert service.wait_ready(40), caplog.text
        assert service.metrics.registry.get_sample_value(connected) == 1
    finally:
        service.stop(5)
        broker.stop()
    said = [re.sub(r"\d+ s$", "N s", r.getMessage()) for r in caplog.records]
    assert said[0] == (
        f"ingest cannot reach the broker at 127.0.0.1:{broker.port} (Connection refused);"
        " trying again"
    )
    assert said[1:] == [f"ingest connected to 127.0.0.1:{broker.port} again after N s"], said


def test_serve_with_ingest_in_one_process(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
    accounts: dict[str, Account],
) -> None:
    """`serve --with-ingest`: an event published over MQTT reaches the API and the metrics."""
    from fastapi.testclient import TestClient

    from central.app import create_app
    from central.security import issue_access_token
    from central.workflow import Role
    from tests.central_fixtures import SECRET

    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    app = create_app(settings, engine=central_db.engine, with_ingest=True)
    event = signed_event(node)
    ioc = accounts["ioc"].headers
    with TestClient(app) as client:
        assert app.state.ingest.wait_ready(10)
        publisher.publish(node.topic(), to_wire(event))
        wait_for("the event in the database", lambda: _count(central_db, Violation, node.site) == 1)
        found = client.get("/api/v1/violations", headers=ioc, params={"site": node.site}).json()
        metrics = client.get("/metrics", headers=ioc)
        ghost = issue_access_token("no-such-user", Role.IOC, SECRET, 5)
        refused = client.get("/metrics", headers={"Authorization": f"Bearer {ghost}"})
    assert [v["event_id"] for v in found["items"]] == [event.event_id]
    assert metrics.status_code == 200
    assert 'roadwatch_ingest_outcomes_total{outcome="accepted"} 1.0' in metrics.text
    assert refused.status_code == 401


def test_an_ingest_behind_another_counts_the_statuses_it_took_as_superseded(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
) -> None:
    """Each ingest receives every status. One stopped while another takes the node's
    statuses gets them, in order, when it is back: older than the one held, they are
    superseded (counted as repeated, not applied), not quarantined as replayed. A status
    published again after them is out of order for both, and replayed for both."""
    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    behind = settings.model_copy(update={"mqtt_client_id": f"{settings.mqtt_client_id}-b"})
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    first, second = _placed(node, T0, 1), _placed(node, T0, 2)

    def outcome(ingest: IngestService, name: str) -> float:
        counted = ingest.metrics.registry.get_sample_value
        return counted("roadwatch_ingest_outcomes_total", {"outcome": name}) or 0.0

    with IngestService(behind, central_db.engine) as late:
        assert late.wait_ready(10), "ingest did not subscribe"
    with IngestService(settings, central_db.engine) as ahead:
        assert ahead.wait_ready(10), "ingest did not subscribe"
        publisher.publish(topic, first)
        publisher.publish(topic, second)
        wait_for("both taken", lambda: outcome(ahead, "status") == 2)
        with IngestService(behind, central_db.engine) as late:
            assert late.wait_ready(10), "ingest did not subscribe"
            wait_for("both superseded", lambda: outcome(late, "status_repeated") == 2)
            assert outcome(late, "quarantined_replayed") == 0
            publisher.publish(topic, first)  # published again: out of order for both
            for ingest in (ahead, late):
                wait_for("replayed", lambda: outcome(ingest, "quarantined_replayed") == 1)  # noqa: B023
            assert outcome(late, "status") == 0
    with central_db.session() as s:
        rows = s.execute(
            select(Quarantine.reason_code, Quarantine.times).where(Quarantine.topic == topic)
        ).all()
    assert [tuple(row) for row in rows] == [("replayed", 2)]


def test_a_batch_locks_the_nodes_of_its_statuses_in_one_order(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """Two ingests each take every status: a batch locks the nodes it has statuses of in
    one statement, by id, before it stores any, whatever order they came in, so two
    batches never each hold a node the other waits for (on PostgreSQL, a deadlock)."""
    from sqlalchemy import event

    from central.db import session_factory, transaction
    from central.intake import Message
    from central.records import Checked, store_checked
    from roadwatch.contract.wire import parse_payload

    site = f"t{uuid.uuid4().hex[:10]}"
    nodes = [make_node(site, f"node-{n}") for n in "cab"]
    checked = [
        Checked(Message(node_topic(n.site, n.node, NodeTopic.STATUS), b"{}"), status)
        for n in nodes
        for status in [parse_payload(NodeStatus, _placed(n, T0, 1))]
    ]
    statements: list[tuple[str, str]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM nodes" in statement:
            statements.append((" ".join(statement.split()), str(params)))

    event.listen(central_db.engine, "before_cursor_execute", seen)
    try:
        with transaction(session_factory(central_db.engine)) as session:
            stored = store_checked(session, checked)
    finally:
        event.remove(central_db.engine, "before_cursor_execute", seen)
    assert stored.statuses == 3
    # The first statement on the nodes locks all three, in the order of their ids; no
    # other locks one.
    lock, params = statements[0]
    assert all(n.node in params for n in nodes), params
    assert lock.endswith(
        "ORDER BY nodes.id" + (" FOR UPDATE" if central_db.kind == "postgresql" else "")
    ), lock
    locking = 1 if central_db.kind == "postgresql" else 0  # (SQLite locks the whole file)
    assert sum("FOR UPDATE" in s for s, _p in statements) == locking
    assert [s for s, _p in statements if s.startswith("SELECT nodes.id FROM")] == [lock]


def test_an_ingest_restarted_keeps_the_order_it_received(
    central_db: CentralDb,
    central_settings: Settings,
    mqtt_broker: BrokerAddress,
    make_node: Callable[..., NodeIdentity],
    publisher: Publisher,
) -> None:
    """An ingest stopped and started again keeps the order of the statuses it received, as
    its broker session keeps what was published meanwhile: a status published again while
    it was away, the first thing it is delivered when back, is out of order there and
    replayed (not taken for a late copy), and the node's status it missed meanwhile, in
    order, is superseded by what the other ingest took (counted as repeated)."""
    node = make_node()
    settings = ingest_settings(central_settings, mqtt_broker, node.site)
    behind = settings.model_copy(update={"mqtt_client_id": f"{settings.mqtt_client_id}-b"})
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    first, second, third = (_placed(node, T0, n) for n in (1, 2, 3))

    def outcome(ingest: IngestService, name: str) -> float:
        counted = ingest.metrics.registry.get_sample_value
        return counted("roadwatch_ingest_outcomes_total", {"outcome": name}) or 0.0

    with IngestService(settings, central_db.engine) as ahead:
        assert ahead.wait_ready(10), "ingest did not subscribe"
        with IngestService(behind, central_db.engine) as late:
            assert late.wait_ready(10), "ingest did not subscribe"
            publisher.publish(topic, first, retain=True)
            publisher.publish(topic, second, retain=True)
            wait_for(
                "both received",
                lambda: outcome(late, "status") + outcome(late, "status_repeated") == 2,
            )
        publisher.publish(topic, first)  # published again while the ingest is stopped
        publisher.publish(topic, third, retain=True)
        wait_for("replayed and taken", lambda: outcome(ahead, "quarantined_replayed") == 1)
        wait_for("the third taken", lambda: _held_sequence(central_db, node) == 3)
        with IngestService(behind, central_db.engine) as late:
            assert late.wait_ready(10), "ingest did not subscribe"
            # (the third, then its retained copy on subscribing again)
            wait_for("the third superseded", lambda: outcome(late, "status_repeated") == 2)
            assert outcome(late, "quarantined_replayed") == 1
            assert outcome(late, "status") == 0
    with central_db.session() as s:
        rows = s.execute(
            select(Quarantine.reason_code, Quarantine.times).where(Quarantine.topic == topic)
        ).all()
    assert [tuple(row) for row in rows] == [("replayed", 2)]


def _held_sequence(central_db: CentralDb, node: NodeIdentity) -> int | None:
    with central_db.session() as s:
        return s.scalar(
            select(Node.status_sequence).where(Node.site == node.site, Node.node == node.node)
        )


# (PostgreSQL only: SQLite has one writer at a time, so no insert races another)
@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
def test_an_id_raced_by_another_replica_with_other_content_is_not_receipted(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """Two ingest replicas store an event id at once, each with another content: the one
    whose insert waited on the other's was counted a duplicate and receipted (its node
    would delete a violation central does not hold). It is refused as a reused id, as
    against one stored before, and a copy raced so is still held and receipted."""
    from central.db import session_factory
    from central.intake import Message
    from central.records import BatchResult, KeyCache, record_batch

    node = make_node()
    first = signed_event(node)
    other = signed_event(node, event_id=first.event_id, explanation="another content")
    sessions = session_factory(central_db.engine)

    def raced(*events: Any) -> BatchResult:
        slow = sessions()
        try:
            record_batch(slow, [Message(node.topic("cam-01"), to_wire(first))], KeyCache())
            out: list[BatchResult] = []

            def store() -> None:
                with sessions.begin() as s:
                    batch = [Message(node.topic("cam-01"), to_wire(e)) for e in events]
                    out.append(record_batch(s, batch, KeyCache()))

            waiting = threading.Thread(target=store)
            waiting.start()
            time.sleep(1.0)  # (its insert waits on the slow one's key)
            slow.commit()
        finally:
            slow.close()
        waiting.join(30)
        [result] = out
        return result

    fresh = signed_event(node)  # (in the same batch, new: stored as ever)
    result = raced(other, fresh)
    assert result.quarantined == {"reused_event_id": 1}
    assert result.held_event_ids == [fresh.event_id] and result.accepted == 1
    assert [m.payload for m, _r in result.late_refusals] == [to_wire(other)]
    # The same content raced so is a copy: held, receipted (alone in its batch too).
    first = signed_event(node)
    result = raced(first)
    assert result.held_event_ids == [first.event_id] and result.duplicates == 1


def _received_as(central_db: CentralDb, ingest: str, node: NodeIdentity, sequence: int) -> None:
    """``ingest`` stores ``node``'s status ``sequence`` of the session begun T0."""
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    message = Message(topic, _placed(node, T0, sequence))
    with transaction(session_factory(central_db.engine)) as s:
        store_checked(s, check_batch(s, [message], KeyCache()), ingest=ingest)


def test_the_daily_upkeep_lets_go_the_status_order_of_ingests_gone_and_old_health(
    central_db: CentralDb, central_settings: Settings, make_node: Callable[..., NodeIdentity]
) -> None:
    """The order of statuses received that an ingest gone keeps (a pod or host name used
    once) is let go once the broker has dropped its session (its expiry and a day more
    without a newer place of any node), by the ingest's daily upkeep: never the running
    ingest's own, nor that of an ingest that held a newer place of one node since. Health
    changes past those kept go too, those of a node never heard again as well."""
    node, quiet = make_node(), make_node()
    tag = uuid.uuid4().hex[:10]
    own, gone, back, alive = (f"{who}-{tag}" for who in ("own", "gone", "back", "alive"))
    settings = central_settings.model_copy(
        update={"mqtt_client_id": own, "mqtt_session_expiry_s": 3600}
    )
    for ingest in (own, gone, back, alive):
        _received_as(central_db, ingest, node, 1)
        _received_as(central_db, ingest, quiet, 1)
    long_ago = utcnow() - timedelta(hours=1) - RECEIVED_MARGIN - timedelta(minutes=1)
    with transaction(session_factory(central_db.engine)) as s:
        ids = dict(
            s.execute(
                select(Node.site, Node.id).where(Node.site.in_([node.site, quiet.site]))
            ).all()
        )
        s.execute(
            update(StatusReceived)
            .where(
                StatusReceived.ingest.in_([own, gone, back])
                | (StatusReceived.node_id == ids[quiet.site])
            )
            .values(received_at=long_ago)
        )
        s.execute(
            update(HealthChange)
            .where(HealthChange.site == quiet.site)
            .values(at=utcnow() - HEALTH_KEPT - timedelta(minutes=1))
        )
    _received_as(central_db, back, node, 2)  # (a newer place: held now)

    IngestService(settings, central_db.engine)._prune_stale()

    with central_db.session() as s:
        kept = s.execute(
            select(StatusReceived.ingest, StatusReceived.node_id).where(
                StatusReceived.node_id.in_(ids.values())
            )
        ).all()
        health = s.execute(
            select(HealthChange.site, func.count())
            .where(HealthChange.site.in_([node.site, quiet.site]))
            .group_by(HealthChange.site)
        ).all()
    names = {v: k for k, v in ids.items()}
    assert sorted((ingest, names[n]) for ingest, n in kept) == sorted(
        (ingest, n.site) for ingest in (own, back, alive) for n in (node, quiet)
    )
    assert [site for site, _ in health] == [node.site]


def test_status_order_received_before_its_times_counts_as_received_at_the_upgrade(
    empty_database: str,
) -> None:
    """Migration 0019: a row stored before has its time, the upgrade's (so an ingest gone
    before it is let go in its turn, not at once); a row an ingest on the code before writes
    gets one too; downgrading keeps every row."""
    from alembic import command
    from sqlalchemy import column, create_engine, insert, table

    from central.db import alembic_config
    from central.models import UtcDateTime
    from central.records import prune_stale

    cfg = alembic_config(empty_database)
    command.upgrade(cfg, "0018_health_changes")
    nodes = table(
        "nodes",
        *(column(name) for name in ("id", "site", "node", "public_key_pem", "token_hash")),
        *(column(name) for name in ("state",)),
        column("created_at", UtcDateTime()),
        column("updated_at", UtcDateTime()),
    )
    before = table(
        "status_received",
        *(column(name) for name in ("ingest", "node_id", "sequence", "will_taken")),
        column("session_at", UtcDateTime()),
    )
    row = {"node_id": 1, "session_at": T0, "sequence": 5, "will_taken": False}
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(nodes),
                [{"id": 1, "site": "s", "node": "n", "public_key_pem": "", "token_hash": "t",
                  "state": "unknown", "created_at": T0, "updated_at": T0}],
            )  # fmt: skip
            conn.execute(insert(before), [row | {"ingest": "gone"}])
        command.upgrade(cfg, "head")
        with engine.begin() as conn:
            conn.execute(insert(before), [row | {"ingest": "old-code"}])
        with session_factory(engine)() as s:
            times = dict(s.execute(select(StatusReceived.ingest, StatusReceived.received_at)).all())
            assert set(times) == {"gone", "old-code"} and None not in times.values()
            # (kept the session expiry and the margin from the upgrade, then let go)
            expiry = timedelta(days=7)
            at = times["gone"] + expiry + RECEIVED_MARGIN - timedelta(seconds=1)
            assert prune_stale(s, ingest="own", session_expiry=expiry, now=at).received == 0
            later = at + timedelta(hours=1)
            assert prune_stale(s, ingest="own", session_expiry=expiry, now=later).received == 2
            s.rollback()
        command.downgrade(cfg, "0018_health_changes")
        with engine.begin() as conn:
            assert sorted(conn.execute(select(before.c.ingest)).scalars()) == ["gone", "old-code"]
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def _delivery(
    node: NodeIdentity, broker: BrokerAddress, tmp_path: Path, **outbox: float
) -> DeliveryConfig:
    """The node's delivery to the test broker, its outbox under ``tmp_path`` (the key is
    handed to the service, not read from ``key_path``)."""

    return DeliveryConfig.model_validate(
        {
            "site": node.site,
            "node": node.node,
            "key_path": str(tmp_path / "unused.key"),
            "broker": {"host": broker.host, "port": broker.port, "keepalive_s": 5},
            "outbox": {"path": str(tmp_path / "outbox"), **outbox},
        }
    )
