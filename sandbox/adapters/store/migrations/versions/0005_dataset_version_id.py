"""Operators see a random, opaque id for a dataset version instead of the SHA-256 of its raw
bytes (an un-noised function of the data); the content hash stays for owners and compliance.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version_id", sa.String(length=64), nullable=False, server_default=""))
    # Each registered version gets its id, and the jobs and released aggregates that named it by
    # its hash name it by the id, so later jobs still meet them (differencing checks, listings).
    # Certificates already signed keep the hash they were issued with.
    conn = op.get_bind()
    for name, content_hash in conn.execute(sa.text("SELECT name, version_hash FROM datasets")).all():
        version_id = secrets.token_hex(16)
        params = {"id": version_id, "name": name, "hash": content_hash}
        conn.execute(sa.text("UPDATE datasets SET version_id = :id WHERE name = :name"), params)
        conn.execute(sa.text("UPDATE jobs SET dataset_version = :id WHERE dataset = :name AND dataset_version = :hash"),
                     params)
        conn.execute(sa.text("UPDATE released_aggregates SET dataset_version = :id "
                             "WHERE dataset = :name AND dataset_version = :hash"), params)


def downgrade() -> None:
    conn = op.get_bind()
    for name, content_hash, version_id in conn.execute(
            sa.text("SELECT name, version_hash, version_id FROM datasets")).all():
        params = {"id": version_id, "name": name, "hash": content_hash}
        conn.execute(sa.text("UPDATE jobs SET dataset_version = :hash WHERE dataset = :name AND dataset_version = :id"),
                     params)
        conn.execute(sa.text("UPDATE released_aggregates SET dataset_version = :hash "
                             "WHERE dataset = :name AND dataset_version = :id"), params)
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("version_id")
