"""traffic minutes in parts: a minute whose counting began within it (its node restarted,
its camera's lanes changed) comes in parts, each kept

Revision ID: 0012_traffic_parts
Revises: 0011_login_failures
Create Date: 2026-12-07 09:00:00

Every row stored before is a whole minute: its part begins with the minute.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0012_traffic_parts"
down_revision = "0011_login_failures"
branch_labels = None
depends_on = None

_MINUTE = ["site", "node", "camera", "minute_start", "lane"]


def upgrade() -> None:
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("part_start", central.models.UtcDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE traffic SET part_start = minute_start")
    # (batch mode: SQLite rebuilds the table to change a constraint; PostgreSQL alters it)
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.alter_column(
            "part_start", existing_type=central.models.UtcDateTime(timezone=True), nullable=False
        )
        batch_op.drop_constraint("uq_traffic_minute", type_="unique")
        batch_op.create_unique_constraint("uq_traffic_minute", [*_MINUTE, "part_start"])


def downgrade() -> None:
    # One row a minute again: each minute keeps its earliest part, the one the code before
    # this revision kept, and its later parts are dropped.
    op.execute(
        "DELETE FROM traffic WHERE part_start <> minute_start AND EXISTS (SELECT 1 FROM"
        " traffic AS whole WHERE whole.site = traffic.site AND whole.node = traffic.node"
        " AND whole.camera = traffic.camera AND whole.minute_start = traffic.minute_start"
        " AND whole.lane = traffic.lane AND whole.part_start < traffic.part_start)"
    )
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.drop_constraint("uq_traffic_minute", type_="unique")
        batch_op.create_unique_constraint("uq_traffic_minute", _MINUTE)
        batch_op.drop_column("part_start")
