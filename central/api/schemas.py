"""Request and response bodies of the API, with the examples the OpenAPI page shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from central.workflow import Action, DeadlineState, Role, Status
from roadwatch.contract.models import EventId, VehicleClass

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{2,63}$"
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256)]
# Free text must not hold a NUL character: PostgreSQL text cannot store one.
NO_NUL = r"^[^\x00]*$"
MAX_FULL_NAME = 128  # (the column's width)
# The roles a person can hold (``Role`` less the nodes'), spelled as the API takes them.
UserRole = Literal["officer", "supervisor", "admin", "ioc"]


# A "+" typed into a query string as it is arrives as a space (form encoding): a time's
# "…T07:00:00+07:00" comes as "…T07:00:00 07:00", an offset "+07:00" as " 07:00".
PLUS_AS_SPACE = "a '+' in a query must be sent as %2B (as it is, it arrives as a space)"
_TIME_PLUS_AS_SPACE = re.compile(r"[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)? \d{2}(?::?\d{2})?$")


def _iso_only(value: object) -> object:
    """Times are ISO 8601 text with a zone; a bare number is not taken for a Unix time."""
    if isinstance(value, str) and _TIME_PLUS_AS_SPACE.search(value):
        raise ValueError(f"{PLUS_AS_SPACE}: e.g. 2026-11-23T07:00:00%2B07:00")
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]", value):
        raise ValueError("expected an ISO 8601 time with a zone, e.g. 2026-11-23T07:00:00Z")
    return value


def offset_plus_as_space(value: object) -> object:
    """Refuses an offset whose "+" came as a space, or a zone's name given for one
    (``Asia/Ho_Chi_Minh``), saying so and what to send (not only that the pattern does
    not match)."""
    if isinstance(value, str) and re.fullmatch(r" \d{2}:\d{2}", value):
        raise ValueError(f"{PLUS_AS_SPACE}: utc_offset=%2B{value[1:]}")
    if isinstance(value, str) and (offset := _zone_offset_now(value)) is not None:
        sent = offset.replace("+", "%2B")
        raise ValueError(
            f"utc_offset takes an offset from UTC, not a zone's name: {value} is {offset}"
            f" now, sent as utc_offset={sent}"
        )
    return value


def _zone_offset_now(name: str) -> str | None:
    """The offset from UTC (``+07:00``) the time zone ``name`` has now; None for a text
    that names no zone."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*", name) or len(name) > 64:
        return None
    try:
        offset = datetime.now(ZoneInfo(name)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    if offset is None:
        return None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zoned_utc(value: datetime) -> datetime:
    """A time with a zone that exists in UTC too (0001-01-01T00:00+14:00 would be in year
    0), as UTC."""
    if value.tzinfo is None:
        raise ValueError("times need a zone, e.g. 2026-11-23T07:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range once in UTC (years 1 to 9999)") from None


# Every time a query takes: ISO text with a zone, in UTC once checked.
IsoTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_zoned_utc)]

_TIME_OUT: TypeAdapter[datetime] = TypeAdapter(datetime)


def time_text(at: datetime) -> str:
    """A time as the response models spell it (UTC with ``Z``), for the bodies built by
    hand (the live feed's events, the GeoJSON): one spelling in every answer."""
    return str(_TIME_OUT.dump_python(at, mode="json"))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")
    role: Role


class UserCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "username": "nguyen.van.an",
                    "password": "a long passphrase",
                    "role": "officer",
                    "full_name": "Nguyễn Văn An",
                }
            ]
        },
    )
    username: Username
    password: Password
    role: UserRole
    full_name: Annotated[str, StringConstraints(max_length=MAX_FULL_NAME, pattern=NO_NUL)] = ""


class UserUpdate(Strict):
    role: UserRole | None = None
    active: bool | None = None
    password: Password | None = None
    full_name: (
        Annotated[str, StringConstraints(max_length=MAX_FULL_NAME, pattern=NO_NUL)] | None
    ) = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    username: str
    full_name: str
    role: Role
    active: bool
    created_at: datetime


class NodeCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "site": "ql13-km22",
                    "node": "node-01",
                    "public_key_pem": "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n",
                }
            ]
        },
    )
    site: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    node: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    public_key_pem: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]


class NodeRegistered(BaseModel):
    site: str
    node: str
    upload_token: str = Field(description="Shown once; central keeps only its hash")
    broker_username: str = Field(description="The node's broker login")
    broker_password: str = Field(description="Shown once; central keeps only its hash")
    broker_password_in_force: str = Field(
        description="What puts the broker login in force (the broker holds its hash only"
        " once its files are written again and reloaded)"
    )


class NodeKeyIn(Strict):
    public_key_pem: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]


class NodeKeyRevoke(Strict):
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*\S[^\x00]*$")
    ] = Field(description="Why (a box stolen, a key leaked); kept with the key and audited")
    since: IsoTime | None = Field(
        default=None,
        description="Revoked from this time (default now): cases central received from then"
        " on are flagged, those received before stand. For a box stolen, the last time it"
        " was known safe",
    )


class NodeKeyOut(BaseModel):
    fingerprint: str = Field(description="sha256 of the raw 32-byte public key (hex)")
    public_key_pem: str
    added_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


class NodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    site: str
    node: str
    state: str = Field(
        description="online, offline (last will), silent (online, but no status for"
        " ROADWATCH_STATUS_SILENT_S) or unknown (never heard)"
    )
    status_sent_at: datetime | None = Field(description="The last status's time, node's clock")
    status_received_at: datetime | None = Field(
        description="When central received the last status, central's clock"
    )
    clock_offset_s: float | None = Field(
        description="How far the node's clock was ahead (+) of central's or behind (-) at its"
        " last status (its time less central's on receipt); null before any status"
    )
    clock_off: bool = Field(
        description="The node's clock is more than 60 s off central's: the times on its"
        " evidence are off as much until it is put right"
    )
    status: dict[str, Any] | None = Field(description="The node's last NodeStatus")
    updated_at: datetime


class NodeConfigIn(Strict):
    """A site configuration document for the node (``SiteConfig`` without ``delivery``;
    scenes and calibrations inline)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "config": {
                        "site": "ql13-km22",
                        "node": "node-01",
                        "version": "2026-11-23.2",
                        "cameras": [
                            {"id": "cam-01", "url": "rtsp://10.0.0.21/stream1",
                             "place": "QL13 Km 22+300", "scene": {"camera": "cam-01"}}
                        ],
                    }
                }
            ]
        },
    )  # fmt: skip
    config: dict[str, Any] = Field(description="The node's configuration document")


class NodeConfigPushed(BaseModel):
    site: str
    node: str
    version: str
    sha256: str = Field(description="sha256 of the document's canonical JSON")
    issued_at: datetime
    pushed_by: str
    repeated: bool = Field(
        default=False, description="This version and document were pushed before: sent again"
    )


class NodeConfigOut(NodeConfigPushed):
    checked: bool = Field(
        description="Central compared the push with the push the node's last status says it"
        " runs, and it changes nothing the node takes only from its own site file"
    )
    not_checked: str | None = Field(
        default=None,
        description="Why central could not compare it (no status from the node yet, the node"
        " runs its own site file, ...), and what the node does with it then",
    )


class NodeConfigRecord(NodeConfigPushed):
    config: dict[str, Any]


class CameraOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    site: str
    node: str
    camera: str
    name: str
    place: str = Field(
        description="Where the camera is, as the IOC shows it: the place set on central"
        " (`registered_place`), or else the one its node names (`node_place`)"
    )
    registered_place: str = Field(
        "",
        description='The place set on central (`PATCH` its `registered_place`); "" where none is',
    )
    node_place: str | None = Field(
        None,
        description="The place its node names in its status (its `place` in the node's"
        " configuration), which its evidence prints; null where the node names none. Where"
        " a place set on central differs, the two are both here to compare",
    )
    latitude: float | None
    longitude: float | None
    state: str = Field(
        description="up, down, stalled, view_shifted, paused, offline (node offline),"
        " unknown (not in its node's last status, or its node silent)"
    )
    reason: str
    fps: float | None
    seen_at: datetime | None = Field(
        description="When central last received a status of its node that listed it"
    )
    updated_at: datetime = Field(description="When it came to be in this state")


CameraText = Annotated[str, StringConstraints(max_length=128, pattern=NO_NUL)]


class CameraUpdate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "QL13 Km 22 hướng Bình Dương",
                    "registered_place": "QL13 Km 22+300, Thuận An",
                    "latitude": 10.9046,
                    "longitude": 106.7047,
                }
            ]
        },
    )
    name: CameraText | None = Field(None, description='Absent: unchanged; null or "" clears it')
    registered_place: CameraText | None = Field(
        None,
        description='The place set on central. Absent: unchanged; null or "" clears it (the'
        " camera then shows the place its node names, `node_place`). The camera list's"
        " `place`, the place shown (central's, or else its node's), is not taken: a `place`"
        " sent is refused (422, `place_shown`)",
    )
    # The camera list's `place` is the place shown (central's, or else its node's): sent
    # back as read it would make the node's words central's and hide its later changes.
    # (Kept out of the schema: no request may send it; here to refuse it by name.)
    place: SkipJsonSchema[Any] = None

    @field_validator("place", mode="before")
    @classmethod
    def _place_is_shown(cls, value: Any) -> Any:
        raise PydanticCustomError(
            "place_shown",
            "place is the place shown (the one set on central, or else the one its node"
            " names), not one to set: send registered_place to set central's place (null or"
            ' "" clears it)',
        )

    latitude: Annotated[float, Field(ge=-90, le=90)] | None = Field(
        None,
        description="Absent: unchanged; null clears it. The map needs both: a change that"
        " leaves one without the other is refused (422)",
    )
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = Field(
        None,
        description="Absent: unchanged; null clears it. The map needs both: a change that"
        " leaves one without the other is refused (422)",
    )

    def changes(self) -> dict[str, Any]:
        """The fields the request sent, by the API's name: null clears a field, a text to ""."""
        cleared: dict[str, Any] = {"name": "", "registered_place": ""}
        sent = {name: getattr(self, name) for name in sorted(self.model_fields_set)}
        return {k: cleared.get(k) if v is None else v for k, v in sent.items()}


class DeadlineOut(BaseModel):
    name: Literal["notice", "escalation"]
    due_at: datetime
    state: DeadlineState


class ViolationSummary(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1042,
                    "event_id": "019ab0c4-5e1a-7c3d-9f00-3a1b2c4d5e6f",
                    "type": "speeding",
                    "site": "ql13-km22",
                    "camera": "cam-01",
                    "lane": "lane-2",
                    "occurred_at": "2026-11-23T07:03:05.120000Z",
                    "vehicle_class": "car",
                    "plate": "51F-123.45",
                    "plate_text": "51F-123.45",
                    "plate_corrected": None,
                    "plate_valid": True,
                    "speed_kmh": 92.4,
                    "speed_limit_kmh": 80.0,
                    "status": "new",
                    "version": 1,
                    "evidence_complete": True,
                }
            ]
        },
    )
    id: int
    event_id: str
    type: str
    site: str
    camera: str
    lane: str | None
    occurred_at: datetime
    vehicle_class: str
    plate: str | None = Field(description="Corrected plate if any, else the roadside reading")
    plate_text: str | None = Field(description="The plate as read at the roadside (never changed)")
    plate_corrected: str | None
    plate_valid: bool | None = Field(
        description="Whether the roadside reading passed the plate format check (null when"
        " none was read); a reading that failed it is no plate to act on until corrected"
    )
    speed_kmh: float | None
    speed_limit_kmh: float | None
    status: Status
    version: int = Field(description="Send it back with a review action (optimistic locking)")
    evidence_complete: bool


class EvidenceOut(BaseModel):
    role: str
    media_type: str
    sha256: str
    size: int
    arrived: bool
    url: str | None = Field(
        description="Where to download it, for a role that may (officers and supervisors);"
        " null for one that may not (the IOC, the admin): the blob is listed, not linked"
    )


# Cases of one plate, type and camera this close in time are shown beside each other.
SAME_PLATE_WINDOW_MIN = 30


class NearbyCase(BaseModel):
    id: int
    occurred_at: datetime
    status: Status


class ViolationDetail(ViolationSummary):
    node: str
    place: str | None
    explanation: str = Field(description="The rule's explanation as the node signed it (English)")
    explanation_vi: str | None = Field(
        description="The same explanation in Vietnamese, as the node signed it (the event's"
        " `explanation_vi`); null for an event from a node that writes English only"
    )
    plate_confidence: float | None
    received_at: datetime
    reviewer: str | None
    confirmed_by: str | None
    decided_at: datetime | None
    reject_reason: str | None
    notice_issued_by: str | None
    notice_issued_at: datetime | None
    closed_at: datetime | None
    evidence: list[EvidenceOut]
    deadlines: list[DeadlineOut]
    event: dict[str, Any] = Field(description="The signed event as received")
    record_problems: list[str] = Field(
        default_factory=list,
        description="Where the stored case disagrees with its signed event or its audit"
        " trail (empty when they agree): such a case is not confirmed nor its notice issued",
    )
    same_plate_nearby: list[NearbyCase] = Field(
        default_factory=list,
        description="Other cases of the same type for the same plate on the same camera,"
        f" within {SAME_PLATE_WINDOW_MIN} minutes either side, oldest first: likely the same"
        " act found twice (the vehicle hidden from the camera a while and tracked again);"
        " confirm one and reject the others as duplicates",
    )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    has_more: bool


class QueueItem(ViolationSummary):
    reviewer: str | None
    deadlines: list[DeadlineOut]


class ReviewCommand(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "start_review", "version": 1},
                {"action": "correct_plate", "version": 2, "plate": "51F-123.46"},
                {"action": "confirm", "version": 3},
                {"action": "reject", "version": 2, "reason": "Biển số bị che, không đọc được"},
            ]
        },
    )
    action: Action
    version: Annotated[int, Field(ge=1, description="The version you decided on")]
    reason: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] | None = None
    plate: Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL)] | None = None
    note: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] | None = None


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    at: datetime
    actor: str
    action: str
    violation_id: int | None
    detail: dict[str, Any]
    prev_hash: str
    entry_hash: str


class ChainOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ok": True, "entries": 1532, "head": "9f2c…"}]}
    )
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None


class CountOut(BaseModel):
    key: str
    count: int
    site: str | None = Field(default=None, description="The camera's site (counts by camera)")


class ViolationStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "by": "type",
                    "total": 42,
                    "counts": [{"key": "speeding", "count": 30}, {"key": "red_light", "count": 12}],
                    "from": "2026-11-09T17:00:00Z",
                    "to": "2026-11-23T17:00:00Z",
                }
            ]
        }
    )
    by: str
    total: int
    counts: list[CountOut]
    range_from: datetime | None = Field(
        default=None,
        serialization_alias="from",
        description="Counted from, inclusive (null: no start; by type, camera or status only)",
    )
    range_to: datetime | None = Field(
        default=None,
        serialization_alias="to",
        description="Counted to, exclusive (null: no end; by type, camera or status only)",
    )


class FlowBucket(BaseModel):
    bucket: str
    site: str
    node: str
    camera: str
    lane: str | SkipJsonSchema[None] = Field(
        default=None,
        exclude_if=lambda lane: lane is None,
        description="The camera's lane counted, with `per=lane` (absent otherwise: the"
        " bucket counts all its lanes)",
    )
    vehicles: int
    mean_speed_kmh: float | None
    mean_occupancy: float = Field(
        description="The share of the time the camera (or with `per=lane` its lane)"
        " reported during which a lane held a vehicle, its lanes alike: a part of a minute"
        " weighs the seconds it spans"
    )
    minutes: int = Field(
        description="Minutes of the bucket the camera (or with `per=lane` its lane) reported"
    )
    counts: dict[VehicleClass, int] | SkipJsonSchema[None] = Field(
        default=None,
        exclude_if=lambda counts: counts is None,
        description="With `classes=true`, the vehicles of each class counted (the node's"
        " classes), in the contract's order of the classes: only the classes counted,"
        " summing to `vehicles` (absent otherwise)",
    )


class TrafficFlow(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "by": "hour",
                    "buckets": [
                        {
                            "bucket": "2026-11-23T14:00:00+07:00",
                            "site": "ql13-km22",
                            "node": "node-01",
                            "camera": "cam-01",
                            "vehicles": 1840,
                            "mean_speed_kmh": 46.2,
                            "mean_occupancy": 0.21,
                            "minutes": 60,
                            "counts": {
                                "car": 312,
                                "motorcycle": 1496,
                                "bus": 6,
                                "truck": 24,
                                "bicycle": 2,
                            },
                        }
                    ],
                    "from": "2026-11-23T07:00:00Z",
                    "to": "2026-11-24T07:00:00Z",
                }
            ]
        }
    )
    by: str
    range_from: datetime = Field(serialization_alias="from", description="Counted from, inclusive")
    range_to: datetime = Field(serialization_alias="to", description="Counted to, exclusive")
    buckets: list[FlowBucket]


class QuarantineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    received_at: datetime
    topic: str
    reason_code: str
    reason: str
    size: int
    times: int = Field(description="How many times this message was refused for this reason")
    last_received_at: datetime = Field(description="When it was last refused")


class EvidenceStored(BaseModel):
    sha256: str
    size: int
    stored: bool = Field(description="True when this request stored it, false when it was there")
    completed_violations: list[int]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    ingest: str | None = Field(
        default=None,
        description="the ingest served in this process (serve --with-ingest): connected,"
        " connecting (to the broker), or stopped: why (the process is degraded); null"
        " where the ingest runs as its own process",
    )


MAX_KNOWN_QUERY = 1000


class KnownEventsQuery(Strict):
    event_ids: Annotated[
        list[EventId],
        Field(min_length=1, max_length=MAX_KNOWN_QUERY, description="The node's own event ids"),
    ]


class KnownEvents(BaseModel):
    known: list[str] = Field(description="The ids among those asked that central holds")
