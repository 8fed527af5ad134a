"""node broker password

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nodes registered before this revision have no broker account until re-issued.
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("mqtt_password_hash", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("mqtt_password_hash")
