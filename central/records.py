"""Database writes: the ingest batch, nodes, users, evidence and the audit chain."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from central.audit import detail_text, entry_hash
from central.broker_acl import broker_username, mosquitto_password_hash
from central.db import one_of
from central.health import SILENT_AFTER, Health, camera_health, node_health
from central.intake import (
    Accepted,
    KeyLookup,
    Message,
    NodeKeys,
    Refusal,
    RefusalCode,
    RevokedKey,
    check,
)
from central.models import (
    AuditEntry,
    AuditHead,
    Blob,
    Camera,
    EvidenceRef,
    HealthChange,
    LoginFailure,
    Node,
    NodeKey,
    Quarantine,
    StatusReceived,
    TrafficMinute,
    User,
    Violation,
    utcnow,
)
from central.security import hash_password, new_node_token, token_digest
from central.status_order import HeldOrder, Placing, place
from central.workflow import Role
from roadwatch.contract import (
    NodeState,
    NodeStatus,
    NodeTopic,
    TrafficStats,
    ViolationEvent,
    node_topic,
    to_wire,
)
from roadwatch.contract.signing import SignatureError, key_fingerprint, load_public_key_pem
from roadwatch.errors import UserError

log = logging.getLogger(__name__)

MAX_QUARANTINE_PAYLOAD = 1024 * 1024


def _insert(session: Session, table: Any) -> Any:
    """INSERT that supports ON CONFLICT on both PostgreSQL and SQLite."""
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def _insert_rows(
    session: Session,
    table: Any,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: str,
    returning: Sequence[str] = (),
) -> list[Any]:
    """INSERT many rows, skipping those that conflict (``conflict``: the ON CONFLICT
    clause's target, "" for any); returns the ``returning`` columns of the rows inserted.

    On PostgreSQL the rows travel as one array per column in a single ``INSERT ... SELECT
    FROM unnest(...)`` statement: the database plans and runs one statement instead of one
    per row, and the client binds a few arrays instead of every value (about 3x less CPU
    on both sides for an ingest batch). SQLite gets executemany.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        statement = _insert(session, table).on_conflict_do_nothing()
        if not returning:
            session.execute(statement, list(rows))
            return []
        statement = statement.returning(*(table.c[name] for name in returning))
        return list(session.execute(statement, list(rows)).all())
    names = list(rows[0])
    casts = ", ".join(
        f"%(c{i})b::{table.c[name].type.compile(dialect=dialect)}[]" for i, name in enumerate(names)
    )
    target = f"({conflict})" if conflict else ""
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({casts}) "
        f"ON CONFLICT {target} DO NOTHING"
    )
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    result = session.connection().exec_driver_sql(
        sql, {f"c{i}": [row[name] for row in rows] for i, name in enumerate(names)}
    )
    return list(result.all()) if returning else []


# ---------------------------------------------------------------- node registry


class KeyCache:
    """Registered node keys, looked up once and kept for ``ttl_s``: a key added or revoked
    takes effect in every ingest process within that time."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._keys: dict[tuple[str, str], tuple[float, NodeKeys | None]] = {}

    def lookup(self, session: Session, site: str, node: str) -> NodeKeys | None:
        now = time.monotonic()
        hit = self._keys.get((site, node))
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        keys = node_keys(session, site, node)
        self._keys[(site, node)] = (now, keys)
        return keys

    def forget(self, site: str, node: str) -> None:
        """Read the node's keys from the registry at the next lookup."""
        self._keys.pop((site, node), None)


def node_keys(session: Session, site: str, node: str) -> NodeKeys | None:
    """The keys of node ``site``/``node`` (None: not registered)."""
    rows = session.execute(
        select(NodeKey.public_key_pem, NodeKey.fingerprint, NodeKey.revoked_at,
               NodeKey.revoke_reason)
        .join(Node, Node.id == NodeKey.node_id)
        .where(Node.site == site, Node.node == node)
        .order_by(NodeKey.added_at.desc(), NodeKey.id.desc())
    ).all()  # fmt: skip
    if not rows:
        return None
    active = tuple(load_public_key_pem(r.public_key_pem) for r in rows if r.revoked_at is None)
    revoked = tuple(
        RevokedKey(load_public_key_pem(r.public_key_pem), r.fingerprint, r.revoked_at,
                   r.revoke_reason or "")
        for r in rows
        if r.revoked_at is not None
    )  # fmt: skip
    return NodeKeys(active, revoked)


# The codes a registry refusal carries for a client to word (the API's REFUSALS has them).
REGISTRY_REFUSALS = (
    "user_exists",
    "node_unknown",
    "key_unknown",
    "key_taken",
    "key_revoked_already",
    "invalid_key",
    "revoke_reason_required",
    "revoke_since_ahead",
)


class RegistryError(UserError):
    """A change to the registry (nodes, their keys, users) refused: the request is invalid.
    ``code`` (one of ``REGISTRY_REFUSALS``) and ``params``, where set, let a client word
    it in its user's language."""

    def __init__(self, message: str, code: str | None = None, **params: str) -> None:
        assert code is None or code in REGISTRY_REFUSALS, code
        super().__init__(message)
        self.code = code
        self.params = params


class NotRegisteredError(RegistryError):
    """The node or key the change names is not in the registry."""


class RegistryConflictError(RegistryError):
    """The change conflicts with the registry: a second of what exists, or a thing done
    already."""


def lock_registry(session: Session) -> None:
    """Serialize changes to the registry until the transaction ends: their checks (is this
    key anyone's already?) then see what the others committed. Every change appends to
    the audit log, which takes this row's lock anyway; on SQLite, writers are one at a
    time already (BEGIN IMMEDIATE)."""
    session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())


def _node(session: Session, site: str, node: str) -> Node:
    lock_registry(session)
    found = session.scalar(select(Node).where(Node.site == site, Node.node == node))
    if found is None:
        raise NotRegisteredError(
            f"no node {site}/{node} is registered", "node_unknown", node=f"{site}/{node}"
        )
    return found


def _checked_pem(public_key_pem: str) -> str:
    """``public_key_pem``'s fingerprint once it is a PEM Ed25519 public key."""
    try:
        return key_fingerprint(load_public_key_pem(public_key_pem))
    except SignatureError as exc:
        raise RegistryError(str(exc), "invalid_key") from exc
    except ValueError as exc:  # e.g. non-ASCII text where a PEM block belongs
        raise RegistryError(f"not a PEM public key: {exc}", "invalid_key") from exc


def _new_key(session: Session, node_id: int, public_key_pem: str) -> NodeKey:
    fingerprint = _checked_pem(public_key_pem)
    owner = session.execute(
        select(Node.site, Node.node)
        .join(NodeKey, NodeKey.node_id == Node.id)
        .where(NodeKey.fingerprint == fingerprint)
    ).first()
    if owner is not None:
        # (named: the node's own key given again reads otherwise as another node's)
        holder = f"{owner.site}/{owner.node}"
        raise RegistryConflictError(
            f"key {fingerprint[:16]} is already registered, to node {holder}"
            " (each node has its own)",
            "key_taken", key=fingerprint[:16], node=holder,
        )  # fmt: skip
    key = NodeKey(node_id=node_id, public_key_pem=public_key_pem, fingerprint=fingerprint)
    session.add(key)
    return key


def add_node_key(session: Session, *, site: str, node: str, public_key_pem: str) -> NodeKey:
    """A new key for a registered node (rotation): what it signs from now is taken, as is
    what its earlier keys signed, until they are revoked."""
    found = _node(session, site, node)
    key = _new_key(session, found.id, public_key_pem)
    found.public_key_pem = public_key_pem  # (its newest key)
    session.flush()
    return key


def revoke_node_key(
    session: Session,
    *,
    site: str,
    node: str,
    fingerprint: str,
    reason: str,
    since: datetime | None = None,
) -> NodeKey:
    """Revoke a node's key (``fingerprint``, or its first 16 characters or more) from
    ``since`` (default now; earlier for a key that may have been in other hands since):
    events signed with it are refused from now on, and the cases it signed that central
    received from ``since`` on are flagged; those received before stand."""
    found = _node(session, site, node)
    reason = reason.strip()
    if not reason:
        raise RegistryError("say why the key is revoked", "revoke_reason_required")
    fingerprint = fingerprint.strip().lower()
    if re.fullmatch(r"[0-9a-f]{16,64}", fingerprint) is None:
        raise RegistryError("give the key's fingerprint: 16 to 64 hex characters")
    keys = session.scalars(
        select(NodeKey).where(
            NodeKey.node_id == found.id, NodeKey.fingerprint.startswith(fingerprint)
        )
    ).all()
    if len(keys) != 1:
        raise NotRegisteredError(
            f"node {site}/{node} has no key {fingerprint}", "key_unknown",
            node=f"{site}/{node}", key=fingerprint[:16],
        )  # fmt: skip
    [key] = keys
    if key.revoked_at is not None:
        raise RegistryConflictError(
            f"key {key.fingerprint[:16]} was revoked already ({key.revoked_at})",
            "key_revoked_already", key=key.fingerprint[:16],
        )  # fmt: skip
    now = utcnow()
    if since is not None and since.tzinfo is None:
        raise RegistryError("give the time it is revoked from with its zone, e.g. +07:00")
    if since is not None and since > now:
        raise RegistryError(
            "a key is revoked from now or from a time past, not ahead", "revoke_since_ahead"
        )
    key.revoked_at, key.revoke_reason = since or now, reason[:2000]
    session.flush()
    return key


@dataclass(frozen=True)
class RegisteredNode:
    site: str
    node: str
    token: str
    mqtt_username: str
    mqtt_password: str


def register_node(session: Session, *, site: str, node: str, public_key_pem: str) -> RegisteredNode:
    """Register a node's signing key; returns its upload token (only the hash is kept)."""
    from roadwatch.contract.topics import TopicError, _check_ident

    try:
        _check_ident("site", site)
        _check_ident("node", node)
    except TopicError as exc:
        raise RegistryError(str(exc)) from exc
    _checked_pem(public_key_pem)
    lock_registry(session)
    if session.scalar(select(Node.id).where(Node.site == site, Node.node == node)):
        raise RegistryConflictError(f"node {site}/{node} is already registered")
    token = new_node_token()
    # The node's broker login; the broker's password file gets only its hash.
    mqtt_password = secrets.token_urlsafe(24)
    row = Node(
        site=site,
        node=node,
        public_key_pem=public_key_pem,
        token_hash=token_digest(token),
        mqtt_password_hash=mosquitto_password_hash(mqtt_password),
    )
    session.add(row)
    session.flush()
    _new_key(session, row.id, public_key_pem)
    return RegisteredNode(site, node, token, broker_username(site, node), mqtt_password)


def renew_node_credentials(session: Session, *, site: str, node: str) -> RegisteredNode:
    """A new upload token and broker password for a registered node (returned once; only
    their hashes are kept): the old token is refused from the commit on, and the old
    password once the broker's files are written again (``central broker-files``). For a
    box that may be in other hands, or credentials that leaked; its signing keys are
    revoked apart (``revoke_node_key``)."""
    found = _node(session, site, node)
    token = new_node_token()
    mqtt_password = secrets.token_urlsafe(24)
    found.token_hash = token_digest(token)
    found.mqtt_password_hash = mosquitto_password_hash(mqtt_password)
    session.flush()
    return RegisteredNode(site, node, token, broker_username(site, node), mqtt_password)


def broker_accounts(session: Session) -> list[tuple[str, str, str]]:
    """(site, node, mosquitto password hash) of every node that has broker credentials."""
    rows = session.execute(
        select(Node.site, Node.node, Node.mqtt_password_hash)
        .where(Node.mqtt_password_hash.is_not(None))
        .order_by(Node.site, Node.node)
    ).all()
    return [(site, node, str(pw_hash)) for site, node, pw_hash in rows]


def node_for_token(session: Session, token: str) -> Node | None:
    return session.scalar(select(Node).where(Node.token_hash == token_digest(token)))


def create_user(
    session: Session, *, username: str, password: str, role: Role, full_name: str = ""
) -> User:
    if role is Role.NODE:
        raise RegistryError("nodes are registered with 'central node add', not as users")
    lock_registry(session)
    if session.scalar(select(User.id).where(User.username == username)):
        raise RegistryConflictError(f"user {username!r} exists", "user_exists", user=username)
    user = User(
        username=username, full_name=full_name, password_hash=hash_password(password), role=role
    )
    session.add(user)
    session.flush()
    return user


# ---------------------------------------------------------------- log-in throttling

LOGIN_FAILURES_ALLOWED = 5
"""Failed log-ins in a row under one name before it is locked for ``LOGIN_LOCKOUT``."""
LOGIN_LOCKOUT = timedelta(minutes=5)
LOGIN_FAILURES_FORGOTTEN = timedelta(hours=1)
"""A failure this long after the one before starts the count again; older rows go."""


def login_locked_until(session: Session, username: str, now: datetime) -> datetime | None:
    """Until when log-ins under ``username`` are refused unchecked; None: they are not."""
    until = session.scalar(
        select(LoginFailure.locked_until).where(LoginFailure.username == username)
    )
    return until if until is not None and until > now else None


def note_login_failure(session: Session, username: str, now: datetime) -> datetime | None:
    """Count a failed log-in under ``username``; until when the name is now locked (after
    ``LOGIN_FAILURES_ALLOWED`` in a row, and after each further one), or None."""
    table = LoginFailure.__table__
    fresh = table.c.last_failed_at < now - LOGIN_FAILURES_FORGOTTEN
    session.execute(
        _insert(session, table)
        .values(username=username, failures=1, last_failed_at=now, locked_until=None)
        .on_conflict_do_update(
            index_elements=["username"],
            set_={
                "failures": case((fresh, 1), else_=table.c.failures + 1),
                "last_failed_at": now,
            },
        )
    )
    failures = session.scalar(
        select(LoginFailure.failures).where(LoginFailure.username == username)
    )
    until = None
    if failures is not None and failures >= LOGIN_FAILURES_ALLOWED:
        until = now + LOGIN_LOCKOUT
        session.execute(
            update(LoginFailure).where(LoginFailure.username == username).values(locked_until=until)
        )
    session.execute(
        delete(LoginFailure).where(LoginFailure.last_failed_at < now - LOGIN_FAILURES_FORGOTTEN)
    )
    return until


def clear_login_failures(session: Session, username: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))


# ---------------------------------------------------------------- audit chain


def append_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    violation_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry; the head row's lock orders concurrent writers into one chain."""
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        raise RuntimeError("audit_head row is missing: the database is not migrated")
    at = utcnow()
    text = detail_text(detail or {})
    seq = head.seq + 1
    digest = entry_hash(
        prev_hash=head.entry_hash,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        violation_id=violation_id,
        detail=text,
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        violation_id=violation_id,
        detail=text,
        prev_hash=head.entry_hash,
        entry_hash=digest,
    )
    session.add(entry)
    head.seq = seq
    head.entry_hash = digest
    session.flush()
    return entry


# ---------------------------------------------------------------- ingest


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    traffic: int = 0
    statuses: int = 0
    # Traffic minutes and statuses taken unsigned (only while central accepts them so).
    unsigned: int = 0
    # Signed statuses taken without their position in the node's order (likewise).
    unsequenced: int = 0
    # Statuses at the place already held (the broker's retained copy again): not applied.
    repeated_statuses: int = 0
    # Refused on storing, against what is stored (a status older than the one held, an
    # event id already held with other content): the check before took them.
    late_refusals: list[tuple[Message, Refusal]] = field(default_factory=list)
    # Last wills taken, shown published again by a status of their session after them
    # (quarantined as replayed then; counted in ``refused``).
    replayed_wills: list[tuple[Message, Refusal]] = field(default_factory=list)
    new_violation_ids: list[int] = field(default_factory=list)
    incomplete_ids: list[int] = field(default_factory=list)
    # Every violation this batch leaves committed, new or already held: each gets a receipt.
    held_event_ids: list[str] = field(default_factory=list)

    def refuse(self, code: RefusalCode) -> None:
        self.quarantined[code.value] = self.quarantined.get(code.value, 0) + 1

    def add(self, other: BatchResult) -> None:
        """Count ``other`` in too (every field: a count summed, a list extended, the
        quarantined counted by code)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                for code, n in theirs.items():
                    mine[code] = mine.get(code, 0) + n
            elif isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(self, f.name, mine + theirs)


@dataclass(frozen=True, slots=True)
class Checked:
    """A message and what the contract and signature check made of it."""

    message: Message
    outcome: Accepted | Refusal


def check_batch(
    session: Session,
    messages: Sequence[Message],
    keys: KeyCache,
    *,
    accept_unsigned: bool = False,
) -> list[Checked]:
    """Check every message (the session is used only to look up a key not cached);
    ``accept_unsigned``: see ``check``.

    A message no cached key of its node verifies is checked once more against the
    registry as it is now (read once per node and batch) before it is refused as forged,
    which is for good for a violation: a node that switched to a key registered within
    the cache's time is taken, not refused."""
    lookup: KeyLookup = lambda site, node: keys.lookup(session, site, node)  # noqa: E731
    read_again: set[tuple[str, str]] = set()

    def registry_now(site: str, node: str) -> NodeKeys | None:
        if (site, node) not in read_again:
            read_again.add((site, node))
            keys.forget(site, node)
        return keys.lookup(session, site, node)

    out: list[Checked] = []
    for m in messages:
        outcome = _check_one(m, lookup, accept_unsigned)
        if isinstance(outcome, Refusal) and outcome.code is RefusalCode.FORGED:
            outcome = _check_one(m, registry_now, accept_unsigned)
        out.append(Checked(m, outcome))
    return out


def _check_one(message: Message, lookup: KeyLookup, accept_unsigned: bool) -> Accepted | Refusal:
    """``check``, where a message that breaks the check itself is refused, not raised: one
    such message must not stop the ingest (it would come back after every restart). A
    database error still raises, so the batch is checked again later."""
    try:
        return check(message, lookup, accept_unsigned=accept_unsigned)
    except DBAPIError:
        raise
    except Exception as exc:
        log.exception("message on %s could not be checked; quarantined", message.topic)
        return Refusal(RefusalCode.MALFORMED, f"could not be checked: {type(exc).__name__}")


def record_batch(
    session: Session,
    messages: Sequence[Message],
    keys: KeyCache,
    *,
    completeness: bool = True,
    accept_unsigned: bool = False,
) -> BatchResult:
    """Check and store one batch in the caller's transaction; refusals go to quarantine.

    With ``completeness=False`` the new violations that list evidence are left for the
    caller to check after commit (``refresh_completeness``), as the ingest does anyway.
    ``accept_unsigned``: see ``check``.
    """
    checked = check_batch(session, messages, keys, accept_unsigned=accept_unsigned)
    return store_checked(session, checked, completeness=completeness)


def store_checked(
    session: Session,
    checked: Sequence[Checked],
    *,
    completeness: bool = True,
    silent_after: timedelta = SILENT_AFTER,
    ingest: str | None = None,
) -> BatchResult:
    """Store a checked batch in the caller's transaction (see ``record_batch``);
    ``silent_after``: see ``central.health``. ``ingest``: the client id of the ingest's
    broker session, whose own order of each node's statuses received (see
    ``_record_status``) is brought up to date with the batch."""
    result = BatchResult()
    violations: dict[str, tuple[ViolationEvent, bytes, Message]] = {}
    # An id again in the same batch is sorted against what is then stored, as in a later
    # batch: the same content is a duplicate, another content a reused id.
    again: list[tuple[ViolationEvent, bytes, Message]] = []
    _lock_status_nodes(session, checked)
    for item in checked:
        message, outcome = item.message, item.outcome
        if isinstance(outcome, Refusal):
            quarantine(session, message, outcome)
            result.refuse(outcome.code)
        elif isinstance(outcome, ViolationEvent):
            if outcome.event_id in violations:
                again.append((outcome, message.payload, message))
            else:
                violations[outcome.event_id] = (outcome, message.payload, message)
        elif isinstance(outcome, TrafficStats):
            result.traffic += _record_traffic(session, outcome)
        else:
            wills: list[tuple[Message, Refusal]] = []
            placed = _record_status(session, outcome, silent_after, ingest, wills)
            for will, refusal in wills:
                quarantine(session, will, refusal)
                result.refuse(refusal.code)
                result.replayed_wills.append((will, refusal))
            if isinstance(placed, Refusal):
                quarantine(session, message, placed)
                result.refuse(placed.code)
                result.late_refusals.append((message, placed))
                continue
            if placed is Placing.REPEATED:
                result.repeated_statuses += 1
                continue
            result.statuses += 1
        if isinstance(outcome, TrafficStats | NodeStatus) and outcome.signature is None:
            result.unsigned += 1
        elif isinstance(outcome, NodeStatus) and outcome.session_started_at is None:
            result.unsequenced += 1
    if violations:
        _record_violations(session, list(violations.values()), result, completeness)
    if again:
        _record_violations(session, again, result, completeness)
    return result


def quarantine(session: Session, message: Message, refusal: Refusal) -> None:
    """Keep a refused message with its reason; the same message refused again for the same
    reason is counted on the row that holds it (its latest reason and time kept)."""
    topic, code = message.topic[:512], refusal.code.value
    sha = hashlib.sha256(message.payload).hexdigest()
    reason = refusal.reason[:2000]
    held = session.scalars(
        select(Quarantine)
        .where(
            Quarantine.payload_sha256 == sha,
            Quarantine.reason_code == code,
            Quarantine.topic == topic,
        )
        .order_by(Quarantine.id.desc())
        .limit(1)
    ).first()
    now = utcnow()
    if held is not None:
        held.times += 1
        held.last_received_at = now
        held.reason = reason
        return
    session.add(
        Quarantine(
            received_at=now,
            last_received_at=now,
            topic=topic,
            reason_code=code,
            reason=reason,
            payload=message.payload[:MAX_QUARANTINE_PAYLOAD],
            payload_sha256=sha,
            times=1,
        )
    )


def violation_row(event: ViolationEvent, wire: bytes) -> dict[str, Any]:
    plate = event.plate
    return {
        "event_id": event.event_id,
        "type": event.type.value,
        "site": event.site,
        "node": event.node,
        "camera": event.camera,
        "lane": event.lane,
        "occurred_at": event.occurred_at,
        "received_at": utcnow(),
        "vehicle_class": event.vehicle_class.value,
        "plate_text": plate.text if plate is not None and plate.text else None,
        "plate_confidence": plate.confidence if plate is not None else None,
        "plate_valid": plate.valid if plate is not None else None,
        "speed_kmh": event.measured.speed_kmh,
        "speed_limit_kmh": event.measured.speed_limit_kmh,
        "place": event.place,
        "explanation": event.explanation,
        "payload": wire.decode("utf-8"),
        "payload_sha256": hashlib.sha256(wire).hexdigest(),
        "evidence_count": len(event.evidence),
        "evidence_complete": not event.evidence,
        "status": "new",
        "version": 1,
    }


def _stored_violations(session: Session, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The stored payload (its sha256, its text) of each of the event ids held."""
    return {
        event_id: (sha, payload)
        for event_id, sha, payload in session.execute(
            select(Violation.event_id, Violation.payload_sha256, Violation.payload).where(
                one_of(session, Violation.event_id, ids)
            )
        ).all()
    }


def _record_violations(
    session: Session,
    items: list[tuple[ViolationEvent, bytes, Message]],
    result: BatchResult,
    completeness: bool,
) -> None:
    """Insert the events not stored yet, with their evidence lists.

    The payload is stored exactly as received (it is what the node signed). Rows go in
    with ON CONFLICT DO NOTHING, so a replica that stored the same event a moment earlier
    only makes this one skip it (and count it held).
    """
    stored = _stored_violations(session, [event.event_id for event, _w, _m in items])
    fresh = [item for item in items if item[0].event_id not in stored]
    for event, wire, message in items:
        if event.event_id in stored:
            _sort_conflict(session, event, wire, message, stored[event.event_id], result)
    if not fresh:
        return
    # No conflict target: on PostgreSQL the event-id key is claimed in violation_keys
    # (the violations table is partitioned by month), on SQLite it is a unique column.
    returned = _insert_rows(
        session,
        Violation.__table__,
        [violation_row(event, wire) for event, wire, _m in fresh],
        conflict="",
        returning=("event_id", "id"),
    )
    inserted: dict[str, int] = dict(returned)
    raced = [item for item in fresh if item[0].event_id not in inserted]
    if raced:
        # Stored by another replica since the look-up above (committed: the insert waited
        # on it): a copy is held, not new here; another content under the id is refused
        # as a reused id, as against one stored before (a receipt would have its node
        # delete a violation central does not hold).
        now_stored = _stored_violations(session, [e.event_id for e, _w, _m in raced])
        for event, wire, message in raced:
            held = now_stored.get(event.event_id)
            if held is None:  # (the row it met is no longer there: counted held, a copy)
                result.duplicates += 1
                result.held_event_ids.append(event.event_id)
            else:
                _sort_conflict(session, event, wire, message, held, result)
        fresh = [item for item in fresh if item[0].event_id in inserted]
    refs: list[dict[str, Any]] = []
    cameras: set[tuple[str, str, str]] = set()
    for event, _wire, _message in fresh:
        vid = inserted[event.event_id]
        result.accepted += 1
        result.new_violation_ids.append(vid)
        result.held_event_ids.append(event.event_id)
        cameras.add((event.site, event.node, event.camera))
        for ref in event.evidence:
            refs.append(
                {
                    "violation_id": vid,
                    "role": ref.role.value,
                    "sha256": ref.sha256,
                    "media_type": ref.media_type.value,
                    "size": ref.size,
                }
            )
        if event.evidence:
            result.incomplete_ids.append(vid)
    if refs:
        _insert_rows(session, EvidenceRef.__table__, refs, conflict="violation_id, role")
        if completeness:
            result.incomplete_ids = refresh_completeness(session, result.incomplete_ids)
    if not cameras:  # (every one raced)
        return
    session.execute(
        _insert(session, Camera.__table__).on_conflict_do_nothing(
            index_elements=["site", "node", "camera"]
        ),
        [
            {"site": s, "node": n, "camera": c, "updated_at": utcnow()}
            for s, n, c in sorted(cameras)
        ],
    )


def same_event(stored: tuple[str, str], sha256: str, event: ViolationEvent) -> bool:
    """Whether the violation stored (its payload's sha256, its payload) is ``event``, whose
    payload has ``sha256``: the same bytes, or the same event in another JSON form (a
    stored payload that does not read as an event raises pydantic's ValidationError)."""
    stored_sha, payload = stored
    return stored_sha == sha256 or (
        to_wire(ViolationEvent.model_validate_json(payload)) == to_wire(event)
    )


def _sort_conflict(
    session: Session,
    event: ViolationEvent,
    wire: bytes,
    message: Message,
    stored: tuple[str, str],
    result: BatchResult,
) -> None:
    """A re-sent event is a duplicate; an old id with different content is quarantined."""
    if same_event(stored, hashlib.sha256(wire).hexdigest(), event):
        result.duplicates += 1
        result.held_event_ids.append(event.event_id)
        return
    refusal = Refusal(
        RefusalCode.REUSED_ID,
        f"event id {event.event_id} was already received with different content",
    )
    quarantine(session, message, refusal)
    result.refuse(refusal.code)
    result.late_refusals.append((message, refusal))


def blob_as_listed() -> ColumnElement[bool]:
    """A stored blob is the one an evidence row lists: its hash, and the size and media type
    the signed event gave it (a blob sent as another type has not arrived as listed)."""
    return and_(
        Blob.sha256 == EvidenceRef.sha256,
        Blob.size == EvidenceRef.size,
        Blob.media_type == EvidenceRef.media_type,
    )


def refresh_completeness(session: Session, violation_ids: Sequence[int]) -> list[int]:
    """Mark complete the violations whose every listed blob has arrived as listed; return
    the rest."""
    if not violation_ids:
        return []
    missing_blob = (
        select(EvidenceRef.violation_id)
        .where(EvidenceRef.violation_id == Violation.id, ~exists().where(blob_as_listed()))
        .exists()
    )
    ids = list(violation_ids)
    session.execute(
        update(Violation)
        .where(
            and_(
                one_of(session, Violation.id, ids),
                Violation.evidence_complete.is_(False),
                ~missing_blob,
            )
        )
        .values(evidence_complete=True)
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(Violation.id).where(
                one_of(session, Violation.id, ids), Violation.evidence_complete.is_(False)
            )
        )
    )


def _record_traffic(session: Session, stats: TrafficStats) -> int:
    if not stats.lanes:
        return 0
    minute_end = stats.minute_start + timedelta(minutes=1)
    rows = [
        {
            "site": stats.site,
            "node": stats.node,
            "camera": stats.camera,
            "minute_start": stats.minute_start,
            "lane": lane.lane,
            "part_start": stats.part_start,
            # (a part said to end with its minute is stored as one that ran to it)
            "part_end": stats.counted_until if stats.part_end < minute_end else None,
            "vehicles": sum(lane.counts.values()),
            "counts_json": detail_text({k.value: v for k, v in lane.counts.items()}),
            "mean_speed_kmh": lane.mean_speed_kmh,
            "occupancy": lane.occupancy,
        }
        for lane in stats.lanes
    ]
    session.execute(
        _insert(session, TrafficMinute.__table__).on_conflict_do_nothing(
            index_elements=["site", "node", "camera", "minute_start", "lane", "part_start"]
        ),
        rows,
    )
    return len(rows)


def _silent(heard: datetime | None, now: datetime, silent_after: timedelta) -> bool:
    return heard is not None and now - heard > silent_after


def _lock_status_nodes(session: Session, checked: Sequence[Checked]) -> None:
    """Lock the nodes the batch has statuses of, in one statement and in one order (by
    id): two ingests storing batches with statuses of the same nodes then wait for each
    other instead of each holding a node the other waits for (a deadlock)."""
    nodes = {
        (o.site, o.node) for o in (item.outcome for item in checked) if isinstance(o, NodeStatus)
    }
    if nodes:
        session.execute(
            select(Node.id)
            .where(tuple_(Node.site, Node.node).in_(sorted(nodes)))
            .order_by(Node.id)
            .with_for_update()
        ).all()


def reset_status_order(session: Session, *, site: str, node: str) -> HeldOrder:
    """Forget the place of the newest status taken from the node, so that its next status
    is taken whatever its place (a node put back to a version that sends statuses without
    one, or with a session before the one held); returns the order forgotten."""
    found = _node(session, site, node)
    held = HeldOrder(found.status_session_at, found.status_sequence, bool(found.status_will_taken))
    found.status_session_at = None
    found.status_sequence = None
    found.status_will_taken = False
    found.status_wills_replayed = 0
    # (and the order each ingest received: one ahead of the node's next status would have
    # it refused there as published again)
    session.execute(delete(StatusReceived).where(StatusReceived.node_id == found.id))
    return held


def _hold_received(
    session: Session,
    row: StatusReceived | None,
    ingest: str,
    node_id: int,
    order: HeldOrder,
    now: datetime,
) -> StatusReceived:
    """Hold ``order`` as the newest place of the node's statuses ``ingest`` received."""
    assert order.session_started_at is not None and order.sequence is not None
    if row is None:
        row = StatusReceived(ingest=ingest, node_id=node_id)
        session.add(row)
    row.session_at = order.session_started_at
    row.sequence = order.sequence
    row.will_taken = order.will_taken
    row.received_at = now
    return row


def _record_status(
    session: Session,
    status: NodeStatus,
    silent_after: timedelta,
    ingest: str | None,
    replayed_wills: list[tuple[Message, Refusal]],
) -> Placing | Refusal:
    """Apply a node's status (or its last will) and the health of its cameras, where it is
    newer than the status held (``central.status_order``); a camera the status leaves out
    is ``unknown``. An older one is refused as replayed, the one held again left as it is.

    Each ingest receives every status (the subscription cannot be shared: a broker hands
    no retained message to one), so an ingest behind another gets statuses older than the
    one held. Its copy cannot be told from a replay by what it says, only by the order it
    comes in: a broker delivers a node's statuses to each subscriber in the order the node
    sent them, so one older than what the ``ingest`` itself received of the node is out of
    order there (published again: ``replayed``); one newer than that, in order, was
    superseded by what another ingest took (not applied, counted as repeated). The order
    an ingest received is kept per client id (``StatusReceived``), with the batch: its
    broker session, which delivers the rest in order after a restart, is kept by the same
    id, so a restart forgets neither.

    A last will taken that this status shows published again (a status of its session
    after it) is appended to ``replayed_wills``, with its refusal, for the caller to
    quarantine."""
    now = utcnow()
    # (Locked by the batch, ``_lock_status_nodes``: another ingest takes the same statuses,
    # each from its own subscription.)
    node = session.scalar(select(Node).where(Node.site == status.site, Node.node == status.node))
    if node is None:
        return Placing.REPEATED
    mine: Placing | None = None
    received: StatusReceived | None = None
    if ingest is not None and status.signature is not None and status.sequence is not None:
        received = session.get(StatusReceived, (ingest, node.id))
        own = place(
            status,
            HeldOrder()
            if received is None
            else HeldOrder(received.session_at, received.sequence, received.will_taken),
        )
        mine = own.placing
        if mine is Placing.TAKEN:
            received = _hold_received(session, received, ingest, node.id, own.order, now)
    held = HeldOrder(
        node.status_session_at,
        node.status_sequence,
        bool(node.status_will_taken),
        node.status_wills_replayed or 0,
    )
    placed = place(status, held)
    if placed.placing is Placing.REPLAYED:
        if mine is not None and mine is not Placing.REPLAYED:
            return Placing.REPEATED  # in order here: superseded, not published again
        return Refusal(RefusalCode.REPLAYED, placed.reason)
    if placed.placing is Placing.REPEATED:
        return Placing.REPEATED
    if mine is Placing.REPLAYED and ingest is not None:
        # (Out of order here, newer than the order held: the order was reset since, see
        # ``reset_status_order``; this ingest's order follows it from now.)
        _hold_received(session, received, ingest, node.id, placed.order, now)
    node.status_session_at = placed.order.session_started_at
    node.status_sequence = placed.order.sequence
    node.status_will_taken = placed.order.will_taken
    node.status_wills_replayed = placed.order.wills_replayed
    if placed.will_replayed and node.status_json is not None:
        # (The will, as taken, is the status held until this one: kept as refused.)
        will = Message(node_topic(status.site, status.node, NodeTopic.STATUS),
                       node.status_json.encode("utf-8"))  # fmt: skip
        replayed_wills.append((will, Refusal(RefusalCode.REPLAYED, placed.will_replayed)))
    history = _History(session, status.site, status.node, now)
    # Heard again after going silent: a change for the live feed, though the state is
    # the one stored (see central.health); its silence is kept in the history.
    if node.state != status.state.value or _silent(node.status_received_at, now, silent_after):
        history.went_silent("node", "", node_health(node, now, silent_after))
        node.state = status.state.value
        node.updated_at = now
        history.add("node", "", node.state, "", now)
    node.status_sent_at = status.sent_at
    node.status_received_at = now
    node.status_json = to_wire(status).decode("utf-8")
    cameras = {
        c.camera: c
        for c in session.scalars(
            select(Camera).where(Camera.site == status.site, Camera.node == status.node)
        )
    }
    offline = status.state is NodeState.OFFLINE
    for health in status.cameras:
        cam = cameras.get(health.camera)
        if cam is None:
            cam = Camera(site=status.site, node=status.node, camera=health.camera)
            session.add(cam)
            cameras[health.camera] = cam
        state = "offline" if offline else health.state.value
        reason = "node offline" if offline else health.reason
        if cam.state != state or cam.reason != reason or _silent(cam.seen_at, now, silent_after):
            history.went_silent("camera", cam.camera, camera_health(cam, now, silent_after))
            cam.state, cam.reason, cam.updated_at = state, reason, now
            history.add("camera", cam.camera, state, reason, now)
        cam.fps = health.fps
        cam.node_place = health.place
        if not offline:
            cam.seen_at = now
    listed = {health.camera for health in status.cameras}
    for name, cam in cameras.items():
        if offline:
            state, reason = "offline", "node offline"
        elif name not in listed:
            # (A camera taken out of the node's configuration, or one the node does not
            # run yet: its last state would say nothing true of it now.)
            state, reason = "unknown", "not in the node's status: not running on the node"
        else:
            continue
        if cam.state != state or cam.reason != reason:
            history.went_silent("camera", name, camera_health(cam, now, silent_after))
            cam.state, cam.reason, cam.updated_at = state, reason, now
            history.add("camera", name, state, reason, now)
    history.store()
    return Placing.TAKEN


# How long a node's health changes are kept: the live feed replays at most a day.
HEALTH_KEPT = timedelta(days=2)


class _History:
    """The health changes one status makes, for ``health_changes``: stored together, the
    node's older ones let go (``HEALTH_KEPT``)."""

    def __init__(self, session: Session, site: str, node: str, now: datetime) -> None:
        self.session, self.site, self.node, self.now = session, site, node, now
        self.rows: list[dict[str, Any]] = []

    def add(self, kind: str, camera: str, state: str, reason: str, at: datetime) -> None:
        self.rows.append(
            {"at": at, "kind": kind, "site": self.site, "node": self.node, "camera": camera,
             "state": state, "reason": reason}
        )  # fmt: skip

    def went_silent(self, kind: str, camera: str, was: Health) -> None:
        """A node silent, or a camera unknown for it, until this status: its silence, from
        when it began (no row said so: it is told from the time last heard)."""
        if was.silent:
            self.add(kind, camera, was.state, was.reason, was.since)

    def store(self) -> None:
        if not self.rows:
            return
        self.session.execute(
            delete(HealthChange).where(
                HealthChange.site == self.site,
                HealthChange.node == self.node,
                HealthChange.at < self.now - HEALTH_KEPT,
            )
        )
        self.session.execute(insert(HealthChange), self.rows)


# How long after the broker would have dropped an ingest's session its order of statuses
# received is kept all the same (clocks, an ingest's restart taking a while).
RECEIVED_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class Pruned:
    received: int  # ``status_received`` rows let go
    health_changes: int  # ``health_changes`` rows let go


def prune_stale(
    session: Session, *, ingest: str, session_expiry: timedelta, now: datetime | None = None
) -> Pruned:
    """Let go what no one reads again, in the caller's transaction (the ingest's daily
    upkeep): the order of statuses received (``status_received``) of each ingest other
    than ``ingest`` (the one running it) that held no newer place of any node for longer
    than ``session_expiry`` (the broker's, ``ROADWATCH_MQTT_SESSION_EXPIRY_S``) and
    ``RECEIVED_MARGIN``: the broker has dropped its session, so under that client id an
    ingest starts afresh anyway (a pod or host name used once adds rows, which would
    otherwise stay for good); and health changes older than ``HEALTH_KEPT``, those of a
    node never heard again too (its next status lets go its own, see ``_History``)."""
    now = now or utcnow()
    gone = (
        select(StatusReceived.ingest)
        .group_by(StatusReceived.ingest)
        .having(func.max(StatusReceived.received_at) < now - session_expiry - RECEIVED_MARGIN)
    )
    received: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(StatusReceived).where(
            StatusReceived.ingest != ingest, StatusReceived.ingest.in_(gone.scalar_subquery())
        )
    )
    health: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(HealthChange).where(HealthChange.at < now - HEALTH_KEPT)
    )
    return Pruned(received.rowcount, health.rowcount)


# ---------------------------------------------------------------- evidence


def record_blob(
    session: Session, *, sha256: str, size: int, media_type: str, node_id: int | None
) -> list[int]:
    """Note an arrived blob; returns the ids of violations it made complete."""
    session.execute(
        _insert(session, Blob.__table__)
        .values(
            sha256=sha256, size=size, media_type=media_type, node_id=node_id, stored_at=utcnow()
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    waiting = list(
        session.scalars(
            select(Violation.id)
            .join(EvidenceRef, EvidenceRef.violation_id == Violation.id)
            .where(EvidenceRef.sha256 == sha256, Violation.evidence_complete.is_(False))
        )
    )
    still = set(refresh_completeness(session, waiting))
    return [v for v in waiting if v not in still]


def blob_known(session: Session, sha256: str) -> bool:
    return session.get(Blob, sha256) is not None
