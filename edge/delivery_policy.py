"""Pure delivery policy: retry back-off and what the outbox admits when disk runs short.

No I/O here; the outbox, publisher and uploader apply these decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from roadwatch.contract import EvidenceRole

# When the outbox cannot hold a whole evidence package, blobs are refused in this order
# (the clip first: it is the largest and the frames alone still show the violation).
# The event itself is never refused while the event reserve has room.
REFUSAL_ORDER: tuple[EvidenceRole, ...] = (
    EvidenceRole.CLIP,
    EvidenceRole.FRAME_BEFORE,
    EvidenceRole.FRAME_AFTER,
    EvidenceRole.LAMP_CROP,
    EvidenceRole.VEHICLE_CROP,
    EvidenceRole.PLATE_CROP,
    EvidenceRole.FRAME_AT,
)


def backoff_delay(attempts: int, *, base_s: float, cap_s: float, jitter: float = 0.0) -> float:
    """Seconds to wait before the next try after ``attempts`` failed ones (>= 1).

    Exponential (base, 2 base, 4 base, ...) up to ``cap_s``; ``jitter`` in [0, 1) takes
    that fraction off so that many nodes coming back at once do not retry in lockstep.
    """
    if attempts < 1:
        return 0.0
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    exponent = min(attempts - 1, 32)
    return min(cap_s, base_s * (2.0**exponent)) * (1.0 - jitter)


@dataclass(frozen=True, slots=True)
class DiskBudget:
    """The outbox's disk limit: evidence and payloads together stay under ``limit_bytes``;
    events alone may also use ``event_reserve_bytes`` above it, so that a violation is
    still stored (with less evidence) when evidence has filled the budget."""

    limit_bytes: int
    event_reserve_bytes: int
    alarm_fraction: float = 0.8
    # The disk's free space when it, not the configuration, set the limits (for the
    # refusal to say that the disk is short, not the outbox): None when it did not.
    disk_free_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.limit_bytes <= 0 or self.event_reserve_bytes < 0:
            raise ValueError("disk limits must be positive")
        if not 0.0 < self.alarm_fraction <= 1.0:
            raise ValueError("alarm_fraction must be in (0, 1]")

    def alarm(self, used_bytes: int) -> bool:
        return used_bytes >= self.alarm_fraction * self.limit_bytes


# Free space the outbox leaves on its disk for the database's own writes (journal,
# checkpoints, receipts): with the disk really full, even freeing space would fail.
DISK_HEADROOM_BYTES = 64 * 1024 * 1024

# Bare events may go on into the headroom down to this much free space: a violation is a
# few KiB and one refused is lost for good, while the database's own writes need far
# less than the headroom; evidence and traffic minutes stop at the headroom.
EVENT_HEADROOM_BYTES = 8 * 1024 * 1024


def effective_budget(
    budget: DiskBudget,
    used_bytes: int,
    free_bytes: int,
    headroom: int = DISK_HEADROOM_BYTES,
    event_headroom: int = EVENT_HEADROOM_BYTES,
) -> DiskBudget:
    """``budget`` as the disk allows it now: what is used plus what is free (less
    ``headroom``) caps the limit, so that a disk other files fill up refuses the clip
    first, as the budget would, instead of failing a write; the event reserve is capped
    by what is free less the smaller ``event_headroom``, so that a violation is still
    stored, without its evidence, on a disk short of the headroom."""
    room = max(0, free_bytes - headroom)
    event_room = max(0, free_bytes - min(headroom, event_headroom))
    limit = max(1, min(budget.limit_bytes, used_bytes + room))
    reserve = max(0, min(budget.event_reserve_bytes, used_bytes + event_room - limit))
    short = (limit, reserve) != (budget.limit_bytes, budget.event_reserve_bytes)
    return DiskBudget(limit, reserve, budget.alarm_fraction, free_bytes if short else None)


@dataclass(frozen=True, slots=True)
class Admission:
    """What the outbox can take of one violation: the roles kept and those refused."""

    kept: tuple[EvidenceRole, ...]
    refused: tuple[EvidenceRole, ...]
    event_fits: bool


def plan_admission(
    budget: DiskBudget, used_bytes: int, event_bytes: int, blobs: Mapping[EvidenceRole, int]
) -> Admission:
    """Decide which blobs of a violation fit, refusing them in ``REFUSAL_ORDER``."""
    event_fits = used_bytes + event_bytes <= budget.limit_bytes + budget.event_reserve_bytes
    kept = dict(blobs)
    refused: list[EvidenceRole] = []
    for role in REFUSAL_ORDER:
        if used_bytes + event_bytes + sum(kept.values()) <= budget.limit_bytes:
            break
        if role in kept:
            del kept[role]
            refused.append(role)
    if used_bytes + event_bytes + sum(kept.values()) > budget.limit_bytes:
        # Roles outside REFUSAL_ORDER cannot occur (the enum is covered); refuse the rest.
        refused.extend(kept)
        kept = {}
    ordered = tuple(r for r in blobs if r in kept)
    return Admission(kept=ordered, refused=tuple(refused), event_fits=event_fits)
