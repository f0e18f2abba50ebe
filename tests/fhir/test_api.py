"""The FHIR REST API over HTTP (TestClient), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import assert_outcome

FHIR_JSON = "application/fhir+json"


def post(client: Any, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, content=json.dumps(body), headers={"Content-Type": FHIR_JSON, **headers})


def put(client: Any, path: str, body: Any, **headers: str) -> Any:
    return client.put(path, content=json.dumps(body), headers={"Content-Type": FHIR_JSON, **headers})


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_create_read_headers(client: Any) -> None:
    r = post(client, "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Doe"}]})
    assert r.status_code == 201
    assert r.headers["content-type"].startswith(FHIR_JSON)
    body = r.json()
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert "GMT" in r.headers["last-modified"]
    read = client.get(f"/fhir/Patient/{body['id']}")
    assert read.status_code == 200 and read.json() == body and read.headers["etag"] == 'W/"1"'
    not_modified = client.get(f"/fhir/Patient/{body['id']}", headers={"If-None-Match": 'W/"1"'})
    assert not_modified.status_code == 304


def test_prefer_return(client: Any) -> None:
    patient = {"resourceType": "Patient"}
    minimal = post(client, "/fhir/Patient", patient, Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["location"]
    oo = post(client, "/fhir/Patient", patient, Prefer="return=OperationOutcome")
    assert oo.json()["resourceType"] == "OperationOutcome"


def test_update_if_match_and_vread_history(client: Any) -> None:
    pid = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json()["id"]
    ok = put(
        client,
        f"/fhir/Patient/{pid}",
        {"resourceType": "Patient", "id": pid, "gender": "male"},
        **{"If-Match": 'W/"1"'},
    )
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    stale = put(
        client,
        f"/fhir/Patient/{pid}",
        {"resourceType": "Patient", "id": pid, "gender": "female"},
        **{"If-Match": 'W/"1"'},
    )
    assert_outcome(stale, 412, "conflict")
    assert client.get(f"/fhir/Patient/{pid}/_history/1").json()["meta"]["versionId"] == "1"
    history = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert history["type"] == "history" and history["total"] == 2
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    type_history = client.get("/fhir/Patient/_history").json()
    assert type_history["total"] == 2
    assert client.get("/fhir/_history?_count=1").json()["link"][-1]["relation"] == "next"


def test_update_as_create_returns_201(client: Any) -> None:
    r = put(client, "/fhir/Patient/chosen-id", {"resourceType": "Patient", "id": "chosen-id"})
    assert r.status_code == 201 and r.json()["id"] == "chosen-id"


def test_delete_and_gone(client: Any) -> None:
    pid = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json()["id"]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert_outcome(client.get(f"/fhir/Patient/{pid}"), 410, "deleted")
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.delete("/fhir/Patient/never-existed").status_code == 204


def test_patch(client: Any) -> None:
    pid = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json()["id"]
    r = client.patch(
        f"/fhir/Patient/{pid}",
        content=json.dumps([{"op": "add", "path": "/active", "value": True}]),
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert r.status_code == 200 and r.json()["active"] is True and r.headers["etag"] == 'W/"2"'
    bad = client.patch(
        f"/fhir/Patient/{pid}",
        content=json.dumps([{"op": "test", "path": "/active", "value": False}]),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert_outcome(bad, 422, "processing")


def test_conditional_create_update_delete(client: Any) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "7"}]}
    first = post(client, "/fhir/Patient", body, **{"If-None-Exist": "identifier=urn:mrn|7"})
    second = post(client, "/fhir/Patient", body, **{"If-None-Exist": "identifier=urn:mrn|7"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    upd = put(client, "/fhir/Patient?identifier=urn:mrn|7", {**body, "gender": "female"})
    assert (
        upd.status_code == 200 and upd.json()["id"] == first.json()["id"] and upd.json()["gender"] == "female"
    )
    new = put(
        client,
        "/fhir/Patient?identifier=urn:mrn|8",
        {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "8"}]},
    )
    assert new.status_code == 201
    assert client.delete("/fhir/Patient?identifier=urn:mrn|7").status_code == 204
    assert client.get("/fhir/Patient?identifier=urn:mrn|7").json()["total"] == 0


def test_search_bundle_and_paging_links(client: Any) -> None:
    for i in range(5):
        post(client, "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": f"Fam{i}"}]})
    page = client.get("/fhir/Patient?name=fam&_count=2").json()
    assert page["type"] == "searchset" and page["total"] == 5
    seen = []
    while True:
        seen += [e["resource"]["id"] for e in page["entry"] if e["search"]["mode"] == "match"]
        assert all(e["fullUrl"].startswith("http://testserver/fhir/Patient/") for e in page["entry"])
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        page = client.get(local(nxt[0])).json()
    assert len(seen) == len(set(seen)) == 5
    post_search = client.post(
        "/fhir/Patient/_search",
        content="name=fam2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert post_search.json()["total"] == 1


def test_search_summary_elements_and_warnings(client: Any) -> None:
    post(
        client,
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "gender": "male",
            "name": [{"family": "X"}],
            "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">X</div>'},
        },
    )
    count = client.get("/fhir/Patient?_summary=count").json()
    assert count["total"] == 1 and "entry" not in count
    elements = client.get("/fhir/Patient?_elements=gender").json()["entry"][0]["resource"]
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    assert elements["meta"]["tag"][0]["code"] == "SUBSETTED"
    summary = client.get("/fhir/Patient?_summary=true").json()["entry"][0]["resource"]
    assert "name" in summary and "text" not in summary
    warned = client.get("/fhir/Patient?shoe=42").json()
    assert warned["entry"][-1]["search"]["mode"] == "outcome"
    strict = client.get("/fhir/Patient?shoe=42", headers={"Prefer": "handling=strict"})
    assert_outcome(strict, 400, "invalid")


def test_transaction_rewrites_urn_uuid_and_is_atomic(client: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
                "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
                "resource": {
                    "resourceType": "Goal",
                    "lifecycleStatus": "active",
                    "description": {"text": "Walk"},
                    "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"},
                },
                "request": {"method": "POST", "url": "Goal"},
            },
        ],
    }
    r = post(client, "/fhir", bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created", "201 Created"]
    pid = out["entry"][0]["resource"]["id"]
    assert out["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert client.get(f"/fhir/Goal?patient={pid}").json()["total"] == 1
    # one bad entry: nothing from the Bundle is stored
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "Goal",
                "lifecycleStatus": "nonsense-but-string",
                "description": {"text": 1},
            },
            "request": {"method": "POST", "url": "Goal"},
        }
    )
    bad = post(client, "/fhir", bundle)
    body = assert_outcome(bad, 400)
    assert "Bundle.entry[2]" in body["issue"][0]["expression"]
    assert client.get("/fhir/Patient?family=tx").json()["total"] == 1
    assert client.get("/fhir/Goal").json()["total"] == 1


def test_transaction_conditional_reference_and_if_none_exist(client: Any) -> None:
    post(
        client,
        "/fhir/Patient",
        {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "9"}]},
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:aaaaaaaa-1111-1111-1111-111111111111",
                "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "9"}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|9"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "Patient?identifier=urn:mrn|9"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {
                    "resourceType": "Goal",
                    "lifecycleStatus": "active",
                    "description": {"text": "y"},
                    "subject": {"reference": "urn:uuid:aaaaaaaa-1111-1111-1111-111111111111"},
                },
                "request": {"method": "POST", "url": "Goal"},
            },
        ],
    }
    out = post(client, "/fhir", bundle).json()
    assert out["entry"][0]["response"]["status"] == "200 OK"  # matched, not created
    pid = out["entry"][0]["resource"]["id"]
    assert out["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert out["entry"][2]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert client.get("/fhir/Patient").json()["total"] == 1


def test_transaction_orders_delete_post_put_get(client: Any) -> None:
    put(client, "/fhir/Patient/old", {"resourceType": "Patient", "id": "old"})
    put(client, "/fhir/Patient/patched", {"resourceType": "Patient", "id": "patched"})
    patch_doc = base64.b64encode(
        json.dumps([{"op": "add", "path": "/gender", "value": "other"}]).encode()
    ).decode()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": "Patient?_summary=count"}},
            {
                "resource": {"resourceType": "Patient", "id": "kept"},
                "request": {"method": "PUT", "url": "Patient/kept"},
            },
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": patch_doc,
                },
                "request": {"method": "PATCH", "url": "Patient/patched"},
            },
            {"request": {"method": "DELETE", "url": "Patient/old"}},
        ],
    }
    out = post(client, "/fhir", bundle)
    assert out.status_code == 200, out.text
    entries = out.json()["entry"]
    assert entries[0]["resource"]["total"] == 2  # GET ran last: "old" gone, "kept" and "patched" there
    assert entries[3]["response"]["status"] == "204 No Content"
    assert client.get("/fhir/Patient/patched").json()["gender"] == "other"


@pytest.mark.parametrize(
    "second",
    [
        {
            "resource": {"resourceType": "Patient", "id": "twice", "gender": "male"},
            "request": {"method": "PUT", "url": "Patient/twice"},
        },
        {"request": {"method": "DELETE", "url": "Patient/twice"}},
        {"request": {"method": "DELETE", "url": "Patient?_id=twice"}},
        {
            "resource": {"resourceType": "Patient", "gender": "male"},
            "request": {"method": "PUT", "url": "Patient?_id=twice"},
        },
    ],
)
def test_transaction_naming_a_resource_twice_is_refused(client: Any, second: dict[str, Any]) -> None:
    """R4 http.html#trules: overlapping identities (conditional ones resolved) fail the transaction, and nothing
    of it is written."""
    put(client, "/fhir/Patient/twice", {"resourceType": "Patient", "id": "twice"})
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "twice", "gender": "female"},
                "request": {"method": "PUT", "url": "Patient/twice"},
            },
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "New"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            second,
        ],
    }
    body = assert_outcome(post(client, "/fhir", bundle), 400, "invalid")
    assert "both change Patient/twice" in body["issue"][0]["diagnostics"]
    assert client.get("/fhir/Patient/twice").json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient").json()["total"] == 1


def test_batch_reports_each_entry(client: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {"resourceType": "Patient", "gender": 5},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "GET", "url": "Patient/missing"}},
        ],
    }
    out = post(client, "/fhir", bundle).json()
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses[0] == "201 Created" and statuses[1] == "400" and statuses[2] == "404"
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient").json()["total"] == 1


def test_everything_operation(client: Any) -> None:
    pid = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json()["id"]
    post(
        client,
        "/fhir/Goal",
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "a"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    post(
        client,
        "/fhir/Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "b"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    other = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json()["id"]
    post(
        client,
        "/fhir/Goal",
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "c"},
            "subject": {"reference": f"Patient/{other}"},
        },
    )
    everything = client.get(f"/fhir/Patient/{pid}/$everything").json()
    assert sorted(e["resource"]["resourceType"] for e in everything["entry"]) == [
        "Goal",
        "Observation",
        "Patient",
    ]
    only_goals = client.get(f"/fhir/Patient/{pid}/$everything?_type=Goal").json()
    assert [e["resource"]["resourceType"] for e in only_goals["entry"]] == ["Goal"]
    assert_outcome(client.get("/fhir/Patient/missing/$everything"), 404, "not-found")
    assert_outcome(client.get(f"/fhir/Goal/{pid}/$everything"), 400, "not-supported")


def test_capability_statement_is_what_is_implemented(client: Any) -> None:
    from fhir_ecr.fhir.routes import router

    cs = client.get("/fhir/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    required = {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "HealthcareService",
        "Group",
        "Device",
        "Goal",
        "CarePlan",
        "Observation",
        "Condition",
        "ServiceRequest",
        "Task",
        "Encounter",
        "Communication",
        "Questionnaire",
        "QuestionnaireResponse",
        "Consent",
        "DocumentReference",
        "Provenance",
        "AuditEvent",
        "Claim",
    }
    assert required <= types
    # every advertised type answers a search, and every advertised search parameter parses
    for resource in rest["resource"]:
        r = client.get(f"/fhir/{resource['type']}?_count=1&_total=none")
        assert r.status_code == 200, (resource["type"], r.text)
        for sp in resource["searchParam"]:
            value = {
                "token": "x",
                "string": "x",
                "reference": "x",
                "date": "2020",
                "number": "1",
                "quantity": "1",
                "uri": "http://x",
                "special": {
                    "near": "39.8|-89.6|5|km",
                    "near-postalcode": "62701|5|km",
                    "age": "30",
                    "open-at": "mon-10:00",
                    "available-day": "mon",
                    "keyword": "food",
                }.get(sp["name"]),
            }[sp["type"]]
            r = client.get(
                f"/fhir/{resource['type']}",
                params={sp["name"]: value, "_count": "0", "_total": "none"},
                headers={"Prefer": "handling=strict"},
            )
            assert r.status_code == 200, (resource["type"], sp["name"], r.text)
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {
        "name": "everything",
        "definition": "https://mecr.dev/fhir/OperationDefinition/everything",
    } in patient["operation"]
    # every interaction advertised has a route
    routes = {(m, r.path) for r in router.routes for m in getattr(r, "methods", set())}
    needed = {
        "read": ("GET", "/fhir/{rtype}/{rid}"),
        "vread": ("GET", "/fhir/{rtype}/{rid}/_history/{vid}"),
        "update": ("PUT", "/fhir/{rtype}/{rid}"),
        "patch": ("PATCH", "/fhir/{rtype}/{rid}"),
        "delete": ("DELETE", "/fhir/{rtype}/{rid}"),
        "create": ("POST", "/fhir/{rtype}"),
        "search-type": ("GET", "/fhir/{rtype}"),
        "history-type": ("GET", "/fhir/{rtype}/_history"),
        "history-instance": ("GET", "/fhir/{rtype}/{rid}/_history"),
    }
    for interaction in patient["interaction"]:
        assert needed[interaction["code"]] in routes
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}


@pytest.mark.parametrize("fmt", ["json", "application/fhir+json", "application/json"])
def test_format_json_accepted(client: Any, fmt: str) -> None:
    assert client.get("/fhir/metadata", params={"_format": fmt}).status_code == 200


def test_openapi_page(client: Any) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/fhir/{rtype}" in spec["paths"] and "/fhir/metadata" in spec["paths"]
