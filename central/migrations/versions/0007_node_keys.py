"""every key a node has signed with: rotation and revocation

Revision ID: 0007_node_keys
Revises: 0006_audit_no_truncate
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import central.models
from roadwatch.contract.signing import key_fingerprint, load_public_key_pem

revision = "0007_node_keys"
down_revision = "0006_audit_no_truncate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("added_at", central.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", central.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_keys_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_keys")),
        # (per node: nodes registered before may share a key; no new one may)
        sa.UniqueConstraint("node_id", "fingerprint", name="uq_node_keys_node_id_fingerprint"),
    )
    op.create_index(op.f("ix_node_keys_node_id"), "node_keys", ["node_id"])
    # Each registered node's key becomes its first (the time it was registered).
    bind = op.get_bind()
    registered = sa.table(
        "nodes",
        sa.column("id", sa.Integer()),
        sa.column("public_key_pem", sa.Text()),
        sa.column("created_at", central.models.UtcDateTime(timezone=True)),
    )
    nodes = bind.execute(sa.select(registered)).all()
    keys = sa.table(
        "node_keys",
        sa.column("node_id", sa.Integer()),
        sa.column("public_key_pem", sa.Text()),
        sa.column("fingerprint", sa.String()),
        sa.column("added_at", central.models.UtcDateTime(timezone=True)),
    )
    rows = [
        {"node_id": n.id, "public_key_pem": n.public_key_pem,
         "fingerprint": _fingerprint(n.public_key_pem), "added_at": n.created_at}
        for n in nodes
    ]  # fmt: skip
    if rows:
        op.bulk_insert(keys, rows)


def _fingerprint(pem: str) -> str:
    return key_fingerprint(load_public_key_pem(pem))


def downgrade() -> None:
    op.drop_index(op.f("ix_node_keys_node_id"), table_name="node_keys")
    op.drop_table("node_keys")
