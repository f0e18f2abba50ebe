"""Every failure path answers with an OperationOutcome and the right status, and changes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.helpers import assert_outcome

JSON = {"Content-Type": "application/fhir+json"}


def total(client: Any, rtype: str) -> int:
    return int(client.get(f"/fhir/{rtype}?_summary=count").json()["total"])


def test_malformed_json(client: Any) -> None:
    assert_outcome(
        client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=JSON), 400, "invalid"
    )
    assert total(client, "Patient") == 0


def test_empty_body_and_non_object(client: Any) -> None:
    assert_outcome(client.post("/fhir/Patient", content=b"", headers=JSON), 400, "invalid")
    assert_outcome(client.post("/fhir/Patient", content=b"[1, 2]", headers=JSON), 400, "invalid")


def test_wrong_resource_type(client: Any) -> None:
    r = client.post("/fhir/Patient", content=json.dumps({"resourceType": "Observation"}), headers=JSON)
    body = assert_outcome(r, 400, "invalid")
    assert body["issue"][0]["expression"] == ["resourceType"]
    r = client.put("/fhir/Patient/x", content=json.dumps({"resourceType": "Goal", "id": "x"}), headers=JSON)
    assert_outcome(r, 400, "invalid")


def test_id_mismatch_on_update(client: Any) -> None:
    r = client.put(
        "/fhir/Patient/a", content=json.dumps({"resourceType": "Patient", "id": "b"}), headers=JSON
    )
    body = assert_outcome(r, 400, "invalid")
    assert body["issue"][0]["expression"] == ["Patient.id"]


@pytest.mark.parametrize(
    ("resource", "code", "where"),
    [
        ({"resourceType": "Patient", "gender": 5}, "value", "Patient.gender"),
        ({"resourceType": "Patient", "unknownThing": True}, "structure", "Patient.unknownThing"),
        ({"resourceType": "Observation", "code": {"text": "x"}}, "required", "Observation.status"),
        ({"resourceType": "Patient", "birthDate": "1990-02-30"}, "value", "Patient.birthDate"),
        ({"resourceType": "Patient", "name": [{"given": "not-a-list"}]}, "value", "Patient.name[0].given"),
    ],
)
def test_invalid_resource(client: Any, resource: dict[str, Any], code: str, where: str) -> None:
    r = client.post(f"/fhir/{resource['resourceType']}", content=json.dumps(resource), headers=JSON)
    body = assert_outcome(r, 400, code)
    assert where in [e for i in body["issue"] for e in i.get("expression", [])]
    assert total(client, resource["resourceType"]) == 0


def test_unknown_type_and_route(client: Any) -> None:
    assert_outcome(client.get("/fhir/Spaceship"), 404, "not-found")
    assert_outcome(client.get("/fhir/Spaceship/1"), 404, "not-found")
    assert_outcome(client.post("/fhir/Spaceship", content=b"{}", headers=JSON), 404, "not-found")
    assert_outcome(client.get("/not-a-route"), 404)


@pytest.mark.parametrize(
    "query",
    [
        "birthdate=not-a-date",
        "birthdate=ap2020",
        "_count=many",
        "_sort=shoe",
        "gender:in=x",
        "_summary=maybe",
        "_total=lots",
        "organization.nonsense=1",
        "_include=Patient:gender",
        "active:missing=perhaps",
    ],
)
def test_bad_search_value(client: Any, query: str) -> None:
    assert_outcome(client.get(f"/fhir/Patient?{query}"), 400)


def test_oversized_body(client: Any, settings: Any) -> None:
    big = {"resourceType": "Patient", "name": [{"text": "x" * (settings.max_body_bytes + 10)}]}
    assert_outcome(client.post("/fhir/Patient", content=json.dumps(big), headers=JSON), 413, "too-long")
    assert total(client, "Patient") == 0


def test_unknown_id_version_and_deleted(client: Any) -> None:
    assert_outcome(client.get("/fhir/Patient/nobody"), 404, "not-found")
    pid = client.post("/fhir/Patient", content=b'{"resourceType": "Patient"}', headers=JSON).json()["id"]
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/7"), 404, "not-found")
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/x"), 404, "not-found")
    client.delete(f"/fhir/Patient/{pid}")
    r = client.get(f"/fhir/Patient/{pid}")
    assert_outcome(r, 410, "deleted")
    assert r.headers["etag"] == 'W/"2"'
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/2"), 410, "deleted")
    assert_outcome(client.get("/fhir/Patient/nobody/_history"), 404, "not-found")


def test_version_conflict_and_bad_if_match(client: Any) -> None:
    pid = client.post("/fhir/Patient", content=b'{"resourceType": "Patient"}', headers=JSON).json()["id"]
    body = json.dumps({"resourceType": "Patient", "id": pid, "active": True})
    assert_outcome(
        client.put(f"/fhir/Patient/{pid}", content=body, headers={**JSON, "If-Match": 'W/"9"'}),
        412,
        "conflict",
    )
    assert_outcome(
        client.put(f"/fhir/Patient/{pid}", content=body, headers={**JSON, "If-Match": "garbage!"}),
        400,
        "invalid",
    )
    assert client.get(f"/fhir/Patient/{pid}").json().get("active") is None


def test_media_types(client: Any) -> None:
    assert_outcome(client.get("/fhir/metadata?_format=xml"), 406, "not-supported")
    assert_outcome(
        client.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"}), 406, "not-supported"
    )
    r = client.post("/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"})
    assert_outcome(r, 415, "not-supported")
    r = client.post("/fhir/Patient/_search", content=b"{}", headers={"Content-Type": "application/json"})
    assert_outcome(r, 415, "not-supported")


def test_method_not_allowed(client: Any) -> None:
    assert_outcome(client.post("/fhir/Patient/123", content=b"{}", headers=JSON), 405, "not-supported")
    assert_outcome(client.patch("/fhir/Patient", content=b"[]", headers=JSON), 405)


def test_bad_bundles(client: Any, settings: Any) -> None:
    def post(body: Any) -> Any:
        return client.post("/fhir", content=json.dumps(body), headers=JSON)

    assert_outcome(post({"resourceType": "Patient"}), 400, "invalid")
    assert_outcome(post({"resourceType": "Bundle", "type": "collection"}), 400, "invalid")
    assert_outcome(
        post(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "TELEPORT", "url": "Patient"}}],
            }
        ),
        400,
        "invalid",
    )
    assert_outcome(
        post(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "request": {"method": "POST", "url": "Spaceship"},
                        "resource": {"resourceType": "Spaceship"},
                    }
                ],
            }
        ),
        400,
        "invalid",
    )
    assert_outcome(
        post(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:1",
                        "resource": {"resourceType": "Patient"},
                        "request": {"method": "POST", "url": "Patient"},
                    },
                    {
                        "fullUrl": "urn:uuid:1",
                        "resource": {"resourceType": "Patient"},
                        "request": {"method": "POST", "url": "Patient"},
                    },
                ],
            }
        ),
        400,
        "invalid",
    )
    too_many = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient"}}] * (settings.max_bundle_entries + 1),
    }
    assert_outcome(post(too_many), 413, "too-costly")
    unresolved = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Goal",
                    "lifecycleStatus": "active",
                    "description": {"text": "x"},
                    "subject": {"reference": "Patient?identifier=none|none"},
                },
                "request": {"method": "POST", "url": "Goal"},
            }
        ],
    }
    assert_outcome(post(unresolved), 404, "not-found")
    assert total(client, "Patient") == 0 and total(client, "Goal") == 0


def test_conditional_multiple_matches(client: Any) -> None:
    for _ in range(2):
        client.post(
            "/fhir/Patient", content=json.dumps({"resourceType": "Patient", "gender": "male"}), headers=JSON
        )
    r = client.post(
        "/fhir/Patient",
        content=json.dumps({"resourceType": "Patient"}),
        headers={**JSON, "If-None-Exist": "gender=male"},
    )
    assert_outcome(r, 412, "multiple-matches")
    r = client.put("/fhir/Patient?gender=male", content=json.dumps({"resourceType": "Patient"}), headers=JSON)
    assert_outcome(r, 412, "multiple-matches")
    assert_outcome(client.delete("/fhir/Patient?gender=male"), 412, "multiple-matches")
    assert_outcome(client.put("/fhir/Patient", content=b'{"resourceType": "Patient"}', headers=JSON), 400)
    assert total(client, "Patient") == 2


def test_unknown_operation(client: Any) -> None:
    assert_outcome(client.get("/fhir/Patient/$teleport"), 404, "not-supported")
    assert_outcome(client.get("/fhir/Patient/1/$teleport"), 404, "not-supported")


def test_unexpected_exception_is_500_without_details(
    client: Any, services: Any, monkeypatch: Any, caplog: Any
) -> None:
    secret = "Jane-Doe-SSN-123-45-6789"

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"database exploded near {secret}")

    monkeypatch.setattr(services.repo, "read", boom)
    with caplog.at_level(logging.ERROR, logger="mecr"):
        r = client.get("/fhir/Patient/some-id")
    body = assert_outcome(r, 500, "exception")
    assert secret not in r.text and "exploded" not in r.text
    assert body["issue"][0]["diagnostics"] == "internal server error"
    log_lines = [rec.getMessage() for rec in caplog.records]
    assert any("RuntimeError" in line and "GET /fhir/{rtype}/{rid}" in line for line in log_lines)
    # the formatted log, tracebacks included: the exception's message never reaches it
    assert secret not in caplog.text and "exploded" not in caplog.text and "some-id" not in caplog.text


def test_access_log_has_route_templates_not_phi(client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="mecr.access"):
        client.get("/fhir/Patient", params={"name": "Doe", "identifier": "urn:mrn|12345"})
        client.get("/fhir/Patient/jane-doe-id")
    lines = [r.getMessage() for r in caplog.records if r.name == "mecr.access"]
    assert any(line.startswith("GET /fhir/{rtype} 200") for line in lines), lines
    assert any(line.startswith("GET /fhir/{rtype}/{rid} 404") for line in lines), lines
    assert not any("Doe" in line or "12345" in line or "jane-doe-id" in line for line in lines)
