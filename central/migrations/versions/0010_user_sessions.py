"""users.session_generation: a password change or disabling ends the user's sessions

Revision ID: 0010_user_sessions
Revises: 0009_health_last_seen
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_user_sessions"
down_revision = "0009_health_last_seen"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tokens issued before carry no generation, read as 0: they stay valid until they end.
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
