"""From real frames to central: evidence package, outbox, MQTT and upload together."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from edge.delivery_config import DeliveryConfig
from edge.delivery_service import DeliveryService
from edge.evidence.package import EvidenceBuilder
from edge.identity import write_key_pair
from roadwatch.contract import ViolationEvent
from roadwatch.contract.signing import load_private_key, verify
from tests.delivery_central import EvidenceServer
from tests.delivery_support import Consumer
from tests.services import BrokerAddress
from tests.unit.test_delivery_evidence import filled_ring, real_frames, red_light_request

pytestmark = pytest.mark.integration

TOKEN = "node-token-e2e-71c2"


def test_violation_from_real_frames_reaches_broker_and_central(
    tmp_path: Path, mqtt_broker: BrokerAddress
) -> None:
    frames = real_frames(48)
    site = "e" + uuid.uuid4().hex[:10]
    write_key_pair(tmp_path / "node")
    key = load_private_key(tmp_path / "node.key")
    with EvidenceServer(TOKEN) as central:
        config = DeliveryConfig.model_validate(
            {
                "site": site,
                "node": "node-01",
                "key_path": str(tmp_path / "node.key"),
                "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port},
                "central": {"url": central.url, "upload_token": TOKEN},
                "outbox": {"path": str(tmp_path / "outbox")},
            }
        )
        consumer = Consumer(
            mqtt_broker.host,
            mqtt_broker.port,
            [f"roadwatch/v1/{site}/node-01/+/violation"],
            f"central-{site}",
        )
        service = DeliveryService.from_config(config)
        try:
            base = red_light_request()
            request = dataclasses.replace(base, event=base.event.model_copy(update={"site": site}))
            package = EvidenceBuilder(key).build(filled_ring(frames), request)
            event_id = service.submit(package).event_id
            time.sleep(0.3)  # the consumer's subscription is in place
            service.start()
            assert consumer.wait_for({event_id}, 20) == set()
            deadline = time.monotonic() + 20
            while not service.outbox.evidence_progress(event_id).complete:
                assert time.monotonic() < deadline, "evidence not uploaded"
                time.sleep(0.05)
        finally:
            service.stop(timeout_s=5)
            consumer.close()
        received = ViolationEvent.model_validate_json(consumer.payloads[event_id])
        verify(received, key.public_key())
        assert received.evidence == package.event.evidence
        for ref in received.evidence:  # central holds every blob the event lists
            assert central.stored[ref.sha256] == next(
                b.data for b in package.blobs if b.ref.sha256 == ref.sha256
            )
            assert central.media_types[ref.sha256] == ref.media_type.value
