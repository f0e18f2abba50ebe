"""Smaller derived coaching rows (issue #19, write overhead on SQLite): ``derived_observation`` loses ``res_id`` and
``elements``. The views read an Observation's id and the few elements they need from its ``resource`` row (by
key, the elements picked out by the database as ``_elements`` searches pick them); a derived row without its
copy of them is about a quarter of the size, and the pages a write dirties are most of what the hook costs it
(docs/benchmarks.md, "Derived-data write overhead on SQLite"). Nothing else changes: the rows stay as they are.

The downgrade puts both columns back, filled from the ``resource`` rows (the elements present, as 0009 wrote them).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: The top-level elements 0009 to 0013 kept of each Observation.
ELEMENTS = ("status", "code", "effectiveDateTime", "effectiveInstant", "effectivePeriod", "valueQuantity")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    columns = {c["name"] for c in inspector.get_columns("derived_observation")}
    for name in ("elements", "res_id"):
        if (
            name in columns
        ):  # else applied already (a database stamped back to an older revision, as tests do)
            op.drop_column("derived_observation", name)


def downgrade() -> None:
    op.add_column(
        "derived_observation", sa.Column("res_id", sa.String(64), nullable=False, server_default="")
    )
    op.add_column("derived_observation", sa.Column("elements", sa.Text, nullable=False, server_default="{}"))
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
