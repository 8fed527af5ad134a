"""camera and node health as it changed, in order: the live feed replays what a client
missed while it was away

Revision ID: 0018_health_changes
Revises: 0017_traffic_part_end
Create Date: 2026-12-07 18:00:00

Empty at first: what changed before it was not kept (the feed replays changes from the
upgrade on; before them, the state now).

Downgrading drops the table with every change kept, and nothing says so: upgraded again,
a reconnect's replay starts from the changes after that upgrade (the state now for those
before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0018_health_changes"
down_revision = "0017_traffic_part_end"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", central.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_changes")),
    )
    with op.batch_alter_table("health_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_health_changes_at"), ["at"], unique=False)
        batch_op.create_index(
            "ix_health_changes_site_node_at", ["site", "node", "at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("health_changes")
