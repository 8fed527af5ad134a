"""Canonical JSON: the byte form that is signed, hashed and compared.

Stable key order, no insignificant whitespace, UTF-8, no NaN or infinity. Datetimes
are rendered by the models themselves as UTC with microseconds and a trailing ``Z``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


def canonical_bytes(data: Any) -> bytes:
    """Serialize plain JSON data (dicts, lists, str, int, float, bool, None) canonically."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_model_bytes(model: BaseModel, *, exclude: Iterable[str] = ()) -> bytes:
    """Canonical form of a contract model, leaving out the named top-level fields."""
    data = model.model_dump(mode="json", exclude=set(exclude))
    return canonical_bytes(data)
