"""Monthly partitions of the violations table on PostgreSQL.

Migration ``0003_monthly_partitions`` partitions ``violations`` by UTC month of
``occurred_at`` and installs ``violations_ensure_month(date)``, which creates one month's
partition (moving that month's rows out of ``violations_default`` if any wait there).
This module creates the months ahead of time and reports what is where; on SQLite,
which is not partitioned, it does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

MONTHS_AHEAD = 3
PARTITION_RE = re.compile(r"^violations_(\d{4}_\d{2}|default)$")
# Tables and constraints that exist only in PostgreSQL's partitioned layout.
KEYS_TABLE = "violation_keys"
LAYOUT_CONSTRAINTS = frozenset(
    {
        "fk_evidence_refs_violation_id_violations",
        "fk_evidence_refs_violation_id_violation_keys",
        "uq_violations_event_id",
    }
)


def month_starts(today: date, ahead: int) -> list[date]:
    """The first day of this month and of the ``ahead`` months after it."""
    if ahead < 0:
        raise ValueError("months ahead must be zero or more")
    out = []
    year, month = today.year, today.month
    for _ in range(ahead + 1):
        out.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.oid = to_regclass('violations')"
        )
    ).first()
    return found is not None


def ensure_partitions(
    engine: Engine, months_ahead: int = MONTHS_AHEAD, today: date | None = None
) -> list[str]:
    """Create the partitions of this month and ``months_ahead`` more, and of every month
    with rows waiting in the default partition (late or back-filled events, which move
    into their month); the new names.

    Safe to run any time and from several replicas at once (the database function takes
    an advisory lock). Nothing happens where violations are not partitioned.
    """
    ahead = set(month_starts(today or datetime.now(UTC).date(), months_ahead))
    with engine.begin() as conn:
        if not is_partitioned(conn):
            return []
        waiting = set(
            conn.execute(
                text(
                    "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date "
                    "FROM violations_default"
                )
            ).scalars()
        )
        made = {
            m: conn.execute(text("SELECT violations_ensure_month(:m)"), {"m": m}).scalar_one()
            for m in sorted(ahead | waiting)
        }
        moved = [name for m, name in made.items() if name is not None and m in waiting]
        if moved:
            # Rows moved in without statistics: until autovacuum gets to them the planner
            # would guess, and a plate search then scans whole months (0.4 ms -> 460 ms
            # with 1 M rows). The default partition lost them and is counted again too.
            for name in [*moved, "violations_default"]:
                conn.execute(text(f'ANALYZE "{name}"'))
    return [name for name in made.values() if name is not None]


@dataclass(frozen=True)
class Partition:
    name: str
    bounds: str
    rows: int


def list_partitions(engine: Engine) -> list[Partition]:
    """Each partition of violations with its bounds and (estimated) row count."""
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return []
        rows = conn.execute(
            text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), "
                "GREATEST(c.reltuples, 0)::bigint "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass('violations') ORDER BY c.relname"
            )
        ).all()
    return [Partition(name, bounds, count) for name, bounds, count in rows]


def layout_filter(dialect: str) -> Callable[..., bool]:
    """Alembic ``include_object`` hook: leave PostgreSQL's partition layout out of model
    comparison (partitions, the event-key table, the keys and foreign key it changes)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if dialect != "postgresql":
            return True
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        if PARTITION_RE.fullmatch(table or "") or table == KEYS_TABLE:
            return False
        return not (
            type_ in {"unique_constraint", "foreign_key_constraint"} and name in LAYOUT_CONSTRAINTS
        )

    return include
