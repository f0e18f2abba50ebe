"""Independent FHIR clients (fhirclient, fhirpy) against mECR served by uvicorn over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest


def test_fhirclient_models_create_read_search(live_server: Any) -> None:
    from fhirclient import server as fc_server
    from fhirclient.models.codeableconcept import CodeableConcept
    from fhirclient.models.fhirreference import FHIRReference
    from fhirclient.models.goal import Goal
    from fhirclient.models.humanname import HumanName
    from fhirclient.models.patient import Patient

    server = fc_server.FHIRServer(None, base_uri=f"{live_server.url}/fhir/")
    patient = Patient({"name": [{"family": "Client", "given": ["Py"]}]})
    assert isinstance(patient.name[0], HumanName)
    created = patient.create(server)
    pid = created["id"]
    read = Patient.read(pid, server)
    assert read.name[0].family == "Client"
    for text in ("Walk daily", "Sleep 7 hours"):
        goal = Goal(
            {
                "lifecycleStatus": "active",
                "description": {"text": "placeholder"},
                "subject": {"reference": "Patient/placeholder"},
            }
        )
        goal.description = CodeableConcept({"text": text})
        goal.subject = FHIRReference({"reference": f"Patient/{pid}"})
        goal.create(server)
    other = Patient({"name": [{"family": "Other"}]}).create(server)["id"]
    Goal(
        {
            "lifecycleStatus": "active",
            "description": {"text": "x"},
            "subject": {"reference": f"Patient/{other}"},
        }
    ).create(server)
    found = Goal.where(struct={"patient": pid}).perform_resources(server)
    assert sorted(g.description.text for g in found) == ["Sleep 7 hours", "Walk daily"]
    assert all(g.subject.reference == f"Patient/{pid}" for g in found)


def test_fhirpy_async_crud_paging_and_conditional_create(live_server: Any) -> None:
    from fhirpy import AsyncFHIRClient

    base = f"{live_server.url}/fhir"

    async def scenario() -> None:
        client = AsyncFHIRClient(base)
        patient = client.resource("Patient", name=[{"family": "Async"}], active=True)
        await patient.save()
        assert patient.id
        patient["gender"] = "female"
        await patient.save()
        fetched = await client.reference("Patient", patient.id).to_resource()
        assert fetched["gender"] == "female" and fetched["meta"]["versionId"] == "2"
        for day in range(1, 26):
            obs = client.resource(
                "Observation",
                status="final",
                code={"coding": [{"system": "http://loinc.org", "code": "41950-7"}]},
                subject={"reference": f"Patient/{patient.id}"},
                effectiveDateTime=f"2026-11-{day:02d}",
                valueQuantity={"value": 1000 * day, "system": "http://unitsofmeasure.org", "code": "/d"},
            )
            await obs.save()
        search = client.resources("Observation").search(patient=patient.id, date__ge="2026-11-06").limit(7)
        all_obs = await search.fetch_all()  # follows the Bundle's next links
        assert len(all_obs) == 20 and len({o.id for o in all_obs}) == 20
        assert await client.resources("Observation").search(patient=patient.id).count() == 25
        first = await search.sort("-date").first()
        assert first["effectiveDateTime"] == "2026-11-25"

        # conditional create through If-None-Exist (a client with the header) ...
        body = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "fhirpy-1"}]}
        conditional = AsyncFHIRClient(base, extra_headers={"If-None-Exist": "identifier=urn:mrn|fhirpy-1"})
        one = client.resource("Patient", **{k: v for k, v in body.items() if k != "resourceType"})
        two = conditional.resource("Patient", **{k: v for k, v in body.items() if k != "resourceType"})
        three = conditional.resource("Patient", **{k: v for k, v in body.items() if k != "resourceType"})
        await two.save()
        await three.save()
        assert two.id == three.id
        # ... and through fhirpy's own create(**criteria), which puts the criteria on the URL
        await one.create(identifier="urn:mrn|fhirpy-1")
        assert one.id == two.id
        assert await client.resources("Patient").search(identifier="urn:mrn|fhirpy-1").count() == 1

        # The Patient is referred to by its 25 Observations: a plain delete is refused (409), a cascading one
        # takes them along (fhir_ecr/store/references.py).
        async with httpx.AsyncClient() as raw:
            refused = await raw.delete(f"{base}/Patient/{patient.id}")
            assert refused.status_code == 409 and "_cascade=delete" in refused.text
            assert (await raw.delete(f"{base}/Patient/{patient.id}?_cascade=delete")).status_code == 204
            gone = await raw.get(f"{base}/Patient/{patient.id}")
            assert gone.status_code == 410
        assert await client.resources("Observation").search(patient=patient.id).count() == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("path", ["/fhir/metadata", "/docs", "/healthz"])
def test_live_server_basics(live_server: Any, path: str) -> None:
    r = httpx.get(f"{live_server.url}{path}")
    assert r.status_code == 200


def test_fhirpy_with_a_backend_services_token(secure_live_server: Any, secure_services: Any) -> None:
    """An independent client with a SMART Backend Services token: the smart_launch client gets the token from
    mECR's /auth/token over HTTP, fhirpy presents it."""
    import asyncio

    import httpx
    from fhirpy import AsyncFHIRClient

    from smart_launch import BackendServicesClient
    from tests.auth.support import SystemClient

    bot = SystemClient(secure_services, "fhirpy-bot", scope="system/Patient.cruds")
    base = f"{secure_live_server.url}/fhir"

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            backend = await BackendServicesClient.from_discovery(
                http,
                base,
                client_id=bot.client_id,
                keys=bot.keys,
                scope="system/Patient.cruds",
                allow_insecure_http=True,
            )
            token = await backend.get_token()
        client = AsyncFHIRClient(base, authorization=f"Bearer {token.access_token}")
        patient = client.resource("Patient", name=[{"family": "Backend"}])
        await patient.save()
        found = await client.resources("Patient").search(family="Backend").fetch()
        assert [p["id"] for p in found] == [patient["id"]]
        anonymous = AsyncFHIRClient(base)
        try:
            await anonymous.resources("Patient").fetch()
        except Exception as exc:  # fhirpy raises on the 401 OperationOutcome
            assert "401" in str(exc) or "login" in str(exc)
        else:
            raise AssertionError("an anonymous client was served")

    asyncio.run(run())
