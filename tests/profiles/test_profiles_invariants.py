"""The profiles' FHIRPath invariants and their alignment with the vital-signs, Physical Activity and Gravity IGs.

Invariants are run with fhirpathpy (the library the write-time validator uses) against the committed
examples, against variants of them that break one rule each, and against real Gravity SDOH examples.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models

from .conftest import GENERATED, read_json

R4 = models["r4"]


def root_constraints(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in sd["snapshot"]["element"][0].get("constraint", []) if "expression" in c}


def holds(resource: dict[str, Any], constraint: dict[str, Any]) -> bool:
    result = evaluate(resource, constraint["expression"], {"resource": resource}, R4)
    return result == [True]


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(read_json(GENERATED / "resources" / name))


def test_every_example_meets_the_error_invariants_of_its_profiles(index: dict[str, Any]) -> None:
    checked = 0
    for url, paths in index["examplesByProfile"].items():
        constraints = root_constraints(read_json(GENERATED / index["profiles"][url]))
        for path in paths:
            resource = read_json(GENERATED / path)
            for key, constraint in constraints.items():
                if constraint["severity"] == "error" or key.startswith("mecr-"):
                    assert holds(resource, constraint), f"{path} breaks {key}: {constraint['human']}"
                    checked += 1
    assert checked > 100


Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        target = resource
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        target = resource
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


BROKEN = [
    (
        "mecr-habit-check-in",
        "Observation-example-check-in-done.json",
        "mecr-checkin-1",
        _set(["valueCodeableConcept", "coding", 0, "code"], "maybe"),
    ),
    (
        "mecr-habit-check-in",
        "Observation-example-check-in-done.json",
        "mecr-checkin-1",
        _set(["valueCodeableConcept", "coding", 0, "system"], "http://snomed.info/sct"),
    ),
    (
        "mecr-habit-check-in",
        "Observation-example-check-in-done.json",
        "mecr-checkin-2",
        _set(["effectiveDateTime"], "2026-03-16T12:00:00-05:00"),
    ),
    (
        "mecr-habit-check-in",
        "Observation-example-check-in-done.json",
        "mecr-checkin-2",
        _set(["effectiveDateTime"], "2026-03"),
    ),
    (
        "mecr-habit-plan",
        "CarePlan-example-habit-plan.json",
        "mecr-plan-1",
        _set(["activity", 1, "extension", 0, "valueString"], "walk-after-lunch"),
    ),
    (
        "mecr-habit-plan",
        "CarePlan-example-habit-plan.json",
        "mecr-plan-2",
        _delete(["activity", 1, "detail", "statusReason"]),
    ),
    (
        "mecr-coaching-goal",
        "Goal-example-goal-steps.json",
        "mecr-goal-1",
        _set(["category", 0, "coding", 0, "system"], "http://terminology.hl7.org/CodeSystem/goal-category"),
    ),
    ("mecr-daily-steps", "Observation-example-daily-steps.json", "mecr-obs-source", _delete(["device"])),
    (
        "mecr-daily-steps",
        "Observation-example-daily-steps.json",
        "mecr-obs-day",
        _set(["effectiveDateTime"], "2026-03"),
    ),
    (
        "mecr-heart-rate",
        "Observation-example-heart-rate.json",
        "mecr-obs-source",
        _delete(["meta", "source"]),
    ),
    (
        "mecr-blood-pressure",
        "Observation-example-blood-pressure.json",
        "mecr-obs-source",
        _delete(["device"]),
    ),
    (
        "mecr-referral-task",
        "Task-example-referral-task-accepted.json",
        "mecr-task-1",
        _set(["focus", "reference"], "Patient/example-patient"),
    ),
    (
        "mecr-referral-task",
        "Task-example-referral-task-accepted.json",
        "mecr-task-1",
        _set(["focus", "reference"], "ServiceRequestX/example-referral-food"),
    ),
    (
        "mecr-referral-task",
        "Task-example-referral-task-accepted.json",
        "mecr-task-2",
        _set(["status"], "rejected"),
    ),
    ("mecr-referral-task", "Task-example-referral-task-accepted.json", "mecr-task-3", _delete(["owner"])),
    ("mecr-referral-task", "Task-example-referral-task-completed.json", "mecr-task-4", _delete(["output"])),
    (
        "mecr-coaching-session",
        "Encounter-example-session-video.json",
        "mecr-enc-1",
        _set(["period", "end"], "2026-03-20T15:59:00-05:00"),
    ),
    (
        "mecr-coaching-session",
        "Encounter-example-session-video.json",
        "mecr-enc-1",
        _set(["period", "end"], "2026-03-20T16:00:00-05:00"),
    ),
    (
        "mecr-coaching-session",
        "Encounter-example-session-video.json",
        "mecr-enc-2",
        _delete(["period", "end"]),
    ),
    (
        "mecr-coaching-session",
        "Encounter-example-session-video.json",
        "mecr-enc-3",
        _set(["extension", 0, "valueCoding", "code"], "in-person"),
    ),
    (
        "mecr-coaching-session",
        "Encounter-example-session-group.json",
        "mecr-enc-3",
        _set(["class", "code"], "VR"),
    ),
    (
        "mecr-coaching-session",
        "Encounter-example-session-video.json",
        "mecr-enc-4",
        _set(["length", "code"], "h"),
    ),
    (
        "mecr-coach",
        "PractitionerRole-example-coach.json",
        "mecr-coach-1",
        _set(["identifier", 0, "value"], "123456789"),
    ),
]


@pytest.mark.parametrize(
    ("profile", "name", "key", "mutate"),
    BROKEN,
    ids=[f"{key}-{i}" for i, (_, _, key, _) in enumerate(BROKEN)],
)
def test_invariant_rejects_a_broken_example(
    profiles_by_id: dict[str, Any], profile: str, name: str, key: str, mutate: Mutation
) -> None:
    constraint = root_constraints(profiles_by_id[profile])[key]
    resource = example(name)
    assert holds(resource, constraint), "the unbroken example must pass"
    mutate(resource)
    assert not holds(resource, constraint)


@pytest.mark.parametrize(
    "reference",
    [
        "ServiceRequest/example-referral-food",
        "https://ehr.example.org/fhir/ServiceRequest/abc-123/_history/4",
        "urn:uuid:0b9a3b0e-8e53-4bde-9a6a-6b1a1f0d8c11",
    ],
)
def test_task_focus_accepts_service_request_reference_forms(
    profiles_by_id: dict[str, Any], reference: str
) -> None:
    constraint = root_constraints(profiles_by_id["mecr-referral-task"])["mecr-task-1"]
    task = example("Task-example-referral-task-accepted.json")
    task["focus"]["reference"] = reference
    assert holds(task, constraint)


def test_session_without_end_is_allowed_while_in_progress(profiles_by_id: dict[str, Any]) -> None:
    constraints = root_constraints(profiles_by_id["mecr-coaching-session"])
    session = example("Encounter-example-session-video.json")
    session["status"] = "in-progress"
    del session["period"]["end"]
    assert holds(session, constraints["mecr-enc-1"]) and holds(session, constraints["mecr-enc-2"])


# --- alignment with the official IGs ---------------------------------------------------------------

# (profile id, LOINC code slice, LOINC code, UCUM unit or None when a value set decides), as cited in
# mappings/systems.py (FHIR R4 vital signs, HL7 Physical Activity IG 1.0.0, PHR IG sleep codes).
WEARABLES = [
    ("mecr-daily-steps", "StepsCode", "41950-7", "/d"),
    ("mecr-heart-rate", "HeartRateCode", "8867-4", "/min"),
    ("mecr-resting-heart-rate", "RestingHeartRateCode", "40443-4", "/min"),
    ("mecr-sleep-duration", "SleepDurationCode", "93832-4", None),
    ("mecr-active-energy", "ActiveEnergyCode", "41981-2", "kcal"),
    ("mecr-mvpa-minutes-per-day", "MvpaPerDayCode", "68516-4", "min/d"),
    ("mecr-mvpa-minutes-per-week", "MvpaPerWeekCode", "82290-8", "min/wk"),
    ("mecr-body-weight", "BodyWeightCode", "29463-7", None),
    ("mecr-blood-pressure", "BPCode", "85354-9", None),
]


def element(sd: dict[str, Any], element_id: str) -> dict[str, Any]:
    matches = [e for e in sd["snapshot"]["element"] if e["id"] == element_id]
    assert matches, f"{sd['id']} has no element {element_id}"
    return matches[0]


@pytest.mark.parametrize(("profile", "slice_name", "code", "unit"), WEARABLES, ids=[w[0] for w in WEARABLES])
def test_wearable_code_unit_and_slicing(
    profiles_by_id: dict[str, Any], profile: str, slice_name: str, code: str, unit: str | None
) -> None:
    sd = profiles_by_id[profile]
    heart_rate = profiles_by_id["mecr-heart-rate"]  # inherits the FHIR vital-signs slicing unchanged
    assert element(sd, f"Observation.code.coding:{slice_name}.code")["fixedCode"] == code
    assert element(sd, f"Observation.code.coding:{slice_name}.system")["fixedUri"] == "http://loinc.org"
    for path in ("Observation.code.coding", "Observation.category"):
        assert element(sd, path)["slicing"] == element(heart_rate, path)["slicing"], path
    if unit is not None:
        # The vital-signs profiles name the Quantity type slice; mECR's own profiles constrain value[x].
        ids = {e["id"] for e in sd["snapshot"]["element"]}
        unit_id = next(
            i for i in ("Observation.value[x]:valueQuantity.code", "Observation.value[x].code") if i in ids
        )
        assert element(sd, unit_id)["fixedCode"] == unit
    # Source of the reading: device or meta.source, enforced by an invariant, both must-support.
    assert "mecr-obs-source" in root_constraints(sd)
    assert element(sd, "Observation.device")["mustSupport"] is True


def test_activity_profiles_carry_the_physical_activity_ig_categories(profiles_by_id: dict[str, Any]) -> None:
    for profile in (
        "mecr-daily-steps",
        "mecr-resting-heart-rate",
        "mecr-active-energy",
        "mecr-mvpa-minutes-per-day",
        "mecr-mvpa-minutes-per-week",
    ):
        sd = profiles_by_id[profile]
        assert element(sd, "Observation.category:activity.coding.code")["fixedCode"] == "activity"
        physical = element(sd, "Observation.category:PhysicalActivity.coding.system")
        assert (
            physical["fixedUri"] == "http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes"
        )
    for profile in ("mecr-heart-rate", "mecr-body-weight", "mecr-blood-pressure"):
        sd = profiles_by_id[profile]
        assert element(sd, "Observation.category:VSCat.coding.code")["fixedCode"] == "vital-signs"


def test_blood_pressure_components(profiles_by_id: dict[str, Any]) -> None:
    sd = profiles_by_id["mecr-blood-pressure"]
    assert element(sd, "Observation.component:SystolicBP.code.coding:SBPCode.code")["fixedCode"] == "8480-6"
    assert element(sd, "Observation.component:DiastolicBP.code.coding:DBPCode.code")["fixedCode"] == "8462-4"


def _gravity(gravity_dir: Path, name: str) -> dict[str, Any]:
    return read_json(gravity_dir / name)


def test_referral_task_matches_gravity_task_for_referral_management(
    profiles_by_id: dict[str, Any], gravity_dir: Path
) -> None:
    sd = profiles_by_id["mecr-referral-task"]
    pattern = element(sd, "Task.code")["patternCodeableConcept"]["coding"][0]
    gravity_files = sorted(gravity_dir.glob("Task-SDOHCC-TaskReferralManagement*.json"))
    assert gravity_files
    constraints = root_constraints(sd)
    for path in gravity_files:
        task = read_json(path)
        coding = task["code"]["coding"][0]
        assert (coding["system"], coding["code"]) == (pattern["system"], pattern["code"])
        assert task["intent"] == element(sd, "Task.intent")["fixedCode"]
        # The real Gravity Tasks meet mECR's status rules and focus-reference rule.
        for key in ("mecr-task-1", "mecr-task-2", "mecr-task-3"):
            assert holds(task, constraints[key]), f"{path.name} breaks {key}"
    assert element(sd, "Task.focus")["min"] == 1 and element(sd, "Task.for")["min"] == 1


def test_referral_categories_cover_gravity_service_requests(
    generated: dict[str, Any], gravity_dir: Path, index: dict[str, Any]
) -> None:
    vs = generated[index["valueSets"]["https://mecr.dev/fhir/ValueSet/referral-category"]]
    allowed = {
        (c["system"], concept["code"]) for c in vs["compose"]["include"] for concept in c.get("concept", [])
    }
    sdoh_system = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
    seen = 0
    for path in sorted(gravity_dir.glob("ServiceRequest-*.json")):
        for category in read_json(path).get("category", []):
            for coding in category.get("coding", []):
                if coding["system"] == sdoh_system:
                    assert (coding["system"], coding["code"]) in allowed
                    seen += 1
    assert seen > 0


def test_coach_npi_slice(profiles_by_id: dict[str, Any]) -> None:
    sd = profiles_by_id["mecr-coach"]
    assert (
        element(sd, "PractitionerRole.identifier:NPI.system")["fixedUri"] == "http://hl7.org/fhir/sid/us-npi"
    )
    assert element(sd, "PractitionerRole.identifier")["slicing"]["discriminator"] == [
        {"type": "value", "path": "system"}
    ]
