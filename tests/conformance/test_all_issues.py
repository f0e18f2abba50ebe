"""All issues at once: one OperationOutcome lists every structural, binding and profile problem of a resource,
each with its FHIRPath, on a write and in ``$validate``."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.outcomes import FhirError
from fhir_ecr.store.validation import validate_resource
from tests.helpers import assert_outcome

from .conftest import example


def _found(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["code"], i["expression"][0]) for i in body["issue"] if i["severity"] == "error"}


def broken_steps() -> dict[str, Any]:
    """A daily-steps reading with structural, binding and profile problems, none hiding the others."""
    steps = example("Observation-example-daily-steps.json")
    del steps["id"]
    steps["effectiveDateTime"] = "yesterday"  # structure: not a dateTime
    del steps["status"]  # structure: a required primitive (the models' hidden check)
    steps["valueString"] = "many"  # structure: value[x] twice (hidden as well)
    steps["identifier"] = [{"use": "primary", "value": "1"}]  # required binding of Identifier.use
    del steps["device"]  # mECR profile: a wearable reading names its source
    return steps


def test_a_write_answers_every_problem_in_one_outcome(client: Any) -> None:
    body = assert_outcome(client.post("/fhir/Observation", json=broken_steps()), 400)
    found = _found(body)
    assert {
        ("value", "Observation.effectiveDateTime"),
        ("required", "Observation.status"),
        ("structure", "Observation"),
        ("code-invalid", "Observation.identifier[0].use"),
    } <= found
    assert any(
        code == "invariant" and "mecr-obs-source" in i["diagnostics"]
        for i in body["issue"]
        for code in [i["code"]]
    )
    # a problem two stages find (status missing) is listed once
    assert [i["expression"] for i in body["issue"]].count(["Observation.status"]) == 1
    assert client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"] == 0


def test_validate_lists_the_same_problems(client: Any) -> None:
    resp = client.post("/fhir/Observation/$validate", json=broken_steps())
    assert resp.status_code == 200
    written = _found(client.post("/fhir/Observation", json=broken_steps()).json())
    assert _found(resp.json()) == written


def test_hidden_structural_problems_are_found_everywhere_in_the_resource() -> None:
    """pydantic skips the required-element and choice checks of every object above a failing field."""
    obs = {
        "resourceType": "Observation",
        "code": {"text": "bp"},
        "issued": "noon",
        "component": [
            {"code": {"text": "sys"}, "valueQuantity": {"value": 120}, "valueString": "120"},
            {"code": {"text": "dia"}, "valueInteger": 80, "valueString": "80"},
        ],
        "contained": [{"resourceType": "Goal", "description": {"text": "x"}, "subject": {"reference": "#p"}}],
    }
    with pytest.raises(FhirError) as caught:
        validate_resource(obs)
    assert caught.value.status == 400
    found = [i["expression"][0] for i in caught.value.issues]
    # the components' own choice checks ran (their fields are valid); the resource's did not
    assert sorted(found) == [
        "Observation.component[0]",
        "Observation.component[1]",
        "Observation.contained[0].lifecycleStatus",
        "Observation.issued",
        "Observation.status",
    ]


def test_an_extension_stands_in_for_a_missing_required_primitive() -> None:
    """https://hl7.org/fhir/R4/extensibility.html#Special-Case: ``_status`` with an extension, no value."""
    obs = {
        "resourceType": "Observation",
        "code": {"text": "x"},
        "issued": "noon",
        "_status": {
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
            ]
        },
    }
    with pytest.raises(FhirError) as caught:
        validate_resource(obs)
    assert [i["expression"] for i in caught.value.issues] == [["Observation.issued"]]


def test_bindings_and_profile_errors_together_are_422(client: Any) -> None:
    steps = example("Observation-example-daily-steps.json")
    del steps["id"]
    steps["status"] = "preliminary"  # allowed by the base spec, not by the mECR profile
    steps["valueQuantity"]["comparator"] = "about"  # not a quantity comparator
    body = assert_outcome(client.post("/fhir/Observation", json=steps), 422, "code-invalid")
    assert _found(body) == {
        ("code-invalid", "Observation.status"),
        ("code-invalid", "Observation.valueQuantity.comparator"),
    }


def test_a_number_for_a_url_is_a_400_not_a_crash(client: Any) -> None:
    """fhir.resources raises AttributeError for it (it calls ``startswith`` on the value)."""
    body = assert_outcome(
        client.post(
            "/fhir/Patient", json={"resourceType": "Patient", "gender": "robot", "photo": [{"url": 1.5}]}
        ),
        400,
        "value",
    )
    assert ["Patient.gender"] in [i["expression"] for i in body["issue"]]
