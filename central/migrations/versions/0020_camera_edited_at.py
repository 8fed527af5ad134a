"""when each camera was last named or placed on central, kept apart from when it came to
be in its state

Revision ID: 0020_camera_edited_at
Revises: 0019_status_received_at
Create Date: 2026-12-08 01:00:00

An edit used to stamp the camera's ``updated_at``, which the camera list and the live
feed read as when the camera came to be in its state: a camera down since 10:00 renamed
at 11:00 read "down since 11:00". Every camera starts with no edit time (the live feed
sends an edit made after the upgrade). Downgrading drops only these times: an edit then
stamps ``updated_at`` again, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models

revision = "0020_camera_edited_at"
down_revision = "0019_status_received_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.add_column(
            sa.Column("edited_at", central.models.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("edited_at")
