"""Gravity's own examples through the FHIR API: the SDOHCC referral Task (Task For Referral Management) is refused
'requested' without a consent naming its owner — the coordination platform — then, with one, moved by the
platform's bound client through accepted to completed with a Procedure it recorded."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fhir_ecr.referrals.consent import build_consent
from tests.auth.support import bearer, coach
from tests.referrals.world import organisation

GRAVITY = Path(__file__).resolve().parents[1] / "fixtures" / "fhir" / "gravity-sdoh"
PLATFORM = "SDOHCC-OrganizationCoordinationPlatformExample"
TASK = "SDOHCC-TaskReferralManagementOrderFulfillmentCompletedExample"


def _load(name: str) -> dict[str, Any]:
    return json.loads((GRAVITY / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_gravity_referral_through_the_api(secure_client: Any, secure_services: Any) -> None:
    loose = copy.copy(secure_services.repo)
    loose.enforce_references = False  # Gravity's examples name people who are not among them
    with loose.unit() as uow:  # everything but the Tasks, as mECR's own loader would
        for path in sorted(GRAVITY.glob("*.json")):
            if not path.name.startswith("Task-"):
                r = json.loads(path.read_text(encoding="utf-8"))
                uow.update(r["resourceType"], r["id"], r)
    completed = _load(f"Task-{TASK}.json")
    h = bearer(secure_services, coach())
    requested = {k: v for k, v in completed.items() if k not in ("output", "text")} | {"status": "requested"}
    # Gravity's consent example names the payer (as custodian), not the platform: nothing leaves the practice
    r = secure_client.put(f"/fhir/Task/{TASK}", json=requested, headers=h)
    assert r.status_code == 409 and f"Organization/{PLATFORM}" in r.text
    consent = build_consent("pat-53234", PLATFORM, "ABC Coordination Platform", today="2020-09-11")
    assert secure_client.post("/fhir/Consent", json=consent, headers=h).status_code == 201
    assert secure_client.put(f"/fhir/Task/{TASK}", json=requested, headers=h).status_code == 201
    # the platform: its own client, bound to its Organization
    p = bearer(secure_services, organisation(PLATFORM))
    accepted = _load("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json")
    assert accepted["status"] == "accepted"
    step = {**secure_client.get(f"/fhir/Task/{TASK}", headers=p).json(), "status": "accepted"}
    assert secure_client.put(f"/fhir/Task/{TASK}", json=step, headers=p).status_code == 200
    # Gravity's Procedure names no performer: the platform records its own, as the performer
    proc = {
        k: v
        for k, v in _load("Procedure-SDOHCC-ProcedureFoodPantryApplicationAssistanceExample.json").items()
        if k not in ("id", "text")
    }
    # its reason (the practice's Condition) is out of the platform's view: for it, that does not exist
    assert secure_client.post("/fhir/Procedure", json=proc, headers=p).status_code == 422
    del proc["reasonReference"]
    assert (
        secure_client.post("/fhir/Procedure", json=proc, headers=p).status_code == 403
    )  # not performed by it
    proc["performer"] = [{"actor": {"reference": f"Organization/{PLATFORM}"}}]
    made = secure_client.post("/fhir/Procedure", json=proc, headers=p)
    assert made.status_code == 201, made.text
    done = {
        **secure_client.get(f"/fhir/Task/{TASK}", headers=p).json(),
        "status": "completed",
        "output": [
            {**completed["output"][0], "valueReference": {"reference": f"Procedure/{made.json()['id']}"}}
        ],
    }
    r = secure_client.put(f"/fhir/Task/{TASK}", json=done, headers=p)
    assert r.status_code == 200, r.text
    steps = [
        s.content["activity"]["text"]
        for s in secure_services.repo.search_params("Provenance", [("target", f"Task/{TASK}")]).matches
    ]
    assert steps == ["created as requested", "requested → accepted", "accepted → completed"]
    # and the platform never sees the screening behind the referral
    for path in (
        "Condition/SDOHCC-ConditionFoodInsecurityExample",
        "Goal/SDOHCC-GoalFoodSecurityExample",
        "QuestionnaireResponse/SDOHCC-QuestionnaireResponseHungerVitalSignExample",
    ):
        assert secure_client.get(f"/fhir/{path}", headers=p).status_code in (403, 404), path
