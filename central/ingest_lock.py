"""One ingest per MQTT client id: a lock taken at start, held until the ingest stops.

Two ingests with the same client id fight over the broker: each connection it takes
closes the other's, and both reconnect within a second, forever. The lock refuses the
second one at its start instead. On PostgreSQL it is a session-level advisory lock on a
stable 64-bit hash of the id, held by a connection of its own (it covers every host that
shares the database); on SQLite, where every process is on the database's host, an OS
file lock on a file beside the database.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from central.db import make_engine
from roadwatch.errors import UserError

log = logging.getLogger(__name__)

KEEP_S = 5.0  # how often the PostgreSQL lock's connection is checked


def lock_key(client_id: str) -> int:
    """A stable signed 64-bit key for ``client_id`` (Python's hash() changes per run)."""
    digest = hashlib.blake2b(f"roadwatch-ingest:{client_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _taken_message(client_id: str) -> str:
    return (
        f"another ingest runs with the MQTT client id {client_id!r}: give each ingest its"
        " own ROADWATCH_MQTT_CLIENT_ID (two with one id close each other's broker"
        " connection, forever)"
    )


class ClientIdLock:
    """Held from ``take()`` to ``release()``; ``take()`` raises UserError if it is held.

    If the PostgreSQL connection holding it is lost, the server has released the lock:
    ``keep()`` (called every few seconds by the ingest) takes it again on a new
    connection. While the database is away it keeps trying; if another ingest with the
    same id took the lock meanwhile, ``keep()`` returns the reason and the ingest stops.
    """

    def __init__(self, database_url: str, client_id: str) -> None:
        self.client_id = client_id
        # (an engine of its own: the lock's connection takes no place in the ingest's pool)
        self._engine = make_engine(database_url, pool_size=1)
        self._key = lock_key(client_id)
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None
        self._mutex = threading.Lock()
        self._lost_said = False

    @property
    def postgresql(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None

    def take(self) -> None:
        if self.postgresql:
            if not self._take_pg():
                raise UserError(_taken_message(self.client_id))
        else:
            self._take_file()

    def _take_pg(self) -> bool:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}))
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _take_file(self) -> None:
        database = self._engine.url.database
        if not database or database == ":memory:":
            return  # (one process only can see an in-memory database)
        path = Path(f"{database}.ingest-{self._key & 0xFFFFFFFFFFFFFFFF:016x}.lock")
        handle = path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(_taken_message(self.client_id)) from None
        os.set_inheritable(handle.fileno(), False)
        self._file = handle

    def keep(self) -> str | None:
        """Check the lock is still held, taking it again if its connection was lost;
        the reason to stop when another ingest took it meanwhile, else None."""
        if not self.postgresql:
            return None
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT 1"))
                    return None
                except DBAPIError:
                    self._conn.invalidate()
                    self._conn.close()
                    self._conn = None
                    log.warning(
                        "the database connection holding the ingest's lock on client id %r"
                        " was lost; taking the lock again",
                        self.client_id,
                    )
            try:
                got = self._take_pg()
            except DBAPIError as exc:
                if not self._lost_said:
                    self._lost_said = True
                    log.warning(
                        "cannot take the ingest's lock on client id %r again (%s); trying again",
                        self.client_id,
                        str(exc.orig or exc).splitlines()[0],
                    )
                return None
            self._lost_said = False
            if not got:
                return _taken_message(self.client_id)
            log.warning("the ingest's lock on client id %r is held again", self.client_id)
            return None

    def release(self) -> None:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                    self._conn.close()
                except DBAPIError:
                    self._conn.invalidate()
                    self._conn.close()
                self._conn = None
            if self._file is not None:
                self._file.close()  # (closing it releases the flock)
                self._file = None
            self._engine.dispose()
