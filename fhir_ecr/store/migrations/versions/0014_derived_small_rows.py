"""Smaller derived coaching rows (issue #19, write overhead on SQLite): ``derived_observation`` loses ``res_id``,
``elements`` and ``is_checkin``, and one of its two indexes. The views read an Observation's id and the few elements they need from
its ``resource`` row (by key, the elements picked out by the database as ``_elements`` searches pick them); a
derived row without its copy of them is about a quarter of the size. The index ``(patient_id, high)`` goes: the
check-ins are read by their code like any other reading, and the latest data of any code from the patient's
range of ``(patient_id, code, system, low, high)``, which now ends with ``high`` so that every date filter is
applied in the index; ``is_checkin`` (whether a coding is the check-in's) said what the codes say. The pages a write dirties are most of what the hook costs it (docs/benchmarks.md,
"Derived-data write overhead on SQLite"). The rows stay as they are.

The downgrade puts the columns back, filled from the ``resource`` rows (the elements present, as 0009 wrote them)
and the codes, and both indexes as 0013 left them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from fhir_ecr.canonical import MECR_CODES

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: The top-level elements 0009 to 0013 kept of each Observation.
ELEMENTS = ("status", "code", "effectiveDateTime", "effectiveInstant", "effectivePeriod", "valueQuantity")
#: The check-in's coding (fhir_ecr.coaching.resources.CHECKIN_CODE).
CHECKIN = (MECR_CODES, "habit-check-in")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "res_id" not in {c["name"] for c in inspector.get_columns("derived_observation")}:
        return  # applied already (a database stamped back to an older revision, as tests do)
    op.drop_column("derived_observation", "elements")
    op.drop_column("derived_observation", "res_id")
    op.drop_column("derived_observation", "is_checkin")
    op.drop_index("ix_derived_observation_latest", table_name="derived_observation")
    op.drop_index("ix_derived_observation_code", table_name="derived_observation")
    op.create_index(
        "ix_derived_observation_code", "derived_observation", ["patient_id", "code", "system", "low", "high"]
    )


def downgrade() -> None:
    op.drop_index("ix_derived_observation_code", table_name="derived_observation")
    op.create_index(
        "ix_derived_observation_code", "derived_observation", ["patient_id", "code", "system", "low"]
    )
    op.create_index("ix_derived_observation_latest", "derived_observation", ["patient_id", "high"])
    op.add_column(
        "derived_observation", sa.Column("res_id", sa.String(64), nullable=False, server_default="")
    )
    op.add_column("derived_observation", sa.Column("elements", sa.Text, nullable=False, server_default="{}"))
    op.add_column(
        "derived_observation", sa.Column("is_checkin", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.execute(
        sa.text(
            "UPDATE derived_observation SET is_checkin = (system = :s AND code = :c) OR EXISTS (SELECT 1 FROM "
            "derived_observation_code k WHERE k.res_pk = derived_observation.res_pk AND k.system = :s AND k.code = :c)"
        ).bindparams(s=CHECKIN[0], c=CHECKIN[1])
    )
    if op.get_bind().dialect.name == "postgresql":
        picked = ", ".join(f"'{e}', r.content -> '{e}'" for e in ELEMENTS)
        op.execute(
            sa.text(
                "UPDATE derived_observation d SET res_id = r.res_id, "
                f"elements = jsonb_strip_nulls(jsonb_build_object({picked}))::text "
                "FROM resource r WHERE r.pk = d.res_pk"
            )
        )
    else:  # json_patch drops the members whose value is null (https://sqlite.org/json1.html#jpatch)
        picked = ", ".join(f"'{e}', json_extract(r.content, '$.{e}')" for e in ELEMENTS)
        op.execute(
            sa.text(
                "UPDATE derived_observation SET "
                "res_id = (SELECT r.res_id FROM resource r WHERE r.pk = derived_observation.res_pk), "
                f"elements = (SELECT json_patch('{{}}', json_object({picked})) FROM resource r "
                "WHERE r.pk = derived_observation.res_pk)"
            )
        )
