from __future__ import annotations

import json

from roadwatch.contract.schema import SCHEMA_PATH, contract_schema, schema_text


def test_published_schema_is_current() -> None:
    """schema/ must match the models (regenerate: python -m roadwatch.contract.schema_export)."""
    assert SCHEMA_PATH.is_file(), f"{SCHEMA_PATH} missing"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "the published JSON Schema is stale: run `python -m roadwatch.contract.schema_export`"
    )


def test_schema_lists_every_payload_and_forbids_extra_fields() -> None:
    schema = contract_schema()
    assert set(schema["properties"]) == {
        "violation",
        "traffic",
        "status",
        "signal",
        "config",
        "receipt",
    }
    event = schema["$defs"]["ViolationEvent"]
    assert event["additionalProperties"] is False
    assert json.loads(json.dumps(schema)) == schema
