"""traffic minutes are per node: two nodes of a site may each have a camera of one name

Revision ID: 0005_traffic_per_node
Revises: 0004_config_push
Create Date: 2026-12-06 11:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0005_traffic_per_node"
down_revision = "0004_config_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (batch mode: SQLite rebuilds the table to change a constraint; PostgreSQL alters it)
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.drop_constraint("uq_traffic_minute", type_="unique")
        batch_op.create_unique_constraint(
            "uq_traffic_minute", ["site", "node", "camera", "minute_start", "lane"]
        )


def downgrade() -> None:
    with op.batch_alter_table("traffic", schema=None) as batch_op:
        batch_op.drop_constraint("uq_traffic_minute", type_="unique")
        batch_op.create_unique_constraint(
            "uq_traffic_minute", ["site", "camera", "minute_start", "lane"]
        )
