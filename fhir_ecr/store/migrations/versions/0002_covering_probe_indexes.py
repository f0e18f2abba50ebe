"""Covering probe indexes: (res_pk, param, value columns) on every index table.

A search's secondary criteria are probed per candidate through (res_pk, param); with the value columns in the
index the probe is answered from the index alone, without a second lookup of the table row (about a third of
the latency of a patient + code + date search over a million Observations on SQLite).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COVERING = {
    "token": ["code", "system"],
    "string": ["value"],
    "date": ["low", "high"],
    "reference": ["target_id", "target_type"],
    "number": ["value"],
    "quantity": ["value"],
    "uri": ["value"],
}


def upgrade() -> None:
    for short, extra in COVERING.items():
        op.drop_index(f"ix_{short}_res", table_name=f"idx_{short}")
        op.create_index(f"ix_{short}_res", f"idx_{short}", ["res_pk", "param", *extra])


def downgrade() -> None:
    for short in COVERING:
        op.drop_index(f"ix_{short}_res", table_name=f"idx_{short}")
        op.create_index(f"ix_{short}_res", f"idx_{short}", ["res_pk", "param"])
