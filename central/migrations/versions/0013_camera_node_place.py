"""the place a camera's node names for it (its evidence prints it), beside central's own

Revision ID: 0013_camera_node_place
Revises: 0012_traffic_parts
Create Date: 2026-12-07 15:30:00

Null for every camera until its node's next status names a place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_camera_node_place"
down_revision = "0012_traffic_parts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_place", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.drop_column("node_place")
