"""The published JSON Schema of the contract (schema/roadwatch-v1.schema.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from roadwatch.contract.models import (
    SCHEMA_VERSION,
    ConfigPush,
    NodeStatus,
    ReceiptBatch,
    RefusalBatch,
    SignalPhase,
    TrafficStats,
    ViolationEvent,
)

PAYLOADS: dict[str, tuple[type[BaseModel], ...]] = {
    "violation": (ViolationEvent,),
    "traffic": (TrafficStats,),
    "status": (NodeStatus,),
    "signal": (SignalPhase,),
    "config": (ConfigPush,),
    # (central's receipts, and its final refusals of events that will never be receipted)
    "receipt": (ReceiptBatch, RefusalBatch),
}

SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "schema" / f"roadwatch-v{SCHEMA_VERSION}.schema.json"
)


def contract_schema() -> dict[str, Any]:
    """One document: a definition per payload, keyed by the topic kind that carries it."""
    defs: dict[str, Any] = {}
    payloads: dict[str, Any] = {}
    for kind, models in PAYLOADS.items():
        refs = []
        for model in models:
            schema = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
            defs.update(schema.pop("$defs", {}))
            defs[model.__name__] = schema
            refs.append({"$ref": f"#/$defs/{model.__name__}"})
        payloads[kind] = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"roadwatch/v{SCHEMA_VERSION}",
        "title": f"Roadwatch event contract v{SCHEMA_VERSION}",
        "description": "Payloads by topic kind: roadwatch/v1/{site}/{node}[/{camera}]/{kind}",
        "properties": payloads,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    return json.dumps(contract_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
