"""Batches frames of many cameras into one inference call under a latency bound.

Each camera has at most one frame waiting: a newer frame replaces an older one that was
not yet sent (the replaced one is counted as dropped), so a slow detector sheds load evenly
instead of building a backlog. A batch goes out as soon as it is full, or when its oldest
frame has waited ``max_wait_s``; frames leave oldest first (ties: the camera served
longest ago), so no camera starves.
The scheduler is pure: the caller passes the clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    camera: str
    item: T
    arrived: float


class BatchScheduler(Generic[T]):
    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not max_wait_s >= 0:
            raise ValueError("max_wait_s must be >= 0")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._waiting: dict[str, Pending[T]] = {}
        self._last_served: dict[str, int] = {}
        self._served = 0
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, camera: str, item: T, now: float) -> T | None:
        """Queue a camera's newest frame; return the older frame it replaced, if any."""
        old = self._waiting.pop(camera, None)
        if old is not None:
            self.dropped[camera] += 1
            # The replacement keeps the older arrival time: the camera has waited that long.
            self._waiting[camera] = Pending(camera, item, old.arrived)
            return old.item
        self._waiting[camera] = Pending(camera, item, now)
        return None

    def deadline(self) -> float | None:
        """When the oldest waiting frame must be sent, or None when nothing waits."""
        if not self._waiting:
            return None
        return min(p.arrived for p in self._waiting.values()) + self.max_wait_s

    def ready(self, now: float) -> bool:
        if len(self._waiting) >= self.max_batch:
            return True
        due = self.deadline()
        return due is not None and now >= due

    def take(self, now: float, *, force: bool = False) -> list[Pending[T]]:
        """The next batch (oldest first) when one is due, else nothing; ``force`` drains."""
        if not self._waiting or not (force or self.ready(now)):
            return []
        # Equal arrival times are broken by who was served longest ago: round-robin.
        order = sorted(
            self._waiting.values(), key=lambda p: (p.arrived, self._last_served.get(p.camera, -1))
        )
        batch = order[: self.max_batch]
        for p in batch:
            del self._waiting[p.camera]
            self._last_served[p.camera] = self._served
            self._served += 1
        return batch
