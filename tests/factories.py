"""Valid sample payloads for tests; override any field by keyword."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from roadwatch.contract import (
    EvidenceRef,
    EvidenceRole,
    Measurement,
    MediaType,
    PlateColour,
    PlateReading,
    VehicleClass,
    ViolationEvent,
    ViolationType,
    new_event_id,
)

T0 = datetime(2026, 11, 23, 7, 3, 5, 120000, tzinfo=UTC)

_STATUS_SEQUENCE = itertools.count(1)


def status_position() -> dict[str, Any]:
    """A node status's position in its node's order, after every one given before (central
    refuses an older one as replayed): one session begun at T0, the next sequence in it."""
    return {"session_started_at": T0, "sequence": next(_STATUS_SEQUENCE)}


def violation_event(**overrides: Any) -> ViolationEvent:
    fields: dict[str, Any] = {
        "event_id": new_event_id(),
        "type": ViolationType.SPEEDING,
        "site": "ql13-km22",
        "node": "node-01",
        "camera": "cam-01",
        "lane": "lane-2",
        "occurred_at": T0,
        "vehicle_class": VehicleClass.CAR,
        "track_id": 17,
        "plate": PlateReading(
            text="51F-123.45", confidence=0.93, valid=True, colour=PlateColour.WHITE
        ),
        "measured": Measurement(
            speed_kmh=92.4, speed_uncertainty_kmh=1.1, speed_limit_kmh=80.0, distance_m=18.0
        ),
        "explanation": "Đo tốc độ 92.4 ± 1.1 km/h trên 18 m ở làn 2; giới hạn 80 km/h.",
        "place": "QL13 Km 22+300, Thuận An",
        "evidence": [
            EvidenceRef(
                role=EvidenceRole.FRAME_AT, media_type=MediaType.JPEG, sha256="ab" * 32, size=81234
            ),
            EvidenceRef(
                role=EvidenceRole.CLIP, media_type=MediaType.MP4, sha256="cd" * 32, size=912345
            ),
        ],
        "model_version": "yolov8n-coco@75cc3648",
        "rule_version": "speeding@1",
        "config_version": "cam-01@2026-11-20",
    }
    fields.update(overrides)
    return ViolationEvent(**fields)
