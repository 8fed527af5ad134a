"""The durable outbox: every event and evidence blob is on disk before anything is sent.

SQLite in WAL mode with ``synchronous=FULL``. WAL keeps readers (status, the uploader)
off the writer's back; FULL fsyncs the log on every commit, because NORMAL in WAL mode
is only safe against a crashed process: after a power cut it may roll back the last
commits, and an event whose ``put`` returned must survive a power cut in a roadside
cabinet. Blobs are files named by their sha256 under ``blobs/``, written to a temporary
name, fsynced and renamed (then the folder fsynced) *before* the row that lists them is
committed, so a committed row never points at a half-written file.

Message states: ``pending`` -> ``published`` (the broker's PUBACK; ``published_at``) ->
``receipted`` (central's end-to-end receipt; ``receipted_at``). Publishing never deletes:
a published event stays until it is receipted, so it can be sent again if central never
confirms it. A published row's ``next_attempt_at`` is when it is sent again without a
receipt (``receipt_timeout_s``, doubling per re-send up to ``receipt_timeout_cap_s``).
Receipted rows are deleted after a retention period (``prune_receipted``), together with
the records of uploaded blobs no remaining event lists. Until then the node's technician
may queue them again (``resend_receipted``) for a central whose database was restored
from a backup taken before it receipted them; their evidence files already uploaded are
no longer here (deleted once uploaded), so only the event goes again.

Each camera's fined no-stopping places (``put_fined_places``) are kept beside the events,
outside the disk budget (a few rows per camera), for the next start; those of a camera
removed from the node's configuration go at its next live start (``prune_fined_places``).

A violation is recorded (``put_fired``) the moment a rule finds it, before its evidence
is built from the frames that follow; storing the violation removes that record in the
same transaction. So a violation found before a power cut is never lost: a record left
by a process that is gone is stored at the next start as an event without evidence,
saying why (``DeliveryService.recover_fired``).

Blob states: ``pending`` -> ``uploaded`` (the file is then deleted) or ``broken``
(missing or changed on disk: its hash no longer matches; reported, never uploaded, and
its event is never complete).

A violation central refused for good (``mark_refused``) is kept, not sent again, and its
evidence not uploaded, outside the disk budget (``_used_bytes``: the ``usage`` figure less
what refused ones hold), until the node's technician exports (``export_refused``),
re-queues (``retry_refused``) or drops it (``drop_refused``), each noted in
``refused_actions``. A drop's evidence files are noted (``blob_deletes``) in the commit
that deletes their rows, and removed after it, or at the next open or drop.

One refused as ``forged`` whose message here verifies under one of the node's own keys is
genuine: central merely lacks that key (the node started with a new key before an admin
registered it). It is kept apart, awaiting the key's registration (``awaiting_key``), and
queued again by itself (``_resend_awaiting``) once central receipts a violation signed with
the same key, which proves central holds it now; at most ``MAX_KEY_RESENDS`` times each.
While some await the node's key now and no such receipt comes (a node that files nothing
more after its key changed), the publisher sends the oldest of them again every
``KEY_PROBE_S`` (``key_probe``): its own receipt is the proof, and a refusal as forged
again leaves it awaiting, not counted as a re-send.

Blob files are shared by their sha256 between events. A store finds a file there (or
writes it) and lists it inside one write transaction, and every delete of a file no row
lists (a drop, the sweep at open) looks the row up inside one too: a file a new event
lists is never deleted, whichever process drops.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.delivery_policy import (
    DISK_HEADROOM_BYTES,
    EVENT_HEADROOM_BYTES,
    DiskBudget,
    backoff_delay,
    effective_budget,
)
from edge.rules.geometry import Point
from edge.rules.no_stopping import FinedPlace
from roadwatch.contract import (
    CameraTopic,
    EvidenceRef,
    MediaType,
    TrafficStats,
    ViolationEvent,
    camera_topic,
    to_wire,
)
from roadwatch.contract.models import MAX_BLOB_BYTES, EventRefusal, RefusalCode
from roadwatch.contract.signing import SignatureError, key_fingerprint, sign, verify
from roadwatch.errors import UserError
from roadwatch.files import fsync_dir

log = logging.getLogger(__name__)

DATABASE_NAME = "outbox.sqlite3"  # in the outbox folder

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'published', 'receipted')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    published_at REAL,
    receipted_at REAL,
    last_error TEXT,
    retried_unsent INTEGER NOT NULL DEFAULT 0
);
-- (``retried_unsent``: 1 from a technician's ``retry_refused`` until the next publish; a
-- refusal arriving meanwhile answers a delivery made before the retry, and is not taken.)
CREATE INDEX IF NOT EXISTS messages_queue ON messages (state, priority, created_at, id);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_attempt_at);
-- Violations central refused for good (signed with a key revoked since, forged, ...):
-- never receipted, so not sent again, and kept with central's reason for the record until
-- the node's technician re-queues them or drops them (``exported_at``/``exported_to``:
-- when and where they were last exported). They are held outside the disk budget.
CREATE TABLE IF NOT EXISTS refused (
    event_id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL,
    exported_at REAL,
    exported_to TEXT,
    awaiting_key TEXT
);
-- (``awaiting_key``: the raw public key, hex, of the node's own key a ``forged`` one
-- verifies under: genuine, central lacks the key; sent again once central holds it.)
-- What the node's technician did with refused violations (export, retry, drop), each
-- written in the same transaction as the change it records.
CREATE TABLE IF NOT EXISTS refused_actions (
    at REAL NOT NULL,
    action TEXT NOT NULL,
    event_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'uploaded', 'broken')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    uploaded_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS blobs_due ON blobs (state, next_attempt_at);
-- Evidence files whose rows a drop deleted (``drop_refused``), noted in the same
-- transaction and removed from the disk after it: one a kill, Ctrl-C or a refused delete
-- left there is removed at the next open or drop (``_finish_blob_deletes``), so no file
-- outlives its rows outside the budget. A row goes once its file is gone.
CREATE TABLE IF NOT EXISTS blob_deletes (
    sha256 TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS event_blobs (
    event_id TEXT NOT NULL,
    role TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES blobs (sha256),
    PRIMARY KEY (event_id, role)
);
CREATE INDEX IF NOT EXISTS event_blobs_sha ON event_blobs (sha256);
-- Violations a rule has found whose evidence is still being built (the unsigned event,
-- no plate yet): the row goes when the violation is stored in ``messages``. One left by
-- a process that is gone (a power cut, a kill) is stored without evidence instead (see
-- ``fired``). ``owner`` is the boot and process that wrote it.
CREATE TABLE IF NOT EXISTS fired (
    event_id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    payload BLOB NOT NULL,
    fired_at REAL NOT NULL,
    owner TEXT NOT NULL
);
-- Where each camera's no-stopping rule fined a stop, kept while it would not fine that
-- stop again (see ``edge.rules.no_stopping``), so that a node started again does not
-- fine a vehicle still standing there: a camera's rows are replaced whole at each write.
-- The point is in the image (``width`` x ``height``); ``last_t`` is the frame time (UTC
-- epoch seconds) its vehicle was last seen standing there.
CREATE TABLE IF NOT EXISTS fined_places (
    site TEXT NOT NULL,
    node TEXT NOT NULL,
    camera TEXT NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    last_t REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS fined_places_camera ON fined_places (site, node, camera);
-- The start of the node's last connection to the broker, as its statuses carry it
-- (``edge.publisher``): a node started again begins its next one after it, whatever its
-- clock says, so that central does not refuse its statuses as older ones sent again.
CREATE TABLE IF NOT EXISTS status_session (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    started_at TEXT NOT NULL
);
-- Bytes held against the disk budget, kept by triggers in the same transactions as the
-- rows (so every process sharing the outbox sees one consistent figure, at O(1) cost).
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    used_bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO usage (id, used_bytes) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS messages_in AFTER INSERT ON messages
WHEN NEW.state != 'receipted' BEGIN
    UPDATE usage SET used_bytes = used_bytes + length(NEW.payload) WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_receipted AFTER UPDATE OF state ON messages
WHEN OLD.state != 'receipted' AND NEW.state = 'receipted' BEGIN
    UPDATE usage SET used_bytes = used_bytes - length(OLD.payload) WHERE id = 1;
END;
-- (a receipted violation queued again: ``resend_receipted``)
CREATE TRIGGER IF NOT EXISTS messages_unreceipted AFTER UPDATE OF state ON messages
WHEN OLD.state = 'receipted' AND NEW.state != 'receipted' BEGIN
    UPDATE usage SET used_bytes = used_bytes + length(NEW.payload) WHERE id = 1;
END;
-- (a payload signed again, e.g. with a new key, may be longer or shorter than before)
CREATE TRIGGER IF NOT EXISTS messages_resigned AFTER UPDATE OF payload ON messages
WHEN OLD.state != 'receipted' AND NEW.state != 'receipted' BEGIN
    UPDATE usage SET used_bytes = used_bytes + length(NEW.payload) - length(OLD.payload)
    WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_out AFTER DELETE ON messages
WHEN OLD.state != 'receipted' BEGIN
    UPDATE usage SET used_bytes = used_bytes - length(OLD.payload) WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS blobs_in AFTER INSERT ON blobs
WHEN NEW.state != 'uploaded' BEGIN
    UPDATE usage SET used_bytes = used_bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS blobs_uploaded AFTER UPDATE OF state ON blobs
WHEN OLD.state != 'uploaded' AND NEW.state = 'uploaded' BEGIN
    UPDATE usage SET used_bytes = used_bytes - OLD.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS blobs_out AFTER DELETE ON blobs
WHEN OLD.state != 'uploaded' BEGIN
    UPDATE usage SET used_bytes = used_bytes - OLD.size WHERE id = 1;
END;
"""


# (A violation central refused for good is not sent again: see ``mark_refused``.)
_NOT_REFUSED = " AND id NOT IN (SELECT event_id FROM refused)"
# A ``refused`` row, in the order of ``RefusedEvent``'s fields.
_REFUSED_COLUMNS = "event_id, code, reason, refused_at, exported_at, exported_to, awaiting_key"
# How often a violation awaiting its key is sent again by itself (``_resend_awaiting``):
# refused as forged after that, it stays refused for the technician (no endless loop).
MAX_KEY_RESENDS = 3
# How many of a receipt batch's violations, the newest, are checked for the awaited keys.
PROOFS_CHECKED = 20
# The refused_actions' action of such a re-send, and its actor.
KEY_RESEND_ACTION = "resend"
KEY_RESEND_ACTOR = "node"
# The blobs only refused violations list (no other event): kept for the record, not
# uploaded (``due_blobs``) and held outside the disk budget (``_refused_bytes``).
_REFUSED_ONLY_BLOBS = (
    "SELECT e.sha256 FROM event_blobs e WHERE e.event_id IN (SELECT event_id FROM refused)"
    " AND NOT EXISTS (SELECT 1 FROM event_blobs o WHERE o.sha256 = e.sha256"
    " AND o.event_id NOT IN (SELECT event_id FROM refused))"
)


class MessageKind(StrEnum):
    VIOLATION = "violation"
    TRAFFIC = "traffic"


class MessageState(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    RECEIPTED = "receipted"


class BlobState(StrEnum):
    PENDING = "pending"
    UPLOADED = "uploaded"
    BROKEN = "broken"


# Violations go out before traffic statistics when both are waiting.
_PRIORITY = {MessageKind.VIOLATION: 0, MessageKind.TRAFFIC: 1}


# A blob file no row lists is removed at start once it is this old.
ORPHAN_AGE_S = 600.0


class OutboxFullError(Exception):
    """The outbox cannot store this without going over its disk limit; nothing was stored."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write the disk itself refused: no space (or quota) left, or
    SQLite's "database or disk is full" (told by its result code, whatever the wording)."""
    if isinstance(exc, OutboxFullError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return False


@contextlib.contextmanager
def _disk_full_is_full(what: str) -> Iterator[None]:
    """A write the disk itself refused is the outbox being full: the caller keeps running
    and says what was not stored."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        if not is_disk_full(exc):
            raise
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise OutboxFullError(f"{what}: the disk is full ({why})") from exc


@dataclass(frozen=True, slots=True)
class EvidenceBlob:
    """One evidence blob: its reference as listed by the event, and its bytes."""

    ref: EvidenceRef
    data: bytes


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: str
    kind: MessageKind
    topic: str
    payload: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class FiredViolation:
    """A violation found by a rule and not stored yet (see ``Outbox.put_fired``)."""

    event: ViolationEvent  # unsigned, without evidence or plate
    orphaned: bool  # the process that recorded it is gone: nothing will store it now


@dataclass(frozen=True, slots=True)
class PendingBlob:
    sha256: str
    media_type: MediaType
    size: int
    path: Path
    attempts: int


@dataclass(frozen=True, slots=True)
class RefusedEvent:
    """A violation central refused for good, kept in the outbox for the record."""

    event_id: str
    code: str
    reason: str
    refused_at: float
    exported_at: float | None = None  # when it was last exported (None: never)
    exported_to: str | None = None  # the folder it was exported into
    # (forged, but signed with this node's own key central lacks: its fingerprint; the
    # violation is sent again by itself once central holds that key. None: final)
    awaiting_key: str | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> RefusedEvent:
        """From a ``refused`` row (``_REFUSED_COLUMNS``: its key stored raw, named here by
        its fingerprint)."""
        event_id, code, reason, refused_at, exported_at, exported_to, key = row
        fingerprint = None if key is None else key_fingerprint_hex(key)
        return cls(event_id, code, reason, refused_at, exported_at, exported_to, fingerprint)


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """A refused violation written out (``Outbox.export_refused``)."""

    event_id: str
    folder: Path
    evidence: int  # blobs written beside the event
    missing: tuple[str, ...]  # evidence not on the node, each as "role: why"


@dataclass(frozen=True, slots=True)
class DroppedRefused:
    """What ``Outbox.drop_refused`` removed."""

    event_ids: tuple[str, ...]
    blobs: int  # evidence files no other event listed
    freed_bytes: int
    # those of them still on disk (their delete refused): removed at the next open or drop
    left_on_disk: int = 0


@dataclass(frozen=True, slots=True)
class ReceiptedResend:
    """The receipted violations ``Outbox.resend_receipted`` queued again (or, in a dry
    run, would queue), oldest receipt first, and their evidence as it stands here."""

    event_ids: tuple[str, ...]
    first_receipted_at: float | None  # the span of their receipt times (None: none found)
    last_receipted_at: float | None
    # evidence files not uploaded yet (still here): uploaded as usual
    evidence_on_node: int
    # evidence files uploaded before, and so deleted here: not sent again
    evidence_uploaded: int
    # evidence files missing or changed on disk (``broken``): never sent
    evidence_broken: int


class RefusedAction(NamedTuple):
    """What the node's technician did with a refused violation (``refused_actions``)."""

    at: float
    action: str  # export, retry or drop
    event_id: str
    detail: str
    actor: str  # the technician's user name on the node


@dataclass(frozen=True, slots=True)
class BrokenBlob:
    sha256: str
    reason: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EvidenceProgress:
    total: int
    uploaded: int
    broken: int

    @property
    def complete(self) -> bool:
        """Every listed blob reached central; never true while one is broken."""
        return self.broken == 0 and self.uploaded == self.total


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    published: int
    receipted: int
    blobs_pending: int
    blobs_broken: int
    used_bytes: int
    limit_bytes: int
    alarm: bool
    oldest_pending_created_at: float | None
    oldest_unreceipted_created_at: float | None = None
    awaiting_receipt: int = 0
    # Violations central refused for good: kept, not sent again (not awaiting a receipt).
    refused: int = 0
    # Those of them awaiting the registration of the node's key (sent again once it is).
    refused_awaiting_key: int = 0
    # Traffic minutes among the counts above: they get no receipt, the broker's
    # acknowledgement is their delivery, so "sent" is all they ever become.
    traffic_pending: int = 0
    traffic_sent: int = 0

    @property
    def violations_pending(self) -> int:
        return self.pending - self.traffic_pending

    @property
    def used_fraction(self) -> float:
        return min(1.0, self.used_bytes / self.limit_bytes)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_fingerprint_hex(raw_hex: str) -> str:
    """A key's fingerprint (``key_fingerprint``) from its raw public key in hex."""
    return key_fingerprint(Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw_hex)))


def _signed_by(payload: bytes, keys: Iterable[Ed25519PublicKey]) -> Ed25519PublicKey | None:
    """The key among ``keys`` that a violation's message, as held, verifies under."""
    try:
        event = ViolationEvent.model_validate_json(payload)
    except ValueError:  # (not this version's contract)
        return None
    for key in keys:
        try:
            verify(event, key, wire=payload)
        except SignatureError:
            continue
        return key
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _temp_name(sha256: str) -> str:
    """A blob's temp file, named with its writer (boot, pid and start time, as ``fired``
    rows are) and thread."""
    return f".tmp-{_owner().replace(' ', '~')}-{threading.get_ident()}-{sha256}"


def _writer_alive(temp_name: str) -> bool:
    """Whether the process that named a blob's temp file still runs: not a process gone,
    nor one of an earlier boot, nor an earlier holder of the same pid (a node restarted as
    PID 1 of a new container)."""
    owner = temp_name.removeprefix(".tmp-").rsplit("-", 2)[0].replace("~", " ")
    return _owner_alive(owner)
    return True


# Columns added since an outbox was first created: (table, column, its declaration).
_ADDED_COLUMNS = (
    ("refused", "exported_at", "REAL"),
    ("refused", "exported_to", "TEXT"),
    ("messages", "retried_unsent", "INTEGER NOT NULL DEFAULT 0"),
    ("refused", "awaiting_key", "TEXT"),
)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Columns added since an outbox was created (its rows are kept as they are)."""
    for table, column, kind in _ADDED_COLUMNS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # (another process added it)
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _open_database(path: Path) -> sqlite3.Connection:
    """The outbox's database, its schema in place; a UserError naming the file when SQLite
    cannot open or read it (a damaged file is left as it is, for recovery)."""
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the outbox database {path}: {exc}") from exc
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        _add_missing_columns(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UserError(
            f"the outbox database {path} cannot be used: {exc}. Nothing was changed; "
            f"if the file is damaged, recover its events with `sqlite3 {path} .recover`, "
            "or move it aside to start an empty outbox"
        ) from exc
    return db


class Outbox:
    """The node's durable queue of events and evidence. Thread-safe; one per process.

    Several processes may open the same outbox (WAL); writes are serialized by SQLite.
    """

    def __init__(
        self,
        directory: Path,
        budget: DiskBudget,
        *,
        clock: Callable[[], float] = time.time,
        retry_base_s: float = 1.0,
        retry_cap_s: float = 300.0,
        receipt_timeout_s: float = 60.0,
        receipt_timeout_cap_s: float = 900.0,
    ) -> None:
        self.directory = directory
        self._receipt_timeout_s = receipt_timeout_s
        self._receipt_timeout_cap_s = receipt_timeout_cap_s
        self.budget = budget
        self._clock = clock
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._blob_dir = directory / "blobs"
        try:
            self._blob_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the outbox folder {directory}: {exc}") from exc
        self._lock = threading.Lock()
        self._db = _open_database(directory / DATABASE_NAME)
        self._alarmed = False
        self._remove_stale_temp_files()
        with self._lock:
            self._finish_blob_deletes()

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remove_stale_temp_files(self) -> None:
        # A process killed between writing and renaming a blob leaves a temp file; one
        # killed after the rename but before its rows committed leaves a file no row
        # lists. Both are garbage that no budget counts. (Only files older than
        # ORPHAN_AGE_S: another process, e.g. the running node when ``edge outbox`` opens
        # the same outbox, may be writing a temp file or about to commit a new one's rows.)
        old = time.time() - ORPHAN_AGE_S
        for tmp in self._blob_dir.glob("*/.tmp-*"):
            with contextlib.suppress(OSError):
                if not _writer_alive(tmp.name) or tmp.stat().st_mtime < old:
                    tmp.unlink()
        listed = {r[0] for r in self._db.execute("SELECT sha256 FROM blobs")}
        unlisted = []
        for path in self._blob_dir.glob("*/*"):
            if path.name.startswith(".") or path.name in listed:
                continue
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < old:
                    unlisted.append(path)
        if not unlisted:
            return
        # Each is looked up again under the write lock, as it goes: another process may
        # have stored a new event listing that file since (its store finds the file there
        # and writes its rows under the same lock).
        with self._lock, self._transaction():
            for path in unlisted:
                again = self._db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (path.name,))
                if again.fetchone() is None:
                    log.info("removing evidence file %s that no outbox row lists", path.name)
                    with contextlib.suppress(OSError):
                        path.unlink()

    def _finish_blob_deletes(self) -> int:
        """Remove the evidence files a drop noted (``blob_deletes``) and their notes; a
        file stored again since (a blobs row lists it) is kept. Returns how many are left
        (their delete refused: a warning each, tried again at the next open or drop).
        Called with ``_lock`` held."""
        if self._db.execute("SELECT 1 FROM blob_deletes LIMIT 1").fetchone() is None:
            return 0
        left = 0
        # (one transaction: no process lists a file again between the check and the delete)
        with self._transaction():
            shas = [r[0] for r in self._db.execute("SELECT sha256 FROM blob_deletes")]
            for sha in shas:
                # (a file stored again by a newer event since is needed: only its note goes)
                listed = self._db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha,))
                if listed.fetchone() is None:
                    try:
                        self.blob_path(sha).unlink(missing_ok=True)
                    except OSError as exc:
                        log.warning(
                            "cannot remove dropped evidence file %s (%s): tried again at"
                            " the next open or drop",
                            self.blob_path(sha),
                            exc.strerror or exc,
                        )
                        left += 1
                        continue
                self._db.execute("DELETE FROM blob_deletes WHERE sha256 = ?", (sha,))
        return left

    # ------------------------------------------------------------------ storing
    def blob_path(self, sha256: str) -> Path:
        return self._blob_dir / sha256[:2] / sha256

    def _write_blob(self, blob: EvidenceBlob) -> bool:
        """Write the blob's file durably; False when it was already there."""
        path = self.blob_path(blob.ref.sha256)
        if path.exists():
            return False
        path.parent.mkdir(exist_ok=True)
        tmp = path.parent / _temp_name(blob.ref.sha256)
        try:
            with tmp.open("wb") as fh:
                fh.write(blob.data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except BaseException:
            # (a full disk, mostly: what was written of it would hold space no budget counts)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(path.parent)
        return True

    def put_violation(self, event: ViolationEvent, blobs: Sequence[EvidenceBlob]) -> None:
        """Store a signed violation and its evidence; raises OutboxFullError and stores nothing
        when it does not fit. Storing the same event again is a no-op."""
        self.put_violations([(event, blobs)])

    def put_violations(
        self, items: Sequence[tuple[ViolationEvent, Sequence[EvidenceBlob]]]
    ) -> None:
        """Store several violations in one transaction (one fsync): all of them or none."""
        prepared = []
        for event, blobs in items:
            if event.signature is None:
                raise ValueError(f"event {event.event_id} is not signed")
            _check_blobs(event, blobs)
            topic = camera_topic(event.site, event.node, event.camera, CameraTopic.VIOLATION)
            prepared.append((event, blobs, to_wire(event), topic))
        # The files go in inside the rows' transaction: whether a file is there already,
        # and the rows that then list it, are one step for any process that deletes
        # evidence files (a drop, the sweep at open), as those delete under the same write
        # lock. Checked before it, a file could go before these rows commit, leaving the
        # new event's evidence missing (then marked broken by the uploader).
        with self._lock, _disk_full_is_full(f"{len(prepared)} violation(s)"):
            self._db.execute("BEGIN IMMEDIATE")
            written: list[Path] = []
            try:
                shas = {b.ref.sha256 for _, bs, _, _ in prepared for b in bs}
                uploaded = self._uploaded_among(shas)
                # The disk's room is read before the files go in (after, it would count
                # them twice: as used and as no longer free).
                budget = self.budget_now(self._used_bytes())
                for _, blobs, _, _ in prepared:
                    for blob in blobs:
                        if blob.ref.sha256 not in uploaded and self._write_blob(blob):
                            written.append(self.blob_path(blob.ref.sha256))
                for event, blobs, payload, topic in prepared:
                    self._insert_violation(event, blobs, payload, topic, budget)
                used = self._used_bytes()
                self._db.execute("COMMIT")
            except BaseException:
                # The rows are not stored; files written for them are garbage, removed
                # before the rollback (while no other process can list them).
                for path in written:
                    with contextlib.suppress(OSError):
                        path.unlink()
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._check_alarm(used)

    def _uploaded_among(self, shas: set[str]) -> set[str]:
        if not shas:
            return set()
        marks = ",".join("?" * len(shas))
        rows = self._db.execute(
            f"SELECT sha256 FROM blobs WHERE state = 'uploaded' AND sha256 IN ({marks})",
            tuple(shas),
        ).fetchall()
        return {r[0] for r in rows}

    def budget_now(self, used: int) -> DiskBudget:
        """The budget as the disk allows it now (other files may be filling it)."""
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return self.budget
        return effective_budget(self.budget, used, free)

    def _insert_violation(
        self,
        event: ViolationEvent,
        blobs: Sequence[EvidenceBlob],
        payload: bytes,
        topic: str,
        budget: DiskBudget,
    ) -> None:
        used = self._used_bytes()
        evidence = sum(b.ref.size for b in blobs)
        if blobs and used + len(payload) + evidence > budget.limit_bytes:
            raise OutboxFullError(
                f"event {event.event_id}: {len(payload) + evidence} bytes do not fit "
                f"({used} of {budget.limit_bytes} used)"
            )
        if used + len(payload) > budget.limit_bytes + budget.event_reserve_bytes:
            if budget.disk_free_bytes is not None:
                raise OutboxFullError(
                    f"event {event.event_id}: the disk is full even for events: "
                    f"{budget.disk_free_bytes} bytes free on {self.directory}, of which "
                    f"{EVENT_HEADROOM_BYTES} stay free for the outbox's database "
                    f"(the outbox holds {used} bytes); free space on that disk"
                )
            raise OutboxFullError(
                f"event {event.event_id}: the outbox is full even for events "
                f"({used} bytes used, limit {budget.limit_bytes} + reserve "
                f"{budget.event_reserve_bytes}: outbox.limit_bytes and "
                "outbox.event_reserve_bytes); it empties as central receipts its events"
            )
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO messages (id, kind, topic, payload, priority,"
            " created_at, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
            (
                event.event_id,
                MessageKind.VIOLATION.value,
                topic,
                payload,
                _PRIORITY[MessageKind.VIOLATION],
                self._clock(),
            ),
        ).rowcount
        self._db.execute("DELETE FROM fired WHERE event_id = ?", (event.event_id,))
        if not inserted:
            return
        for blob in blobs:
            ref = blob.ref
            self._db.execute(
                "INSERT OR IGNORE INTO blobs (sha256, media_type, size, state)"
                " VALUES (?, ?, ?, 'pending')",
                (ref.sha256, ref.media_type.value, ref.size),
            )
            self._db.execute(
                "INSERT INTO event_blobs (event_id, role, sha256) VALUES (?, ?, ?)",
                (event.event_id, ref.role.value, ref.sha256),
            )

    def put_fired(self, event: ViolationEvent) -> None:
        """Record a violation as its rule finds it (the unsigned event), durably, before
        its evidence is built; storing the violation later removes the record. Raises
        OutboxFullError when the disk refuses it (the violation goes on being built)."""
        payload = to_wire(event)
        with self._lock, _disk_full_is_full(f"violation {event.event_id}"), self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO fired (event_id, camera, payload, fired_at, owner)"
                " VALUES (?, ?, ?, ?, ?)",
                (event.event_id, event.camera, payload, self._clock(), _owner()),
            )

    def fired(self) -> list[FiredViolation]:
        """Violations recorded by ``put_fired`` and not stored since, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, payload, owner FROM fired ORDER BY fired_at, event_id"
            ).fetchall()
        out = []
        for event_id, payload, owner in rows:
            try:
                event = ViolationEvent.model_validate_json(payload)
            except ValueError as exc:  # (not this version's contract): left, and said
                log.error("recorded violation %s cannot be read, left as it is: %s",
                          event_id, str(exc).splitlines()[0])  # fmt: skip
                continue
            out.append(FiredViolation(event, orphaned=not _owner_alive(owner)))
        return out

    def put_traffic(self, stats: TrafficStats) -> None:
        """Store one minute of traffic statistics (keyed by camera, minute and the part of
        the minute it counts)."""
        payload = to_wire(stats)
        # (minutes in UTC, whole: every key's minute has one width and sorts in time order)
        key = _traffic_prefix(stats.site, stats.node, stats.camera) + stats.minute_start.isoformat()
        if stats.counted_from is not None:
            key += f"/{stats.counted_from.isoformat()}"
        topic = camera_topic(stats.site, stats.node, stats.camera, CameraTopic.TRAFFIC)
        with self._lock, _disk_full_is_full(key), self._transaction():
            used = self._used_bytes()
            budget = self.budget_now(used)
            if used + len(payload) > budget.limit_bytes:
                if budget.disk_free_bytes is not None:
                    raise OutboxFullError(
                        f"traffic statistics {key}: the disk is nearly full"
                        f" ({budget.disk_free_bytes} bytes free on {self.directory}; what is"
                        f" left of its last {DISK_HEADROOM_BYTES} is kept for violations)"
                    )
                raise OutboxFullError(f"traffic statistics {key}: the outbox is full")
            self._db.execute(
                "INSERT OR IGNORE INTO messages (id, kind, topic, payload, priority,"
                " created_at, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                (
                    key,
                    MessageKind.TRAFFIC.value,
                    topic,
                    payload,
                    _PRIORITY[MessageKind.TRAFFIC],
                    self._clock(),
                ),
            )

    def sign_pending_traffic(self, key: Ed25519PrivateKey) -> int:
        """Sign again with ``key`` (the node key now) the traffic minutes not sent yet that
        it did not sign: those signed with the node's key before a rotation, or stored
        unsigned before the node signed them. Central refuses a revoked key's signature
        (revoked_key), and a minute, not evidence, is stored once by its node, camera and
        minute however it is signed; so once the node runs with its new key, nothing it
        has yet to send depends on the old one but the violations, which are not signed
        again (their signature is their evidence) and wait for their receipt. Returns how
        many were signed again."""
        public = key.public_key()
        with self._lock:
            rows = self._db.execute(
                "SELECT id, payload FROM messages WHERE kind = ? AND state = 'pending'",
                (MessageKind.TRAFFIC.value,),
            ).fetchall()
        again: list[tuple[bytes, str]] = []
        for message_id, payload in rows:
            try:
                stats = TrafficStats.model_validate_json(payload)
            except ValueError:  # (not this version's contract): sent as it is
                continue
            if stats.signature is not None:
                try:
                    verify(stats, public)
                    continue
                except SignatureError:
                    pass
            again.append((to_wire(sign(stats, key)), message_id))
        if again:
            with (
                self._lock,
                _disk_full_is_full("traffic minutes signed again"),
                self._transaction(),
            ):
                self._db.executemany(
                    "UPDATE messages SET payload = ? WHERE id = ? AND state = 'pending'", again
                )
        return len(again)

    def latest_traffic_minute(self, site: str, node: str, camera: str) -> datetime | None:
        """The latest minute of a camera's traffic statistics the outbox holds (sent or
        not, until pruned), or None. A node started again counts the minutes up to it as
        parts: counted whole, one would take the key of the minute held here and be
        dropped (a clock set back across the restart; see ``edge.traffic_stats``)."""
        prefix = _traffic_prefix(site, node, camera)
        with self._lock:
            # The camera's keys, on the primary key's index: those from its prefix up to
            # the prefix with its closing "/" made "0", the character after it. Minutes
            # are written in UTC in one width, so the greatest key holds the latest.
            row = self._db.execute(
                "SELECT id FROM messages WHERE id >= ? AND id < ? ORDER BY id DESC LIMIT 1",
                (prefix, prefix[:-1] + "0"),
            ).fetchone()
        if row is None:
            return None
        return datetime.fromisoformat(row[0][len(prefix) :].split("/", 1)[0])

    def put_fined_places(
        self, site: str, node: str, camera: str, places: Sequence[FinedPlace]
    ) -> None:
        """Keep a camera's fined no-stopping places as they are now, in place of those
        kept before (none: it has none now). Raises OutboxFullError when the disk refuses
        it, and keeps those before."""
        rows = [
            (site, node, camera, p.px.x, p.px.y, p.image_size[0], p.image_size[1], p.last_t)
            for p in places
        ]
        what = f"camera {camera}'s fined places"
        with self._lock, _disk_full_is_full(what), self._transaction():
            self._db.execute(
                "DELETE FROM fined_places WHERE site = ? AND node = ? AND camera = ?",
                (site, node, camera),
            )
            self._db.executemany(
                "INSERT INTO fined_places (site, node, camera, x, y, width, height, last_t)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def prune_fined_places(self, site: str, node: str, cameras: Iterable[str]) -> int:
        """Let go the fined places a node kept of cameras it has no more (those not among
        ``cameras``); another site's or node's are left. How many rows went."""
        kept = sorted(set(cameras))
        marks = ", ".join("?" for _ in kept)
        others = f" AND camera NOT IN ({marks})" if kept else ""
        with self._lock, self._transaction():
            gone = self._db.execute(
                f"DELETE FROM fined_places WHERE site = ? AND node = ?{others}",
                (site, node, *kept),
            ).rowcount
        return gone

    def fined_places(self, site: str, node: str, camera: str) -> list[FinedPlace]:
        """A camera's fined no-stopping places as last kept (``put_fined_places``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT x, y, width, height, last_t FROM fined_places"
                " WHERE site = ? AND node = ? AND camera = ? ORDER BY rowid",
                (site, node, camera),
            ).fetchall()
        return [FinedPlace(Point(x, y), (w, h), t) for x, y, w, h, t in rows]

    # --------------------------------------------------------------- publishing
    def due_messages(self, limit: int, *, exclude: Iterable[str] = ()) -> list[OutboxMessage]:
        """Pending messages whose retry time has come, violations first, oldest first."""
        return self._due(
            "state = 'pending'" + _NOT_REFUSED, "priority, created_at, id", limit=limit,
            exclude=exclude,
        )  # fmt: skip

    def _due_window(self) -> tuple[float, float]:
        """Rows are due at or before the first time, and after the second: no wait is
        ever scheduled that far ahead, so such a row was scheduled by a clock that has
        since been set back (an NTP correction) and would otherwise wait as long."""
        now = self._clock()
        longest = max(self._retry_cap_s, self._receipt_timeout_s, self._receipt_timeout_cap_s)
        return now, now + longest + 1.0

    def _due(
        self, where: str, order: str, *, limit: int, exclude: Iterable[str]
    ) -> list[OutboxMessage]:
        skip = set(exclude)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, payload, attempts FROM messages"
                f" WHERE {where} AND (next_attempt_at <= ? OR next_attempt_at > ?)"
                f" ORDER BY {order} LIMIT ?",
                (*self._due_window(), limit + len(skip)),
            ).fetchall()
        out = [
            OutboxMessage(id=r[0], kind=MessageKind(r[1]), topic=r[2], payload=r[3], attempts=r[4])
            for r in rows
            if r[0] not in skip
        ]
        return out[:limit]

    def mark_published(self, ids: Iterable[str]) -> int:
        """Record the broker's PUBACK; the rows stay until receipted (violations are sent
        again when no receipt comes within the receipt time-out)."""
        now = self._clock()
        batch = [(now, now + self._receipt_timeout_s, i) for i in ids]
        with self._lock, self._transaction():
            cur = self._db.executemany(
                "UPDATE messages SET state = 'published', published_at = ?,"
                " next_attempt_at = ?, last_error = NULL, retried_unsent = 0"
                " WHERE id = ? AND state = 'pending'",
                batch,
            )
            return cur.rowcount

    def due_resends(self, limit: int, *, exclude: Iterable[str] = ()) -> list[OutboxMessage]:
        """Published violations whose receipt is overdue, oldest first."""
        return self._due(
            "state = 'published' AND kind = 'violation'" + _NOT_REFUSED,
            "next_attempt_at, created_at",
            limit=limit,
            exclude=exclude,
        )

    def mark_resent(self, ids: Iterable[str]) -> int:
        """A re-send left (or failed): wait longer for its receipt before the next one."""
        now = self._clock()
        count = 0
        with self._lock, self._transaction():
            for message_id in ids:
                row = self._db.execute(
                    "SELECT attempts FROM messages WHERE id = ? AND state = 'published'",
                    (message_id,),
                ).fetchone()
                if row is None:
                    continue
                attempts = row[0] + 1
                delay = backoff_delay(
                    attempts + 1, base_s=self._receipt_timeout_s, cap_s=self._receipt_timeout_cap_s
                )
                self._db.execute(
                    "UPDATE messages SET attempts = ?, next_attempt_at = ? WHERE id = ?",
                    (attempts, now + delay, message_id),
                )
                count += 1
        return count

    def resend_now(self, ids: Iterable[str]) -> int:
        """Make these published events due for sending again at once (central lacks them)."""
        with self._lock, self._transaction():
            cur = self._db.executemany(
                "UPDATE messages SET next_attempt_at = 0 WHERE id = ? AND state = 'published'",
                [(i,) for i in ids],
            )
            return cur.rowcount

    def unreceipted(self, older_than_s: float, limit: int) -> list[str]:
        """Published violations stored more than ``older_than_s`` ago and still without a
        receipt, oldest first: the ones to ask central about after a long outage."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM messages WHERE state = 'published' AND kind = 'violation'"
                f"{_NOT_REFUSED} AND created_at <= ? ORDER BY created_at, id LIMIT ?",
                (self._clock() - older_than_s, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def prune_receipted(self, retention_s: float) -> tuple[int, int]:
        """Delete events receipted more than ``retention_s`` ago whose evidence is all
        uploaded, then the records of uploaded blobs no event lists any more.

        Returns (events, blob records) deleted. Events with evidence still pending or broken
        are kept (their blob files are needed, or kept for inspection)."""
        cutoff = self._clock() - retention_s
        with self._lock, self._transaction():
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT m.id FROM messages m WHERE m.state = 'receipted'"
                    " AND m.receipted_at <= ? AND NOT EXISTS (SELECT 1 FROM event_blobs e"
                    " JOIN blobs b ON b.sha256 = e.sha256"
                    " WHERE e.event_id = m.id AND b.state != 'uploaded')",
                    (cutoff,),
                )
            ]
            self._db.executemany("DELETE FROM event_blobs WHERE event_id = ?", [(i,) for i in ids])
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            # Traffic statistics get no receipt: the broker's PUBACK is their delivery.
            self._db.execute(
                "DELETE FROM messages WHERE kind = 'traffic' AND state = 'published'"
                " AND published_at <= ?",
                (cutoff,),
            )
            blobs = self._db.execute(
                "DELETE FROM blobs WHERE state = 'uploaded' AND NOT EXISTS"
                " (SELECT 1 FROM event_blobs e WHERE e.sha256 = blobs.sha256)"
            ).rowcount
        return len(ids), blobs

    def resend_receipted(
        self, since: float, until: float | None = None, *, dry_run: bool = False
    ) -> ReceiptedResend:
        """Queue again for delivery, as new, the violations central receipted at or after
        ``since`` (and before ``until``; epoch seconds, the receipt time recorded here)
        that this outbox still holds (``prune_receipted`` deletes them after the
        retention period): for a central whose database was restored from a backup taken
        before it receipted them. Central drops a copy of one it still holds and receipts it
        again. With ``dry_run`` nothing is changed: what would be queued is returned.

        Their evidence files already uploaded are no longer here (``mark_blob_uploaded``
        deletes them): only the event is sent again, and central has that evidence only
        if it still records the blob. Evidence not uploaded yet goes as usual."""
        chosen = "kind = 'violation' AND state = 'receipted' AND receipted_at >= ?"
        bounds: tuple[float, ...] = (since,)
        if until is not None:
            chosen += " AND receipted_at < ?"
            bounds = (since, until)
        # (one transaction: the running node may receipt, prune or publish meanwhile)
        with self._lock, self._transaction():
            rows = self._db.execute(
                f"SELECT id, receipted_at FROM messages WHERE {chosen} ORDER BY receipted_at, id",
                bounds,
            ).fetchall()
            evidence = dict(
                self._db.execute(
                    "SELECT b.state, COUNT(DISTINCT b.sha256) FROM event_blobs e"
                    " JOIN blobs b ON b.sha256 = e.sha256"
                    f" WHERE e.event_id IN (SELECT id FROM messages WHERE {chosen})"
                    " GROUP BY b.state",
                    bounds,
                ).fetchall()
            )
            if rows and not dry_run:
                self._db.execute(
                    "UPDATE messages SET state = 'pending', attempts = 0, next_attempt_at = 0,"
                    f" receipted_at = NULL, last_error = NULL, retried_unsent = 0 WHERE {chosen}",
                    bounds,
                )
        if rows and not dry_run:
            log.warning("%d receipted violation(s) queued for delivery again", len(rows))
        return ReceiptedResend(
            event_ids=tuple(r[0] for r in rows),
            first_receipted_at=rows[0][1] if rows else None,
            last_receipted_at=rows[-1][1] if rows else None,
            evidence_on_node=evidence.get(BlobState.PENDING, 0),
            evidence_uploaded=evidence.get(BlobState.UPLOADED, 0),
            evidence_broken=evidence.get(BlobState.BROKEN, 0),
        )

    def record_publish_failure(self, ids: Iterable[str], error: str) -> None:
        """A publish got no PUBACK in time: try again after an exponential back-off."""
        now = self._clock()
        with self._lock, self._transaction():
            for message_id in ids:
                row = self._db.execute(
                    "SELECT attempts FROM messages WHERE id = ? AND state = 'pending'",
                    (message_id,),
                ).fetchone()
                if row is None:
                    continue
                attempts = row[0] + 1
                delay = backoff_delay(attempts, base_s=self._retry_base_s, cap_s=self._retry_cap_s)
                self._db.execute(
                    "UPDATE messages SET attempts = ?, next_attempt_at = ?, last_error = ?"
                    " WHERE id = ?",
                    (attempts, now + delay, error[:500], message_id),
                )

    def mark_receipted(self, ids: Iterable[str]) -> int:
        """Central committed these events; they may now be pruned. Violations awaiting a
        key one of them was signed with are queued again (``_resend_awaiting``)."""
        now = self._clock()
        with self._lock, self._transaction():
            receipted = list(ids)
            cur = self._db.executemany(
                "UPDATE messages SET state = 'receipted', receipted_at = ?"
                " WHERE id = ? AND state IN ('pending', 'published')",
                [(now, i) for i in receipted],
            )
            # (central holds it after all: a receipt outweighs a refusal)
            self._db.executemany(
                "DELETE FROM refused WHERE event_id = ?", [(i,) for i in receipted]
            )
            marked = cur.rowcount
            self._resend_awaiting(receipted)
            return marked

    def _resend_awaiting(self, receipted: Sequence[str]) -> list[str]:
        """Queue again the violations awaiting a key central now holds: one of the
        ``receipted`` violations was signed with it. Each is noted in ``refused_actions``.
        Costs a query while none awaits a key, and then at most a signature check for each
        of the ``PROOFS_CHECKED`` newest receipted violations and each awaited key. Called
        with ``_lock`` held, in a transaction."""
        awaited = {
            str(r[0])
            for r in self._db.execute(
                "SELECT DISTINCT awaiting_key FROM refused WHERE awaiting_key IS NOT NULL"
            )
        }
        if not awaited or not receipted:
            return []
        keys = {raw: Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw)) for raw in awaited}
        # The newest of them: the node signs with one key at a time, so a receipt for one
        # signed with the awaited key is among the newest if any is (the others' would
        # cost a check each, under the lock, while a rotation's old-key receipts arrive).
        newest: list[tuple[float, str, bytes]] = []
        for start in range(0, len(receipted), 500):
            chunk = receipted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            newest += self._db.execute(
                f"SELECT created_at, id, payload FROM messages WHERE id IN ({marks})"
                " AND kind = 'violation' AND state = 'receipted'"
                " ORDER BY created_at DESC LIMIT ?",
                (*chunk, PROOFS_CHECKED),
            ).fetchall()
        newest.sort(reverse=True)
        proven: dict[str, str] = {}  # the raw key, and the receipted violation proving it
        for _created, event_id, payload in newest[:PROOFS_CHECKED]:
            left = [k for raw, k in keys.items() if raw not in proven]
            key = _signed_by(bytes(payload), left)
            if key is not None:
                proven[key.public_bytes_raw().hex()] = str(event_id)
            if len(proven) == len(keys):
                break
        queued: list[str] = []
        for raw, proof in sorted(proven.items()):
            fingerprint = key_fingerprint_hex(raw)
            rows = self._db.execute(
                f"SELECT {_REFUSED_COLUMNS} FROM refused WHERE awaiting_key = ?"
                " ORDER BY refused_at, event_id",
                (raw,),
            ).fetchall()
            for refused in map(RefusedEvent.from_row, rows):
                self._requeue(
                    refused,
                    KEY_RESEND_ACTION,
                    f"central took {proof}, signed with the same key {fingerprint}: sent"
                    f" again (was {refused.code}: {refused.reason})",
                    KEY_RESEND_ACTOR,
                )
                queued.append(refused.event_id)
            log.warning(
                "central holds this node's key %s now (it took violation %s signed with it):"
                " %d violation(s) it refused as forged sent again",
                fingerprint, proof, len(rows),
            )  # fmt: skip
        return queued

    def _requeue(self, refused: RefusedEvent, action: str, detail: str, actor: str) -> None:
        """Queue a refused violation for delivery again, as new, and note why. Called with
        ``_lock`` held, in a transaction."""
        self._db.execute(
            "UPDATE messages SET state = 'pending', attempts = 0, next_attempt_at = 0,"
            " last_error = NULL, retried_unsent = 1 WHERE id = ? AND state = 'published'",
            (refused.event_id,),
        )
        self._db.execute("DELETE FROM refused WHERE event_id = ?", (refused.event_id,))
        self._note_refused_action(action, refused.event_id, detail, actor)

    def mark_refused(
        self, refusals: Iterable[EventRefusal], *, own_keys: Sequence[Ed25519PublicKey] = ()
    ) -> int:
        """Central refused these violations for good: each is kept, with its reason, and
        not sent again. Only a violation whose message here is the very one refused (its
        sha256) is marked: a refusal of another message under its id changes nothing. Nor
        does one of a violation the technician queued again (``retry_refused``) and not
        published since: it answers a delivery made before the retry (central refused two
        copies, the second told late), and the retry stands until central answers the
        delivery it makes.

        One refused as ``forged`` whose message verifies under one of ``own_keys`` (the
        node's keys) is genuine, signed with a key central lacks: it is kept awaiting that
        key (``awaiting_key``) and sent again by itself once central receipts a violation
        signed with it (``_resend_awaiting``), unless it was so ``MAX_KEY_RESENDS`` times."""
        now = self._clock()
        marked = 0
        # (the key's fingerprint and the node that signed: the event ids)
        awaiting: dict[tuple[str, str, str], list[str]] = {}
        with self._lock, self._transaction():
            for refusal in refusals:
                row = self._db.execute(
                    "SELECT payload, retried_unsent FROM messages WHERE id = ?"
                    " AND kind = 'violation' AND state IN ('pending', 'published')",
                    (refusal.event_id,),
                ).fetchone()
                if row is None or sha256_hex(row[0]) != refusal.payload_sha256:
                    continue
                if row[1]:
                    log.info(
                        "refusal of %s (%s) not taken: queued again since, not sent yet",
                        refusal.event_id,
                        refusal.code.value,
                    )
                    continue
                # (central had it, so it was published, whatever became of the PUBACK)
                self._db.execute(
                    "UPDATE messages SET state = 'published', last_error = ? WHERE id = ?",
                    (f"refused by central ({refusal.code.value})", refusal.event_id),
                )
                key = None
                if refusal.code is RefusalCode.FORGED and own_keys:
                    key = self._awaited_key(refusal.event_id, bytes(row[0]), own_keys)
                raw = None if key is None else key.public_bytes_raw().hex()
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO refused (event_id, code, reason, refused_at,"
                    " awaiting_key) VALUES (?, ?, ?, ?, ?)",
                    (refusal.event_id, refusal.code.value, refusal.reason, now, raw),
                )
                marked += cur.rowcount
                if not cur.rowcount and refusal.code is not RefusalCode.FORGED:
                    self._final_after_probe(refusal)
                if raw is not None and cur.rowcount:
                    signer = json.loads(row[0])  # (verified above: this contract's event)
                    whose = (key_fingerprint_hex(raw), str(signer["site"]), str(signer["node"]))
                    awaiting.setdefault(whose, []).append(refusal.event_id)
            if awaiting:
                self._resend_proven_before([i for ids in awaiting.values() for i in ids])
        for (fingerprint, site, node), event_ids in awaiting.items():
            log.warning(
                "%d violation(s) refused as forged are genuine, signed with this node's key"
                " %s, which central lacks: kept awaiting its registration and sent again by"
                " themselves once central holds it (register it on central: `roadwatch"
                " central node key add --site %s --node %s --public-key NODE_KEY.pub`, the"
                " public key of fingerprint %s): %s",
                len(event_ids), fingerprint, site, node, fingerprint, ", ".join(event_ids),
            )  # fmt: skip
        return marked

    def _final_after_probe(self, refusal: EventRefusal) -> None:
        """One awaiting a key, sent again to check (``key_probe``), that central now refuses
        for another reason than a key it lacks (the key revoked since, say): that is final,
        and it awaits nothing more. Called with ``_lock`` held, in a transaction."""
        cur = self._db.execute(
            "UPDATE refused SET code = ?, reason = ?, refused_at = ?, awaiting_key = NULL"
            " WHERE event_id = ? AND awaiting_key IS NOT NULL",
            (refusal.code.value, refusal.reason, self._clock(), refusal.event_id),
        )
        if cur.rowcount:
            log.warning(
                "violation %s, awaiting this node's key, is now refused by central as %s (%s):"
                " kept as refused for good, for the technician (`roadwatch edge outbox refused`)",
                refusal.event_id, refusal.code.value, refusal.reason,
            )  # fmt: skip

    def _resend_proven_before(self, event_ids: Sequence[str]) -> list[str]:
        """Queue again violations just found awaiting a key that a receipt taken before
        their refusal already proves central holds: one for a violation signed with that
        key, receipted since they were sent (central refused them from a check made
        before it held the key, told after that receipt: another ingest's, say). A receipt
        from before they were sent proves nothing of now (central's database restored from
        a backup since, say). Called with ``_lock`` held, in a transaction."""
        times = []
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            times += [
                r[0]
                for r in self._db.execute(
                    "SELECT COALESCE(published_at, created_at) FROM messages"
                    f" WHERE id IN ({marks})",
                    tuple(chunk),
                )
            ]
        if not times:
            return []
        sent = min(times)
        proofs = [
            str(r[0])
            for r in self._db.execute(
                "SELECT id FROM messages WHERE kind = 'violation' AND state = 'receipted'"
                " AND receipted_at >= ? ORDER BY receipted_at DESC LIMIT ?",
                (sent, PROOFS_CHECKED),
            )
        ]
        return self._resend_awaiting(proofs)

    def key_probe(self, key: Ed25519PublicKey) -> OutboxMessage | None:
        """The oldest violation awaiting ``key`` (the node's key now), to send again as it
        is and learn whether central holds the key yet, or None. It stays refused, awaiting
        the key, and is not noted as a re-send (``MAX_KEY_RESENDS`` counts those a receipt
        prompted): central's receipt of it proves the key and sends the others again
        (``mark_receipted``), a refusal as forged again changes nothing. One that does not
        verify under ``key`` (awaiting an older key of the node's) is never chosen."""
        raw = key.public_bytes_raw().hex()
        with self._lock, contextlib.closing(self._db.cursor()) as rows:
            rows.execute(
                "SELECT m.id, m.kind, m.topic, m.payload, m.attempts FROM refused r"
                " JOIN messages m ON m.id = r.event_id WHERE r.awaiting_key = ?"
                " AND m.kind = 'violation' AND m.state = 'published'"
                " ORDER BY m.created_at, m.id",
                (raw,),
            )
            # (read one at a time: the first that verifies is the one)
            for message_id, kind, topic, payload, attempts in rows:
                if _signed_by(bytes(payload), [key]) is not None:
                    return OutboxMessage(
                        id=message_id,
                        kind=MessageKind(kind),
                        topic=topic,
                        payload=bytes(payload),
                        attempts=attempts,
                    )
        return None

    def _awaited_key(
        self, event_id: str, payload: bytes, own_keys: Sequence[Ed25519PublicKey]
    ) -> Ed25519PublicKey | None:
        """The node's own key a violation refused as forged is signed with, unless it was
        already sent again by itself ``MAX_KEY_RESENDS`` times (then it stays refused for
        good: something else is wrong). Called with ``_lock`` held."""
        key = _signed_by(payload, own_keys)
        if key is None:
            return None
        resends = self._db.execute(
            "SELECT COUNT(*) FROM refused_actions WHERE event_id = ? AND action = ?",
            (event_id, KEY_RESEND_ACTION),
        ).fetchone()[0]
        if resends >= MAX_KEY_RESENDS:
            log.error(
                "violation %s, signed with this node's key %s, refused as forged again after"
                " %d re-sends once central held that key: kept as refused for good",
                event_id, key_fingerprint(key), resends,
            )  # fmt: skip
            return None
        return key

    def status_session(self) -> datetime | None:
        """When the node's last connection began, as its statuses said (None: never)."""
        with self._lock:
            row = self._db.execute("SELECT started_at FROM status_session").fetchone()
        return datetime.fromisoformat(row[0]) if row is not None else None

    def record_status_session(self, started_at: datetime) -> None:
        """Keep when the node's connection began (its statuses' session), for its next."""
        with self._lock:
            self._db.execute(
                "INSERT INTO status_session (id, started_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at",
                (started_at.astimezone(UTC).isoformat(timespec="microseconds"),),
            )

    def refused_events(self, limit: int = 100) -> list[RefusedEvent]:
        """The violations central refused for good, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_REFUSED_COLUMNS} FROM refused ORDER BY refused_at, event_id LIMIT ?",
                (limit,),
            ).fetchall()
        return [RefusedEvent.from_row(r) for r in rows]

    def refused_actions(self, limit: int = 10) -> list[RefusedAction]:
        """The latest actions on refused violations, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, action, event_id, detail, actor FROM refused_actions"
                " ORDER BY at DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            RefusedAction(float(at), str(action), str(event_id), str(detail), str(actor))
            for at, action, event_id, detail, actor in rows
        ]

    def _chosen_refused(self, ids: Sequence[str] | None) -> list[RefusedEvent]:
        """The refused violations ``ids`` names (None: all of them); a UserError naming
        any id that is not a refused violation here."""
        rows = self._db.execute(
            f"SELECT {_REFUSED_COLUMNS} FROM refused ORDER BY refused_at, event_id"
        ).fetchall()
        held = {r[0]: RefusedEvent.from_row(r) for r in rows}
        if ids is None:
            return list(held.values())
        unknown = [i for i in dict.fromkeys(ids) if i not in held]
        if unknown:
            raise UserError(
                f"not a violation refused by central in this outbox: {', '.join(unknown)}"
                " (`roadwatch edge outbox` lists them); nothing was changed"
            )
        return [held[i] for i in dict.fromkeys(ids)]

    def _note_refused_action(self, action: str, event_id: str, detail: str, actor: str) -> None:
        self._db.execute(
            "INSERT INTO refused_actions (at, action, event_id, detail, actor)"
            " VALUES (?, ?, ?, ?, ?)",
            (self._clock(), action, event_id, detail[:2000], actor[:200]),
        )

    def export_refused(
        self, directory: Path, ids: Sequence[str] | None = None, *, actor: str
    ) -> list[ExportedEvent]:
        """Write each refused violation ``ids`` names (None: all) into ``directory`` as a
        folder named by its event id: ``event.json`` (the signed payload, as sent),
        ``refusal.json`` (central's code and reason, and the evidence listed) and its
        evidence blobs on the node, each checked against its sha256. All of them or none:
        on a failure what was written is removed and the outbox is unchanged."""
        with self._lock:
            chosen = self._chosen_refused(ids)
            rows = {
                r.event_id: self._db.execute(
                    "SELECT payload FROM messages WHERE id = ?", (r.event_id,)
                ).fetchone()
                for r in chosen
            }
            listed = {
                r.event_id: self._db.execute(
                    "SELECT e.role, e.sha256, b.media_type, b.size, b.state FROM event_blobs e"
                    " JOIN blobs b ON b.sha256 = e.sha256 WHERE e.event_id = ? ORDER BY e.role",
                    (r.event_id,),
                ).fetchall()
                for r in chosen
            }
        if not chosen:
            return []
        target = directory.resolve()
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {directory}: {exc}; nothing was exported") from exc
        if not os.access(target, os.W_OK | os.X_OK):
            raise UserError(f"{directory} is not writable; nothing was exported")
        there = [r.event_id for r in chosen if (target / r.event_id).exists()]
        if there:
            raise UserError(
                f"{directory} already holds {', '.join(there)}: export into another folder;"
                " nothing was exported"
            )
        done: list[Path] = []
        out: list[ExportedEvent] = []
        try:
            for refused in chosen:
                row = rows[refused.event_id]
                payload = bytes(row[0]) if row is not None else b""
                out.append(self._export_one(target, refused, payload, listed[refused.event_id]))
                done.append(out[-1].folder)
            fsync_dir(target)
        except BaseException as exc:
            # (a full stick, or the technician's Ctrl-C between two events: none is left
            # half-exported, unmarked here, in a folder a second export would refuse)
            for folder in done:
                shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, OSError):
                raise UserError(
                    f"cannot export into {directory}: {exc}; nothing was exported"
                ) from exc
            raise
        with self._lock, self._transaction():
            for item in out:
                self._db.execute(
                    "UPDATE refused SET exported_at = ?, exported_to = ? WHERE event_id = ?",
                    (self._clock(), str(item.folder), item.event_id),
                )
                missing = f"; not on the node: {'; '.join(item.missing)}" if item.missing else ""
                self._note_refused_action(
                    "export", item.event_id, f"to {item.folder}{missing}", actor
                )
        log.warning("exported %d refused violation(s) into %s", len(out), target)
        return out

    def _export_one(
        self,
        target: Path,
        refused: RefusedEvent,
        payload: bytes,
        listed: Sequence[tuple[str, str, str, int, str]],
    ) -> ExportedEvent:
        partial = target / f".{refused.event_id}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            _write_file(partial / "event.json", payload)
            evidence: list[dict[str, object]] = []
            missing: list[str] = []
            written = 0
            for role, sha, media_type, size, state in listed:
                name = f"{role}{_SUFFIX.get(media_type, '')}"
                why = self._copy_blob(sha, state, partial / name)
                if why is None:
                    written += 1
                else:
                    missing.append(f"{role}: {why}")
                entry: dict[str, object] = {
                    "role": role, "sha256": sha, "media_type": media_type, "size": size,
                    "file": name if why is None else None,
                }  # fmt: skip
                if why is not None:
                    entry["missing"] = why
                evidence.append(entry)
            record = {
                "event_id": refused.event_id,
                "refused_by_central": {
                    "code": refused.code,
                    "reason": refused.reason,
                    "refused_at": utc_seconds(refused.refused_at),
                    # (the fingerprint of the node's own key central lacked; None: final)
                    "awaiting_key": refused.awaiting_key,
                },
                "exported_at": utc_seconds(self._clock()),
                "event_payload_sha256": sha256_hex(payload),
                "evidence": evidence,
            }
            text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
            _write_file(partial / "refusal.json", text.encode("utf-8"))
            fsync_dir(partial)
            folder = target / refused.event_id
            partial.rename(folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return ExportedEvent(refused.event_id, folder, written, tuple(missing))

    def _copy_blob(self, sha: str, state: str, to: Path) -> str | None:
        """Copy a blob's file to ``to``, checked against its hash; why not, or None."""
        if state == BlobState.UPLOADED:
            return "uploaded to central (its copy here is deleted)"
        source = self.blob_path(sha)
        digest = hashlib.sha256()
        try:
            with source.open("rb") as src, to.open("wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except FileNotFoundError:
            to.unlink(missing_ok=True)
            return "missing on disk"
        if digest.hexdigest() != sha:
            to.unlink()
            return "changed on disk (its sha256 no longer matches)"
        return None

    def retry_refused(self, ids: Sequence[str] | None = None, *, actor: str) -> list[str]:
        """Queue the refused violations ``ids`` names (None: all) for delivery again, as if
        new (e.g. once central's admin registered the node's right key); central's reason
        is kept in the action log. A refusal of a delivery made after this marks them
        refused again; one arriving before they are published again is of an earlier
        delivery, and changes nothing (``mark_refused``)."""
        with self._lock, self._transaction():
            chosen = self._chosen_refused(ids)
            for refused in chosen:
                self._requeue(refused, "retry", f"was {refused.code}: {refused.reason}", actor)
        if chosen:
            log.warning("%d refused violation(s) queued for delivery again", len(chosen))
        return [r.event_id for r in chosen]

    def drop_refused(
        self, ids: Sequence[str] | None = None, *, actor: str, not_exported: bool = False
    ) -> DroppedRefused:
        """Remove the refused violations ``ids`` names (None: all) and the evidence no other
        event lists. Each must have been exported first (``export_refused``) unless
        ``not_exported``; otherwise a UserError, and nothing is removed.

        The evidence files go after the rows' commit, each noted in it (``blob_deletes``):
        a drop stopped among them (a kill, Ctrl-C) or a delete refused leaves notes, and
        the next open or drop removes those files (as this one first does)."""
        gone: list[str] = []
        with self._lock:
            self._finish_blob_deletes()
        with self._lock, self._transaction():
            chosen = self._chosen_refused(ids)
            unsaved = [r.event_id for r in chosen if r.exported_at is None]
            if unsaved and not not_exported:
                raise UserError(
                    f"not exported yet: {', '.join(unsaved)}; export them first (`roadwatch"
                    " edge outbox refused export DIR`), or drop them unexported with"
                    " --not-exported; nothing was dropped"
                )
            event_ids = [r.event_id for r in chosen]
            freed = self._refused_bytes()
            shas: set[str] = set()
            for event_id in event_ids:
                shas.update(
                    r[0]
                    for r in self._db.execute(
                        "SELECT sha256 FROM event_blobs WHERE event_id = ?", (event_id,)
                    )
                )
                self._db.execute("DELETE FROM event_blobs WHERE event_id = ?", (event_id,))
                self._db.execute(
                    "DELETE FROM messages WHERE id = ? AND kind = 'violation'", (event_id,)
                )
                self._db.execute("DELETE FROM refused WHERE event_id = ?", (event_id,))
            for sha in sorted(shas):
                cur = self._db.execute(
                    "DELETE FROM blobs WHERE sha256 = ? AND NOT EXISTS"
                    " (SELECT 1 FROM event_blobs e WHERE e.sha256 = blobs.sha256)",
                    (sha,),
                )
                if cur.rowcount:
                    gone.append(sha)
            self._db.executemany(
                "INSERT OR IGNORE INTO blob_deletes (sha256) VALUES (?)", [(g,) for g in gone]
            )
            freed -= self._refused_bytes()
            exported = {r.event_id: r.exported_to for r in chosen}
            for event_id in event_ids:
                where = exported[event_id]
                self._note_refused_action(
                    "drop",
                    event_id,
                    f"exported to {where}" if where else "dropped without an export",
                    actor,
                )
        with self._lock:
            left = self._finish_blob_deletes()
        if event_ids:
            log.warning("dropped %d refused violation(s) from the outbox", len(event_ids))
        return DroppedRefused(tuple(event_ids), len(gone), freed, left)

    def message_state(self, message_id: str) -> MessageState | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return None if row is None else MessageState(row[0])

    # ---------------------------------------------------------------- uploading
    def due_blobs(self, limit: int) -> list[PendingBlob]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sha256, media_type, size, attempts FROM blobs"
                " WHERE state = 'pending' AND (next_attempt_at <= ? OR next_attempt_at > ?)"
                # (a refused violation's evidence stays here, for its export or its retry)
                f" AND sha256 NOT IN ({_REFUSED_ONLY_BLOBS})"
                " ORDER BY next_attempt_at, rowid LIMIT ?",
                (*self._due_window(), limit),
            ).fetchall()
        return [
            PendingBlob(
                sha256=r[0],
                media_type=MediaType(r[1]),
                size=r[2],
                path=self.blob_path(r[0]),
                attempts=r[3],
            )
            for r in rows
        ]

    def mark_blob_uploaded(self, sha256: str) -> None:
        """Central holds the blob (verified by its hash): the local copy is deleted."""
        with self._lock:
            with self._transaction():
                self._db.execute(
                    "UPDATE blobs SET state = 'uploaded', uploaded_at = ?, last_error = NULL"
                    " WHERE sha256 = ? AND state = 'pending'",
                    (self._clock(), sha256),
                )
            with contextlib.suppress(FileNotFoundError):
                self.blob_path(sha256).unlink()

    def record_blob_failure(self, sha256: str, error: str) -> float:
        """An upload failed for a reason that may pass; returns the back-off in seconds."""
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT attempts FROM blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
            attempts = (row[0] if row else 0) + 1
            delay = backoff_delay(attempts, base_s=self._retry_base_s, cap_s=self._retry_cap_s)
            self._db.execute(
                "UPDATE blobs SET attempts = ?, next_attempt_at = ?, last_error = ?"
                " WHERE sha256 = ?",
                (attempts, self._clock() + delay, error[:500], sha256),
            )
        return delay

    def mark_blob_broken(self, sha256: str, reason: str) -> list[str]:
        """The blob cannot be delivered (refused by central for good).

        Returns the events that list it: none of them will ever be complete.
        """
        with self._lock, self._transaction():
            events = self._mark_broken(sha256, reason)
        self._log_broken(sha256, reason, events)
        return events

    def mark_blob_file_broken(self, sha256: str, reason: str) -> list[str] | None:
        """The blob's file was read missing or changed on disk: it is read again under the
        write lock, and the blob marked broken (returning the events that list it, as
        ``mark_blob_broken``) only if it still is. None, nothing marked, when the file is
        sound now or no pending row lists it: a blob dropped with its refused violation
        and stored again since, for a new event, has a new file and stays pending (it was
        read in between)."""
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT state, size FROM blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
            if row is None or row[0] == BlobState.UPLOADED.value:
                return None
            try:
                data = self.blob_path(sha256).read_bytes()
            except FileNotFoundError:
                pass
            except OSError:
                return None  # (unreadable for now: tried again)
            else:
                if len(data) == row[1] and sha256_hex(data) == sha256:
                    return None
            events = self._mark_broken(sha256, reason)
        self._log_broken(sha256, reason, events)
        return events

    def _mark_broken(self, sha256: str, reason: str) -> list[str]:
        self._db.execute(
            "UPDATE blobs SET state = 'broken', last_error = ? WHERE sha256 = ?",
            (reason[:500], sha256),
        )
        return [
            r[0]
            for r in self._db.execute(
                "SELECT event_id FROM event_blobs WHERE sha256 = ?", (sha256,)
            )
        ]

    @staticmethod
    def _log_broken(sha256: str, reason: str, events: list[str]) -> None:
        log.error(
            "evidence blob %s is broken (%s); events without complete evidence: %s",
            sha256,
            reason,
            ", ".join(events) or "none",
        )

    def evidence_progress(self, event_id: str) -> EvidenceProgress:
        with self._lock:
            rows = self._db.execute(
                "SELECT b.state FROM event_blobs e JOIN blobs b ON b.sha256 = e.sha256"
                " WHERE e.event_id = ?",
                (event_id,),
            ).fetchall()
        states = [BlobState(r[0]) for r in rows]
        return EvidenceProgress(
            total=len(states),
            uploaded=states.count(BlobState.UPLOADED),
            broken=states.count(BlobState.BROKEN),
        )

    def broken_blobs(self, limit: int = 100) -> list[BrokenBlob]:
        """Blobs that will never be delivered, with why and the events they leave incomplete."""
        with self._lock:
            rows = self._db.execute(
                "SELECT b.sha256, COALESCE(b.last_error, ''), group_concat(e.event_id, ' ')"
                " FROM blobs b LEFT JOIN event_blobs e ON e.sha256 = b.sha256"
                " WHERE b.state = 'broken' GROUP BY b.sha256 ORDER BY b.rowid LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            BrokenBlob(sha256=r[0], reason=r[1], event_ids=tuple((r[2] or "").split()))
            for r in rows
        ]

    def blob_error(self, sha256: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT last_error FROM blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------- status
    def _used_bytes(self) -> int:
        # Payloads not yet receipted plus blob files not yet uploaded (uploaded ones are
        # deleted; broken ones are kept on disk for inspection and still count), less what
        # violations central refused for good hold: kept for the record, they must not
        # stop newer violations from being stored (the disk's free space still bounds all).
        total = int(self._db.execute("SELECT used_bytes FROM usage WHERE id = 1").fetchone()[0])
        return total - self._refused_bytes()

    def _refused_bytes(self) -> int:
        """Bytes held by refused violations: their payloads, and the blobs not uploaded
        that no other event lists."""
        payloads = self._db.execute(
            "SELECT COALESCE(SUM(length(m.payload)), 0) FROM messages m"
            " JOIN refused r ON r.event_id = m.id WHERE m.state != 'receipted'"
        ).fetchone()[0]
        blobs = self._db.execute(
            "SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.state != 'uploaded'"
            f" AND b.sha256 IN ({_REFUSED_ONLY_BLOBS})"
        ).fetchone()[0]
        return int(payloads) + int(blobs)

    def refused_bytes(self) -> int:
        """Bytes refused violations hold on disk, outside the budget (``_used_bytes``)."""
        with self._lock:
            return self._refused_bytes()

    def _check_alarm(self, used: int) -> None:
        budget = self.budget_now(used)
        alarm = budget.alarm(used)  # (a disk other files fill raises it too)
        if alarm and not self._alarmed:
            if budget.disk_free_bytes is not None and budget.limit_bytes < self.budget.limit_bytes:
                # (the outbox's own budget is far from full: saying so sent one looking
                # at the outbox, 899 of 21474836480 bytes, instead of at the disk)
                log.warning(
                    "disk nearly full: %d bytes free on %s (the outbox holds %d); evidence"
                    " is refused, clips first, and then traffic minutes; free space on that"
                    " disk",
                    budget.disk_free_bytes,
                    self.directory,
                    used,
                )
            else:
                log.warning(
                    "outbox nearly full: %d of %d bytes used; clips are refused first when full",
                    used,
                    self.budget.limit_bytes,
                )
        self._alarmed = alarm

    def used_bytes(self) -> int:
        with self._lock:
            return self._used_bytes()

    def stats(self) -> OutboxStats:
        with self._lock:
            by_kind = self._db.execute(
                "SELECT kind, state, COUNT(*) FROM messages GROUP BY kind, state"
            ).fetchall()
            counts: dict[str, int] = {}
            for _kind, state, n in by_kind:
                counts[state] = counts.get(state, 0) + n
            traffic = {state: n for kind, state, n in by_kind if kind == MessageKind.TRAFFIC}
            blob_counts = dict(
                self._db.execute("SELECT state, COUNT(*) FROM blobs GROUP BY state").fetchall()
            )
            oldest = self._db.execute(
                "SELECT MIN(created_at) FROM messages WHERE state = 'pending'"
            ).fetchone()[0]
            awaiting, oldest_unreceipted = self._db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM messages WHERE state = 'published'"
                f" AND kind = 'violation'{_NOT_REFUSED}"
            ).fetchone()
            refused, awaiting_key = self._db.execute(
                "SELECT COUNT(*), COUNT(awaiting_key) FROM refused"
            ).fetchone()
            used = self._used_bytes()
        return OutboxStats(
            pending=counts.get("pending", 0),
            published=counts.get("published", 0),
            receipted=counts.get("receipted", 0),
            blobs_pending=blob_counts.get("pending", 0),
            blobs_broken=blob_counts.get("broken", 0),
            used_bytes=used,
            limit_bytes=self.budget.limit_bytes,
            alarm=self.budget.alarm(used),
            oldest_pending_created_at=oldest,
            awaiting_receipt=int(awaiting),
            oldest_unreceipted_created_at=min(
                (t for t in (oldest, oldest_unreceipted) if t is not None), default=None
            ),
            refused=int(refused),
            refused_awaiting_key=int(awaiting_key),
            traffic_pending=traffic.get(MessageState.PENDING, 0),
            traffic_sent=sum(n for state, n in traffic.items() if state != MessageState.PENDING),
        )

    def delivered(self, kind: MessageKind) -> int:
        """Messages of ``kind`` the broker has acknowledged (published or receipted)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM messages WHERE kind = ? AND state != 'pending'",
                (kind.value,),
            ).fetchone()
        return int(row[0])

    def disk_free_bytes(self) -> int:
        return shutil.disk_usage(self.directory).free

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            # (a commit the disk refused: leave no transaction open for the next BEGIN)
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise


# The file name ending of each evidence media type in an export.
_SUFFIX = {MediaType.JPEG.value: ".jpg", MediaType.PNG.value: ".png", MediaType.MP4.value: ".mp4"}


def utc_seconds(epoch_s: float) -> str:
    """A time as the refusal records and the outbox status write it (UTC, to the second)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _traffic_prefix(site: str, node: str, camera: str) -> str:
    """How the keys of a camera's traffic minutes begin (ids: no "/" within them)."""
    return f"traffic/{site}/{node}/{camera}/"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


_BOOT_ID = _boot_id()


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None when
    there is no such process: with the pid, it tells one process from a later one that
    got the same pid (a node restarted as PID 1 of a new container, say)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _owner() -> str:
    pid = os.getpid()
    return f"{_BOOT_ID} {pid} {_started(pid) or '-'}"


def _owner_alive(owner: str) -> bool:
    """Whether the process that wrote a ``fired`` row (``owner``: boot id, pid and start
    time) still runs; an older row without a start time counts by its pid alone."""
    parts = owner.split(" ")
    boot, pid = parts[0], parts[1] if len(parts) > 1 else ""
    if boot != _BOOT_ID or not pid.isdigit():
        return False  # another boot: every process of it is gone
    if _started(os.getpid()) is None:
        return _pid_alive(int(pid))  # without /proc, by the pid alone
    started = _started(int(pid))
    if started is None:
        return False
    return len(parts) < 3 or parts[2] == started


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (OverflowError, ProcessLookupError):
        return False
    except PermissionError:  # (another user's process: running)
        return True
    return True


def _check_blobs(event: ViolationEvent, blobs: Sequence[EvidenceBlob]) -> None:
    listed = {(e.role, e.sha256, e.size) for e in event.evidence}
    given = {(b.ref.role, b.ref.sha256, b.ref.size) for b in blobs}
    if listed != given:
        raise ValueError(f"event {event.event_id}: the blobs given differ from its evidence list")
    for blob in blobs:
        if len(blob.data) != blob.ref.size or sha256_hex(blob.data) != blob.ref.sha256:
            raise ValueError(
                f"event {event.event_id}: blob {blob.ref.role.value} does not match its hash"
            )
        if blob.ref.size > MAX_BLOB_BYTES:
            raise ValueError(f"event {event.event_id}: blob {blob.ref.role.value} is too large")
