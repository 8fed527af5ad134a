"""Checks every incoming MQTT message against the contract and the node registry.

Pure apart from the key lookup it is handed: a message is either accepted as a typed
payload or refused with a reason code and a one-line reason, which goes to quarantine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadwatch.contract import (
    SCHEMA_VERSION,
    CameraTopic,
    ContractError,
    NodeStatus,
    NodeTopic,
    SignedModel,
    TopicError,
    TrafficStats,
    ViolationEvent,
    canonical_model_bytes,
    parse_payload,
    parse_topic,
)
from roadwatch.contract.signing import SignatureError, verify


@dataclass(frozen=True, slots=True)
class RevokedKey:
    key: Ed25519PublicKey
    fingerprint: str
    revoked_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """A node's keys: those in force (the newest first) and those revoked."""

    active: tuple[Ed25519PublicKey, ...]
    revoked: tuple[RevokedKey, ...] = ()


# A node's keys (or its one key) by site and node; None for a node not registered.
KeyLookup = Callable[[str, str], NodeKeys | Ed25519PublicKey | None]


class RefusalCode(StrEnum):
    MALFORMED = "malformed"
    SCHEMA_VERSION = "schema_version"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_NODE = "unknown_node"
    FORGED = "forged"
    NOT_CANONICAL = "not_canonical"
    REUSED_ID = "reused_event_id"
    FUTURE = "from_the_future"
    PAST = "from_the_past"
    REVOKED_KEY = "revoked_key"
    UNSIGNED = "unsigned"
    UNSEQUENCED = "unsequenced"
    REPLAYED = "replayed"


# A violation may be stamped this far ahead of central's clock (two clocks never agree to the
# second); one further ahead comes from a node whose clock is wrong, and its deadlines
# would be wrong with it. It is quarantined, and taken when its node sends it again once
# that time has come (nodes send an event again until it is receipted).
MAX_AHEAD = timedelta(minutes=10)
# Nothing is stamped before this: Decree 168/2024/NĐ-CP, under which the violations are
# found, took force on 1 January 2025. An earlier stamp (1970, the year 1) comes from a
# node whose clock was reset; it is quarantined, not filed under a month long gone.
EARLIEST = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    reason: str


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


Accepted = ViolationEvent | TrafficStats | NodeStatus


# Said in the refusal of an unsigned traffic minute or status: how to take them meanwhile.
ACCEPT_UNSIGNED_SETTING = "ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS"


def check(
    message: Message,
    keys: KeyLookup,
    now: datetime | None = None,
    *,
    accept_unsigned: bool = False,
) -> Accepted | Refusal:
    """Accept ``message`` as a typed payload or refuse it with the reason (``now``:
    central's clock, by default the system's).

    Every payload must be signed by a key its node had in force. ``accept_unsigned``
    takes a traffic minute or a status that carries no signature at all (a node not yet
    upgraded to sign them, while nodes are upgraded); one whose signature does not verify
    is refused all the same, and a violation is always signed."""
    try:
        topic = parse_topic(message.topic)
    except TopicError as exc:
        return Refusal(RefusalCode.BAD_TOPIC, str(exc))
    model: type[Accepted]
    if topic.kind is CameraTopic.VIOLATION:
        model = ViolationEvent
    elif topic.kind is CameraTopic.TRAFFIC:
        model = TrafficStats
    elif topic.kind is NodeTopic.STATUS:
        model = NodeStatus
    else:
        return Refusal(RefusalCode.BAD_TOPIC, f"central does not ingest {topic.kind.value}")
    try:
        payload = parse_payload(model, message.payload)
    except ContractError as exc:
        version = _schema_version(message.payload)
        if version is not None and version != SCHEMA_VERSION:
            return Refusal(
                RefusalCode.SCHEMA_VERSION,
                f"schema version {version!r} is not supported (expected {SCHEMA_VERSION!r})",
            )
        return Refusal(RefusalCode.MALFORMED, str(exc))
    camera = getattr(payload, "camera", None)
    if (payload.site, payload.node, camera) != (topic.site, topic.node, topic.camera):
        return Refusal(
            RefusalCode.TOPIC_MISMATCH,
            f"payload names {payload.site}/{payload.node}/{camera or '-'} "
            f"but came on {message.topic}",
        )
    found = keys(payload.site, payload.node)
    if found is None:
        return Refusal(
            RefusalCode.UNKNOWN_NODE, f"node {payload.site}/{payload.node} is not registered"
        )
    node_keys = found if isinstance(found, NodeKeys) else NodeKeys((found,))
    if isinstance(payload, ViolationEvent):
        # Only the canonical form is kept (as nodes sign it): any other spelling of the
        # same event (other key order, a number as text, a key given twice, escapes) would
        # read otherwise to another parser, and fail the published schema.
        if canonical_model_bytes(payload) != message.payload:
            return Refusal(
                RefusalCode.NOT_CANONICAL,
                "the event is not in canonical JSON (sorted keys, no spaces, UTF-8 text,"
                " the contract's own types): only that form is signed and kept",
            )
        if (refused := unsigned(payload, message.payload, node_keys, at=now)) is not None:
            return refused
    elif payload.signature is None:
        if not accept_unsigned:
            kind = "traffic minute" if isinstance(payload, TrafficStats) else "status"
            return Refusal(
                RefusalCode.UNSIGNED,
                f"the {kind} is not signed by its node (a node older than central sends"
                f" it unsigned: {ACCEPT_UNSIGNED_SETTING}=true takes such ones while nodes"
                " are upgraded)",
            )
    # (Not kept as evidence, so any JSON form of what the node signed is taken: exact=False.)
    elif (
        refused := unsigned(payload, message.payload, node_keys, at=now, exact=False)
    ) is not None:
        return refused
    elif (
        isinstance(payload, NodeStatus)
        and payload.session_started_at is None
        and not accept_unsigned
    ):
        # (Its signature shows who sent it, not when: without its position in the node's
        # order, an old one published again could not be told from a new one.)
        return Refusal(
            RefusalCode.UNSEQUENCED,
            "the status carries no session_started_at and sequence, so it cannot be told"
            " from an old one sent again (a node older than central sends it so:"
            f" {ACCEPT_UNSIGNED_SETTING}=true takes such ones while nodes are upgraded)",
        )
    # (Only violations: a node sends them again until receipted. Traffic minutes are sent
    # once, so one stamped ahead is taken as it is rather than lost.)
    limit = (now or datetime.now(UTC)) + MAX_AHEAD
    if isinstance(payload, ViolationEvent) and payload.occurred_at > limit:
        return Refusal(
            RefusalCode.FUTURE,
            f"stamped {payload.occurred_at.isoformat()}, more than {MAX_AHEAD} ahead of"
            " central's clock: the node's clock is wrong",
        )
    # A status's session orders the node's statuses from then on: one begun ahead of
    # central's clock would have the node's later statuses refused as replayed.
    if (
        isinstance(payload, NodeStatus)
        and payload.session_started_at is not None
        and payload.session_started_at > limit
    ):
        return Refusal(
            RefusalCode.FUTURE,
            f"its session began {payload.session_started_at.isoformat()}, more than"
            f" {MAX_AHEAD} ahead of central's clock: the node's clock is wrong",
        )
    stamped = (
        payload.occurred_at if isinstance(payload, ViolationEvent)
        else payload.minute_start if isinstance(payload, TrafficStats)
        else payload.session_started_at
    )  # fmt: skip
    if stamped is not None and stamped < EARLIEST:
        return Refusal(
            RefusalCode.PAST,
            f"stamped {stamped.isoformat()}, before {EARLIEST.date().isoformat()} (when the"
            " decree the rules follow took force): the node's clock is wrong",
        )
    return payload


def unsigned(
    payload: SignedModel,
    wire: bytes,
    keys: NodeKeys,
    at: datetime | None = None,
    *,
    exact: bool = True,
) -> Refusal | None:
    """Why ``payload``, received ``at`` (default: now), is not signed by a key its node
    had in force then; None when it is. A key revoked after ``at`` was still in force.
    ``exact``: the bytes received must be the very ones signed (see ``verify``)."""
    when = at or datetime.now(UTC)
    why = "the node has no key in force"
    in_force = [*keys.active, *(r.key for r in keys.revoked if r.revoked_at > when)]
    for key in in_force:
        try:
            verify(payload, key, wire=wire, exact=exact)
            return None
        except SignatureError as exc:
            why = str(exc)
    for gone in (r for r in keys.revoked if r.revoked_at <= when):
        try:
            verify(payload, gone.key, wire=wire, exact=exact)
        except SignatureError:
            continue
        return Refusal(
            RefusalCode.REVOKED_KEY,
            f"signed with key {gone.fingerprint[:16]}, revoked"
            f" {gone.revoked_at.isoformat(timespec='seconds')}: {gone.reason}",
        )
    return Refusal(RefusalCode.FORGED, why)


def _schema_version(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # (nested past Python's stack)
        return None
    if isinstance(data, dict):
        value = data.get("schema_version")
        return str(value)[:32] if value is not None else None
    return None
