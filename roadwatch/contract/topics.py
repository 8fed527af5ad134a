"""MQTT topic names: ``roadwatch/v1/{site}/{node}/{kind}`` for node topics and
``roadwatch/v1/{site}/{node}/{camera}/{kind}`` for camera topics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "roadwatch/v1"
_IDENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TopicError(ValueError):
    """A topic string that is not a Roadwatch topic."""


class NodeTopic(StrEnum):
    STATUS = "status"  # retained; the last will says offline
    CONFIG = "config"  # retained, central -> edge
    RECEIPT = "receipt"  # central -> edge, end-to-end delivery receipts


class CameraTopic(StrEnum):
    VIOLATION = "violation"  # QoS 1
    TRAFFIC = "traffic"  # per-minute flow statistics
    SIGNAL = "signal"  # external signal-controller phase


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    node: str
    kind: NodeTopic | CameraTopic
    camera: str | None = None

    def __post_init__(self) -> None:
        for name in ("site", "node"):
            _check_ident(name, getattr(self, name))
        if isinstance(self.kind, CameraTopic):
            if self.camera is None:
                raise TopicError(f"a {self.kind.value} topic needs a camera")
            _check_ident("camera", self.camera)
        elif self.camera is not None:
            raise TopicError(f"a {self.kind.value} topic has no camera level")

    def __str__(self) -> str:
        if self.camera is None:
            return f"{PREFIX}/{self.site}/{self.node}/{self.kind.value}"
        return f"{PREFIX}/{self.site}/{self.node}/{self.camera}/{self.kind.value}"


def _check_ident(name: str, value: str) -> None:
    if not _IDENT.fullmatch(value):
        raise TopicError(
            f"{name} {value!r} is not a valid topic level "
            "(lower-case letters, digits, '-' and '_', at most 64)"
        )


def node_topic(site: str, node: str, kind: NodeTopic) -> str:
    return str(Topic(site, node, kind))


def camera_topic(site: str, node: str, camera: str, kind: CameraTopic) -> str:
    return str(Topic(site, node, kind, camera))


def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic (no wildcards) into its parts."""
    head = PREFIX + "/"
    if not topic.startswith(head):
        raise TopicError(f"{topic!r} does not start with {head!r}")
    parts = topic[len(head) :].split("/")
    try:
        if len(parts) == 3:
            return Topic(parts[0], parts[1], NodeTopic(parts[2]))
        if len(parts) == 4:
            return Topic(parts[0], parts[1], CameraTopic(parts[3]), parts[2])
    except ValueError as exc:
        if isinstance(exc, TopicError):
            raise
        raise TopicError(f"{topic!r}: unknown topic kind {parts[-1]!r}") from exc
    raise TopicError(f"{topic!r} has {len(parts)} levels after {head!r}; expected 3 or 4")


def subscription(
    kind: NodeTopic | CameraTopic,
    *,
    site: str = "+",
    node: str = "+",
    share_group: str | None = None,
) -> str:
    """A topic filter for one kind of message, optionally as an MQTT 5 shared subscription."""
    if isinstance(kind, CameraTopic):
        flt = f"{PREFIX}/{site}/{node}/+/{kind.value}"
    else:
        flt = f"{PREFIX}/{site}/{node}/{kind.value}"
    return f"$share/{share_group}/{flt}" if share_group else flt
