"""Index every local reference of each resource, not only those a search parameter covers.

What a patient's record references decides which shared resources (a Device, their coach's PractitionerRole)
the patient may read (fhir_ecr/store/visibility.py); references no search parameter covers (``CarePlan.author``)
are kept as ``idx_reference`` rows of the internal parameter ``_reference``. This fills them in for the resources
already stored, in batches.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    from fhir_ecr.store.indexer import OTHER_REFERENCES, other_references

    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT pk, res_type, CAST(content AS TEXT) FROM resource WHERE pk > :last AND deleted = :no "
                "ORDER BY pk LIMIT :n"
            ),
            {"last": last, "no": False, "n": _BATCH},
        ).all()
        if not rows:
            break
        last = rows[-1][0]
        pks = [r[0] for r in rows]
        known: dict[int, list[tuple[object, ...]]] = {pk: [] for pk in pks}
        for pk, param, ttype, tid in conn.execute(
            sa.text(
                "SELECT res_pk, param, target_type, target_id FROM idx_reference WHERE res_pk IN :pks"
            ).bindparams(sa.bindparam("pks", expanding=True)),
            {"pks": pks},
        ):
            if param != OTHER_REFERENCES:
                known[pk].append((param, ttype, tid, None))
        new = []
        for pk, rtype, content in rows:
            if content is None:
                continue
            for _, ttype, tid, url in other_references(orjson.loads(content), known[pk]):
                new.append(
                    {
                        "res_pk": pk,
                        "res_type": rtype,
                        "param": OTHER_REFERENCES,
                        "target_type": ttype,
                        "target_id": tid,
                        "url": url,
                    }
                )
        if new:
            conn.execute(
                sa.text("DELETE FROM idx_reference WHERE param = :p AND res_pk IN :pks").bindparams(
                    sa.bindparam("pks", expanding=True)
                ),
                {"p": OTHER_REFERENCES, "pks": pks},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO idx_reference (res_pk, res_type, param, target_type, target_id, url) "
                    "VALUES (:res_pk, :res_type, :param, :target_type, :target_id, :url)"
                ),
                new,
            )


def downgrade() -> None:
    op.execute("DELETE FROM idx_reference WHERE param = '_reference'")
