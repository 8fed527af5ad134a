"""the audit log cannot be emptied with TRUNCATE either

Revision ID: 0006_audit_no_truncate
Revises: 0005_traffic_per_node
Create Date: 2026-12-06 11:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0006_audit_no_truncate"
down_revision = "0005_traffic_per_node"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Row triggers do not fire on TRUNCATE; PostgreSQL has statement triggers for it.
    # (SQLite has no TRUNCATE: its "DELETE FROM" fires the row trigger already there.)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
