"""EMR sync (issue #18): the transactional outbox, local-to-EMR links, pull high-water marks, Bulk Data export jobs,
and the EHR registry's backend-services client id and sync configuration.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Idempotent (a database stamped back to an older revision runs it again; tests/store/test_migrations.py).
    inspector = sa.inspect(op.get_bind())
    if "sync_config" not in {c["name"] for c in inspector.get_columns("ehr_registration")}:
        with op.batch_alter_table("ehr_registration") as batch:
            batch.add_column(sa.Column("backend_client_id", sa.String(256), nullable=True))
            batch.add_column(sa.Column("sync_config", sa.Text, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # The job runner's queue (huey's own tables) lives in this schema, out of the way of the store's tables.
        op.execute("CREATE SCHEMA IF NOT EXISTS mecr_jobs")
    if inspector.has_table("sync_outbox"):
        return
    op.create_table(
        "sync_outbox",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("ehr_id", sa.String(64), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("next_attempt", sa.BigInteger, nullable=False),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
        sa.Column("finished", sa.BigInteger, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
    )
    op.create_index("ix_sync_outbox_due", "sync_outbox", ["ehr_id", "state", "next_attempt"])
    op.create_index(
        "uq_sync_outbox_pending",
        "sync_outbox",
        ["ehr_id", "res_type", "res_id"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "sync_link",
        sa.Column("ehr_id", sa.String(64), primary_key=True),
        sa.Column("res_type", sa.String(64), primary_key=True),
        sa.Column("res_id", sa.String(64), primary_key=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("remote_id", sa.String(64), nullable=False),
        sa.Column("remote_version", sa.String(64), nullable=True),
        sa.Column("pushed_hash", sa.String(64), nullable=True),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sync_link_remote", "sync_link", ["ehr_id", "res_type", "remote_id"])
    op.create_table(
        "sync_mark",
        sa.Column("ehr_id", sa.String(64), primary_key=True),
        sa.Column("res_type", sa.String(64), primary_key=True),
        sa.Column("high_water", sa.String(64), nullable=True),
        sa.Column("last_started", sa.BigInteger, nullable=True),
        sa.Column("last_finished", sa.BigInteger, nullable=True),
        sa.Column("last_count", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("state", sa.Text, nullable=True),
    )
    op.create_table(
        "bulk_export",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.String(256), nullable=True),
        sa.Column("transaction_time", sa.String(64), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
        sa.Column("expires", sa.BigInteger, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_bulk_export_expires", "bulk_export", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_bulk_export_expires", table_name="bulk_export")
    op.drop_table("bulk_export")
    op.drop_table("sync_mark")
    op.drop_index("ix_sync_link_remote", table_name="sync_link")
    op.drop_table("sync_link")
    op.drop_index("uq_sync_outbox_pending", table_name="sync_outbox")
    op.drop_index("ix_sync_outbox_due", table_name="sync_outbox")
    op.drop_table("sync_outbox")
    with op.batch_alter_table("ehr_registration") as batch:
        batch.drop_column("sync_config")
        batch.drop_column("backend_client_id")
