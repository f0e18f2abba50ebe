"""(res_type, pk) index on the current resources (h18: sync and Bulk Data export).

A search with no criteria pages through one type in key order (``WHERE res_type = ? AND pk > cursor ORDER BY pk``):
the Bulk Data export reads a million Observations that way, and a plain ``GET /Observation`` asks for its first
page. The only index starting with ``res_type`` was (res_type, res_id), so each page sorted every resource of
the type first: an export slowed down with the size of the store. With this index each page is a range scan.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resource_type_pk", "resource", ["res_type", "pk"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_resource_type_pk", table_name="resource", if_exists=True)
