"""configs pushed to nodes

Revision ID: 0004_config_push
Revises: 0003_monthly_partitions
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0004_config_push"
down_revision = "0003_monthly_partitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("issued_at", central.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("pushed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_configs")),
        sa.UniqueConstraint(
            "site", "node", "version", name="uq_node_configs_site_node_version"
        ),
    )
    op.create_index(
        "ix_node_configs_site_node_issued", "node_configs", ["site", "node", "issued_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_node_configs_site_node_issued", table_name="node_configs")
    op.drop_table("node_configs")
