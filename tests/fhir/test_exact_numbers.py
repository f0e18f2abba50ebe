"""Numbers keep their precision and their text from write to read, through the REST API, on both databases.

FHIR R4 datatypes.html#decimal: "0.010 is regarded as different to 0.01, and the original precision should be
preserved". The one documented deviation (docs/api.md, "Numbers"): PostgreSQL's JSONB writes a number given in
exponent form out in full (``1.5E-3`` → ``0.0015``, same value and digits) and drops the sign of a negative zero.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.store import jsonexact
from tests.helpers import assert_outcome

JSON = {"Content-Type": "application/fhir+json"}
PATCH = {"Content-Type": "application/json-patch+json"}
BIG = "123456789012345678901234567890"

# (component code, the number as the client writes it, as SQLite returns it, as PostgreSQL returns it)
NUMBERS = [
    ("trailing-zero", "1.50", "1.50", "1.50"),
    ("leading-zero", "0.10", "0.10", "0.10"),
    ("three-zeros", "100.000", "100.000", "100.000"),
    ("big-integer", BIG, BIG, BIG),
    ("tiny", "0.0000001", "0.0000001", "0.0000001"),
    ("exponent", "1e-7", "1e-7", "0.0000001"),
    ("exponent-upper", "1.5E-3", "1.5E-3", "0.0015"),
    ("long-fraction", "3.14159265358979323846", "3.14159265358979323846", "3.14159265358979323846"),
    ("negative-zero", "-0.0", "-0.0", "0.0"),
    ("plain", "72.5", "72.5", "72.5"),
]


@pytest.fixture(autouse=True)
def patients(services: Any) -> None:
    """The patients the Observations here refer to (references must resolve: fhir_ecr/store/references.py)."""
    with services.repo.unit() as uow:
        for pid in ("p1", "p2", "loaded", *(f"b{i}" for i in range(25))):
            uow.update("Patient", pid, {"resourceType": "Patient", "id": pid})


def observation_text(patient: str = "Patient/p1", status: str = "final") -> bytes:
    """An Observation whose numbers are written by hand (a dict would go through Python floats)."""
    components = ",".join(
        f'{{"code": {{"text": "{code}"}}, "valueQuantity": {{"value": {text}, "unit": "1"}}}}'
        for code, text, _, _ in NUMBERS
    )
    return (
        f'{{"resourceType": "Observation", "status": "{status}", "code": {{"text": "precision"}}, '
        f'"subject": {{"reference": "{patient}"}}, "valueQuantity": {{"value": 1.50, "unit": "kg"}}, '
        f'"component": [{components}]}}'
    ).encode()


def numbers(resource: dict[str, Any]) -> dict[str, str]:
    """Each component's number, as the text it was written with (parsed exactly)."""
    return {c["code"]["text"]: str(c["valueQuantity"]["value"]) for c in resource["component"]}


def expected(backend: str, *, stored: bool = True) -> dict[str, str]:
    """The numbers a response carries: a write's own response echoes the request; reads come from storage."""
    column = 3 if stored and backend == "postgres" else 2
    return {row[0]: row[column] for row in NUMBERS}


def parse(body: bytes) -> Any:
    return jsonexact.loads(body)


def test_create_read_vread_search_and_history_keep_the_numbers(client: Any, backend: str) -> None:
    r = client.post("/fhir/Observation", content=observation_text(), headers=JSON)
    assert r.status_code == 201, r.text
    created = parse(r.content)
    assert numbers(created) == expected(backend, stored=False)
    rid = created["id"]

    read = client.get(f"/fhir/Observation/{rid}")
    assert read.status_code == 200
    assert numbers(parse(read.content)) == expected(backend)
    assert b'"value":1.50' in read.content.replace(b" ", b"") and BIG.encode() in read.content
    assert str(parse(read.content)["valueQuantity"]["value"]) == "1.50"

    vread = client.get(f"/fhir/Observation/{rid}/_history/1")
    assert numbers(parse(vread.content)) == expected(backend)

    # the search index holds the values (as doubles), and the page carries the exact text
    for query in (
        "value-quantity=1.5",
        "component-value-quantity=gt1e29",
        "component-value-quantity=0.10",
        "subject=Patient/p1",
    ):
        page = client.get(f"/fhir/Observation?{query}")
        assert page.status_code == 200, (query, page.text)
        entries = parse(page.content)["entry"]
        assert [e["resource"]["id"] for e in entries] == [rid], query
        assert numbers(entries[0]["resource"]) == expected(backend), query

    history = parse(client.get(f"/fhir/Observation/{rid}/_history").content)
    assert numbers(history["entry"][0]["resource"]) == expected(backend)
    assert numbers(
        parse(client.get("/fhir/Observation/_history").content)["entry"][0]["resource"]
    ) == expected(backend)


def test_update_keeps_old_and_new_versions_exact(client: Any, backend: str) -> None:
    rid = parse(client.post("/fhir/Observation", content=observation_text(), headers=JSON).content)["id"]
    body = observation_text(status="amended").replace(
        b'"resourceType"', f'"id": "{rid}", "resourceType"'.encode()
    )
    r = client.put(f"/fhir/Observation/{rid}", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    assert parse(r.content)["meta"]["versionId"] == "2"
    for path in (
        f"/fhir/Observation/{rid}",
        f"/fhir/Observation/{rid}/_history/2",
        f"/fhir/Observation/{rid}/_history/1",
    ):
        assert numbers(parse(client.get(path).content)) == expected(backend), path
    history = parse(client.get(f"/fhir/Observation/{rid}/_history").content)
    assert [numbers(e["resource"]) for e in history["entry"]] == [expected(backend)] * 2


def test_patch_keeps_untouched_numbers_and_writes_new_ones_exactly(client: Any, backend: str) -> None:
    rid = parse(client.post("/fhir/Observation", content=observation_text(), headers=JSON).content)["id"]
    operations = (
        b'[{"op": "test", "path": "/valueQuantity/value", "value": 1.50},'
        b' {"op": "replace", "path": "/status", "value": "amended"},'
        b' {"op": "add", "path": "/component/-", "value": {"code": {"text": "patched"},'
        b' "valueQuantity": {"value": 2.50, "unit": "1"}}},'
        b' {"op": "replace", "path": "/valueQuantity/value", "value": 0.250}]'
    )
    r = client.patch(f"/fhir/Observation/{rid}", content=operations, headers=PATCH)
    assert r.status_code == 200, r.text
    stored = parse(client.get(f"/fhir/Observation/{rid}").content)
    assert stored["status"] == "amended" and stored["meta"]["versionId"] == "2"
    assert numbers(stored) == {**expected(backend), "patched": "2.50"}
    assert str(stored["valueQuantity"]["value"]) == "0.250"


def test_summary_and_elements_keep_the_numbers(client: Any, backend: str) -> None:
    rid = parse(client.post("/fhir/Observation", content=observation_text(), headers=JSON).content)["id"]
    data = parse(client.get(f"/fhir/Observation/{rid}?_summary=data").content)
    assert numbers(data) == expected(backend)
    elements = parse(client.get(f"/fhir/Observation/{rid}?_elements=component,valueQuantity").content)
    assert numbers(elements) == expected(backend) and str(elements["valueQuantity"]["value"]) == "1.50"
    page = parse(client.get("/fhir/Observation?_elements=component&subject=Patient/p1").content)
    assert numbers(page["entry"][0]["resource"]) == expected(backend)
    summary = parse(client.get(f"/fhir/Observation/{rid}?_summary=true").content)
    assert str(summary["valueQuantity"]["value"]) == "1.50"


def test_transaction_writes_and_reads_exactly(client: Any, backend: str) -> None:
    rid = parse(client.post("/fhir/Observation", content=observation_text(), headers=JSON).content)["id"]
    patch = base64.b64encode(b'[{"op": "add", "path": "/valueQuantity/value", "value": 9.90}]').decode()
    bundle = (
        b'{"resourceType": "Bundle", "type": "transaction", "entry": ['
        b'{"fullUrl": "urn:uuid:5b7a7c6e-0000-4000-8000-000000000001", "resource": '
        + observation_text(patient="Patient/p2")
        + b', "request": {"method": "POST", "url": "Observation"}},'
        b'{"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": "'
        + patch.encode()
        + b'"}, "request": {"method": "PATCH", "url": "Observation/'
        + rid.encode()
        + b'"}},'
        b'{"request": {"method": "GET", "url": "Observation/' + rid.encode() + b'"}}]}'
    )
    r = client.post("/fhir", content=bundle, headers=JSON)
    assert r.status_code == 200, r.text
    entries = parse(r.content)["entry"]
    assert numbers(entries[0]["resource"]) == expected(backend, stored=False)
    got = entries[2]["resource"]  # the GET inside the transaction reads what the PATCH wrote
    assert numbers(got) == expected(backend)
    created = parse(client.get("/fhir/Observation?subject=Patient/p2").content)["entry"][0]["resource"]
    assert numbers(created) == expected(backend)


def test_a_batch_with_many_entries_keeps_every_number(client: Any, backend: str) -> None:
    entries = ",".join(
        '{"resource": '
        + observation_text(patient=f"Patient/b{i}").decode()
        + ', "request": {"method": "POST", "url": "Observation"}}'
        for i in range(25)
    )
    r = client.post(
        "/fhir", content=f'{{"resourceType": "Bundle", "type": "batch", "entry": [{entries}]}}', headers=JSON
    )
    assert r.status_code == 200, r.text
    page = parse(client.get("/fhir/Observation?_count=100&code:text=precision").content)
    assert len(page["entry"]) == 25
    assert all(numbers(e["resource"]) == expected(backend) for e in page["entry"])


@pytest.mark.parametrize("number", ["1e-20000", "0.5e-16383", "0e99999", "0." + "0" * 16383 + "1"])
def test_a_number_postgresql_cannot_hold_is_refused_on_both(client: Any, number: str) -> None:
    body = observation_text().replace(b"0.10", number.encode())
    assert_outcome(client.post("/fhir/Observation", content=body, headers=JSON), 400, "invalid")
    assert parse(client.get("/fhir/Observation?_summary=count").content)["total"] == 0


def test_the_largest_scale_postgresql_holds_is_stored(client: Any, backend: str) -> None:
    r = client.post(
        "/fhir/Observation", content=observation_text().replace(b"0.10", b"1e-16383"), headers=JSON
    )
    assert r.status_code == 201, r.text
    value = numbers(parse(client.get(f"/fhir/Observation/{parse(r.content)['id']}").content))["leading-zero"]
    assert value == ("1e-16383" if backend == "sqlite" else "0." + "0" * 16382 + "1")


def test_mecr_load_keeps_the_numbers(
    settings: Any, services: Any, client: Any, backend: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from fhir_ecr.cli import main
    from fhir_ecr.config import get_settings

    (tmp_path / "o.json").write_bytes(observation_text(patient="Patient/loaded"))
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        assert main(["load", "--quiet", str(tmp_path / "o.json")]) == 0
    finally:
        get_settings.cache_clear()
    page = parse(client.get("/fhir/Observation?subject=Patient/loaded").content)
    assert numbers(page["entry"][0]["resource"]) == expected(backend)


def test_pretty_output_keeps_the_numbers(client: Any) -> None:
    rid = parse(client.post("/fhir/Observation", content=observation_text(), headers=JSON).content)["id"]
    r = client.get(f"/fhir/Observation/{rid}?_pretty=true&_summary=data")  # parsed, then indented
    assert r.status_code == 200 and b"\n" in r.content
    assert str(parse(r.content)["valueQuantity"]["value"]) == "1.50"
    assert json.loads(r.content)["valueQuantity"]["value"] == 1.5


def test_an_update_that_only_changes_precision_is_a_new_version(client: Any) -> None:
    """``1.5`` and ``1.50`` are equal numbers but different FHIR decimals: the second PUT is a change."""
    body = (
        b'{"resourceType": "Observation", "id": "p", "status": "final", "code": {"text": "x"}, '
        b'"valueQuantity": {"value": %s}}'
    )
    assert client.put("/fhir/Observation/p", content=body % b"1.5", headers=JSON).status_code == 201
    assert client.put("/fhir/Observation/p", content=body % b"1.50", headers=JSON).status_code == 200
    got = parse(client.get("/fhir/Observation/p").content)
    assert str(got["valueQuantity"]["value"]) == "1.50" and got["meta"]["versionId"] == "2"
    client.put("/fhir/Observation/p", content=body % b"1.50", headers=JSON)  # unchanged: no new version
    assert parse(client.get("/fhir/Observation/p").content)["meta"]["versionId"] == "2"
    operations = b'[{"op": "replace", "path": "/valueQuantity/value", "value": 1.500}]'
    assert client.patch("/fhir/Observation/p", content=operations, headers=PATCH).status_code == 200
    got = parse(client.get("/fhir/Observation/p").content)
    assert str(got["valueQuantity"]["value"]) == "1.500" and got["meta"]["versionId"] == "3"


def test_repeating_a_put_with_an_exponent_is_a_new_version_only_on_postgresql(
    client: Any, backend: str
) -> None:
    """The documented deviation: PostgreSQL stores 1e-7 as 0.0000001, so the same body differs from what is stored."""
    body = (
        b'{"resourceType": "Observation", "id": "e", "status": "final", "code": {"text": "x"}, '
        b'"valueQuantity": {"value": 1e-7}}'
    )
    for _ in range(2):
        assert client.put("/fhir/Observation/e", content=body, headers=JSON).status_code in (200, 201)
    r = client.get("/fhir/Observation/e")
    assert parse(r.content)["meta"]["versionId"] == ("2" if backend == "postgres" else "1")
    value = b"0.0000001" if backend == "postgres" else b"1e-7"
    assert b'"valueQuantity":{"value":' + value + b"}" in r.content.replace(b" ", b"")
