"""the newest place of each node's statuses each ingest received, kept over its restart

Revision ID: 0015_status_received
Revises: 0014_status_order
Create Date: 2026-12-07 18:00:00

Empty at first: each ingest's order starts from the next status it receives, as it did
after every restart before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0015_status_received"
down_revision = "0014_status_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_received",
        sa.Column("ingest", sa.String(length=256), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("session_at", central.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("will_taken", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_status_received_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("ingest", "node_id", name=op.f("pk_status_received")),
    )


def downgrade() -> None:
    op.drop_table("status_received")
