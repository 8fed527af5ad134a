"""Database engine, sessions and migrations, built by factories from the settings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    any_,
    bindparam,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import InstrumentedAttribute, ORMExecuteState, Session, sessionmaker

from central.revisions import Direction, Revision

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_ID = 0x526F6164  # PostgreSQL advisory lock held while migrating
READ_ONLY = "roadwatch_read_only"  # execution option of SQLite's reading sessions


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and serialized writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=pool_size
        )
        _sqlite_pragmas(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # No pre-ping: it costs a round trip on every checkout (twice per request here). A
    # connection broken by a database restart fails one request and is then replaced.
    return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling is switched off so BEGIN IMMEDIATE below
        # takes the write lock at the start: two writers then queue instead of failing
        # with "database is locked" when one upgrades a read to a write.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A reader's BEGIN takes no lock: in WAL mode it reads a snapshot beside writers.
        reading = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that only read (they must not write).

    On PostgreSQL they run in autocommit: each statement its own snapshot, as it is inside
    a READ COMMITTED transaction anyway, without the BEGIN and COMMIT round trips (a list
    request goes from six round trips to two). On SQLite they begin a plain deferred
    transaction, which reads beside a writer instead of queueing for the write lock.
    """
    if engine.dialect.name == "postgresql":
        reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        reader = engine.execution_options(**{READ_ONLY: True})
    factory = sessionmaker(reader, expire_on_commit=False)

    @event.listens_for(factory, "before_flush")
    def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
        raise RuntimeError("a reading session (a GET request) must not write")

    @event.listens_for(factory, "do_orm_execute")
    def _refuse_dml(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            raise RuntimeError("a reading session (a GET request) must not write")

    return factory


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def one_of(
    session: Session, column: InstrumentedAttribute[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL the values travel as one array (``= ANY``), so
    the statement's text is the same however many there are: the driver converts it once
    and caches it, where a 500-item IN list costs that conversion on every batch."""
    distinct = sorted(set(values))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, distinct, type_=ARRAY(column.type)))
    return column.in_(distinct)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection to migrate on; on PostgreSQL it holds the migration lock, so that
    replicas starting together (or a ``migrate`` beside them) take turns."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            conn.commit()
        try:
            yield conn
        finally:
            if engine.dialect.name == "postgresql":
                conn.rollback()  # (a migration that failed left its transaction open)
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_ID})
                conn.commit()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (replicas starting together take turns)
    and make the coming months' partitions of violations on PostgreSQL."""
    with migration_lock(engine) as conn:
        move_schema(conn, Direction.UP, "head")
    ensure_coming_partitions(engine)


def move_schema(conn: Connection, direction: Direction, target: str) -> None:
    """Upgrade or downgrade the schema on ``conn`` to revision ``target``."""
    from alembic import command

    cfg = alembic_config(conn.engine.url.render_as_string(hide_password=False))
    cfg.attributes["connection"] = conn
    if direction is Direction.UP:
        command.upgrade(cfg, target)
    elif direction is Direction.DOWN:
        command.downgrade(cfg, target)
    conn.commit()


def ensure_coming_partitions(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        from central.partitions import ensure_partitions

        ensure_partitions(engine)  # the months ahead, where violations are partitioned


def revisions() -> list[Revision]:
    """Central's migrations, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [
        Revision(script.revision, Path(script.path).stem)
        for script in reversed(list(scripts.walk_revisions()))
    ]


def schema_revision(conn: Connection) -> str | None:
    """The revision the database on ``conn`` is at (None: no migration has run on it)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return schema_revision(conn)
