"""monthly partitions of violations (PostgreSQL)

Revision ID: 0003_monthly_partitions
Revises: 0002
Create Date: 2026-11-23 16:00:00

On PostgreSQL the violations table becomes range-partitioned by UTC month of
``occurred_at`` (``violations_YYYY_MM``, plus ``violations_default`` so that no event is
ever refused for want of a partition). A partitioned table's unique keys must hold the
partition key, so:

- the primary key is ``(id, occurred_at)`` and the event-id key ``(event_id,
  occurred_at)``; ids still come from the one sequence;
- ``violation_keys`` (not partitioned) holds every violation's ``id`` and ``event_id``,
  each unique across all months. A trigger claims the event id there before a row goes
  in and skips the row when the id is already held, so an event is stored once however
  often and to whichever replica it is sent;
- ``evidence_refs.violation_id`` references ``violation_keys.id`` (ON DELETE CASCADE).

``violations_ensure_month(date)`` creates a month's partition, moving any rows of that
month out of the default partition first. Existing rows are copied into their months;
ids, sequence and evidence lists are kept. SQLite is left as it is.
"""

from __future__ import annotations

from alembic import op

revision = "0003_monthly_partitions"
down_revision = "0002"
branch_labels = None
depends_on = None

# The violations indexes of revision 0001: (name, columns, predicate).
INDEXES = [
    ("ix_violations_status_occurred", "status, occurred_at", None),
    ("ix_violations_camera_occurred", "camera, occurred_at", None),
    ("ix_violations_type_occurred", "type, occurred_at", None),
    ("ix_violations_type_status_occurred", "type, status, occurred_at", None),
    ("ix_violations_plate", "plate_text", None),
    ("ix_violations_plate_corrected", "plate_corrected", None),
    ("ix_violations_occurred", "occurred_at", None),
    ("ix_violations_queue", "occurred_at, id", "status IN ('new', 'in_review')"),
]

ENSURE_MONTH = """
CREATE FUNCTION violations_ensure_month(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', month::timestamp) AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month::timestamp) + interval '1 month')
                      AT TIME ZONE 'UTC';
    part text := 'violations_' || to_char(month, 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('violations_ensure_month'));
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM violations_default WHERE occurred_at >= lo AND occurred_at < hi)
    THEN
        -- Rows of this month wait in the default partition: move them, then attach.
        EXECUTE format('CREATE TABLE %I (LIKE violations INCLUDING DEFAULTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM violations_default '
            'WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
        EXECUTE format('ALTER TABLE violations ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF violations FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
    END IF;
    RETURN part;
END $$
"""

CLAIM_KEY = """
CREATE FUNCTION violations_claim_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO violation_keys (id, event_id, occurred_at)
    VALUES (NEW.id, NEW.event_id, NEW.occurred_at)
    ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;  -- the event is held already, perhaps in another month: skip it
    END IF;
    RETURN NEW;
END $$
"""

# Months with rows, and the last month to three ahead of now.
MONTHS_NEEDED = """
SELECT violations_ensure_month(m::date) FROM (
    SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') AS m FROM {table}
    UNION
    SELECT generate_series(
        date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month',
        date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
        interval '1 month')
) AS months ORDER BY 1
"""


def _create_indexes(table: str) -> None:
    for name, columns, where in INDEXES:
        predicate = f" WHERE {where}" if where else ""
        op.execute(f"CREATE INDEX {name} ON {table} ({columns}){predicate}")


def _drop_indexes() -> None:
    for name, _columns, _where in INDEXES:
        op.execute(f"DROP INDEX {name}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE evidence_refs DROP CONSTRAINT fk_evidence_refs_violation_id_violations")
    op.execute("ALTER TABLE violations RENAME TO violations_unpartitioned")
    op.execute(
        "ALTER TABLE violations_unpartitioned RENAME CONSTRAINT pk_violations "
        "TO pk_violations_unpartitioned"
    )
    op.execute(
        "ALTER TABLE violations_unpartitioned RENAME CONSTRAINT uq_violations_event_id "
        "TO uq_violations_unpartitioned_event_id"
    )
    _drop_indexes()
    op.execute(
        "CREATE TABLE violations (LIKE violations_unpartitioned INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (occurred_at)"
    )
    op.execute("ALTER TABLE violations ADD CONSTRAINT pk_violations PRIMARY KEY (id, occurred_at)")
    op.execute(
        "ALTER TABLE violations ADD CONSTRAINT uq_violations_event_id "
        "UNIQUE (event_id, occurred_at)"
    )
    _create_indexes("violations")
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s OWNED BY violations.id', "
        "pg_get_serial_sequence('violations_unpartitioned', 'id')); END $$"
    )
    op.execute("CREATE TABLE violations_default PARTITION OF violations DEFAULT")
    op.execute(ENSURE_MONTH)
    op.execute(MONTHS_NEEDED.format(table="violations_unpartitioned"))
    op.execute("INSERT INTO violations SELECT * FROM violations_unpartitioned")

    op.execute(
        "CREATE TABLE violation_keys ("
        "id bigint NOT NULL, event_id varchar(36) NOT NULL, occurred_at timestamptz NOT NULL, "
        "CONSTRAINT pk_violation_keys PRIMARY KEY (id), "
        "CONSTRAINT uq_violation_keys_event_id UNIQUE (event_id))"
    )
    op.execute(
        "INSERT INTO violation_keys (id, event_id, occurred_at) "
        "SELECT id, event_id, occurred_at FROM violations_unpartitioned"
    )
    op.execute(
        "ALTER TABLE evidence_refs ADD CONSTRAINT fk_evidence_refs_violation_id_violation_keys "
        "FOREIGN KEY (violation_id) REFERENCES violation_keys (id) ON DELETE CASCADE"
    )
    op.execute(CLAIM_KEY)
    op.execute(
        "CREATE TRIGGER violations_claim_key BEFORE INSERT ON violations "
        "FOR EACH ROW EXECUTE FUNCTION violations_claim_key()"
    )
    op.execute("DROP TABLE violations_unpartitioned")
    op.execute("ANALYZE violations")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE violations_unpartitioned (LIKE violations INCLUDING DEFAULTS)")
    op.execute("INSERT INTO violations_unpartitioned SELECT * FROM violations")
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s OWNED BY violations_unpartitioned.id', "
        "pg_get_serial_sequence('violations', 'id')); END $$"
    )
    op.execute(
        "ALTER TABLE evidence_refs DROP CONSTRAINT fk_evidence_refs_violation_id_violation_keys"
    )
    op.execute("DROP TABLE violations")  # with its partitions, indexes and trigger
    op.execute("DROP FUNCTION violations_claim_key()")
    op.execute("DROP FUNCTION violations_ensure_month(date)")
    op.execute("DROP TABLE violation_keys")
    op.execute("ALTER TABLE violations_unpartitioned RENAME TO violations")
    op.execute("ALTER TABLE violations ADD CONSTRAINT pk_violations PRIMARY KEY (id)")
    op.execute("ALTER TABLE violations ADD CONSTRAINT uq_violations_event_id UNIQUE (event_id)")
    _create_indexes("violations")
    op.execute(
        "ALTER TABLE evidence_refs ADD CONSTRAINT fk_evidence_refs_violation_id_violations "
        "FOREIGN KEY (violation_id) REFERENCES violations (id) ON DELETE CASCADE"
    )
