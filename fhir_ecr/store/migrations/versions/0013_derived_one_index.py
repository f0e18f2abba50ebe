"""Cheaper derived coaching rows (issue #19, write overhead): an Observation's first ``code`` coding moves into its
``derived_observation`` row (columns ``system``, ``code``, index ``(patient_id, code, system, low)``), so the usual
Observation, with one coding, costs one derived row instead of two; ``derived_observation_code`` keeps only the
further codings (``seq`` 1, 2, …). The index ``(patient_id, is_checkin, high)`` goes: check-ins since a day are
read from ``(patient_id, high)`` with ``is_checkin`` as a filter. Existing rows are moved as they are (no rebuild
needed): the coding ``seq`` 0 of each row becomes its ``system`` and ``code``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "code" in {c["name"] for c in inspector.get_columns("derived_observation")}:
        return  # applied already (a database stamped back to an older revision, as tests do)
    op.add_column("derived_observation", sa.Column("system", sa.Text, nullable=True))
    op.add_column("derived_observation", sa.Column("code", sa.Text, nullable=True))
    op.execute(
        sa.text(
            "UPDATE derived_observation SET "
            "system = (SELECT c.system FROM derived_observation_code c "
            "WHERE c.res_pk = derived_observation.res_pk AND c.seq = 0), "
            "code = (SELECT c.code FROM derived_observation_code c "
            "WHERE c.res_pk = derived_observation.res_pk AND c.seq = 0)"
        )
    )
    op.execute(sa.text("DELETE FROM derived_observation_code WHERE seq = 0"))
    op.drop_index("ix_derived_observation_checkin", table_name="derived_observation")
    op.create_index(
        "ix_derived_observation_code", "derived_observation", ["patient_id", "code", "system", "low"]
    )


def downgrade() -> None:
    op.execute(
        sa.text(
            "INSERT INTO derived_observation_code (res_pk, seq, patient_id, system, code, low, high) "
            "SELECT res_pk, 0, patient_id, system, code, low, high FROM derived_observation WHERE code IS NOT NULL"
        )
    )
    op.drop_index("ix_derived_observation_code", table_name="derived_observation")
    op.create_index(
        "ix_derived_observation_checkin", "derived_observation", ["patient_id", "is_checkin", "high"]
    )
    op.drop_column("derived_observation", "code")
    op.drop_column("derived_observation", "system")
