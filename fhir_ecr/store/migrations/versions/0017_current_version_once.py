"""The current version's JSON is written once (issue #19, transaction ingest): in its ``resource`` row. Its
``resource_history`` row keeps ``content`` null until a newer version or a deletion replaces it, and then
receives it (``UnitOfWork.keep_version``, copied in the database); reads of a version take it from either row
(``records.select_versions``). A create wrote the same JSON twice before, and on PostgreSQL each copy was parsed
into JSONB (docs/benchmarks.md, "Transaction ingest, eighth pass").

The tables do not change, and rows written before keep their copies (reads prefer a history row's own JSON), so
the upgrade has nothing to do. The downgrade gives each current version's history row its JSON back, as the code
before this revision reads it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE resource_history SET content = (SELECT r.content FROM resource r WHERE r.res_type = "
            "resource_history.res_type AND r.res_id = resource_history.res_id AND r.version_id = "
            "resource_history.version_id) WHERE content IS NULL AND NOT deleted"
        )
    )
