"""Sortable unique event ids (UUIDv7, RFC 9562).

The first 48 bits are the Unix time in milliseconds, so ids sort by creation time;
a per-process counter in the next 12 bits keeps ids from one process strictly
increasing within a millisecond, and 62 random bits make collisions between nodes
negligible.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_UUID7_RE = re.compile(UUID7_PATTERN)

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_event_id(now_ms: int | None = None) -> str:
    """Return a new UUIDv7 as its canonical lower-case string."""
    global _last_ms, _counter
    with _lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ms <= _last_ms:
            # Same (or an earlier, after a clock step) millisecond: keep order by counting.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return str(uuid.UUID(int=value))


def is_event_id(text: str) -> bool:
    return bool(_UUID7_RE.fullmatch(text))


def event_id_time_ms(event_id: str) -> int:
    """The creation time (Unix ms) carried by a UUIDv7."""
    return uuid.UUID(event_id).int >> 80
