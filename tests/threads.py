"""Detects threads a test started and did not stop."""

from __future__ import annotations

import threading
import time


def leaked_threads(before: set[threading.Thread], grace_s: float = 2.0) -> list[threading.Thread]:
    """Threads alive now that were not alive in ``before``, after a short grace period."""
    deadline = time.monotonic() + grace_s
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() >= deadline:
            return extra
        time.sleep(0.02)
