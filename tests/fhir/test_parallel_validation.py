"""A large transaction validated in a worker process (fhir_ecr/store/validation_pool.py) answers exactly what
in-line validation answers, over HTTP, on SQLite and PostgreSQL: the same stored resources when every one is
valid; the same status and OperationOutcome, about the same entry, and nothing stored when one is not."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.conformance import standard_validator
from fhir_ecr.fhir.bundles import process_bundle
from fhir_ecr.outcomes import FhirError
from fhir_ecr.store.validation_pool import MIN_RESOURCES, ValidationPool

FHIR_JSON = "application/fhir+json"
STEPS = (
    Path(__file__).resolve().parents[2] / "profiles/generated/resources/Observation-example-daily-steps.json"
)
N = MIN_RESOURCES + 36  # two chunks of the pool's
PATIENT = "urn:uuid:6a0c6a6e-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def pool() -> Iterator[ValidationPool]:
    p = ValidationPool(standard_validator)
    p.start()
    assert p.wait_ready(120), "the validation worker did not start"
    yield p
    p.close()


def observation(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": PATIENT},
        "effectiveDateTime": f"2026-01-{1 + i % 28:02d}T08:00:00Z",
        "valueQuantity": {
            "value": 60 + i % 30,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def transaction(resources: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    patient = PATIENT
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {"resourceType": "Patient", "name": [{"family": "Pool"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            *({"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources),
            *(extra or []),
        ],
    }


def post(client: Any, bundle: dict[str, Any]) -> Any:
    return client.post("/fhir", content=json.dumps(bundle), headers={"Content-Type": FHIR_JSON})


def count(client: Any, rtype: str) -> int:
    return int(client.get(f"/fhir/{rtype}?_summary=count").json()["total"])


def both_ways(client: Any, services: Any, pool: ValidationPool, bundle: dict[str, Any]) -> tuple[Any, Any]:
    """The same Bundle posted with validation in line, then through the pool (which must have taken it)."""
    services.repo.validation_pool = None
    in_line = post(client, copy.deepcopy(bundle))
    services.repo.validation_pool = pool
    units = pool.units
    pooled = post(client, copy.deepcopy(bundle))
    assert pool.units == units + 1, "the pool did not take the transaction"
    return in_line, pooled


def test_a_valid_transaction_stores_the_same(client: Any, services: Any, pool: ValidationPool) -> None:
    services.repo.validation_pool = pool
    units = pool.units
    r = post(client, transaction([observation(i) for i in range(N)]))
    assert r.status_code == 200, r.text
    assert pool.units == units + 1
    entries = r.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created"] * (N + 1)
    assert count(client, "Observation") == N
    patient = entries[0]["response"]["location"].split("/_history")[0]
    stored = client.get(f"/fhir/{entries[5]['response']['location'].split('/_history')[0]}").json()
    expected = {**observation(4), "subject": {"reference": patient}}
    assert {k: v for k, v in stored.items() if k not in ("id", "meta")} == expected


def test_below_the_threshold_validates_in_line(client: Any, services: Any, pool: ValidationPool) -> None:
    services.repo.validation_pool = pool
    units = pool.units
    assert post(client, transaction([observation(i) for i in range(MIN_RESOURCES - 2)])).status_code == 200
    assert pool.units == units


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"valueQuantity": {"value": "seventy"}}, id="structure"),
        pytest.param({"status": "bogus"}, id="binding-422"),
        pytest.param({"subject": "Patient/p1", "effectiveDateTime": 5}, id="shapes-the-indexer-cannot-read"),
        pytest.param({"id": "a b", "valueQuantity": {"value": [1]}}, id="several-problems"),
    ],
)
def test_an_invalid_entry_answers_as_in_line(
    client: Any, services: Any, pool: ValidationPool, broken: dict[str, Any]
) -> None:
    resources = [observation(i) for i in range(N)]
    resources[70] = {**resources[70], **broken}
    resources[90] = {
        **resources[90],
        "status": 7,
    }  # a later one too: the first in processing order is reported
    in_line, pooled = both_ways(client, services, pool, transaction(resources))
    assert in_line.status_code in (400, 422)
    assert (pooled.status_code, pooled.json()) == (in_line.status_code, in_line.json())
    assert all(i["expression"][0] == "Bundle.entry[71]" for i in pooled.json()["issue"])
    assert count(client, "Observation") == 0 and count(client, "Patient") == 0


def test_a_broken_profile_answers_as_in_line(client: Any, services: Any, pool: ValidationPool) -> None:
    steps = json.loads(STEPS.read_text(encoding="utf-8"))
    del steps["id"]
    steps["subject"] = {"reference": PATIENT}
    broken = {**copy.deepcopy(steps), "status": "preliminary"}  # allowed by the base spec, not by the profile
    resources = [observation(i) for i in range(N)] + [steps, broken]
    in_line, pooled = both_ways(client, services, pool, transaction(resources))
    assert in_line.status_code == 422
    assert pooled.json() == in_line.json() and pooled.status_code == 422
    assert count(client, "Observation") == 0


def test_an_invalid_post_comes_before_a_later_failure(
    client: Any, services: Any, pool: ValidationPool
) -> None:
    """POSTs run before PUTs (R4 http.html#trules): in line, the invalid POST fails before the PUT's If-Match is
    looked at; deferred, the PUT fails first, and the POST's refusal still wins."""
    pid = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
    resources = [observation(i) for i in range(N)]
    resources[3] = {**resources[3], "valueQuantity": {"value": "x"}}
    stale = {
        "resource": {"resourceType": "Patient", "id": pid, "gender": "male"},
        "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"7"'},
    }
    in_line, pooled = both_ways(client, services, pool, transaction(resources, [stale]))
    assert in_line.status_code == 400
    assert (pooled.status_code, pooled.json()) == (400, in_line.json())
    valid = [observation(i) for i in range(N)]
    in_line, pooled = both_ways(client, services, pool, transaction(valid, [stale]))  # the PUT's own failure
    assert (in_line.status_code, pooled.status_code) == (412, 412) and pooled.json() == in_line.json()
    assert count(client, "Observation") == 0


def test_a_failure_before_the_invalid_entry_is_reached_stands(
    client: Any, services: Any, pool: ValidationPool
) -> None:
    """A DELETE runs first; its precondition fails before any POST is written, deferred or not."""
    for _ in range(2):
        client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Twin"}]})
    resources = [observation(i) for i in range(N)]
    resources[0] = {**resources[0], "status": 7}
    delete = {"request": {"method": "DELETE", "url": "Patient?family=Twin"}}
    in_line, pooled = both_ways(client, services, pool, transaction(resources, [delete]))
    assert in_line.status_code == 412
    assert (pooled.status_code, pooled.json()) == (412, in_line.json())
    assert count(client, "Patient") == 2


def test_a_nul_character_from_a_caller_in_process(services: Any, pool: ValidationPool) -> None:
    """HTTP refuses a NUL before any Bundle is read (fhir/http.py); a caller in the process reaches the store,
    whose PostgreSQL JSONB cannot hold one: the validator's answer comes first, deferred or not."""
    resources = [observation(i) for i in range(N)]
    resources[40] = {**resources[40], "note": [{"text": "a\x00b"}]}
    answers = []
    for chosen in (None, pool):
        services.repo.validation_pool = chosen
        units = pool.units
        with pytest.raises(FhirError) as caught:
            process_bundle(
                services.repo, transaction(copy.deepcopy(resources)), fhir_base="", max_entries=1000
            )
        assert pool.units == units + (chosen is pool)
        answers.append((caught.value.status, caught.value.issues))
    assert answers[0] == answers[1] and answers[0][0] == 400
    assert answers[0][1][0]["expression"] == ["Bundle.entry[41]", "Observation.note[0].text"]
    assert services.repo.search_params("Observation", [("_count", "1000")]).matches == []


def refuse_everything() -> Any:
    """A worker's validator that refuses every resource (a worker gone wrong)."""

    def validate(resource: dict[str, Any]) -> None:
        raise ValueError("refused")

    return validate


def test_what_the_worker_refuses_and_the_request_accepts_is_stored(client: Any, services: Any) -> None:
    wrong = ValidationPool(refuse_everything)
    wrong.start()
    try:
        assert wrong.wait_ready(120)
        services.repo.validation_pool = wrong
        r = post(client, transaction([observation(i) for i in range(N)]))
        assert r.status_code == 200 and wrong.units == 1
        assert count(client, "Observation") == N
    finally:
        wrong.close()


def test_a_worker_killed_midway_is_replaced(client: Any, services: Any) -> None:
    """The OOM killer takes the worker: the transaction in flight validates in line and is stored; the next one
    finds the pool broken, validates in line too, and new workers start for the ones after."""
    import os
    import signal

    own = ValidationPool(standard_validator)
    own.start()
    try:
        assert own.wait_ready(120)
        services.repo.validation_pool = own
        assert post(client, transaction([observation(i) for i in range(N)])).status_code == 200
        for pid in list(own._executor._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        answers = [post(client, transaction([observation(i) for i in range(N)])) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert own.wait_ready(120), "no new worker started"
        units = own.units
        assert post(client, transaction([observation(i) for i in range(N)])).status_code == 200
        assert own.units == units + 1
        assert count(client, "Observation") == 4 * N
        bad = [observation(i) for i in range(N)]
        bad[9] = {**bad[9], "status": 7}
        assert post(client, transaction(bad)).status_code == 400
        assert count(client, "Observation") == 4 * N
    finally:
        own.close()


@pytest.mark.parametrize("invalid_first", [False, True])
def test_a_patients_transaction_answers_as_in_line(
    secure_client: Any, secure_services: Any, pool: ValidationPool, invalid_first: bool
) -> None:
    """Authorization on: a patient's large transaction with one reading written into another patient's record is
    refused the same way, whether validated in line or in the worker; with an invalid reading before it, the
    invalid one is what both answer about."""
    from tests.auth.support import bearer, patient

    repo = secure_services.repo
    mine = repo.create({"resourceType": "Patient"}).stored.id
    theirs = repo.create({"resourceType": "Patient"}).stored.id
    headers = {**bearer(secure_services, patient(mine)), "Content-Type": FHIR_JSON}
    resources = [{**observation(i), "subject": {"reference": f"Patient/{mine}"}} for i in range(N)]
    resources[50]["subject"] = {"reference": f"Patient/{theirs}"}
    if invalid_first:
        resources[10]["status"] = 7
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "POST", "url": "Observation"}} for r in resources],
    }
    answers = []
    for chosen in (None, pool):
        repo.validation_pool = chosen
        units = pool.units
        r = secure_client.post("/fhir", content=json.dumps(bundle), headers=headers)
        assert pool.units == units + (chosen is pool)
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert (status, body["issue"][0]["code"]) == ((400, "value") if invalid_first else (403, "forbidden"))
    where = "Bundle.entry[10]" if invalid_first else "Bundle.entry[50]"
    assert [i["expression"][0] for i in body["issue"]] == [where] * len(body["issue"])
    assert repo.search_params("Observation", [("_count", "1000")]).matches == []
