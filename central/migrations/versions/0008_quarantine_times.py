"""a message refused again for the same reason is counted on its first quarantine row

Revision ID: 0008_quarantine_times
Revises: 0007_node_keys
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0008_quarantine_times"
down_revision = "0007_node_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("times", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "last_received_at", central.models.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(batch_op.f("ix_quarantine_payload_sha256"), ["payload_sha256"])
    # Rows kept before are each one refusal, last seen when received (their payloads may be
    # cut short, so they are not hashed: a message refused again starts a row of its own).
    op.execute("UPDATE quarantine SET last_received_at = received_at")


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_payload_sha256"))
        batch_op.drop_column("last_received_at")
        batch_op.drop_column("times")
        batch_op.drop_column("payload_sha256")
