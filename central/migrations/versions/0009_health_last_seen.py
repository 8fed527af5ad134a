"""when central last heard a node's status and each camera in it

Revision ID: 0009_health_last_seen
Revises: 0008_quarantine_times
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0009_health_last_seen"
down_revision = "0008_quarantine_times"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column(
                "status_received_at", central.models.UtcDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("cameras") as batch:
        batch.add_column(
            sa.Column("seen_at", central.models.UtcDateTime(timezone=True), nullable=True)
        )
    # Until their next status, what was heard before counts from its last change: a node
    # that has gone quiet since shows as silent instead of as it last was.
    op.execute(
        "UPDATE nodes SET status_received_at = updated_at WHERE status_sent_at IS NOT NULL"
    )
    op.execute("UPDATE cameras SET seen_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("seen_at")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("status_received_at")
