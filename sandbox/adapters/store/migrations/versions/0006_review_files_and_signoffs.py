"""A review records a decision per output file and a sign-off on each finding that needs review
(core.release.decision), so `needs_review` means a person looked.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Votes from before this revision decided the job as a whole: no file decisions, no sign-offs.
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("files", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("signoffs", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("signoffs")
        batch_op.drop_column("files")
