"""where a part of a traffic minute ended, when its node says so (it stopped counting
before the minute's end: the node stopped, its camera's lanes changed)

Revision ID: 0017_traffic_part_end
Revises: 0016_status_wills_replayed
Create Date: 2026-12-07 18:00:00

Null for every row stored before, as for a part that ran to its minute's end.

Downgrading drops every part's end, and nothing says so: the occupancy of a part that
stopped before its minute's end is weighed as running to the minute's end (as the code
before this migration weighed it), and upgrading again does not bring the ends back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0017_traffic_part_end"
down_revision = "0016_status_wills_replayed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("part_end", central.models.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.drop_column("part_end")
