"""The API's security matrix: who may do what, through the real middleware, routes and repository guard.

Every refusal is the right status with an OperationOutcome; nothing of another patient leaks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.auth.support import SystemClient, bearer, coach, login, patient
from tests.helpers import assert_outcome


@pytest.fixture
def two_patients(secure_services: Any) -> dict[str, Any]:
    repo = secure_services.repo
    ids: dict[str, Any] = {}
    for name in ("a", "b"):
        pid = repo.create({"resourceType": "Patient", "name": [{"family": f"Fam{name}"}]}).stored.id
        obs = repo.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": "2026-11-01",
                "valueQuantity": {
                    "value": 80,
                    "unit": "kg",
                    "system": "http://unitsofmeasure.org",
                    "code": "kg",
                },
            }
        ).stored.id
        ids[name] = {"patient": pid, "obs": obs}
    ids["practitioner"] = repo.create(
        {"resourceType": "Practitioner", "name": [{"family": "Coach"}]}
    ).stored.id
    return ids


NO_CREDENTIALS = [
    ("GET", "/fhir/Patient"),
    ("GET", "/fhir/Patient/x"),
    ("POST", "/fhir/Patient"),
    ("POST", "/fhir"),
    ("GET", "/fhir/Patient/x/$coaching-summary"),
    ("GET", "/fhir/_history"),
]


@pytest.mark.parametrize(("method", "path"), NO_CREDENTIALS)
def test_no_credentials_is_401(secure_client: Any, method: str, path: str) -> None:
    r = secure_client.request(method, path, json={"resourceType": "Patient"} if method == "POST" else None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_outcome(r, 401, "login")


def test_public_discovery_needs_no_credentials(secure_client: Any) -> None:
    assert secure_client.get("/fhir/metadata").status_code == 200
    conf = secure_client.get("/fhir/.well-known/smart-configuration")
    assert conf.status_code == 200
    assert conf.json()["token_endpoint"] == "http://127.0.0.1:8000/auth/token"
    jwks = secure_client.get("/.well-known/jwks.json").json()
    assert {k["alg"] for k in jwks["keys"]} == {"RS384", "ES384"}
    assert all("d" not in k for k in jwks["keys"])  # public halves only


def test_expired_and_unknown_tokens_are_401(
    secure_client: Any, secure_services: Any, two_patients: Any
) -> None:
    expired = bearer(secure_services, coach(), ttl=-5)
    r = secure_client.get("/fhir/Patient", headers=expired)
    assert_outcome(r, 401, "login")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = secure_client.get("/fhir/Patient", headers={"Authorization": "Bearer not-a-token"})
    assert_outcome(r, 401, "login")
    r = secure_client.get("/fhir/Patient", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_outcome(r, 401, "login")


def test_patient_sees_only_their_own_compartment(
    secure_client: Any, secure_services: Any, two_patients: Any
) -> None:
    a, b = two_patients["a"], two_patients["b"]
    login(secure_client, secure_services, patient(a["patient"]))
    assert secure_client.get(f"/fhir/Patient/{a['patient']}").status_code == 200
    assert secure_client.get(f"/fhir/Observation/{a['obs']}").status_code == 200
    for path in (
        f"/fhir/Patient/{b['patient']}",
        f"/fhir/Observation/{b['obs']}",
        f"/fhir/Patient/{b['patient']}/$everything",
        f"/fhir/Observation/{b['obs']}/_history/1",
    ):
        r = secure_client.get(path)
        assert_outcome(r, 404, "not-found")  # as if it did not exist (tests/auth/test_compartment_matrix.py)
        assert "Famb" not in r.text and "valueQuantity" not in r.text  # no data of B in the refusal
    # Searches are narrowed to the compartment, whatever the criteria ask for.
    bundle = secure_client.get("/fhir/Observation").json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [a["obs"]]
    bundle = secure_client.get(f"/fhir/Observation?subject=Patient/{b['patient']}").json()
    assert bundle["total"] == 0
    bundle = secure_client.get("/fhir/Patient?_revinclude=Observation:subject").json()
    assert {e["resource"]["id"] for e in bundle["entry"]} == {a["patient"], a["obs"]}
    # Type- and system-level history would show other patients' records.
    assert_outcome(secure_client.get("/fhir/Observation/_history"), 403, "forbidden")
    assert_outcome(secure_client.get("/fhir/_history"), 403, "forbidden")


def test_patient_cannot_write_into_another_record(
    secure_client: Any, secure_services: Any, two_patients: Any
) -> None:
    a, b = two_patients["a"], two_patients["b"]
    csrf = login(secure_client, secure_services, patient(a["patient"]))
    h = {"X-CSRF-Token": csrf}
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "mood"},
        "subject": {"reference": f"Patient/{b['patient']}"},
        "valueString": "fine",
    }
    assert_outcome(secure_client.post("/fhir/Observation", json=obs, headers=h), 403, "forbidden")
    # Re-pointing their own resource at someone else is refused too, and so is changing B's.
    mine = secure_client.get(f"/fhir/Observation/{a['obs']}").json()
    mine["subject"] = {"reference": f"Patient/{b['patient']}"}
    assert_outcome(secure_client.put(f"/fhir/Observation/{a['obs']}", json=mine, headers=h), 403, "forbidden")
    # The patient app's scopes hold no delete: refused by scope, before anything is read.
    assert_outcome(secure_client.delete(f"/fhir/Observation/{b['obs']}", headers=h), 403, "forbidden")
    assert secure_services.repo.read("Observation", b["obs"]).version_id == 1
    # A transaction is judged per entry and is all-or-nothing.
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**obs, "subject": {"reference": f"Patient/{a['patient']}"}},
                "request": {"method": "POST", "url": "Observation"},
            },
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    assert_outcome(secure_client.post("/fhir", json=bundle, headers=h), 403, "forbidden")
    assert secure_services.repo.search_params("Observation", []).total == 2  # nothing was written
    # Their own record: allowed.
    own = {**obs, "subject": {"reference": f"Patient/{a['patient']}"}}
    assert secure_client.post("/fhir/Observation", json=own, headers=h).status_code == 201
    # A patient may not write outside the patient data types.
    assert_outcome(
        secure_client.post("/fhir/Practitioner", json={"resourceType": "Practitioner"}, headers=h),
        403,
        "forbidden",
    )


def test_insufficient_scope_is_403(secure_client: Any, secure_services: Any, two_patients: Any) -> None:
    limited = bearer(secure_services, coach(scopes="user/Patient.rs"))
    assert (
        secure_client.get(f"/fhir/Patient/{two_patients['a']['patient']}", headers=limited).status_code == 200
    )
    assert_outcome(
        secure_client.get(f"/fhir/Observation/{two_patients['a']['obs']}", headers=limited), 403, "forbidden"
    )
    assert_outcome(secure_client.get("/fhir/Observation", headers=limited), 403, "forbidden")
    assert_outcome(
        secure_client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=limited),
        403,
        "forbidden",
    )
    # v1 scopes mean the same: read = rs, and write does not imply read.
    write_only = bearer(secure_services, coach(scopes="user/Observation.write"))
    assert_outcome(secure_client.get("/fhir/Observation", headers=write_only), 403, "forbidden")


def test_system_client_read_only_cannot_write(
    secure_client: Any, secure_services: Any, two_patients: Any
) -> None:
    bot = SystemClient(secure_services, scope="system/*.rs")
    h = bot.token(secure_client)
    assert secure_client.get("/fhir/Observation", headers=h).json()["total"] == 2
    assert_outcome(
        secure_client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=h), 403, "forbidden"
    )
    assert_outcome(
        secure_client.delete(f"/fhir/Patient/{two_patients['a']['patient']}", headers=h), 403, "forbidden"
    )
    r = secure_client.post(
        "/fhir",
        headers=h,
        json={
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
            ],
        },
    )
    assert r.status_code == 200
    assert r.json()["entry"][0]["response"]["status"].startswith("403")


def test_coach_sees_the_practice(secure_client: Any, secure_services: Any, two_patients: Any) -> None:
    login(secure_client, secure_services, coach(two_patients["practitioner"]))
    assert secure_client.get("/fhir/Patient").json()["total"] == 2
    assert secure_client.get(f"/fhir/Patient/{two_patients['b']['patient']}/$everything").status_code == 200


def test_cookie_writes_need_the_csrf_token(
    secure_client: Any, secure_services: Any, two_patients: Any
) -> None:
    csrf = login(secure_client, secure_services, coach())
    body = {"resourceType": "Patient", "name": [{"family": "New"}]}
    assert_outcome(secure_client.post("/fhir/Patient", json=body), 403, "forbidden")
    assert_outcome(
        secure_client.post("/fhir/Patient", json=body, headers={"X-CSRF-Token": "wrong"}), 403, "forbidden"
    )
    r = secure_client.post(
        "/fhir/Patient", json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert_outcome(r, 403, "forbidden")
    assert secure_client.post("/fhir/Patient", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_every_access_leaves_an_audit_event(
    secure_client: Any, secure_services: Any, two_patients: Any
) -> None:
    a, b = two_patients["a"], two_patients["b"]
    login(secure_client, secure_services, patient(a["patient"]))
    secure_client.get(f"/fhir/Observation/{a['obs']}")
    secure_client.get(f"/fhir/Patient/{b['patient']}")  # refused, and audited as such
    secure_services.audit.flush()
    events = [s.content for s in secure_services.repo.search_params("AuditEvent", [("_count", "50")]).matches]
    read = [e for e in events if e["outcome"] == "0"]
    refused = [e for e in events if e["outcome"] == "4"]
    assert len(read) == 1 and len(refused) == 1
    assert read[0]["action"] == "R"
    assert read[0]["agent"][0]["who"]["reference"] == f"Patient/{a['patient']}"
    assert read[0]["agent"][0]["network"]["address"]
    whats = {e["what"]["reference"] for e in read[0]["entity"]}
    assert whats == {f"Patient/{a['patient']}", f"Observation/{a['obs']}"}
    # The refusal lies in A's record and says what A asked for, as text: it names B by no reference.
    assert refused[0]["agent"][0]["who"]["reference"] == f"Patient/{a['patient']}"
    assert [e.get("what") for e in refused[0]["entity"]] == [{"reference": f"Patient/{a['patient']}"}, None]
    assert f"Patient/{b['patient']}" in refused[0]["entity"][1]["description"]
    # The patient can read who accessed their record; nobody can write AuditEvents.
    mine = secure_client.get("/fhir/AuditEvent").json()
    assert mine["total"] >= 1
    bot = SystemClient(secure_services, scope="system/*.cruds")
    r = secure_client.post(
        "/fhir/AuditEvent", json=read[0], headers=bot.token(secure_client, "system/*.cruds")
    )
    assert r.status_code == 405


def test_auth_off_refuses_a_public_bind(settings: Any) -> None:
    from fhir_ecr.app import create_app

    with pytest.raises(SystemExit, match="MECR_AUTH=off"):
        create_app(settings.model_copy(update={"auth": "off", "host": "0.0.0.0"}))
    with pytest.raises(SystemExit, match="MECR_AUTH=off"):
        create_app(settings.model_copy(update={"auth": "off", "environment": "production"}))


def test_cors_for_browser_apps_without_credentials(secure_client: Any) -> None:
    r = secure_client.options(
        "/fhir/Patient",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    conf = secure_client.get(
        "/fhir/.well-known/smart-configuration", headers={"Origin": "https://app.example"}
    )
    assert conf.headers["access-control-allow-origin"] == "*"
