"""The derived rows' index covers their key on PostgreSQL too (issue #19, search at 1,000,000 Observations):
``ix_derived_observation_code`` gains ``INCLUDE (res_pk)``, so "this patient's readings of this code" is an
index-only scan there (a few index pages) instead of a bitmap scan that reads one heap page per matching row (a
patient's rows of one code lie on as many pages as there are rows: they were written a day apart, among every
other patient's). On SQLite the index holds the key already: ``res_pk`` is the table's rowid, which every SQLite
index ends with; nothing changes there.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_COLUMNS = ["patient_id", "code", "system", "low", "high"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_derived_observation_code", table_name="derived_observation")
    op.create_index(
        "ix_derived_observation_code", "derived_observation", _COLUMNS, postgresql_include=["res_pk"]
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_derived_observation_code", table_name="derived_observation")
    op.create_index("ix_derived_observation_code", "derived_observation", _COLUMNS)
