"""Migration 0008 computes the directory's index rows for HealthcareServices and Locations stored before it (here:
the rows removed, the database stamped back to 0007), exactly as a write makes them now."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command

from fhir_ecr.directory.generate import generate_directory
from fhir_ecr.directory.importer import DirectoryImporter
from fhir_ecr.store.db import _alembic_config, upgrade

_NEW = (
    "keyword-word",
    "communication",
    "eligibility",
    "min-age",
    "max-age",
    "available-window",
    "position-latitude",
    "position-longitude",
)


def _rows(services: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    with services.engine.connect() as conn:
        for table, columns in (("idx_token", "code"), ("idx_number", "value"), ("idx_date", "low, high")):
            out += [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        f"SELECT res_pk, param, {columns} FROM {table} WHERE param IN :p ORDER BY 1, 2, 3"
                    ).bindparams(sa.bindparam("p", expanding=True)),
                    {"p": list(_NEW)},
                )
            ]
    return sorted(out)


def test_0008_indexes_the_directory_already_stored(services: Any, client: Any) -> None:
    DirectoryImporter(services.repo).import_directory(generate_directory(9, seed=4), name="old")
    written = _rows(services)
    assert {r[1] for r in written} >= {
        "keyword-word",
        "communication",
        "available-window",
        "position-latitude",
    }
    with services.engine.begin() as conn:
        for table in ("idx_token", "idx_number", "idx_date"):
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE param IN :p").bindparams(
                    sa.bindparam("p", expanding=True)
                ),
                {"p": list(_NEW)},
            )
        command.stamp(_alembic_config(conn), "0007")
    assert _rows(services) == []
    upgrade(services.engine)
    assert _rows(services) == written
    assert client.get("/fhir/HealthcareService?keyword=pantry").json()["total"] >= 1
