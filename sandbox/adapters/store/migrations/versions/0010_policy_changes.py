"""Policy changes with a reason, the version the editor started from, and an optional second
approval: a version may be proposed (not in force) until another person approves or
declines it. Existing rows were applied directly, so they read as applied with no reason.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("base_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="applied"))
        batch_op.add_column(sa.Column("decided_by", sa.String(length=64), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("decision_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        for column in ("decision_reason", "decided_at", "decided_by", "state", "base_version", "reason"):
            batch_op.drop_column(column)
