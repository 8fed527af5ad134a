"""A warning said once for each subject it is about, and again after a while if it
still holds: messages that come every second (a signal controller's at the node, a node's
refused ones at central) do not flood the log, and a fault that comes back an hour later
is said again."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class SaidOnce:
    """``due(subject)`` is True when the warning about ``subject`` is to be said now."""

    def __init__(
        self,
        again_after_s: float = 600.0,
        max_subjects: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._again_after_s = again_after_s
        self._max_subjects = max_subjects
        self._clock = clock
        self._said: dict[Hashable, float] = {}

    def due(self, subject: Hashable) -> bool:
        now = self._clock()
        last = self._said.get(subject)
        if last is not None and now - last < self._again_after_s:
            return False
        if last is None and len(self._said) >= self._max_subjects:
            oldest = min(self._said, key=self._said.__getitem__)
            del self._said[oldest]  # (held to a bound: it may be said again early)
        self._said[subject] = now
        return True
