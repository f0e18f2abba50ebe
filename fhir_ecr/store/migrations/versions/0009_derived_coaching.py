"""Derived data for the coaching views (h19, issue #19): a projection of each Observation of a patient (its date
range and, for check-ins, the ledger's token values) and of its codings, kept by a write hook in the same
transaction as the writes (fhir_ecr.coaching.derived; docs/architecture.md, "Derived data").

A database that already holds Observations is marked ``stale`` (kv ``derived.coaching``): the views keep reading
the search index until ``mecr db rebuild-derived`` has filled the tables; an empty one is ``ready`` at once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATE_KEY = "derived.coaching"
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("derived_observation"):
        op.create_table(
            "derived_observation",
            sa.Column("res_pk", PK, primary_key=True, autoincrement=False),
            sa.Column("res_id", sa.String(64), nullable=False),
            sa.Column("patient_id", sa.String(64), nullable=False),
            sa.Column("low", sa.BigInteger, nullable=True),
            sa.Column("high", sa.BigInteger, nullable=True),
            sa.Column("is_checkin", sa.Boolean, nullable=False),
            sa.Column("checkin_key", sa.Text, nullable=True),
            sa.Column("checkin_result", sa.Text, nullable=True),
            sa.Column("status", sa.String(64), nullable=True),
            sa.Column("elements", sa.Text, nullable=False),
        )
        op.create_index("ix_derived_observation_latest", "derived_observation", ["patient_id", "high"])
        op.create_index(
            "ix_derived_observation_checkin", "derived_observation", ["patient_id", "is_checkin", "high"]
        )
    if not inspector.has_table("derived_observation_code"):
        op.create_table(
            "derived_observation_code",
            sa.Column("res_pk", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("patient_id", sa.String(64), nullable=False),
            sa.Column("system", sa.Text, nullable=True),
            sa.Column("code", sa.Text, nullable=False),
            sa.Column("low", sa.BigInteger, nullable=True),
            sa.Column("high", sa.BigInteger, nullable=True),
        )
        op.create_index(
            "ix_derived_observation_code_lookup",
            "derived_observation_code",
            ["patient_id", "code", "system", "low"],
        )
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM kv WHERE key = :k"), {"k": STATE_KEY}).first() is None:
        has_observations = (
            bind.execute(sa.text("SELECT 1 FROM resource WHERE res_type = 'Observation' LIMIT 1")).first()
            is not None
        )
        bind.execute(
            sa.text("INSERT INTO kv (key, value) VALUES (:k, :v)"),
            {"k": STATE_KEY, "v": "stale" if has_observations else "ready"},
        )


def downgrade() -> None:
    op.execute(sa.text(f"DELETE FROM kv WHERE key = '{STATE_KEY}'"))
    op.drop_table("derived_observation_code")
    op.drop_table("derived_observation")
