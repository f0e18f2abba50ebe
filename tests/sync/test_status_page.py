"""The sync status page: coaches see per EMR the marks, the outbox depth and the parked pushes, and retry them;
a patient is refused; the page carries no inline script or style (CSP)."""

from __future__ import annotations

from typing import Any

from tests.auth.support import coach, login, patient
from tests.sync.support import register


def test_coach_sees_parked_rows_and_retries_them(secure_services: Any, secure_client: Any) -> None:
    register(secure_services, "https://emr.example/fhir", pull="Patient", push="Goal")
    secure_services.sync_store.put_mark("emr", "Patient", high_water="2026-11-01T00:00:00Z", last_count=3)
    with secure_services.repo.unit() as uow:
        uow.add_outbox([("emr", "Goal", "g1", 1)])
    row = secure_services.sync_store.claim("emr", 10, 60)[0]
    secure_services.sync_store.finish(row.id, "parked", status=422, detail="the EMR refused it (422)")
    csrf = login(secure_client, secure_services, coach())
    page = secure_client.get("/app/sync")
    assert page.status_code == 200
    assert "2026-11-01T00:00:00Z" in page.text and "Goal/g1" in page.text and "parked: 1" in page.text
    assert "<script>" not in page.text and "style=" not in page.text
    r = secure_client.post(
        "/app/sync/retry", data={"row": str(row.id), "csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert secure_services.sync_store.outbox("emr")[0].state == "pending"


def test_a_patient_cannot_see_the_sync_page(secure_services: Any, secure_client: Any) -> None:
    login(secure_client, secure_services, patient("pat1"))
    assert secure_client.get("/app/sync").status_code == 403
