"""when each ingest last held a newer place of a node's statuses: the rows of an ingest
whose broker session is gone are let go

Revision ID: 0019_status_received_at
Revises: 0018_health_changes
Create Date: 2026-12-07 19:00:00

Every row stored before counts as received at the upgrade (the database's clock): an
ingest gone before it is let go once the broker's session expiry and a day more have
passed since. Downgrading drops only these times (every row is kept, as before: for good).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0019_status_received_at"
down_revision = "0018_health_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (SQLite adds no column whose default is not a constant: the table is made again.)
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("status_received", recreate="always" if sqlite else "auto") as batch:
        batch.add_column(
            sa.Column(
                "received_at",
                central.models.UtcDateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("status_received") as batch:
        batch.drop_column("received_at")
