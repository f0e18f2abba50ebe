"""The alembic migrations create exactly the tables the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fhir_ecr.store.db import SQLITE_WAL_AUTOCHECKPOINT_PAGES, current_revision, head_revision, upgrade
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
                "AND column_name='content'"
            ).scalar_one()
        assert kind == "jsonb"
        return
    with services.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert (
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == SQLITE_WAL_AUTOCHECKPOINT_PAGES
        )


def test_0006_indexes_the_references_no_parameter_covers(services: Any) -> None:
    """Migration 0006 fills in ``_reference`` rows for resources stored before it (here: rows removed, the
    database stamped back to 0005), exactly as a write makes them now."""
    import sqlalchemy as sa
    from alembic import command

    from fhir_ecr.store.db import _alembic_config  # noqa: PLC2701 - the migration's own configuration

    repo = services.repo
    repo.update("PractitionerRole", "pr1", {"resourceType": "PractitionerRole", "id": "pr1"})
    repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    plan = repo.create(
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/p1"},
            "author": {"reference": "PractitionerRole/pr1"},
        }
    )

    def other_rows() -> list[tuple[Any, ...]]:
        with services.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT res_type, target_type, target_id FROM idx_reference WHERE param = '_reference'"
                    )
                )
            ]

    written = other_rows()
    assert written == [("CarePlan", "PractitionerRole", "pr1")]  # subject has its own parameter row
    with services.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM idx_reference WHERE param = '_reference'")
        command.stamp(_alembic_config(conn), "0005")
    assert other_rows() == []
    upgrade(services.engine)
    assert other_rows() == written
    assert plan.stored.id


def test_the_derived_rows_index_holds_their_key(services: Any, backend: str) -> None:
    """Migration 0015: a patient's readings of a code are read from ``ix_derived_observation_code`` alone, without
    a page of the table per row. SQLite's index ends with the rowid (``res_pk``); PostgreSQL's includes it."""
    import sqlalchemy as sa

    with services.engine.connect() as conn:
        if backend == "sqlite":
            table = conn.exec_driver_sql("PRAGMA table_info(derived_observation)").all()
            assert [(r[1], r[5]) for r in table if r[5]] == [
                ("res_pk", 1)
            ]  # the INTEGER PRIMARY KEY: the rowid
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT res_pk FROM derived_observation "
                "WHERE patient_id = 'p' AND code = 'c' AND system = 's'"
            ).all()
            assert "COVERING INDEX ix_derived_observation_code" in " ".join(str(r[-1]) for r in plan)
        else:
            definition = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_derived_observation_code'")
            ).scalar_one()
            assert definition.endswith("(patient_id, code, system, low, high) INCLUDE (res_pk)"), definition


def test_0016_drops_the_index_rows_key_and_keeps_every_row(services: Any, backend: str) -> None:
    """Migration 0016: the search-index tables lose ``rowid`` (on PostgreSQL a ``bigserial`` key and its
    sequence), every index row is kept and found as before, and its downgrade puts the column back, numbered."""
    import sqlalchemy as sa
    from alembic import command

    from fhir_ecr.store.db import WRITE, _alembic_config  # noqa: PLC2701 - the migration's own configuration
    from fhir_ecr.store.tables import INDEX_TABLES

    repo = services.repo
    repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1", "name": [{"family": "Ng"}]})
    repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-12-01T08:00:00Z",
            "valueQuantity": {
                "value": 71.5,
                "unit": "kg",
                "system": "http://unitsofmeasure.org",
                "code": "kg",
            },
        }
    )

    def rows() -> dict[str, list[tuple[Any, ...]]]:
        with services.engine.connect() as conn:
            return {
                name: sorted(tuple(r) for r in conn.execute(sa.select(*table.c)))
                for name, table in INDEX_TABLES.items()
            }

    def columns(conn: sa.Connection) -> dict[str, set[str]]:
        return {name: {c["name"] for c in sa.inspect(conn).get_columns(name)} for name in INDEX_TABLES}

    def sequences(conn: sa.Connection) -> set[str]:
        if backend == "sqlite":
            return set()
        return set(conn.execute(sa.text("SELECT sequence_name FROM information_schema.sequences")).scalars())

    before = rows()
    assert before["idx_quantity"] and before["idx_date"] and before["idx_string"]
    with services.engine.connect() as conn:
        assert not any("rowid" in c for c in columns(conn).values())
        assert not {s for s in sequences(conn) if s.startswith("idx_")}
    with services.engine.connect().execution_options(**{WRITE: True}) as conn:
        command.downgrade(_alembic_config(conn), "0015")
        conn.commit()
    with services.engine.connect() as conn:
        assert all("rowid" in c for c in columns(conn).values())
        numbered = conn.execute(sa.text("SELECT rowid FROM idx_token ORDER BY rowid")).scalars().all()
        assert numbered == list(range(1, len(before["idx_token"]) + 1))
        if backend != "sqlite":
            assert {s for s in sequences(conn) if s.startswith("idx_")} == {
                f"{name}_rowid_seq" for name in INDEX_TABLES
            }
    assert rows() == before
    upgrade(services.engine)
    assert rows() == before
    with services.engine.connect() as conn:
        assert not any("rowid" in c for c in columns(conn).values())
        assert not {s for s in sequences(conn) if s.startswith("idx_")}
    for params in (
        [("value-quantity", "71.5"), ("patient", "p1"), ("date", "2026-12-01")],
        [("code", "http://loinc.org|29463-7")],
    ):
        assert repo.search_params("Observation", params).total == 1
    assert repo.search_params("Patient", [("family", "ng")]).total == 1


def test_0017_downgrade_gives_the_current_versions_their_history_json(services: Any) -> None:
    """Before 0017 every history row held its version's JSON: the downgrade copies each current version's back
    (deletions stay without), and upgrading again reads the same versions."""
    import sqlalchemy as sa
    from alembic import command

    from fhir_ecr.store.db import WRITE, _alembic_config  # noqa: PLC2701 - the migration's own configuration

    repo = services.repo
    kept = repo.create({"resourceType": "Patient", "gender": "female"}).stored
    changed = repo.create({"resourceType": "Patient", "gender": "male"}).stored
    newer = repo.update("Patient", changed.id, {"resourceType": "Patient", "id": changed.id}).stored
    gone = repo.create({"resourceType": "Patient"}).stored
    repo.delete("Patient", gone.id)

    def own_json() -> dict[tuple[str, int], Any]:
        with services.engine.connect() as conn:
            return {
                (i, v): c
                for i, v, c in conn.execute(
                    sa.text("SELECT res_id, version_id, CAST(content AS TEXT) FROM resource_history")
                )
            }

    assert own_json()[(kept.id, 1)] is None and own_json()[(changed.id, 2)] is None
    with services.engine.connect().execution_options(**{WRITE: True}) as conn:
        command.downgrade(_alembic_config(conn), "0016")
        conn.commit()
    rows = own_json()
    assert None not in (rows[(kept.id, 1)], rows[(changed.id, 1)], rows[(changed.id, 2)], rows[(gone.id, 1)])
    assert rows[(gone.id, 2)] in (None, "null")  # the deletion: none (JSON null, as a deletion is written)
    upgrade(services.engine)
    assert repo.vread("Patient", changed.id, "2").content == newer.content
    assert repo.vread("Patient", kept.id, "1").content == kept.content
