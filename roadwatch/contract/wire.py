"""Parsing payloads off the wire with early, field-naming errors."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from roadwatch.contract.canonical import canonical_model_bytes
from roadwatch.errors import validator_words

M = TypeVar("M", bound=BaseModel)

MAX_PAYLOAD_BYTES = 512 * 1024


class ContractError(ValueError):
    """A payload that does not satisfy the contract; the message names the field."""


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        loc = ".".join(str(p) for p in item["loc"]) or "payload"
        parts.append(f"field '{loc}': {validator_words(item['msg'])}")
    more = error.error_count() - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_payload(model: type[M], raw: bytes | str, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> M:
    """Parse and validate JSON into ``model``; raise ContractError naming what is wrong."""
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ContractError(f"payload is {size} bytes; at most {max_bytes} allowed")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(f"{model.__name__}: {describe(exc)}") from exc


def to_wire(model: BaseModel) -> bytes:
    """The bytes to publish: the canonical JSON of the model."""
    return canonical_model_bytes(model)
