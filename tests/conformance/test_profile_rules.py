"""Each kind of profile rule, and each invariant of the IG, broken alone: exactly the expected issue.

Every case takes a committed IG example, breaks one rule, and expects the error issues (code, FHIRPath
expression) the validator must report — no more, no fewer. The same cases then go through the repository's
write path on both databases and must be refused with 422 and the same issues.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from fhir_ecr.conformance import ProfileValidator
from fhir_ecr.conformance.validator import ProfileValidator as _PV
from fhir_ecr.outcomes import FhirError

from .conftest import MECR, errors, example

Mutation = Callable[[dict[str, Any]], None]


def setv(path: list[Any], value: Any) -> Mutation:
    def mutate(r: dict[str, Any]) -> None:
        target = r
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def delete(path: list[Any]) -> Mutation:
    def mutate(r: dict[str, Any]) -> None:
        target = r
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


NPI = {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
COACH_CODE = {
    "coding": [{"code": "health-and-wellness-coach", "system": "https://mecr.dev/fhir/CodeSystem/mecr-codes"}]
}
OTHER_ROLE = {
    "coding": [{"code": "doctor", "system": "http://terminology.hl7.org/CodeSystem/practitioner-role"}]
}
CHECKIN = "https://mecr.dev/fhir/CodeSystem/habit-check-in-result"

# (id, example file, mutation, expected [(code, expression)])
RULES: list[tuple[str, str, Mutation, list[tuple[str, str]]]] = [
    (
        "cardinality-min",
        "Observation-example-daily-steps.json",
        delete(["subject"]),
        [("required", "Observation.subject")],
    ),
    (
        "cardinality-max",
        "Observation-example-check-in-done.json",
        setv(["basedOn"], [{"reference": "CarePlan/a"}, {"reference": "CarePlan/b"}]),
        [("structure", "Observation.basedOn")],
    ),
    (
        "fixed-value",
        "Observation-example-daily-steps.json",
        setv(["valueQuantity", "code"], "/min"),
        [("value", "Observation.valueQuantity.code")],
    ),
    (
        "fixed-code",
        "Task-example-referral-task-accepted.json",
        setv(["intent"], "plan"),
        [("value", "Task.intent")],
    ),
    (
        "pattern",
        "Task-example-referral-task-accepted.json",
        setv(["code", "coding", 0, "code"], "approve"),
        [("value", "Task.code")],
    ),
    (
        "required-binding-code",
        "Observation-example-daily-steps.json",
        setv(["status"], "preliminary"),
        [("code-invalid", "Observation.status")],
    ),
    (
        "required-binding-quantity",
        "Observation-example-sleep-duration.json",
        setv(["valueQuantity", "code"], "s"),
        [("code-invalid", "Observation.valueQuantity.code")],
    ),
    (
        "required-binding-intent",
        "ServiceRequest-example-referral-food.json",
        setv(["intent"], "plan"),
        [("code-invalid", "ServiceRequest.intent")],
    ),
    (
        "reference-target",
        "Observation-example-daily-steps.json",
        setv(["subject", "reference"], "Group/g1"),
        [("structure", "Observation.subject.reference")],
    ),
    (
        "reference-target-absolute",
        "Task-example-referral-task-accepted.json",
        setv(["owner", "reference"], "https://ehr.example.org/fhir/Patient/p1"),
        [("structure", "Task.owner.reference")],
    ),
    (
        "reference-target-profile-in-slice",
        "Encounter-example-session-video.json",
        setv(["participant", 0, "individual", "reference"], "Practitioner/example-practitioner-coach"),
        [("structure", "Encounter.participant[0].individual.reference")],
    ),
    (
        "choice-type",
        "Observation-example-heart-rate.json",
        lambda r: (r.pop("valueQuantity"), r.__setitem__("valueString", "72 bpm")),
        [("structure", "Observation.valueString")],
    ),
    (
        "slice-min",
        "PractitionerRole-example-coach.json",
        setv(["code"], [OTHER_ROLE]),
        [("structure", "PractitionerRole.code")],
    ),
    (
        "slice-max",
        "PractitionerRole-example-coach.json",
        setv(["code"], [COACH_CODE, COACH_CODE]),
        [("structure", "PractitionerRole.code")],
    ),
    (
        "slice-max-zero",
        "Observation-example-blood-pressure.json",
        setv(
            ["valueQuantity"],
            {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        ),
        [("structure", "Observation.value")],
    ),
    (
        "slice-child-fixed",
        "Observation-example-daily-steps.json",
        setv(["category", 0, "coding", 0, "system"], "http://example.org/categories"),
        [("structure", "Observation.category")],
    ),
    (
        "inherited-element-invariant",
        "Observation-example-blood-pressure.json",
        delete(["component", 0, "valueQuantity"]),
        [("invariant", "Observation.component")],
    ),
]

INVARIANTS: list[tuple[str, str, Mutation, list[tuple[str, str]]]] = [
    (
        "mecr-checkin-1",
        "Observation-example-check-in-done.json",
        setv(
            ["valueCodeableConcept", "coding"],
            [{"system": CHECKIN, "code": "done"}, {"system": CHECKIN, "code": "partly"}],
        ),
        [("invariant", "Observation")],
    ),
    (
        "mecr-checkin-2",
        "Observation-example-check-in-done.json",
        setv(["effectiveDateTime"], "2026-03-16T12:00:00-05:00"),
        [("invariant", "Observation")],
    ),
    (
        "mecr-plan-1",
        "CarePlan-example-habit-plan.json",
        setv(["activity", 1, "extension", 0, "valueString"], "walk-after-lunch"),
        [("invariant", "CarePlan")],
    ),
    (
        "mecr-plan-2",
        "CarePlan-example-habit-plan.json",
        delete(["activity", 1, "detail", "statusReason"]),
        [("invariant", "CarePlan")],
    ),
    # mecr-goal-1 cannot break alone: the category slice 'coaching' (bound to the same code system) goes too.
    (
        "mecr-goal-1",
        "Goal-example-goal-steps.json",
        setv(["category", 0, "coding", 0, "system"], "http://terminology.hl7.org/CodeSystem/goal-category"),
        [("invariant", "Goal"), ("structure", "Goal.category")],
    ),
    (
        "mecr-obs-source",
        "Observation-example-daily-steps.json",
        delete(["device"]),
        [("invariant", "Observation")],
    ),
    (
        "mecr-obs-day",
        "Observation-example-daily-steps.json",
        setv(["effectiveDateTime"], "2026-03"),
        [("invariant", "Observation")],
    ),
    (
        "mecr-task-1",
        "Task-example-referral-task-accepted.json",
        setv(["focus", "reference"], "urn:oid:1.2.3.4"),
        [("invariant", "Task")],
    ),
    (
        "mecr-task-2",
        "Task-example-referral-task-accepted.json",
        setv(["status"], "rejected"),
        [("invariant", "Task")],
    ),
    ("mecr-task-3", "Task-example-referral-task-accepted.json", delete(["owner"]), [("invariant", "Task")]),
    (
        "mecr-enc-1",
        "Encounter-example-session-video.json",
        setv(["period", "end"], "2026-03-20T15:59:00-05:00"),
        [("invariant", "Encounter")],
    ),
    (
        "mecr-enc-2",
        "Encounter-example-session-video.json",
        delete(["period", "end"]),
        [("invariant", "Encounter")],
    ),
    (
        "mecr-enc-3",
        "Encounter-example-session-video.json",
        setv(["extension", 0, "valueCoding", "code"], "in-person"),
        [("invariant", "Encounter")],
    ),
    (
        "mecr-enc-4",
        "Encounter-example-session-video.json",
        setv(["length", "code"], "h"),
        [("invariant", "Encounter")],
    ),
    (
        "mecr-coach-1",
        "PractitionerRole-example-coach.json",
        setv(["identifier", 0, "value"], "123456789"),
        [("invariant", "PractitionerRole")],
    ),
    (
        "mecr-plan-3",
        "CarePlan-example-habit-plan.json",
        setv(["activity", 1, "extension", 1, "extension", 0, "valuePeriod", "end"], "2026-03-04"),
        [("invariant", "CarePlan")],
    ),
    (
        "mecr-enc-5",
        "Encounter-example-session-group.json",
        setv(["type", 0, "coding", 0, "code"], "coaching-session-follow-up"),
        [("invariant", "Encounter")],
    ),
    # a Group as a member's session subject also breaks mecr-enc-5 (a Group's session is not part of another)
    (
        "mecr-enc-6",
        "Encounter-example-session-group-participant.json",
        setv(["subject", "reference"], "Group/example-walking-group"),
        [("invariant", "Encounter"), ("invariant", "Encounter")],
    ),
]

CASES = RULES + INVARIANTS


def broken(name: str, mutate: Mutation) -> dict[str, Any]:
    resource = example(name)
    mutate(resource)
    return resource


@pytest.mark.parametrize(("case", "name", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_one_broken_rule_gives_exactly_its_issue(
    validator: ProfileValidator, case: str, name: str, mutate: Mutation, expected: list[tuple[str, str]]
) -> None:
    assert errors(validator.issues(example(name))) == []  # the unbroken example is valid
    issues = validator.issues(broken(name, mutate))
    assert errors(issues) == sorted(expected), issues
    if case.startswith("mecr-"):
        assert any(i["diagnostics"].startswith(f"{case}:") for i in issues), issues


def test_every_error_invariant_of_the_ig_has_a_case(validator: ProfileValidator) -> None:
    keys = {
        c.key
        for p in validator.profiles.values()
        for c in p.constraints
        if c.key.startswith("mecr-") and c.severity == "error"
    }
    assert keys == {c[0] for c in INVARIANTS}


def test_warning_invariant_is_a_warning_and_does_not_block(validator: ProfileValidator) -> None:
    task = broken("Task-example-referral-task-completed.json", delete(["output"]))
    issues = validator.issues(task)
    assert errors(issues) == []
    assert [i["expression"] for i in issues if i["diagnostics"].startswith("mecr-task-4:")] == [["Task"]]
    assert [i["severity"] for i in issues if i["diagnostics"].startswith("mecr-task-4:")] == ["warning"]
    validator(task)  # no exception: warnings alone pass a write


def test_closed_slicing_rejects_an_item_that_matches_no_slice(validator: ProfileValidator) -> None:
    # The IG's only closed slicings are the type slicings of value[x] inherited from vital signs, which the
    # type rule already covers; close the coach's code slicing to test the rule on its own.
    ig = validator.ig
    sd = example("StructureDefinition-mecr-coach.json")
    for el in sd["snapshot"]["element"]:
        if el["id"] == "PractitionerRole.code":
            el["slicing"]["rules"] = "closed"
    closed = _PV(dataclasses.replace(ig, profiles={**ig.profiles, sd["url"]: sd}))
    coach = example("PractitionerRole-example-coach.json")
    assert errors(closed.issues(coach)) == []
    coach["code"].append(OTHER_ROLE)
    assert errors(closed.issues(coach)) == [("structure", "PractitionerRole.code[1]")]
    assert errors(validator.issues(coach)) == []  # the real, open slicing accepts it


def test_meta_profile_claims(validator: ProfileValidator) -> None:
    patient = example("Patient-example-patient.json")
    patient["meta"] = {"profile": [MECR + "mecr-no-such-profile"]}
    assert errors(validator.issues(patient)) == [("not-supported", "Patient.meta.profile[0]")]
    patient["meta"] = {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]}
    assert validator.issues(patient) == []
    validator(patient)
    patient["meta"] = {"profile": [MECR + "mecr-daily-steps"]}
    assert errors(validator.issues(patient)) == [("structure", "Patient.meta.profile[0]")]
    steps = example("Observation-example-daily-steps.json")
    steps["meta"]["profile"] = [MECR + "mecr-daily-steps|0.1.0"]  # a versioned canonical is the same profile
    steps["status"] = "preliminary"
    assert errors(validator.issues(steps)) == [("code-invalid", "Observation.status")]


def test_skipped_constraints_and_unchecked_bindings_are_reported(validator: ProfileValidator) -> None:
    steps = validator.profiles[MECR + "mecr-daily-steps"]
    assert steps.skipped_constraints == {"ele-1": "fhirpathpy 2.2.4 does not implement hasValue()"}
    assert {c.key for c in steps.constraints} >= {
        "dom-2",
        "dom-3",
        "obs-6",
        "obs-7",
        "mecr-obs-source",
        "ext-1",
    }
    assert all("quantity-comparator" in why for why in steps.unchecked_bindings.values())


def test_write_path_refuses_each_broken_resource_with_422(repo: Any) -> None:
    for case, name, mutate, expected in CASES:
        resource = broken(name, mutate)
        with pytest.raises(FhirError) as caught:
            repo.create(resource)
        assert caught.value.status == 422, case
        assert errors(caught.value.issues) == sorted(expected), case


def test_absent_element_shortcut_matches_full_evaluation(validator: ProfileValidator, ig: Any) -> None:
    # Root invariants whose elements are all absent are answered from a per-type cache; it must agree with
    # fhirpathpy on the examples and on every broken case.
    resources = [example(p.split("/")[-1]) for ps in ig.examples_by_profile.values() for p in ps]
    resources += [broken(name, mutate) for _, name, mutate, _ in CASES]
    shortcut = 0
    for resource in resources:
        for url in validator.claimed(resource):
            for c in validator.profiles[url].constraints:
                assert c.holds(resource) == c._holds(resource), (c.key, resource.get("id"))
                shortcut += c.heads is not None
    assert shortcut > 100
