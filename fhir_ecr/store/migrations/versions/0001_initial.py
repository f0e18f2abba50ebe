"""The FHIR store: resources, history, search indexes, key-value state.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def _pk() -> sa.Column:
    return sa.Column("pk", PK, primary_key=True, autoincrement=True)


def _index_table(name: str, *columns: sa.Column, lookup: tuple[str, ...], extra: dict | None = None) -> None:
    op.create_table(
        name,
        sa.Column("rowid", PK, primary_key=True, autoincrement=True),
        sa.Column("res_pk", sa.BigInteger, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        *columns,
    )
    short = name.removeprefix("idx_")
    op.create_index(f"ix_{short}_lookup", name, ["res_type", "param", *lookup])
    op.create_index(f"ix_{short}_res", name, ["res_pk", "param"])
    for index_name, cols in (extra or {}).items():
        op.create_index(index_name, name, cols)


def upgrade() -> None:
    op.create_table(
        "resource",
        _pk(),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", JSON_DOC, nullable=True),
        sa.UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
    )
    op.create_table(
        "resource_history",
        _pk(),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", JSON_DOC, nullable=True),
        sa.UniqueConstraint("res_type", "res_id", "version_id", name="uq_history_version"),
    )
    op.create_index("ix_history_type_updated", "resource_history", ["res_type", "last_updated"])
    op.create_index("ix_history_updated", "resource_history", ["last_updated"])
    _index_table(
        "idx_token",
        sa.Column("system", sa.String(255)),
        sa.Column("code", sa.String(255)),
        sa.Column("text", sa.String(255)),
        lookup=("code", "system"),
    )
    _index_table(
        "idx_string",
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("exact", sa.String(255), nullable=False),
        lookup=("value",),
    )
    _index_table(
        "idx_date",
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        lookup=("low",),
    )
    _index_table(
        "idx_reference",
        sa.Column("target_type", sa.String(64)),
        sa.Column("target_id", sa.String(64)),
        sa.Column("url", sa.String(1024)),
        lookup=("target_id", "target_type"),
        extra={"ix_reference_target": ["target_type", "target_id"]},
    )
    _index_table("idx_number", sa.Column("value", sa.Float, nullable=False), lookup=("value",))
    _index_table(
        "idx_quantity",
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("system", sa.String(255)),
        sa.Column("code", sa.String(255)),
        sa.Column("unit", sa.String(255)),
        lookup=("value",),
    )
    _index_table("idx_uri", sa.Column("value", sa.String(1024), nullable=False), lookup=("value",))
    op.create_table(
        "kv",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "kv",
        "idx_uri",
        "idx_quantity",
        "idx_number",
        "idx_reference",
        "idx_date",
        "idx_string",
        "idx_token",
        "resource_history",
        "resource",
    ):
        op.drop_table(name)
