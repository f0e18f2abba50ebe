"""Referrals (issue #17, branch h17b): a backend-services client may be bound to a community organisation
(``api_client.organization``); the guard then confines it to that organisation's referrals (docs/referrals.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Idempotent (a database stamped back to an older revision runs it again; tests/store/test_migrations.py).
    if "organization" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("api_client")}:
        with op.batch_alter_table("api_client") as batch:
            batch.add_column(sa.Column("organization", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_client") as batch:
        batch.drop_column("organization")
