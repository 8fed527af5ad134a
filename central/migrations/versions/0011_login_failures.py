"""login_failures: failed log-ins in a row per user name, for the log-in lockout

Revision ID: 0011_login_failures
Revises: 0010_user_sessions
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0011_login_failures"
down_revision = "0010_user_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", central.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", central.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_login_failures")),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
