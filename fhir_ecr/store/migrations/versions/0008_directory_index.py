"""Index the community directory's search parameters for the resources already stored (h17a, issue #17).

mECR's own parameters (fhir_ecr/store/mecr_params.py) add index rows to HealthcareService (``keyword-word``,
``communication``, ``eligibility``, ``min-age``, ``max-age``, ``available-window``) and Location
(``position-latitude``, ``position-longitude``). New writes get them; this computes them for the resources stored
before, in batches, with the same indexer.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 2000
_PARAMS = {
    "HealthcareService": (
        "keyword-word",
        "communication",
        "eligibility",
        "min-age",
        "max-age",
        "available-window",
    ),
    "Location": ("position-latitude", "position-longitude"),
}


def upgrade() -> None:
    from fhir_ecr.store.indexer import extract_index_rows
    from fhir_ecr.store.records import INDEX_COLUMNS

    conn = op.get_bind()
    for rtype, params in _PARAMS.items():
        last = 0
        while True:
            rows = conn.execute(
                sa.text(
                    "SELECT pk, CAST(content AS TEXT) FROM resource WHERE res_type = :t AND pk > :last AND deleted = :no "
                    "ORDER BY pk LIMIT :n"
                ),
                {"t": rtype, "last": last, "no": False, "n": _BATCH},
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            pks = [r[0] for r in rows]
            new: dict[str, list[dict[str, object]]] = {}
            for pk, content in rows:
                if content is None:
                    continue
                for table, table_rows in extract_index_rows(orjson.loads(content)).items():
                    for row in table_rows:
                        if row[0] in params:
                            new.setdefault(table, []).append(
                                {
                                    "res_pk": pk,
                                    "res_type": rtype,
                                    **dict(zip(INDEX_COLUMNS[table], row, strict=True)),
                                }
                            )
            for table in ("idx_token", "idx_number", "idx_date"):
                conn.execute(
                    sa.text(f"DELETE FROM {table} WHERE param IN :params AND res_pk IN :pks").bindparams(
                        sa.bindparam("params", expanding=True), sa.bindparam("pks", expanding=True)
                    ),
                    {"params": list(params), "pks": pks},
                )
            for table, values in new.items():
                columns = ("res_pk", "res_type", *INDEX_COLUMNS[table])
                conn.execute(
                    sa.text(
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(':' + c for c in columns)})"
                    ),
                    values,
                )


def downgrade() -> None:
    for table in ("idx_token", "idx_number", "idx_date"):
        for rtype, params in _PARAMS.items():
            op.execute(
                sa.text(f"DELETE FROM {table} WHERE res_type = :t AND param IN :params").bindparams(
                    sa.bindparam("params", expanding=True), t=rtype, params=list(params)
                )
            )
