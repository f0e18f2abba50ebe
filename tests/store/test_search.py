"""Search semantics on SQLite and PostgreSQL (https://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.outcomes import FhirError
from fhir_ecr.store.search import parse_search

LOINC = "http://loinc.org"


@pytest.fixture
def world(repo: Any) -> dict[str, Any]:
    """Two patients, an organization, a few observations and goals."""
    org = repo.create({"resourceType": "Organization", "name": "Riverside Clinic"}).stored
    anna = repo.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Müller", "given": ["Anna"]}],
            "gender": "female",
            "birthDate": "1970-05-17",
            "identifier": [{"system": "urn:mrn", "value": "A1"}],
            "telecom": [{"system": "email", "value": "anna@example.org"}],
            "managingOrganization": {"reference": f"Organization/{org.id}"},
            "active": True,
        }
    ).stored
    bob = repo.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Okafor", "given": ["Bob"]}],
            "gender": "male",
            "birthDate": "1985",
            "identifier": [{"system": "urn:mrn", "value": "B2"}],
            "active": False,
        }
    ).stored
    obs = {}
    for key, pid, code, value, unit, when in [
        ("a_steps1", anna.id, "41950-7", 8000, "/d", "2026-11-01T08:00:00Z"),
        ("a_steps2", anna.id, "41950-7", 10500, "/d", "2026-11-02T08:00:00Z"),
        ("a_weight", anna.id, "29463-7", 72.5, "kg", "2026-11-02T07:00:00+01:00"),
        ("b_steps1", bob.id, "41950-7", 4000, "/d", "2026-10-15T08:00:00Z"),
    ]:
        obs[key] = repo.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "activity" if code != "29463-7" else "vital-signs",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [{"system": LOINC, "code": code}],
                    "text": "Steps" if code != "29463-7" else "Weight",
                },
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": when,
                "valueQuantity": {
                    "value": value,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        ).stored
    goal = repo.create(
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "Walk more"},
            "subject": {"reference": f"Patient/{anna.id}"},
            "target": [{"dueDate": "2027-01-31"}],
        }
    ).stored
    return {"org": org, "anna": anna, "bob": bob, "goal": goal, **obs}


def ids(repo: Any, rtype: str, params: list[tuple[str, str]]) -> set[str]:
    result = repo.search(parse_search(rtype, params, default_count=100))
    return {m.id for m in result.matches}


def test_reference_forms(repo: Any, world: dict[str, Any]) -> None:
    anna = world["anna"].id
    expected = {world["a_steps1"].id, world["a_steps2"].id, world["a_weight"].id}
    assert ids(repo, "Observation", [("patient", anna)]) == expected
    assert ids(repo, "Observation", [("subject", f"Patient/{anna}")]) == expected
    assert ids(repo, "Observation", [("subject:Patient", anna)]) == expected
    assert ids(repo, "Observation", [("subject", f"http://testserver/fhir/Patient/{anna}")]) == expected
    assert ids(repo, "Observation", [("patient", "nobody")]) == set()


def test_token_forms(repo: Any, world: dict[str, Any]) -> None:
    steps = {world["a_steps1"].id, world["a_steps2"].id, world["b_steps1"].id}
    assert ids(repo, "Observation", [("code", f"{LOINC}|41950-7")]) == steps
    assert ids(repo, "Observation", [("code", "41950-7")]) == steps
    assert ids(repo, "Observation", [("code", "other|41950-7")]) == set()
    assert ids(repo, "Observation", [("code", "|41950-7")]) == set()  # has a system
    assert len(ids(repo, "Observation", [("code", f"{LOINC}|")])) == 4
    assert ids(repo, "Observation", [("code:not", "41950-7")]) == {world["a_weight"].id}
    assert ids(repo, "Observation", [("code:text", "weig")]) == {world["a_weight"].id}
    assert ids(repo, "Patient", [("identifier", "urn:mrn|A1")]) == {world["anna"].id}
    assert ids(repo, "Patient", [("email", "anna@example.org")]) == {world["anna"].id}
    assert ids(repo, "Patient", [("active", "true")]) == {world["anna"].id}
    assert ids(repo, "Patient", [("gender", "male,female")]) == {world["anna"].id, world["bob"].id}


def test_derived_parameters(repo: Any, world: dict[str, Any]) -> None:
    """combo-code is code | component.code; patient is subject restricted to Patients."""
    bp = repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "subject": {"reference": f"Patient/{world['bob'].id}"},
            "component": [
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
                }
            ],
        }
    ).stored
    # A Group with the same id as Bob's Patient record: `subject=<id>` finds both, `patient` only Bob's.
    repo.update(
        "Group",
        world["bob"].id,
        {"resourceType": "Group", "id": world["bob"].id, "type": "person", "actual": True},
    )
    group_obs = repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "g"},
            "subject": {"reference": f"Group/{world['bob'].id}"},
        }
    ).stored
    assert ids(repo, "Observation", [("combo-code", f"{LOINC}|8480-6")]) == {bp.id}
    assert ids(repo, "Observation", [("combo-code", f"{LOINC}|85354-9")]) == {bp.id}
    assert ids(repo, "Observation", [("code", f"{LOINC}|8480-6")]) == set()
    assert ids(repo, "Observation", [("combo-value-quantity", "120")]) == {bp.id}
    assert ids(repo, "Observation", [("patient", world["bob"].id)]) == {bp.id, world["b_steps1"].id}
    assert ids(repo, "Observation", [("subject", world["bob"].id)]) == {
        bp.id,
        world["b_steps1"].id,
        group_obs.id,
    }
    assert ids(repo, "Observation", [("patient:missing", "true")]) == {group_obs.id}


def test_string_forms(repo: Any, world: dict[str, Any]) -> None:
    anna = {world["anna"].id}
    assert ids(repo, "Patient", [("name", "mul")]) == anna  # starts-with, accent- and case-insensitive
    assert ids(repo, "Patient", [("family", "MÜLLER")]) == anna
    assert ids(repo, "Patient", [("name", "ller")]) == set()
    assert ids(repo, "Patient", [("name:contains", "ller")]) == anna
    assert ids(repo, "Patient", [("family:exact", "Müller")]) == anna
    assert ids(repo, "Patient", [("family:exact", "muller")]) == set()
    assert ids(repo, "Patient", [("name", "anna"), ("name", "bob")]) == set()  # AND
    assert ids(repo, "Patient", [("name", "anna,bob")]) == {world["anna"].id, world["bob"].id}  # OR
    assert ids(repo, "Patient", [("name", "50%_")]) == set()  # LIKE wildcards are escaped


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", {"a_steps1"}),
        ("eq2026-11", {"a_steps1", "a_steps2", "a_weight"}),
        ("ge2026-11-02", {"a_steps2", "a_weight"}),
        ("gt2026-11-01", {"a_steps2", "a_weight"}),
        ("lt2026-11-01", {"b_steps1"}),
        ("le2026-11-01", {"b_steps1", "a_steps1"}),
        ("ne2026-11-01", {"b_steps1", "a_steps2", "a_weight"}),
        ("sa2026-11-01", {"a_steps2", "a_weight"}),
        ("eb2026-11-01", {"b_steps1"}),
        ("2026-11-02T06:00:00Z", {"a_weight"}),  # 07:00+01:00 is 06:00Z
        ("ge2026-11-02T07:30:00Z", {"a_steps2"}),
    ],
)
def test_date_prefixes(repo: Any, world: dict[str, Any], value: str, expected: set[str]) -> None:
    assert ids(repo, "Observation", [("date", value)]) == {world[k].id for k in expected}


def test_partial_date_on_the_resource(repo: Any, world: dict[str, Any]) -> None:
    # Bob's birthDate is "1985": the whole year.
    assert ids(repo, "Patient", [("birthdate", "1985-06-01")]) == set()  # the year is not inside the day
    assert ids(repo, "Patient", [("birthdate", "1985")]) == {world["bob"].id}
    assert ids(repo, "Patient", [("birthdate", "ge1985-06-01")]) == {world["bob"].id}
    assert ids(repo, "Patient", [("birthdate", "lt1980")]) == {world["anna"].id}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8000", {"a_steps1"}),
        ("gt8000", {"a_steps2"}),
        ("ge8000", {"a_steps1", "a_steps2"}),
        ("lt5000", {"b_steps1", "a_weight"}),
        ("le8000", {"b_steps1", "a_steps1", "a_weight"}),
        ("ne8000", {"a_steps2", "b_steps1", "a_weight"}),
        ("8e3", {"a_steps1"}),
        ("10500|http://unitsofmeasure.org|/d", {"a_steps2"}),
        ("10500|http://unitsofmeasure.org|kg", set()),
        ("72.5||kg", {"a_weight"}),
        ("72", set()),  # implicit precision: 72 means [71.5, 72.5)
        ("73", {"a_weight"}),
    ],
)
def test_quantity_prefixes(repo: Any, world: dict[str, Any], value: str, expected: set[str]) -> None:
    assert ids(repo, "Observation", [("value-quantity", value)]) == {world[k].id for k in expected}


def test_chains(repo: Any, world: dict[str, Any]) -> None:
    anna_obs = {world["a_steps1"].id, world["a_steps2"].id, world["a_weight"].id}
    assert ids(repo, "Observation", [("patient.name", "anna")]) == anna_obs
    assert ids(repo, "Observation", [("subject:Patient.identifier", "urn:mrn|A1")]) == anna_obs
    assert ids(repo, "Observation", [("patient.organization.name", "riverside")]) == anna_obs  # two levels
    assert ids(repo, "Observation", [("patient.name", "nobody")]) == set()
    assert ids(repo, "Goal", [("patient.gender", "female")]) == {world["goal"].id}


def test_missing_modifier(repo: Any, world: dict[str, Any]) -> None:
    assert ids(repo, "Patient", [("organization:missing", "true")]) == {world["bob"].id}
    assert ids(repo, "Patient", [("organization:missing", "false")]) == {world["anna"].id}
    assert ids(repo, "Patient", [("email:missing", "true")]) == {world["bob"].id}


def test_id_and_last_updated(repo: Any, world: dict[str, Any]) -> None:
    anna = world["anna"]
    assert ids(repo, "Patient", [("_id", anna.id)]) == {anna.id}
    assert ids(repo, "Patient", [("_id", f"{anna.id},{world['bob'].id}")]) == {anna.id, world["bob"].id}
    assert ids(repo, "Patient", [("_id:not", anna.id)]) == {world["bob"].id}
    assert len(ids(repo, "Patient", [("_lastUpdated", "gt2000-01-01")])) == 2
    assert ids(repo, "Patient", [("_lastUpdated", "lt2000-01-01")]) == set()


def test_sort_count_and_paging(repo: Any, world: dict[str, Any]) -> None:
    q = parse_search("Observation", [("_sort", "-date"), ("_count", "2")])
    page1 = repo.search(q)
    assert page1.total == 4 and len(page1.matches) == 2 and page1.next_offset == 2
    dates = [m.content["effectiveDateTime"] for m in page1.matches]
    assert dates == ["2026-11-02T08:00:00Z", "2026-11-02T07:00:00+01:00"]
    q.offset = 2
    page2 = repo.search(q)
    assert [m.content["effectiveDateTime"] for m in page2.matches] == [
        "2026-11-01T08:00:00Z",
        "2026-10-15T08:00:00Z",
    ]
    assert page2.next_offset is None
    by_value = repo.search(parse_search("Observation", [("_sort", "value-quantity"), ("code", "41950-7")]))
    assert [m.content["valueQuantity"]["value"] for m in by_value.matches] == [4000, 8000, 10500]
    by_name = repo.search(parse_search("Patient", [("_sort", "-family")]))
    assert [m.content["name"][0]["family"] for m in by_name.matches] == ["Okafor", "Müller"]


def test_cursor_paging_visits_every_match_once(repo: Any, world: dict[str, Any]) -> None:
    seen: list[str] = []
    q = parse_search("Observation", [("_count", "1")])
    while True:
        page = repo.search(q)
        seen += [m.id for m in page.matches]
        if page.next_cursor is None:
            break
        # a resource created while paging does not disturb the pages already served
        q.cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 4


def test_include_and_revinclude(repo: Any, world: dict[str, Any]) -> None:
    result = repo.search(
        parse_search("Observation", [("code", "29463-7"), ("_include", "Observation:patient")])
    )
    assert [m.id for m in result.included] == [world["anna"].id]
    result = repo.search(
        parse_search(
            "Patient",
            [
                ("_id", world["anna"].id),
                ("_revinclude", "Observation:subject"),
                ("_include", "Patient:organization"),
            ],
        )
    )
    kinds = sorted(s.resource_type for s in result.included)
    assert kinds == ["Observation", "Observation", "Observation", "Organization"]
    iterate = repo.search(
        parse_search("Goal", [("_include", "Goal:subject"), ("_include:iterate", "Patient:organization")])
    )
    assert sorted(s.resource_type for s in iterate.included) == ["Organization", "Patient"]


def test_summary_count_and_total_none(repo: Any, world: dict[str, Any]) -> None:
    counted = repo.search(parse_search("Observation", [("_summary", "count")]))
    assert counted.total == 4 and counted.matches == []
    no_total = repo.search(parse_search("Observation", [("_total", "none")]))
    assert no_total.total is None and len(no_total.matches) == 4


def test_unknown_parameter_warns_or_refuses(repo: Any, world: dict[str, Any]) -> None:
    result = repo.search(parse_search("Patient", [("shoe-size", "42")]))
    assert result.total == 2 and result.warnings and "shoe-size" in result.warnings[0]["diagnostics"]
    with pytest.raises(FhirError) as err:
        parse_search("Patient", [("shoe-size", "42")], strict=True)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ([("date", "2026-13-45")], "date"),
        ([("date", "ap2026-01-01")], "date"),
        ([("value-quantity", "lots")], "value-quantity"),
        ([("value-quantity", "NaN")], "value-quantity"),
        ([("code:in", "http://vs")], "code:in"),
        ([("_count", "-1")], "_count"),
        ([("_sort", "nonsense")], "_sort"),
        ([("patient.nonsense", "x")], "patient.nonsense"),
        ([("status.name", "x")], "status.name"),
        ([("subject:missing", "maybe")], "subject:missing"),
    ],
)
def test_bad_search_values_are_400(
    repo: Any, world: dict[str, Any], params: list[tuple[str, str]], where: str
) -> None:
    with pytest.raises(FhirError) as err:
        repo.search(parse_search("Observation", params))
    assert err.value.status == 400
