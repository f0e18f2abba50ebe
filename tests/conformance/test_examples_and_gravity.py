"""The IG's examples and the real Gravity SDOH examples through the store's write path (both databases)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhir_ecr.conformance import ProfileValidator
from fhir_ecr.outcomes import FhirError

from .conftest import MECR, errors, gravity_dir

REFERRAL = MECR + "mecr-community-referral"
REFERRAL_TASK = MECR + "mecr-referral-task"


def gravity(name: str) -> dict[str, Any]:
    return json.loads((gravity_dir() / name).read_text(encoding="utf-8"))


def test_every_ig_example_is_stored(repo: Any, ig: Any) -> None:
    """All the IG's examples, stored together with their ids: they refer only to one another."""
    claimed = 0
    with repo.unit() as uow:
        for key, resource in sorted(ig.examples.items()):
            rtype, rid = key.split("/")
            stored = uow.update(rtype, rid, {**resource, "id": rid}).stored
            assert stored.resource_type == rtype
            claimed += bool((resource.get("meta") or {}).get("profile"))
    assert claimed == sum(len(v) for v in ig.examples_by_profile.values()) > 0


def loose(repo: Any) -> Any:
    """The repository without referential integrity: Gravity's examples refer to people and organisations that
    are not among them (MECR_ENFORCE_REFERENCES=false, as for a bulk load)."""
    view = copy.copy(repo)
    view.enforce_references = False
    return view


def test_every_ig_example_has_no_error_against_its_profile(validator: ProfileValidator, ig: Any) -> None:
    for url, paths in ig.examples_by_profile.items():
        for path in paths:
            resource = json.loads((ig.root / path).read_text(encoding="utf-8"))
            assert errors(validator.issues(resource, [url])) == [], path


def test_gravity_examples_are_accepted_by_the_store(repo: Any) -> None:
    files = sorted(gravity_dir().glob("*.json"))
    assert len(files) == 29
    for path in files:
        resource = json.loads(path.read_text(encoding="utf-8"))
        loose(repo).create(
            resource
        )  # they claim Gravity and US Core profiles, which are not mECR's: accepted


@pytest.mark.parametrize(
    "name",
    [
        "Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json",
        "Task-SDOHCC-TaskReferralManagementOrderFulfillmentCompletedExample.json",
        "Task-SDOHCC-TaskReferralManagementOrderSubtaskAcceptedExample.json",
        "Task-SDOHCC-TaskReferralManagementOrderSubtaskCompletedExample.json",
    ],
)
def test_gravity_referral_tasks_meet_the_mecr_referral_task_profile(repo: Any, name: str) -> None:
    task = gravity(name)
    task["meta"]["profile"] = [REFERRAL_TASK]
    assert loose(repo).create(task).created


@pytest.mark.parametrize(
    "name",
    [
        "ServiceRequest-SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample.json",
        "ServiceRequest-SDOHCC-ServiceRequestSubreferralGardenProgramExample.json",
        "ServiceRequest-SDOHCC-ServiceRequestSubreferralSummerFoodProgramExample.json",
    ],
)
def test_gravity_service_requests_lack_what_mecr_referrals_require(repo: Any, name: str) -> None:
    # Gravity's examples leave out authoredOn and requester, which a mECR referral must have (1..1).
    referral = gravity(name)
    referral["meta"]["profile"] = [REFERRAL]
    with pytest.raises(FhirError) as caught:
        loose(repo).create(referral)
    assert caught.value.status == 422
    assert errors(caught.value.issues) == [
        ("required", "ServiceRequest.authoredOn"),
        ("required", "ServiceRequest.requester"),
    ]
    referral["authoredOn"] = "2026-03-10T14:05:00-05:00"
    referral["requester"] = {"reference": "PractitionerRole/example-coach"}
    assert loose(repo).create(referral).created
