"""The search-index tables lose their ``rowid`` column (issue #19, transaction ingest on PostgreSQL). Nothing
reads it: an index row is found by its resource's key (``ix_*_res``) or by its value (``ix_*_lookup``), and it
is deleted with its resource's other rows. On PostgreSQL it was a ``bigserial`` primary key, so every index row a
write made also drew a number from a sequence and went into a third B-tree; a Bundle of 500 Observations and
its 500 AuditEvents write about 9,500 such rows (docs/benchmarks.md, "Transaction ingest, eighth pass"). Dropping the column drops its
key and its sequence and rewrites nothing.

On SQLite the column was the name of the table's own rowid, which a table keeps without it, so the tables are
the same B-trees afterwards; SQLite cannot drop a primary-key column, so each table is copied once without it
(with its indexes, as alembic's batch mode does): about 4 µs an index row, some 40 s for a store of a million
Observations.

The downgrade puts the column back, numbered afresh.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("idx_token", "idx_string", "idx_date", "idx_reference", "idx_number", "idx_quantity", "idx_uri")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name in TABLES:
        if "rowid" not in {c["name"] for c in inspector.get_columns(name)}:
            continue  # applied already (a database stamped back to an older revision, as tests do)
        if op.get_bind().dialect.name == "postgresql":
            op.drop_column(name, "rowid")  # its primary key and its sequence go with it
        else:
            with op.batch_alter_table(name, recreate="always") as batch:
                batch.drop_column("rowid")


def downgrade() -> None:
    for name in TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN rowid BIGSERIAL PRIMARY KEY"))
        else:
            with op.batch_alter_table(name, recreate="always") as batch:
                batch.add_column(sa.Column("rowid", sa.Integer, primary_key=True, autoincrement=True))
