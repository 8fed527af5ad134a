"""Node and camera health as the IOC reads it: what was last reported, unless it is too old.

A node's status says how its cameras are; a node that has sent none for a while (its
process hung, its link or the broker gone without the last will being published) has
said nothing for them since. Such a node is shown ``silent`` and its cameras ``unknown``,
from central's own clock, so that a dead camera is never shown as it last was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from central.models import Camera, Node
from central.settings import Settings

SILENT_AFTER = timedelta(seconds=Settings.model_fields["status_silent_s"].default)
SILENT = "silent"
UNKNOWN = "unknown"
# A node clock further off central's than this is flagged, as the node's own check of its
# clock against central's answers says it in its log (edge.uploader.CLOCK_TOLERANCE_S).
CLOCK_TOLERANCE_S = 60.0


@dataclass(frozen=True, slots=True)
class Health:
    state: str
    reason: str
    since: datetime  # when it became so
    # Told from the time last heard (no status for too long), not stored: a silent node,
    # a camera unknown for it.
    silent: bool = False


def node_health(node: Node, now: datetime, silent_after: timedelta) -> Health:
    """The node's state, ``silent`` once an online node's status is ``silent_after`` old."""
    heard = node.status_received_at
    if node.state == "online" and heard is not None and now - heard > silent_after:
        return Health(SILENT, _silent_reason(now - heard), heard + silent_after, silent=True)
    return Health(node.state, "", node.updated_at)


def clock_offset_s(node: Node) -> float | None:
    """How far the node's clock was ahead (+) of central's, or behind (-), at its last
    status: the status's time less central's on receipt (network delay makes it a little
    low, hence the tolerance); None before any status."""
    sent, received = node.status_sent_at, node.status_received_at
    if sent is None or received is None:
        return None
    return round((sent - received).total_seconds(), 1)


def clock_off(offset_s: float | None) -> bool:
    """Whether a node's clock offset is past the tolerance either way (unknown: not)."""
    return offset_s is not None and abs(offset_s) > CLOCK_TOLERANCE_S


def camera_health(camera: Camera, now: datetime, silent_after: timedelta) -> Health:
    """The camera's state, ``unknown`` once no status has listed it for ``silent_after``."""
    seen = camera.seen_at
    live = camera.state not in ("offline", UNKNOWN)
    if live and seen is not None and now - seen > silent_after:
        return Health(UNKNOWN, _silent_reason(now - seen), seen + silent_after, silent=True)
    return Health(camera.state, camera.reason, camera.updated_at)


def _silent_reason(age: timedelta) -> str:
    return f"no status from the node for {int(age.total_seconds())} s"
