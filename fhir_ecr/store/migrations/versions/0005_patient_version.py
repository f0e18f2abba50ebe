"""A per-patient data version, for caches of computed views (the coaching summary, the patient page).

Every unit of work that writes a resource in a patient's compartment bumps that patient's row once, in the
same transaction, so a cache keyed by (patient, version) is correct across processes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_version",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("patient_version")
