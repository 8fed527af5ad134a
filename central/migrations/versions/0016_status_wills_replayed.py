"""a node's last will shown published again in its session: its own will taken once more

Revision ID: 0016_status_wills_replayed
Revises: 0015_status_received
Create Date: 2026-12-07 18:30:00

0 for every node: its session's will is taken as before until a status of the session
after a will taken shows that will was published again.

Downgrading drops every node's count, and nothing says so: upgraded again, each node
starts from 0, so a will of its session held that was shown published again is taken
once more (as the code before this migration took it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_status_wills_replayed"
down_revision = "0015_status_received"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column("status_wills_replayed", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("status_wills_replayed")
