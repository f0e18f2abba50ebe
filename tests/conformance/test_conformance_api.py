"""``$validate`` over HTTP, the CapabilityStatement, and the IG's conformance resources served read-only."""

from __future__ import annotations

from typing import Any

from fhir_ecr.conformance import load_conformance_resources
from tests.helpers import assert_outcome

from .conftest import MECR, example

STEPS = MECR + "mecr-daily-steps"


def test_validate_a_valid_resource(client: Any) -> None:
    resp = client.post("/fhir/Observation/$validate", json=example("Observation-example-daily-steps.json"))
    assert resp.status_code == 200
    issues = resp.json()["issue"]
    assert [i["severity"] for i in issues if i["severity"] in ("error", "fatal")] == []


def test_validate_reports_every_problem_with_200(client: Any) -> None:
    steps = example("Observation-example-daily-steps.json")
    steps["status"] = "preliminary"
    del steps["device"]
    resp = client.post("/fhir/Observation/$validate", json=steps)
    assert resp.status_code == 200
    found = sorted((i["code"], i["expression"][0]) for i in resp.json()["issue"] if i["severity"] == "error")
    assert found == [("code-invalid", "Observation.status"), ("invariant", "Observation")]


def test_validate_with_a_profile_parameter(client: Any) -> None:
    steps = example("Observation-example-daily-steps.json")
    del steps["meta"]
    steps["valueQuantity"]["code"] = "/min"
    plain = client.post("/fhir/Observation/$validate", json=steps).json()["issue"]
    assert [i["code"] for i in plain] == ["informational"]  # no claim, structure only: valid
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": steps}, {"name": "profile", "valueUri": STEPS}],
    }
    body = client.post("/fhir/Observation/$validate", json=params).json()
    assert [(i["code"], i["expression"]) for i in body["issue"] if i["severity"] == "error"] == [
        ("value", ["Observation.valueQuantity.code"])
    ]
    by_query = client.post("/fhir/Observation/$validate", params={"profile": STEPS}, json=steps).json()
    assert [i["code"] for i in by_query["issue"] if i["severity"] == "error"] == ["value"]
    unknown = client.post(
        "/fhir/Observation/$validate", params={"profile": "http://example.org/sd/x"}, json=steps
    )
    assert [i["code"] for i in unknown.json()["issue"]] == ["not-supported"]


def test_validate_structural_problems_and_bad_calls(client: Any) -> None:
    resp = client.post(
        "/fhir/Observation/$validate",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "bogus": 1},
    )
    assert resp.status_code == 200
    assert [i["code"] for i in resp.json()["issue"]] == ["structure"]
    assert_outcome(
        client.post("/fhir/Patient/$validate", json=example("Observation-example-daily-steps.json")),
        400,
        "invalid",
    )
    assert_outcome(
        client.post("/fhir/Observation/$validate", json={"resourceType": "Parameters"}), 400, "invalid"
    )


def test_write_with_a_broken_profile_is_422_over_http(client: Any) -> None:
    steps = example("Observation-example-daily-steps.json")
    del steps["id"]
    steps["subject"] = {"reference": "Group/g1"}
    body = assert_outcome(client.post("/fhir/Observation", json=steps), 422, "structure")
    assert [i["expression"] for i in body["issue"] if i["severity"] == "error"] == [
        ["Observation.subject.reference"]
    ]
    steps["subject"] = {"reference": "Patient/example-patient"}
    for rtype, rid in (
        ("Patient", "example-patient"),
        ("Device", "example-wrist-tracker"),
    ):  # what it refers to
        assert client.put(f"/fhir/{rtype}/{rid}", json={"resourceType": rtype, "id": rid}).status_code == 201
    assert client.post("/fhir/Observation", json=steps).status_code == 201


def test_capability_statement_lists_validate_and_supported_profiles(client: Any) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {
        "name": "validate",
        "definition": "https://mecr.dev/fhir/OperationDefinition/validate",
    } in by_type["Patient"]["operation"]
    assert STEPS in by_type["Observation"]["supportedProfile"]
    assert by_type["Task"]["supportedProfile"] == [MECR + "mecr-referral-task"]
    assert "supportedProfile" not in by_type["Patient"]


def test_conformance_resources_are_served(client: Any) -> None:
    sd = client.get("/fhir/StructureDefinition/mecr-daily-steps")
    assert sd.status_code == 200
    assert sd.json()["url"] == STEPS and sd.json()["snapshot"]["element"]
    found = client.get("/fhir/StructureDefinition", params={"url": STEPS}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["mecr-daily-steps"]
    assert client.get("/fhir/ValueSet/referral-category").json()["resourceType"] == "ValueSet"
    assert client.get("/fhir/CodeSystem/mecr-codes").json()["resourceType"] == "CodeSystem"
    total = client.get("/fhir/StructureDefinition", params={"_summary": "count"}).json()["total"]
    assert total == 21  # 16 profiles and 5 extensions of the IG


def test_conformance_resources_are_not_writable(client: Any) -> None:
    sd = client.get("/fhir/StructureDefinition/mecr-daily-steps").json()
    assert_outcome(client.put("/fhir/StructureDefinition/mecr-daily-steps", json=sd), 405, "not-supported")
    assert_outcome(
        client.post("/fhir/ValueSet", json={"resourceType": "ValueSet", "status": "draft"}),
        405,
        "not-supported",
    )
    assert_outcome(client.delete("/fhir/CodeSystem/mecr-codes"), 405, "not-supported")
    assert_outcome(
        client.patch(
            "/fhir/CodeSystem/mecr-codes", json=[], headers={"content-type": "application/json-patch+json"}
        ),
        405,
        "not-supported",
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "DELETE", "url": "StructureDefinition/mecr-daily-steps"}}],
    }
    assert_outcome(client.post("/fhir", json=bundle), 403, "forbidden")
    assert client.get("/fhir/StructureDefinition/mecr-daily-steps").json()["meta"]["versionId"] == "1"
    # the type's name spelt with escapes: the guard reads the parsed body, not its text
    escaped = b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "POST", '
    escaped += b'"url": "\\u0056alueSet"}, "resource": {"resourceType": "\\u0056alue\\u0053et", "status": "draft"}}]}'
    sent = client.post("/fhir", content=escaped, headers={"content-type": "application/fhir+json"})
    assert_outcome(sent, 403, "forbidden")
    other = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient"}}],
    }
    assert client.post("/fhir", json=other).status_code == 200  # other Bundles pass through the guard


def test_a_bundle_is_parsed_once_by_the_guard_and_the_route(client: Any, monkeypatch: Any) -> None:
    """The guard parses a POSTed Bundle with the route's parser and leaves it in the scope: the route does not
    parse it again (a transaction of 500 Observations: about 3 ms of the event loop in a busy server). The Bundle names
    a code system under ``.../CodeSystem/...``, as nearly every real one does."""
    import orjson

    calls: list[int] = []
    real = orjson.loads

    def counted(data: Any) -> Any:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(orjson, "loads", counted)
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Once"}],
        "maritalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]
        },
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
    }
    body = client.post("/fhir", json=bundle)
    assert body.status_code == 200, body.text
    assert body.json()["entry"][0]["response"]["status"].startswith("201")
    assert calls.count(len(body.request.content)) == 1  # the guard's parse, taken by the route
    created = client.get(
        "/fhir/" + body.json()["entry"][0]["response"]["location"].split("/_history")[0]
    ).json()
    assert created["name"] == [{"family": "Once"}]
    assert created["maritalStatus"]["coding"][0]["code"] == "M"


def test_read_json_body_parses_a_body_unlike_the_one_kept() -> None:
    """The parsed body in the scope is used only for the same text: a different body is parsed itself."""
    import asyncio

    from starlette.requests import Request

    from fhir_ecr.fhir.http import parse_json_once, read_json_body

    scope: dict[str, Any] = {"type": "http", "method": "POST", "headers": [], "path": "/fhir"}
    parse_json_once(scope, b'{"resourceType": "Bundle", "type": "batch"}')
    sent = b'{"resourceType": "Bundle", "type": "transaction"}'

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": sent, "more_body": False}

    parsed = asyncio.run(read_json_body(Request(scope, receive), 1000))
    assert parsed == {"resourceType": "Bundle", "type": "transaction"}


def test_loading_is_idempotent(client: Any, services: Any) -> None:
    assert client.get("/fhir/CodeSystem/mecr-codes").json()["meta"]["versionId"] == "1"
    assert load_conformance_resources(services.repo, services.conformance.ig) == 0
    with services.repo.unit() as uow:  # forget the digest: every resource is compared, and none changes
        uow.set_state("conformance.ig-digest", "stale")
    assert load_conformance_resources(services.repo, services.conformance.ig) == 0
    assert client.get("/fhir/CodeSystem/mecr-codes").json()["meta"]["versionId"] == "1"
