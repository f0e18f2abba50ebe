"""Inputs that used to crash a request with a 500 (issue #12 item 8), on SQLite and PostgreSQL: each now answers
a 4xx OperationOutcome or a correct result. The API fuzzer (tests/fuzz/) keeps the rest closed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.coaching.coaching_support import make_world
from tests.helpers import assert_outcome

HUGE = "99999999999999999999999"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def seeded(repo: Any) -> dict[str, str]:
    """One patient with two steps Observations around the 2016 leap second."""
    pid = repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"}).stored.id
    for oid, when in (("before-leap", "2016-12-31T23:59:59Z"), ("after-leap", "2017-01-01T00:00:00Z")):
        repo.update(
            "Observation",
            oid,
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "41950-7"}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": when,
            },
        )
    return {"patient": pid}


REFUSED = [
    # integers past what the databases hold
    ("/fhir/Observation?_sort=date&_offset=" + HUGE, 400),
    ("/fhir/Observation?_offset=9223372036854775808", 400),
    ("/fhir/Observation?_offset=²", 400),
    ("/fhir/Observation?_cursor=zzzzzzzzzzzzzzzzzzzzzzzz", 400),
    ("/fhir/Observation?_cursor=-1", 400),
    ("/fhir/Patient/p1/_history/" + HUGE, 404),
    ("/fhir/Patient/p1/_history/²", 404),
    ("/fhir/Patient/p1/_history?_offset=" + HUGE, 400),
    ("/fhir/_history?_offset=9223372036854775808", 400),
    ("/fhir/Patient/p1/$everything?_count=²", 400),
    # chains deeper than four references
    ("/fhir/Observation?subject:Patient.link:Patient.link:Patient.link:Patient.link:Patient.name=x", 400),
    (
        "/fhir/Patient?_has:Observation:subject:_has:Observation:subject:_has:Observation:subject:"
        "_has:Observation:subject:_has:Observation:subject:code=x",
        400,
    ),
    # chains through "any" reference types: 34 types per hop
    ("/fhir/AuditEvent?entity.entity.entity.entity._id=x", 400),
    ("/fhir/Observation?focus.subject.focus.subject._id=x", 400),
    # NUL characters
    ("/fhir/Observation?code=%00", 400),
    ("/fhir/Observation?_id=ab%00c", 400),
    ("/fhir/Observation?value-string:contains=a%00", 400),
    ("/fhir/Observation/ab%00c", 400),
    ("/fhir/_history?_since=2026%00", 400),
    # ids outside the FHIR id rule
    ("/fhir/Patient/" + "x" * 65, 400),
    ("/fhir/Patient/a_b", 400),
    ("/fhir/Patient/" + "x" * 65 + "/_history", 400),
    # a run chart over the whole calendar
    (
        "/fhir/Observation/$run-chart?patient=p1&code=http://loinc.org|41950-7&from=0001-01-01&to=9999-12-31",
        400,
    ),
    (
        "/fhir/Observation/$run-chart?patient=p1&code=http://loinc.org|41950-7&from=1900-01-01&to=2199-12-31",
        400,
    ),
    (
        "/fhir/Observation/$run-chart?patient=p1&code=http://loinc.org|41950-7&from=0001-01-01&to=0001-01-03",
        400,
    ),
    ("/fhir/Observation/$run-chart?patient=p1&code=http://loinc.org|41950-7&from=1900-01-01", 400),
]


@pytest.mark.parametrize(("url", "status"), REFUSED)
def test_refused_with_an_operation_outcome(client: Any, seeded: Any, url: str, status: int) -> None:
    started = time.perf_counter()
    assert_outcome(client.get(url), status)
    assert time.perf_counter() - started < 2


ANSWERED = [
    "/fhir/Observation?_count=" + HUGE,  # capped at max_page_size
    "/fhir/_history?_count=" + HUGE,
    "/fhir/_history?_since=9999-12-31T23:59:59-12:00",
    "/fhir/_history?_since=0001-01-01T00:00:00%2B14:00",
    "/fhir/_history?_since=2016-12-31T23:59:60Z",
    "/fhir/Patient/p1/$everything?_since=9999-12-31T23:59:59-12:00",
    "/fhir/Observation?date=9999-12-31T23:59:59-12:00",
    "/fhir/Observation?date=0001-01-01T00:00:00%2B14:00",
    "/fhir/Observation?date=9999",
    "/fhir/Observation?date=9999-12",
    "/fhir/Observation?_lastUpdated=9999-12",
    "/fhir/Observation?subject:Patient.link:Patient.link:Patient.link:Patient.name=x",  # four: allowed
]


@pytest.mark.parametrize("url", ANSWERED)
def test_calendar_extremes_and_big_counts_are_answered(client: Any, seeded: Any, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["resourceType"] == "Bundle"


def test_a_leap_second_is_the_last_instant_of_its_minute(client: Any, seeded: Any) -> None:
    def ids(query: str) -> set[str]:
        r = client.get(f"/fhir/Observation?{query}")
        assert r.status_code == 200, r.text
        return {e["resource"]["id"] for e in r.json().get("entry", [])}

    assert ids("date=le2016-12-31T23:59:60Z") == {"before-leap"}
    assert ids("date=gt2016-12-31T23:59:60Z") == {"after-leap"}
    assert ids("date=2016-12-31T23:59") == {"before-leap"}


def test_an_instant_past_year_9999_in_utc_is_stored_and_found(client: Any, seeded: Any) -> None:
    obs = {
        "resourceType": "Observation",
        "id": "far",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "9999-12-31T23:59:59-12:00",
    }
    r = client.put("/fhir/Observation/far", json=obs)
    assert r.status_code in (200, 201), r.text[:300]
    found = client.get("/fhir/Observation?date=ge9999-12-31T12:00:00Z").json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["far"]


@pytest.mark.parametrize("length", [64, 65])
def test_the_id_rule_holds_on_every_backend(client: Any, length: int) -> None:
    rid = "x" * length
    r = client.put(f"/fhir/Patient/{rid}", json={"resourceType": "Patient", "id": rid})
    if length == 64:
        assert r.status_code == 201, r.text[:300]
    else:
        assert_outcome(r, 400)
    created = client.post("/fhir/Patient", json={"resourceType": "Patient", "id": rid})
    assert created.status_code == 201 if length == 64 else created.status_code == 400
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": rid + "t"},
                "request": {"method": "PUT", "url": f"Patient/{rid}t"},
            }
        ],
    }
    assert_outcome(client.post("/fhir", json=bundle), 400)  # 65 or 66 characters


def test_nul_in_bodies_and_forms_is_refused(client: Any, seeded: Any) -> None:
    body = b'{"resourceType": "Patient", "name": [{"family": "a\\u0000b"}]}'
    assert_outcome(client.post("/fhir/Patient", content=body, headers=FHIR_JSON), 400)
    assert_outcome(
        client.put("/fhir/Patient/p1", content=body.replace(b"{", b'{"id": "p1", ', 1), headers=FHIR_JSON),
        400,
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_outcome(client.post("/fhir/Observation/_search", content=b"code=a%00", headers=form), 400)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "a\u0000b"}]},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    assert_outcome(client.post("/fhir", json=bundle), 400)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation?code=a%00"}},
            {"request": {"method": "GET", "url": "Observation/" + "y" * 70}},
        ],
    }
    r = client.post("/fhir", json=batch)
    assert r.status_code == 200
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["400", "400"]
    # nothing was written on the way
    assert client.get("/fhir/Patient?_total=accurate").json()["total"] == 1


def test_nul_in_a_header_is_refused(client: Any) -> None:
    assert_outcome(client.get("/fhir/Patient", headers={"Prefer": "handling=strict\x00"}), 400)


def test_a_non_numeric_content_length_is_refused(client: Any) -> None:
    r = client.post(
        "/fhir/Patient", content=b'{"resourceType": "Patient"}', headers={"Content-Length": "2x", **FHIR_JSON}
    )
    assert_outcome(r, 400)


def test_coaching_operations_refuse_dates_and_numbers_outside_their_range(client: Any, repo: Any) -> None:
    world = make_world(repo)
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "habitId", "valueString": "walk"},
            {"name": "status", "valueCode": "done"},
            {"name": "date", "valueString": "9999-12-31"},
        ],
    }
    assert_outcome(client.post(f"/fhir/CarePlan/{world.plan}/$check-in", json=params), 400)
    params["parameter"][2] = {"name": "date", "valueString": "0001-01-01T00:00:00+14:00"}
    assert_outcome(client.post(f"/fhir/CarePlan/{world.plan}/$check-in", json=params), 400)
    habit = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "action", "valueCode": "add"},
            {"name": "habitId", "valueString": "rare"},
            {"name": "title", "valueString": "Rare"},
            {"name": "schedule", "valueCode": "every-n-days"},
            {"name": "everyDays", "valueString": HUGE},
        ],
    }
    assert_outcome(client.post(f"/fhir/CarePlan/{world.plan}/$habit", json=habit), 400)
    habit["parameter"][4] = {"name": "everyDays", "valueString": "²"}
    assert_outcome(client.post(f"/fhir/CarePlan/{world.plan}/$habit", json=habit), 400)
    pause = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "action", "valueCode": "pause"},
            {"name": "habitId", "valueString": "walk"},
            {"name": "reason", "valueCode": "illness"},
            {"name": "until", "valueDate": "9999-12-31"},
        ],
    }
    assert_outcome(client.post(f"/fhir/CarePlan/{world.plan}/$habit", json=pause), 400)
