"""the order of each node's statuses: an old status published again is refused

Revision ID: 0014_status_order
Revises: 0013_camera_node_place
Create Date: 2026-12-07 15:30:00

Nodes registered before hold no place yet: the first ordered status of each is taken.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0014_status_order"
down_revision = "0013_camera_node_place"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column(
                "status_session_at", central.models.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch.add_column(sa.Column("status_sequence", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column(
                "status_will_taken", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("status_will_taken")
        batch.drop_column("status_sequence")
        batch.drop_column("status_session_at")
