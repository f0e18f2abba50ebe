"""Kept coaching views (issues #16 and #19): the caseload's glance and the coaching summary of each patient, kept in
the database with the data version, local day, time zone and parameters they were computed for, so that the first
view after a nightly import reads one row per patient (fhir_ecr.coaching.derived.kept; docs/architecture.md,
"Derived data"). The table starts empty: views are kept as they are computed or refreshed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("kept_view"):
        op.create_table(
            "kept_view",
            sa.Column("patient_id", sa.String(64), primary_key=True),
            sa.Column("view", sa.String(32), primary_key=True),
            sa.Column("version", sa.BigInteger, nullable=False),
            sa.Column("local_day", sa.String(10), nullable=False),
            sa.Column("tz", sa.String(64), nullable=False),
            sa.Column("params", sa.String(64), nullable=False),
            sa.Column("computed_at", sa.BigInteger, nullable=False),
            sa.Column("value", sa.LargeBinary, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("kept_view")
