"""Monthly partitions of violations on the real PostgreSQL (revision 0003): rows land in
their month, an event is stored once whatever month a re-send claims, evidence lists keep
their foreign key, a database with rows upgrades (and downgrades) with every row kept,
and SQLite stays a plain table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from central.db import alembic_config, make_engine, migrate, session_factory, transaction
from central.ingest import IngestService
from central.intake import Message
from central.models import Blob, EvidenceRef, Node, Violation
from central.partitions import (
    MONTHS_AHEAD,
    ensure_partitions,
    layout_filter,
    list_partitions,
    month_starts,
)
from central.records import KeyCache, record_batch, refresh_completeness, register_node
from central.security import new_node_token, token_digest
from central.settings import Settings
from roadwatch.cli import main
from roadwatch.contract import to_wire
from roadwatch.contract.signing import generate_private_key, load_public_key_pem, public_key_pem
from tests.central_fixtures import (
    CentralDb,
    NodeIdentity,
    ingest_settings,
    postgres_schema_url,
    signed_event,
    store_events,
    wait_for,
)
from tests.services import BrokerAddress

pytestmark = pytest.mark.integration

JAN = datetime(2026, 1, 15, 8, 30, tzinfo=UTC)
FEB = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)
FAR = datetime(2025, 7, 1, tzinfo=UTC)  # (a month long past: central takes no future)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty schema on the real PostgreSQL (dropped afterwards)."""
    urls = postgres_schema_url()
    url = next(urls)
    try:
        yield url
    finally:
        for _ in urls:
            pass


@pytest.fixture
def pg(pg_url: str) -> Iterator[CentralDb]:
    engine = make_engine(pg_url)
    try:
        yield CentralDb("postgresql", pg_url, engine)
    finally:
        engine.dispose()


def node_in(db: CentralDb) -> NodeIdentity:
    site = f"t{uuid.uuid4().hex[:10]}"
    key = generate_private_key()
    with transaction(session_factory(db.engine)) as session:
        pem = public_key_pem(key.public_key()).decode("ascii")
        reg = register_node(session, site=site, node="node-01", public_key_pem=pem)
    return NodeIdentity(site, "node-01", key, reg.token)


class KeysBefore0007(KeyCache):
    """Node keys as the ingest read them before migration 0007: the node's one key."""

    def lookup(self, session: Any, site: str, node: str) -> Any:
        pem = session.scalar(
            select(Node.public_key_pem).where(Node.site == site, Node.node == node)
        )
        return None if pem is None else load_public_key_pem(pem)


def node_before_0007(db: CentralDb) -> NodeIdentity:
    """A node registered as central did before migration 0007 (no ``node_keys`` yet)."""
    site, key, token = f"t{uuid.uuid4().hex[:10]}", generate_private_key(), new_node_token()
    with transaction(session_factory(db.engine)) as session:
        # (a core insert names only the columns given and those with defaults: the schema
        # of then has none of the node columns added since)
        session.execute(
            insert(Node).values(site=site, node="node-01",
                token_hash=token_digest(token),
                public_key_pem=public_key_pem(key.public_key()).decode("ascii"))
        )  # fmt: skip
    return NodeIdentity(site, "node-01", key, token)


def store_before_0007(db: CentralDb, node: NodeIdentity, events: list[Any]) -> list[int]:
    """``events`` stored as the ingest of a schema before 0007 stored them."""
    with transaction(session_factory(db.engine)) as session:
        stored = record_batch(
            session, [Message(node.topic(), to_wire(e)) for e in events], KeysBefore0007()
        )
    assert not stored.quarantined, stored.quarantined
    return stored.new_violation_ids


def where(engine: Engine) -> dict[str, str]:
    """event id -> the partition that holds its row."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, tableoid::regclass::text FROM violations"))
        return dict(rows.all())


def test_rows_land_in_their_month_or_wait_in_default_until_it_is_made(pg: CentralDb) -> None:
    migrate(pg.engine)
    node = node_in(pg)
    now = datetime.now(UTC).replace(microsecond=0)
    events = [signed_event(node, occurred_at=t) for t in (JAN, FEB, now, FAR)]
    ids = store_events(pg, node, events)
    this_month = f"violations_{now:%Y_%m}"
    assert where(pg.engine) == {
        events[0].event_id: "violations_default",  # no January partition yet
        events[1].event_id: "violations_default",
        events[2].event_id: this_month,
        events[3].event_id: "violations_default",
    }
    # Ensuring makes the months ahead of "today" and every month waiting in the default
    # partition, and moves those rows into their months.
    made = ensure_partitions(pg.engine, months_ahead=1, today=date(2025, 12, 20))
    assert made == [
        "violations_2025_07",
        "violations_2025_12",
        "violations_2026_01",
        "violations_2026_02",
    ]
    assert ensure_partitions(pg.engine, months_ahead=1, today=date(2025, 12, 20)) == []
    # The months that received rows were analyzed at once, so the planner has their
    # column statistics instead of guessing; the month made empty was left alone.
    with pg.engine.connect() as conn:
        analyzed = set(
            conn.scalars(
                text(
                    "SELECT DISTINCT tablename FROM pg_stats "
                    "WHERE schemaname = current_schema() AND tablename LIKE 'violations_%'"
                )
            )
        )
    assert analyzed >= {"violations_2026_01", "violations_2026_02", "violations_2025_07"}
    assert "violations_2025_12" not in analyzed
    assert where(pg.engine) == {
        events[0].event_id: "violations_2026_01",
        events[1].event_id: "violations_2026_02",
        events[2].event_id: this_month,
        events[3].event_id: "violations_2025_07",
    }
    # Same ids, evidence lists and ORM access as before the move.
    with session_factory(pg.engine)() as session:
        for vid, event in zip(ids, events, strict=True):
            row = session.get(Violation, vid)
            assert row is not None and row.event_id == event.event_id
            assert row.occurred_at == event.occurred_at
            refs = session.scalars(select(EvidenceRef.role).where(EvidenceRef.violation_id == vid))
            assert sorted(refs) == sorted(r.role.value for r in event.evidence)
    names = [p.name for p in list_partitions(pg.engine)]
    assert {"violations_2026_01", "violations_2026_02", this_month} <= set(names)
    assert "violations_default" in names


def test_an_event_is_stored_once_whatever_month_a_resend_claims(pg: CentralDb) -> None:
    migrate(pg.engine)
    node = node_in(pg)
    event = signed_event(node, occurred_at=JAN)
    [vid] = store_events(pg, node, [event])
    sessions = session_factory(pg.engine)
    # A re-send is a duplicate.
    with transaction(sessions) as session:
        again = record_batch(session, [Message(node.topic(), to_wire(event))], KeyCache())
    assert (again.accepted, again.duplicates, again.held_event_ids) == (0, 1, [event.event_id])
    # The same id with another time (another month) is refused as a reused id...
    other = signed_event(node, event_id=event.event_id, occurred_at=FEB)
    with transaction(sessions) as session:
        reused = record_batch(session, [Message(node.topic(), to_wire(other))], KeyCache())
    assert reused.quarantined == {"reused_event_id": 1} and reused.accepted == 0
    # ... and the database itself keeps the id unique across months, whoever inserts.
    with pg.engine.begin() as conn:
        copied = conn.execute(
            text("INSERT INTO violations SELECT * FROM violations WHERE id = :id"), {"id": vid}
        )
        assert copied.rowcount == 0
        moved = conn.execute(
            text(
                "INSERT INTO violations (event_id, type, site, node, camera, occurred_at, "
                "received_at, vehicle_class, explanation, payload, payload_sha256, "
                "evidence_count, evidence_complete, status, version) "
                "SELECT event_id, type, site, node, camera, :t, received_at, vehicle_class, "
                "explanation, payload, payload_sha256, evidence_count, evidence_complete, "
                "status, version FROM violations WHERE id = :id"
            ),
            {"t": FEB, "id": vid},
        )
        assert moved.rowcount == 0
    with sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Violation).where(Violation.event_id == event.event_id)
        )
    assert count == 1


def test_evidence_lists_keep_their_foreign_key(pg: CentralDb) -> None:
    migrate(pg.engine)
    node = node_in(pg)
    [vid] = store_events(pg, node, [signed_event(node, occurred_at=FEB)])
    with pytest.raises(IntegrityError), transaction(session_factory(pg.engine)) as session:
        orphan = {"role": "x", "sha256": "ef" * 32, "media_type": "image/jpeg", "size": 1}
        session.add(EvidenceRef(violation_id=vid + 10_000, **orphan))
    with pg.engine.begin() as conn:  # removing a violation's key removes its evidence list
        conn.execute(text("DELETE FROM violations WHERE id = :id"), {"id": vid})
        conn.execute(text("DELETE FROM violation_keys WHERE id = :id"), {"id": vid})
        left = conn.execute(
            text("SELECT count(*) FROM evidence_refs WHERE violation_id = :id"), {"id": vid}
        ).scalar_one()
    assert left == 0


def test_a_database_with_rows_upgrades_and_downgrades_with_every_row_kept(
    pg: CentralDb,
) -> None:
    from alembic import command

    cfg = alembic_config(pg.url)
    command.upgrade(cfg, "0002")
    node = node_before_0007(pg)
    events = [signed_event(node, occurred_at=t) for t in (JAN, JAN, FEB, FAR)]
    sessions = session_factory(pg.engine)
    ids = store_before_0007(pg, node, events)
    with transaction(sessions) as session:  # one blob of the first event has arrived
        ref = events[0].evidence[0]
        session.add(Blob(sha256=ref.sha256, size=ref.size, media_type=ref.media_type.value))

    def snapshot() -> list[tuple[object, ...]]:
        with pg.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT v.id, v.event_id, v.occurred_at, v.payload_sha256, "
                    "array_agg(r.role ORDER BY r.role) FROM violations v "
                    "JOIN evidence_refs r ON r.violation_id = v.id "
                    "GROUP BY v.id, v.event_id, v.occurred_at, v.payload_sha256 ORDER BY v.id"
                )
            )
            return [tuple(r) for r in rows.all()]

    before = snapshot()
    assert len(before) == 4
    migrate(pg.engine)  # 0002 -> head, with the partitions of the months that hold rows
    assert snapshot() == before
    assert where(pg.engine) == {
        events[0].event_id: "violations_2026_01",
        events[1].event_id: "violations_2026_01",
        events[2].event_id: "violations_2026_02",
        events[3].event_id: "violations_2025_07",
    }
    # The sequence goes on after the copied ids; completeness still finds the blobs.
    [new_id] = store_events(pg, node, [signed_event(node, occurred_at=FEB)])
    assert new_id > max(ids)
    with transaction(sessions) as session:
        assert refresh_completeness(session, ids[:1]) == ids[:1]  # the clip is still missing
    # The schema matches the models, up to the partition layout.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from central.models import Base

    with pg.engine.connect() as conn:
        plain = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert any(d[0] == "remove_table" and d[1].name == "violation_keys" for d in plain)
        layout = MigrationContext.configure(
            conn, opts={"include_object": layout_filter("postgresql")}
        )
        assert compare_metadata(layout, Base.metadata) == []

    after = snapshot()
    command.downgrade(cfg, "0002")
    assert snapshot() == after
    with pg.engine.connect() as conn:
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = 'violations'::regclass"))
        assert kind.scalar_one() == "r"
        assert conn.execute(text("SELECT to_regclass('violation_keys')")).scalar_one() is None
    [plain_id] = store_before_0007(pg, node, [signed_event(node, occurred_at=JAN)])
    assert plain_id > new_id
    migrate(pg.engine)  # and up again
    assert len(where(pg.engine)) == 6


def test_sqlite_stays_a_plain_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/central.db"
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            tables = set(
                conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars()
            )
        assert "violations" in tables and "violation_keys" not in tables
        assert not any(t.startswith("violations_") for t in tables)
        assert ensure_partitions(engine) == [] and list_partitions(engine) == []
    finally:
        engine.dispose()
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    assert main(["central", "partitions", "ensure"]) == 0
    assert "PostgreSQL only; nothing to do" in capsys.readouterr().out


def test_partitions_command(
    pg: CentralDb, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", pg.url)
    assert main(["central", "partitions", "ensure", "--months-ahead", "6"]) == 0
    out = capsys.readouterr().out
    today = datetime.now(UTC).date()
    # migrate (run first) made three months ahead; the command adds the next three
    assert out.startswith("central: made violations_") and out.count("violations_") == 3
    assert main(["central", "partitions", "ensure", "--months-ahead", "6"]) == 0
    assert "every partition is there" in capsys.readouterr().out
    assert main(["central", "partitions", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"violations_{today:%Y_%m}\tFOR VALUES FROM" in listed
    assert "violations_default\tDEFAULT" in listed
    assert main(["central", "partitions", "ensure", "--months-ahead", "-1"]) == 2


def test_a_running_ingest_makes_the_coming_months(
    pg: CentralDb, mqtt_broker: BrokerAddress, tmp_path: Path
) -> None:
    migrate(pg.engine)
    node = node_in(pg)
    last = month_starts(datetime.now(UTC).date(), MONTHS_AHEAD)[-1]
    name = f"violations_{last:%Y_%m}"
    with pg.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
    base = Settings(database_url=pg.url, data_dir=tmp_path)
    settings = ingest_settings(base, mqtt_broker, node.site)
    with IngestService(settings, pg.engine) as ingest:
        assert ingest.wait_ready(10), "ingest did not subscribe"
        wait_for(f"{name} made again", lambda: name in {p.name for p in list_partitions(pg.engine)})
