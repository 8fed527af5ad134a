"""The event contract shared by edge and central.

Every model is frozen, refuses unknown fields and bounds every field, so a hostile
payload is refused at parse time with a message that names the field. Times are
timezone-aware and normalized to UTC; they serialize as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)

from roadwatch.contract.canonical import canonical_bytes
from roadwatch.contract.ids import UUID7_PATTERN

SCHEMA_VERSION: Literal["1"] = "1"

MAX_EVIDENCE_ITEMS = 32
MAX_BLOB_BYTES = 256 * 1024 * 1024
MAX_CAMERAS_PER_NODE = 128
MAX_LANES_PER_CAMERA = 16
MAX_RECEIPTS_PER_BATCH = 1000
MAX_CONFIG_BYTES = 256 * 1024


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("time must carry a timezone (UTC expected)")
    return value.astimezone(UTC)


def _utc_text(value: datetime) -> str:
    # (isoformat, not strftime: "%Y" writes the year 1 as "1", which no parser reads back)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(_utc_text, return_type=str, when_used="json"),
]
"""A timezone-aware instant, normalized to UTC."""


# Control characters, and the bidirectional embeddings, overrides and isolates, which
# would show a reviewer text in another order than it was written (U+202E reverses it).
_CONTROL_CHAR = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def no_control_chars(value: str) -> str:
    bad = _CONTROL_CHAR.search(value)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad.group()):04X} is not allowed")
    return value


Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
"""An id usable as an MQTT topic level: lower-case letters, digits, '-' and '_', up to 64."""

# (The published schema says it as a pattern; the validator names the character.)
_NO_CONTROL = Field(
    json_schema_extra={"pattern": r"^[^\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]*$"}
)
ShortText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(no_control_chars),
    _NO_CONTROL,
]
MAX_LONG_TEXT = 2000
LongText = Annotated[
    str, StringConstraints(max_length=MAX_LONG_TEXT), AfterValidator(no_control_chars), _NO_CONTROL
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0, le=2**53 - 1)]  # (JSON's safe integers)
EventId = Annotated[str, StringConstraints(pattern=UUID7_PATTERN)]
# 64 bytes in base64: the last character before "==" carries 2 bits, so only A, Q, g and
# w are its canonical spellings (others decode to the same bytes: a copy of an event in
# other bytes that would still verify).
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{85}[AQgw]==$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0.0, le=7 * 86400.0, allow_inf_nan=False)]
SpeedKmh = Annotated[float, Field(ge=0.0, le=400.0, allow_inf_nan=False)]


class ContractModel(BaseModel):
    """Base of every contract model: frozen, strict about unknown fields, no NaN."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        str_strip_whitespace=False,
        validate_default=True,
    )


class SignedModel(ContractModel):
    """A model whose canonical form (without ``signature``) is signed by its sender."""

    signature: Signature | None = Field(
        default=None, description="Ed25519 signature (base64) over the canonical payload"
    )


# (Optional in the schema only so that central can take a not-yet-upgraded node's
# messages while nodes are upgraded: see ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS.)
_NODE_SIGNATURE = Field(
    default=None,
    description="Ed25519 signature (base64) of the node over the canonical payload; central"
    " refuses the message without it unless set to take unsigned ones while nodes are upgraded",
)


class ViolationType(StrEnum):
    SPEEDING = "speeding"
    RED_LIGHT = "red_light"
    WRONG_WAY = "wrong_way"
    FORBIDDEN_LANE = "forbidden_lane"
    SOLID_LINE = "solid_line"
    NO_STOPPING = "no_stopping"
    NO_HELMET = "no_helmet"


class VehicleClass(StrEnum):
    CAR = "car"
    MOTORCYCLE = "motorcycle"
    BUS = "bus"
    TRUCK = "truck"
    BICYCLE = "bicycle"
    UNKNOWN = "unknown"


class PlateColour(StrEnum):
    WHITE = "white"  # private
    YELLOW = "yellow"  # commercial transport
    BLUE = "blue"  # state
    RED = "red"  # military
    UNKNOWN = "unknown"


class MediaType(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    MP4 = "video/mp4"


class EvidenceRole(StrEnum):
    FRAME_BEFORE = "frame_before"
    FRAME_AT = "frame_at"
    FRAME_AFTER = "frame_after"
    VEHICLE_CROP = "vehicle_crop"
    PLATE_CROP = "plate_crop"
    LAMP_CROP = "lamp_crop"
    CLIP = "clip"


class LampColour(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    GREEN = "green"
    OFF = "off"
    UNKNOWN = "unknown"


class SignalSource(StrEnum):
    CONTROLLER = "controller"
    LAMP = "lamp"


class EvidenceRef(ContractModel):
    """One evidence blob listed by an event; the blob itself travels by HTTP upload."""

    role: EvidenceRole
    media_type: MediaType
    sha256: Sha256Hex
    size: Annotated[int, Field(ge=1, le=MAX_BLOB_BYTES)]


class PlateReading(ContractModel):
    text: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z.\- ]{0,16}$")] = Field(
        description="Normalized plate text, for example '51F-123.45'; empty when unreadable"
    )
    confidence: Fraction
    valid: bool = Field(description="True when the text matches a Vietnamese plate format")
    colour: PlateColour = PlateColour.UNKNOWN
    lines: Annotated[int, Field(ge=1, le=2)] = 1


class Measurement(ContractModel):
    """The measured values behind a violation; only those the rule uses are set."""

    speed_kmh: SpeedKmh | None = None
    speed_uncertainty_kmh: Annotated[float, Field(ge=0.0, le=100.0)] | None = None
    speed_limit_kmh: Annotated[float, Field(gt=0.0, le=200.0)] | None = None
    signal_phase: LampColour | None = None
    time_since_red_s: Seconds | None = None
    dwell_s: Seconds | None = None
    distance_m: Annotated[float, Field(ge=0.0, le=10_000.0)] | None = None


class ViolationEvent(SignedModel):
    """A suspected violation found by an edge node, signed by that node."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    event_id: EventId = Field(description="UUIDv7; central deduplicates on it")
    type: ViolationType
    site: Ident
    node: Ident
    camera: Ident
    lane: Ident | None = None
    occurred_at: UtcDatetime = Field(description="Decisive moment, UTC, camera clock corrected")
    camera_clock_offset_s: Annotated[float, Field(ge=-86400.0, le=86400.0)] = Field(
        default=0.0, description="Camera clock minus node clock, seconds"
    )
    vehicle_class: VehicleClass
    track_id: Annotated[int, Field(ge=0, le=2**53)]
    plate: PlateReading | None = None
    measured: Measurement = Measurement()
    explanation: LongText = Field(description="What happened, checkable from the evidence alone")
    # (left out of the message when absent: an older node's event, which has none, reads
    # and verifies as it always has)
    explanation_vi: Annotated[LongText | None, Field(exclude_if=lambda v: v is None)] = Field(
        default=None,
        description="The same explanation in Vietnamese, for the reviewing officer: the same"
        " facts and numbers as `explanation`; absent from a node that writes English only",
    )
    place: ShortText | None = Field(default=None, description="Place and Km marker")
    evidence: Annotated[list[EvidenceRef], Field(max_length=MAX_EVIDENCE_ITEMS)] = []
    model_version: ShortText
    rule_version: ShortText
    config_version: ShortText

    @field_validator("evidence")
    @classmethod
    def _distinct_blobs(cls, value: list[EvidenceRef]) -> list[EvidenceRef]:
        roles = [e.role for e in value]
        if len(set(roles)) != len(roles):
            raise ValueError("each evidence role may appear once")
        # One blob (one sha256) has one size and one media type: listed otherwise, the
        # case could never have all its evidence.
        if len({(e.sha256, e.size, e.media_type) for e in value}) != len({e.sha256 for e in value}):
            raise ValueError("a blob listed twice must have the same size and media type")
        return value


class LaneFlow(ContractModel):
    lane: Ident
    counts: dict[VehicleClass, Annotated[int, Field(ge=0, le=1_000_000)]] = {}
    mean_speed_kmh: SpeedKmh | None = None
    occupancy: Fraction = 0.0


_MINUTE = timedelta(minutes=1)


class TrafficStats(SignedModel):
    """Per-minute traffic flow of one camera, by lane, for the IOC, signed by its node.

    A minute is sent in parts when its counting began within it: the node started (or
    restarted), its camera's lanes changed, or its clock was set back into minutes
    already sent (each counted again is a part). Such a part says when it began in
    ``counted_from`` (one counted again from the minute's first instant, a microsecond
    in); a part without it began with the minute. A part whose counting stopped before
    the minute's end (the node stopped, its camera's lanes changed, its clock was set
    back) says when in ``counted_until`` (its last frame's time); a part without it ran
    to the minute's end. Central keeps each part, once however often it is sent, and
    weighs its occupancy by the time it spans.
    """

    schema_version: Literal["1"] = SCHEMA_VERSION
    site: Ident
    node: Ident
    camera: Ident
    minute_start: UtcDatetime
    # (left out of the message when absent: a minute counted whole reads as it always has)
    counted_from: Annotated[UtcDatetime | None, Field(exclude_if=lambda v: v is None)] = None
    # (likewise: a part that ran to the minute's end reads as it always has)
    counted_until: Annotated[UtcDatetime | None, Field(exclude_if=lambda v: v is None)] = None
    lanes: Annotated[list[LaneFlow], Field(max_length=MAX_LANES_PER_CAMERA)] = []
    signature: Signature | None = _NODE_SIGNATURE

    @field_validator("minute_start")
    @classmethod
    def _whole_minute(cls, value: datetime) -> datetime:
        if value.second or value.microsecond:
            raise ValueError("minute_start must be on a whole minute")
        return value

    @model_validator(mode="after")
    def _counted_within_the_minute(self) -> TrafficStats:
        start = self.counted_from
        if start is not None and not (
            self.minute_start <= start < self.minute_start + timedelta(minutes=1)
        ):
            raise ValueError("counted_from must lie within the minute that minute_start begins")
        end = self.counted_until
        if end is not None and not (self.part_start <= end <= self.minute_start + _MINUTE):
            raise ValueError(
                "counted_until must lie from the part's start (counted_from, or else"
                " minute_start) to the minute's end"
            )
        return self

    @property
    def part_start(self) -> datetime:
        """When this part of the minute began: what tells it from the minute's other parts."""
        return self.counted_from or self.minute_start

    @property
    def part_end(self) -> datetime:
        """When this part's counting stopped: ``counted_until``, or else the minute's end."""
        return self.counted_until or self.minute_start + _MINUTE


class CameraState(StrEnum):
    UP = "up"
    DOWN = "down"
    STALLED = "stalled"
    VIEW_SHIFTED = "view_shifted"
    PAUSED = "paused"


class CameraHealth(ContractModel):
    camera: Ident
    state: CameraState
    reason: LongText = ""
    fps: Annotated[float, Field(ge=0.0, le=1000.0)] = 0.0
    frames_dropped: Count = 0
    frames_corrupt: Count = 0
    reconnects: Count = 0
    inference_latency_ms: Annotated[float, Field(ge=0.0, le=600_000.0)] | None = None
    # (left out of the message when absent: a status without one reads as it always has)
    place: Annotated[ShortText | None, Field(exclude_if=lambda v: v is None)] = Field(
        default=None,
        description="The place and Km marker the camera's evidence prints (its `place` in the "
        "node's configuration); absent where none is configured",
    )


class NodeState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class NodeStatus(SignedModel):
    """Retained on the node's status topic, signed by the node; the last will publishes it
    with state offline (signed when the node connects)."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    site: Ident
    node: Ident
    state: NodeState
    sent_at: UtcDatetime
    software_version: ShortText | None = None
    config_version: ShortText | None = None
    config_error: LongText | None = Field(
        default=None,
        description="Why the last config pushed by central was refused; the node runs "
        "config_version",
    )
    cameras: Annotated[list[CameraHealth], Field(max_length=MAX_CAMERAS_PER_NODE)] = []
    disk_free_bytes: Count | None = Field(
        default=None, description="Free bytes on the filesystem that holds the node's outbox"
    )
    disk_used_fraction: Fraction | None = Field(
        default=None,
        description="How much of the outbox's own disk budget its files use (0 to 1; not "
        "the filesystem's): evidence is refused near 1, clips first",
    )
    outbox_depth: Count = Field(default=0, description="Messages waiting to be published")
    awaiting_receipt: Count = Field(
        default=0, description="Violations published and waiting for central's receipt"
    )
    # (left out of the message when 0: a status of a node with none, and an older node's,
    # reads and verifies as it always has, and an older central takes it)
    awaiting_key: Annotated[Count, Field(exclude_if=lambda v: v == 0)] = Field(
        default=0,
        description="Violations central refused as forged that verify under the node's own"
        " key: waiting for the key's registration; absent when none",
    )
    oldest_unacked_age_s: Seconds | None = Field(
        default=None, description="Age of the oldest message not yet delivered"
    )
    session_started_at: UtcDatetime | None = Field(
        default=None,
        description="When the node's connection to the broker that sends this status began"
        " (the node's clock): with sequence, orders the node's statuses, so that an old one"
        " published again is refused",
    )
    sequence: Count | None = Field(
        default=None,
        description="The status's position in its session: 0 for the last will (offline, signed"
        " at connect), then 1, 2, ... for each status sent on the connection",
    )
    signature: Signature | None = _NODE_SIGNATURE

    @model_validator(mode="after")
    def _ordered_in_full(self) -> NodeStatus:
        if (self.session_started_at is None) != (self.sequence is None):
            raise ValueError("session_started_at and sequence come together or not at all")
        return self

    @property
    def is_last_will(self) -> bool:
        """The status the broker publishes when the node's connection is lost."""
        return self.state is NodeState.OFFLINE and self.sequence == 0


class SignalPhase(ContractModel):
    """A signal head's phase, from the external controller or read from the lamp image."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    site: Ident
    node: Ident
    camera: Ident
    head: Ident = "main"
    phase: LampColour
    changed_at: UtcDatetime = Field(description="When this phase began")
    sent_at: UtcDatetime
    source: SignalSource = SignalSource.CONTROLLER

    @model_validator(mode="after")
    def _began_before_it_was_sent(self) -> SignalPhase:
        if self.changed_at > self.sent_at:
            raise ValueError("changed_at is after sent_at: a phase is told once it has begun")
        return self


class ConfigPush(SignedModel):
    """Camera and scene configuration pushed by central (retained, central -> edge)."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    site: Ident
    node: Ident
    config_version: ShortText
    issued_at: UtcDatetime
    config: dict[str, Any] = Field(description="The node's site configuration document")

    @field_validator("config")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(canonical_bytes(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config is not plain JSON: {exc}") from exc
        if size > MAX_CONFIG_BYTES:
            raise ValueError(f"config is {size} bytes; at most {MAX_CONFIG_BYTES} allowed")
        return value


class Receipt(ContractModel):
    event_id: EventId
    committed_at: UtcDatetime
    evidence_complete: bool


class ReceiptBatch(ContractModel):
    """Central's end-to-end receipts: these events are committed in the database."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    site: Ident
    node: Ident
    sent_at: UtcDatetime
    receipts: Annotated[list[Receipt], Field(min_length=1, max_length=MAX_RECEIPTS_PER_BATCH)]

    @model_validator(mode="after")
    def _distinct(self) -> ReceiptBatch:
        # A receipt batch is acted on by deleting outbox rows: refuse duplicates outright.
        ids = [r.event_id for r in self.receipts]
        if len(set(ids)) != len(ids):
            raise ValueError("receipts list an event id twice")
        return self


class RefusalCode(StrEnum):
    """Why central refused an event for good (it will never be receipted): the same
    message sent again is refused again, whatever the time or central's state, until an
    admin acts (registers the node's right key) and the node's technician re-queues it.

    A node knows only the codes of its own contract: central sends each code in batches
    of its own, so that one unknown to an older node does not hide those it knows."""

    REVOKED_KEY = "revoked_key"  # signed with a key revoked since
    FORGED = "forged"  # the signature verifies with no key of its node
    NOT_CANONICAL = "not_canonical"  # not the canonical JSON its node signs and central keeps
    REUSED_ID = "reused_event_id"  # central holds another event under its id
    PAST = "from_the_past"  # stamped before 2025: its node's clock was reset


class EventRefusal(ContractModel):
    event_id: EventId
    payload_sha256: Sha256Hex = Field(
        description="sha256 of the message refused, as received: a node marks its event"
        " refused only when it holds that very message"
    )
    code: RefusalCode
    reason: LongText


class RefusalBatch(ContractModel):
    """Central's final refusals, on the node's receipt topic: these events were refused and
    will never be receipted however often they are sent again (the node keeps them as
    refused, for the record, and stops sending them)."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    site: Ident
    node: Ident
    sent_at: UtcDatetime
    refused: Annotated[list[EventRefusal], Field(min_length=1, max_length=MAX_RECEIPTS_PER_BATCH)]
