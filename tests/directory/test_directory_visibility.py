"""A patient may search the community directory (its resources carry the public directory tag) and still sees
nothing of another patient's record, nor Organizations/Locations that are not directory entries."""

from __future__ import annotations

from typing import Any

from fhir_ecr.directory.generate import generate_directory
from fhir_ecr.directory.importer import DirectoryImporter
from tests.auth.support import bearer, coach, patient
from tests.helpers import assert_outcome


def _world(repo: Any) -> dict[str, str]:
    DirectoryImporter(repo).import_directory(generate_directory(6, seed=21), name="town")
    ids = {}
    for who in ("a", "b"):
        ids[who] = repo.create(
            {
                "resourceType": "Patient",
                "name": [{"family": f"Zebra{who}"}],
                "address": [{"postalCode": "62701"}],
            }
        ).stored.id
    # a Location and an Organization that are not directory entries; B's Observation names them
    ids["clinic"] = repo.create({"resourceType": "Organization", "name": "B's private clinic"}).stored.id
    ids["home"] = repo.create(
        {"resourceType": "Location", "name": "B's home", "position": {"latitude": 39.8, "longitude": -89.65}}
    ).stored.id
    ids["obs"] = repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{ids['b']}"},
            "performer": [{"reference": f"Organization/{ids['clinic']}"}],
        }
    ).stored.id
    return ids


def test_a_patient_searches_the_directory_but_sees_nothing_of_others(
    secure_client: Any, secure_services: Any
) -> None:
    ids = _world(secure_services.repo)
    me = bearer(secure_services, patient(ids["a"]))
    everyone = secure_client.get(
        "/fhir/HealthcareService?_count=100", headers=bearer(secure_services, coach())
    )
    services = secure_client.get("/fhir/HealthcareService?_count=100", headers=me)
    assert services.status_code == 200
    assert services.json()["total"] == everyone.json()["total"] == 6
    food = secure_client.get(
        "/fhir/HealthcareService?location.near=39.80|-89.65|50|km&_include="
        "HealthcareService:location&_include=HealthcareService:organization",
        headers=me,
    ).json()
    kinds = {e["resource"]["resourceType"] for e in food["entry"]}
    assert kinds == {"HealthcareService", "Location", "Organization"}
    first = food["entry"][0]["resource"]
    assert secure_client.get(f"/fhir/HealthcareService/{first['id']}", headers=me).status_code == 200
    # a Location near the same point that is not a directory entry stays hidden, as does another patient's data
    locations = secure_client.get("/fhir/Location?near=39.80|-89.65|50|km&_count=100", headers=me).json()
    assert ids["home"] not in {e["resource"]["id"] for e in locations["entry"]}
    assert_outcome(secure_client.get(f"/fhir/Location/{ids['home']}", headers=me), 404)
    assert_outcome(secure_client.get(f"/fhir/Organization/{ids['clinic']}", headers=me), 404)
    assert_outcome(secure_client.get(f"/fhir/Observation/{ids['obs']}", headers=me), 404)
    assert_outcome(secure_client.get(f"/fhir/Patient/{ids['b']}", headers=me), 404)
    orgs = secure_client.get("/fhir/Organization?_count=100", headers=me).json()
    assert ids["clinic"] not in {e["resource"]["id"] for e in orgs.get("entry", [])}
    assert "B's" not in str(orgs) and "Zebrab" not in str(orgs)
    # patient B sees the clinic their record references, and the directory too
    them = bearer(secure_services, patient(ids["b"]))
    assert secure_client.get(f"/fhir/Organization/{ids['clinic']}", headers=them).status_code == 200
    assert secure_client.get("/fhir/HealthcareService", headers=them).json()["total"] == 6


def test_a_patient_cannot_write_the_directory(secure_client: Any, secure_services: Any) -> None:
    ids = _world(secure_services.repo)
    me = bearer(secure_services, patient(ids["a"]))
    svc = secure_client.get("/fhir/HealthcareService?_count=1", headers=me).json()["entry"][0]["resource"]
    svc["name"] = "changed"
    assert_outcome(secure_client.put(f"/fhir/HealthcareService/{svc['id']}", json=svc, headers=me), 403)
