"""The importer indexes each shape of mapped Observation from a template (``IndexTemplate``: the shared elements
once): every stored Observation's index rows are those a plain write of the same resource makes."""

from __future__ import annotations

import io
from typing import Any

import sqlalchemy as sa

from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.store.indexer import index_resource
from fhir_ecr.store.tables import INDEX_TABLES
from fhir_ecr.wearables import ImportOptions, WearableImporter
from tests.wearables.support import FIXTURES, WATCH, Rec, apple_export, hours, make_patient, observations

SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"


def _stored_rows(repo: Any, rid: str) -> tuple[int, dict[str, list[tuple[Any, ...]]]]:
    """The Observation's key and its stored index rows, by table."""
    with repo.engine.connect() as conn:
        pk = conn.execute(
            sa.text("SELECT pk FROM resource WHERE res_type = 'Observation' AND res_id = :i"), {"i": rid}
        ).scalar_one()
        return pk, {
            name: sorted(
                (tuple(r) for r in conn.execute(sa.select(*table.c).where(table.c.res_pk == pk))), key=repr
            )
            for name, table in INDEX_TABLES.items()
        }


def _plain_rows(repo: Any, pk: int, content: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """The index rows a plain write of ``content`` under key ``pk`` makes, by table."""
    rows, _ = index_resource(content, repo.fhir_base)
    return {
        name: sorted(((pk, "Observation", *row) for row in rows.get(name, [])), key=repr)
        for name in INDEX_TABLES
    }


def _varied_export() -> bytes:
    """Readings of several shapes interleaved, so the templates change hands often: instants with and without a
    device, periods (sleep stages), a reading flagged implausible, day summaries of two sources."""
    records = [*hours("2026-03-10", 8, 11, 500), *hours("2026-03-11", 9, 10, 700, source="iPhone")]
    for d in range(10, 13):
        records += [
            Rec("HeartRate", f"2026-03-{d} 08:00:00 -0400", f"2026-03-{d} 08:00:00 -0400", 60 + d, "count/min"),
            Rec("BodyMass", f"2026-03-{d} 07:00:00 -0400", f"2026-03-{d} 07:00:00 -0400", 80 + d, "kg", "Scale", None),
            Rec(SLEEP, f"2026-03-{d} 01:00:00 -0400", f"2026-03-{d} 02:00:00 -0400",
                "HKCategoryValueSleepAnalysisAsleepCore", unit=""),
            Rec("OxygenSaturation", f"2026-03-{d} 03:00:00 -0400", f"2026-03-{d} 03:00:00 -0400", 0.97, "%",
                device=WATCH),
        ]  # fmt: skip
    records.append(
        Rec("HeartRate", "2026-03-12 09:00:00 -0400", "2026-03-12 09:00:00 -0400", 290, "count/min")
    )
    return apple_export(records)


def test_templated_index_rows_are_a_plain_writes(repo: Any) -> None:
    opts = ImportOptions(batch_readings=4, batch_days=1)
    checked = 0
    for name, data in (
        ("export.xml", _varied_export()),
        ("export.zip", (FIXTURES / "apple-health/healthkit-to-sqlite-export.zip").read_bytes()),
    ):
        patient = make_patient(repo)
        result = WearableImporter(repo, coaching=CoachingService(repo), options=opts).import_stream(
            patient, io.BytesIO(data), name
        )
        assert result.created > 5
        stored = observations(repo, patient)
        assert len({(o["code"]["coding"][0]["code"], "effectivePeriod" in o) for o in stored}) >= 3
        for obs in stored:
            pk, stored_rows = _stored_rows(repo, obs["id"])
            assert stored_rows == _plain_rows(repo, pk, obs), obs["id"]
            checked += 1
    assert checked > 15
