"""Faults with respx at the EMR's edge: 5xx and 429 with Retry-After (retried with backoff, never sooner than the
EMR asked), a permanent refusal (parked with the EMR's OperationOutcome), an expired token (refreshed once)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import respx

from fhir_ecr.sync import tasks
from tests.sync.support import register

BASE = "https://emr.example/fhir"
CONFIG = {
    "token_endpoint": "https://emr.example/token",
    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    "grant_types_supported": ["client_credentials"],
    "scopes_supported": ["system/*.cruds"],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "capabilities": [],
}


def _setup(services: Any) -> str:
    register(services, BASE, pull="Patient", push="Goal", batch=False)
    pid = "p-local"
    services.repo.update(
        "Patient",
        pid,
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:mecr:ehr:emr:Patient", "value": "p1"}],
        },
    )
    services.repo.create(
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "walk"},
            "subject": {"reference": f"Patient/{pid}"},
        }
    )
    return pid


def _mock(router: respx.MockRouter, tokens: list[str]) -> None:
    router.get(f"{BASE}/.well-known/smart-configuration").respond(json=CONFIG)

    def token(request: httpx.Request) -> httpx.Response:
        tokens.append(f"t{len(tokens)}")
        return httpx.Response(
            200,
            json={
                "access_token": tokens[-1],
                "token_type": "bearer",
                "expires_in": 300,
                "scope": "system/*.cruds",
            },
        )

    router.post("https://emr.example/token").mock(side_effect=token)


def test_503_and_429_are_retried_after_retry_after_then_delivered(services: Any) -> None:
    _setup(services)
    tokens: list[str] = []
    with respx.mock(assert_all_called=False) as router:
        _mock(router, tokens)
        router.post(f"{BASE}/Goal").mock(
            side_effect=[
                httpx.Response(503),
                httpx.Response(429, headers={"Retry-After": "120"}),
                httpx.Response(201, json={"resourceType": "Goal", "id": "g9", "meta": {"versionId": "1"}}),
            ]
        )
        assert tasks.deliver_now(services, "emr").retried == 1
        row = services.sync_store.outbox("emr")[0]
        assert row.state == "pending" and row.attempts == 1 and row.last_status == 503
        services.sync_store.reschedule(row.id, int(time.time()), row.attempts)  # its time has come
        assert tasks.deliver_now(services, "emr").retried == 1
        row = services.sync_store.outbox("emr")[0]
        assert row.next_attempt >= time.time() + 119  # the EMR's Retry-After, not the shorter backoff
        services.sync_store.reschedule(row.id, int(time.time()), row.attempts)
        assert tasks.deliver_now(services, "emr").delivered == 1
    assert services.sync_store.outbox("emr")[0].state == "done"
    assert tokens == ["t0"]  # one token for the whole run: cached


def test_a_refusal_is_parked_with_the_emr_outcome(services: Any) -> None:
    _setup(services)
    with respx.mock(assert_all_called=False) as router:
        _mock(router, [])
        router.post(f"{BASE}/Goal").respond(
            422,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "business-rule", "diagnostics": "goal needs a target"}
                ],
            },
        )
        assert tasks.deliver_now(services, "emr").parked == 1
    row = services.sync_store.outbox("emr", ["parked"])[0]
    assert row.last_status == 422 and "goal needs a target" in (row.outcome or "")


def test_an_expired_token_is_refreshed_once(services: Any) -> None:
    _setup(services)
    tokens: list[str] = []
    with respx.mock(assert_all_called=False) as router:
        _mock(router, tokens)

        def goal(request: httpx.Request) -> httpx.Response:
            if request.headers["Authorization"] == "Bearer t0":
                return httpx.Response(401)
            return httpx.Response(201, json={"resourceType": "Goal", "id": "g1", "meta": {"versionId": "1"}})

        router.post(f"{BASE}/Goal").mock(side_effect=goal)
        assert tasks.deliver_now(services, "emr").delivered == 1
    assert tokens == ["t0", "t1"]


def test_a_timeout_is_retried_later_then_delivered(services: Any) -> None:
    _setup(services)
    with respx.mock(assert_all_called=False) as router:
        _mock(router, [])
        router.post(f"{BASE}/Goal").mock(
            side_effect=[
                httpx.ReadTimeout("the EMR is slow"),
                httpx.Response(201, json={"resourceType": "Goal", "id": "g7", "meta": {"versionId": "1"}}),
            ]
        )
        assert tasks.deliver_now(services, "emr").retried == 1
        row = services.sync_store.outbox("emr")[0]
        assert row.state == "pending" and row.attempts == 1 and row.last_status is None
        assert row.next_attempt > time.time()  # backed off, not hammered
        services.sync_store.reschedule(row.id, int(time.time()), row.attempts)
        assert tasks.deliver_now(services, "emr").delivered == 1
    assert services.sync_store.links("emr", "Goal", [row.res_id])[row.res_id].remote_id == "g7"


def ndjson(resources: list[dict[str, Any]]) -> httpx.Response:
    body = b"\n".join(httpx.Response(200, json=r).content for r in resources) + b"\n"
    return httpx.Response(200, content=body, headers={"Content-Type": "application/fhir+ndjson"})


def bulk_pull(
    services: Any, files: dict[str, list[dict[str, Any]]], deleted: list[dict[str, Any]] | None = None
) -> Any:
    """One Bulk Data pull from the fake EMR, whose manifest lists ``files`` (type -> its resources) and, if
    given, a ``deleted`` file of those Bundles; the pull's counts."""
    with respx.mock(assert_all_called=False) as router:
        _mock(router, [])
        router.get(f"{BASE}/$export").respond(202, headers={"Content-Location": f"{BASE}/status/1"})
        router.get(f"{BASE}/status/1").respond(
            200,
            json={
                "transactionTime": "2026-12-01T00:00:00Z",
                "request": f"{BASE}/$export",
                "requiresAccessToken": True,
                "output": [{"type": t, "url": f"{BASE}/files/{t}.ndjson"} for t in files],
                "deleted": [{"type": "Bundle", "url": f"{BASE}/files/deleted.ndjson"}] if deleted else [],
                "error": [],
            },
        )
        router.delete(f"{BASE}/status/1").respond(202)
        for t, resources in {**files, **({"deleted": deleted} if deleted else {})}.items():
            router.get(f"{BASE}/files/{t}.ndjson").mock(return_value=ndjson(resources))
        return tasks.pull_now(services, "emr")


def test_bulk_manifest_deleted_files_delete_the_copies(services: Any) -> None:
    """Bulk Data 2.0: a manifest's ``deleted`` files (Bundles of DELETE requests) delete the pulled copies."""
    from fhir_ecr.sync.mapping import local_id
    from tests.sync.support import local, patient, weight

    register(services, BASE, pull="Patient, Observation", push="", mode="bulk")
    bulk_pull(
        services,
        {
            "Patient": [patient("p1", "MRN-1", "Lopez")],
            "Observation": [weight("o1", "p1", "70.5"), weight("o2", "p1", "71.5")],
        },
    )
    assert len(local(services, "Observation")) == 2
    deletions = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Observation/o1"}},
            {"request": {"method": "DELETE", "url": "Patient/p1"}},
        ],
    }
    bulk_pull(services, {}, [deletions])
    assert [o["id"] for o in local(services, "Observation")] == [local_id("emr", "Observation", "o2")]
    assert len(local(services, "Patient")) == 1  # mECR's Patient stays: it is mECR's record
    assert services.sync_store.mark("emr", "*")["state"] is None
