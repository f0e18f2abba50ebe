"""The alembic migrations create exactly the tables the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fhir_ecr.store.db import current_revision, head_revision, upgrade
from fhir_ecr.store.tables import metadata


def test_migrations_match_models(services: Any) -> None:
    with services.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert current_revision(services.engine) == head_revision()
    upgrade(services.engine)  # idempotent
    assert current_revision(services.engine) == head_revision()


def test_sqlite_runs_in_wal_mode(services: Any, backend: str) -> None:
    if backend != "sqlite":
        with services.engine.connect() as conn:
            kind = conn.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns WHERE table_name='resource' "
                "AND column_name='content'").scalar_one()
        assert kind == "jsonb"
        return
    with services.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
