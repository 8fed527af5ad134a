"""SQLAlchemy models of central's records.

Times are stored in UTC; ``UtcDateTime`` hands back timezone-aware values on every
database (SQLite keeps no zone of its own).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; central stores UTC instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Carried by every access token issued to the user; a token of another generation is
    # refused. Raised when the password changes or the user is disabled, it ends every
    # session the user had (a token that leaked with it among them).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginFailure(Base):
    """Failed log-ins in a row under one user name, known or not (so the answer to a name
    tells nothing of whether it is an account); removed by a successful log-in."""

    __tablename__ = "login_failures"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Node(Base):
    """An edge node: its signing key, the hash of its upload token and its last status."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("site", "node", name="uq_nodes_site_node"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    public_key_pem: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    status_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    status_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When central received the last status, by its own clock (a node's clock may be off).
    status_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The newest position in the node's order of statuses taken (see central.status_order):
    # an older one is refused as replayed.
    status_session_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    status_sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # (The database's default only: an insert names the column only when it is given, as
    # a row written against the schema before it must not.)
    status_will_taken: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Wills of the session held shown published again (a status of it came after each).
    status_wills_replayed: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class StatusReceived(Base):
    """The newest place of a node's statuses one ingest received, by the client id of its
    broker session (see ``central.records._record_status``): kept with the batch that
    received it, so that the order an ingest was delivered survives its restart, as the
    broker session that delivers the rest does."""

    __tablename__ = "status_received"

    ingest: Mapped[str] = mapped_column(String(256), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    session_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sequence: Mapped[int] = mapped_column(BigInteger)
    will_taken: Mapped[bool] = mapped_column(Boolean)
    # When the ingest last held a newer place here (central's clock): the rows of an ingest
    # that held none for longer than the broker keeps its session are let go (see
    # ``central.records.prune_stale``). (The database's default too: a row written by an
    # ingest on the code before it gets one.)
    received_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utcnow, server_default=func.now()
    )


class NodeKey(Base):
    """A signing key a node has had: the one it signs with now, those it signed with
    before (rotated: their events still verify), and those revoked (a box stolen, a key
    leaked: what it signs is refused from ``revoked_at`` on, and the cases it signed
    before are flagged). ``fingerprint`` is the sha256 of the raw 32-byte public key."""

    __tablename__ = "node_keys"
    __table_args__ = (
        UniqueConstraint("node_id", "fingerprint", name="uq_node_keys_node_id_fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Camera(Base):
    __tablename__ = "cameras"
    __table_args__ = (
        UniqueConstraint("site", "node", "camera", name="uq_cameras_site_node_camera"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    place: Mapped[str] = mapped_column(String(128), default="")  # (set on central)
    # The place its evidence prints, as its node's last status that listed it said
    # (None: it named none).
    node_place: Mapped[str | None] = mapped_column(String(128), nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    reason: Mapped[str] = mapped_column(Text, default="")
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When central last received a status of its node that listed it (central's clock).
    seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # When it came to be in its state (only a status, or a violation first naming it,
    # sets it).
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    # When it was last named or placed on central (None: not since migration 0020): the
    # live feed sends it again then. Kept apart from ``updated_at``, so that an edit does
    # not move its state's time.
    edited_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class HealthChange(Base):
    """A camera's or node's health as it changed, in order: what the live feed replays to a
    client that was away (the ``cameras`` and ``nodes`` rows hold only the state now).
    A node, or a camera, that fell silent and was heard again has its silence here too,
    from when it began (central's clock, as ``central.health`` tells it)."""

    __tablename__ = "health_changes"
    __table_args__ = (Index("ix_health_changes_site_node_at", "site", "node", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # (when it became so)
    kind: Mapped[str] = mapped_column(String(8))  # camera, node
    site: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64), default="")  # ("" for a node)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


class Violation(Base):
    """One suspected violation as received, plus its review state.

    ``plate_text`` is the plate as read at the roadside and is never changed;
    a correction goes to ``plate_corrected``.
    """

    __tablename__ = "violations"
    __table_args__ = (
        Index("ix_violations_status_occurred", "status", "occurred_at"),
        Index("ix_violations_camera_occurred", "camera", "occurred_at"),
        Index("ix_violations_type_occurred", "type", "occurred_at"),
        Index("ix_violations_type_status_occurred", "type", "status", "occurred_at"),
        Index("ix_violations_plate", "plate_text"),
        Index("ix_violations_plate_corrected", "plate_corrected"),
        Index("ix_violations_occurred", "occurred_at"),
        # The review queue: open cases oldest first, without sorting the whole table.
        Index(
            "ix_violations_queue",
            "occurred_at",
            "id",
            postgresql_where=text("status IN ('new', 'in_review')"),
            sqlite_where=text("status IN ('new', 'in_review')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    lane: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    vehicle_class: Mapped[str] = mapped_column(String(16))
    plate_text: Mapped[str | None] = mapped_column(String(16), nullable=True)
    plate_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    plate_valid: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    plate_corrected: Mapped[str | None] = mapped_column(String(16), nullable=True)
    speed_kmh: Mapped[float | None] = mapped_column(Float, nullable=True)
    speed_limit_kmh: Mapped[float | None] = mapped_column(Float, nullable=True)
    place: Mapped[str | None] = mapped_column(String(128), nullable=True)
    explanation: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    evidence_count: Mapped[int] = mapped_column(Integer, default=0)
    evidence_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="new")
    version: Mapped[int] = mapped_column(Integer, default=1)
    reviewer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    notice_issued_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notice_issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class EvidenceRef(Base):
    """A blob a violation lists; the violation is complete when all have arrived."""

    __tablename__ = "evidence_refs"

    violation_id: Mapped[int] = mapped_column(
        ForeignKey("violations.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)


class Blob(Base):
    """An evidence blob that has arrived and matched its hash."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(32))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), nullable=True)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Quarantine(Base):
    """A message that could not be accepted, kept with the reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    topic: Mapped[str] = mapped_column(String(512))
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # The same message refused again for the same reason (a node re-sends an event until
    # it is receipted) is counted on its first row, not stored again.
    payload_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    times: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TrafficMinute(Base):
    """One lane's flow in one minute, or one part of a minute, at one camera (from
    TrafficStats: a minute whose counting began within it, after its node restarted, comes
    in parts; ``part_start`` is when the part began, the minute's start for a whole one;
    ``part_end`` when it stopped, if before the minute's end and its node said so)."""

    __tablename__ = "traffic"
    __table_args__ = (
        UniqueConstraint(
            "site",
            "node",
            "camera",
            "minute_start",
            "lane",
            "part_start",
            name="uq_traffic_minute",
        ),
        Index("ix_traffic_camera_minute", "camera", "minute_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    minute_start: Mapped[datetime] = mapped_column(UtcDateTime)
    lane: Mapped[str] = mapped_column(String(64))
    part_start: Mapped[datetime] = mapped_column(UtcDateTime)
    # (null: to the minute's end, as every part of a node before counted_until)
    part_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    vehicles: Mapped[int] = mapped_column(Integer)
    counts_json: Mapped[str] = mapped_column(Text)
    mean_speed_kmh: Mapped[float | None] = mapped_column(Float, nullable=True)
    occupancy: Mapped[float] = mapped_column(Float)


class AuditEntry(Base):
    """Append-only, hash-chained record of every review and administrative action.

    ``entry_hash`` = sha256(prev_hash + canonical JSON of the entry's fields); database
    triggers refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    violation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's newest entry; its row lock serializes appends across replicas."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))


class NodeConfig(Base):
    """A config pushed to a node: the document, and the signed message as published."""

    __tablename__ = "node_configs"
    __table_args__ = (
        UniqueConstraint("site", "node", "version", name="uq_node_configs_site_node_version"),
        Index("ix_node_configs_site_node_issued", "site", "node", "issued_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    pushed_by: Mapped[str] = mapped_column(String(64))
