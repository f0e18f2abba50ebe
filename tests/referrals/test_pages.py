"""The referral pages: the coach refers with consent in one form, sees the status, makes and revokes the
organisation's link; the patient accepts or declines a draft in their app; a goal's chart marks the outcome."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from fhir_ecr.web.runcharts import RunChartFigure, draw
from tests.auth.support import coach, login, patient
from tests.referrals.world import seed


@pytest.fixture
def world(secure_services: Any) -> Any:
    seed(secure_services.repo)
    secure_services.repo.update(
        "HealthcareService",
        "pantry",
        {
            "resourceType": "HealthcareService",
            "id": "pantry",
            "name": "Weekly food pantry",
            "providedBy": {"reference": "Organization/food-bank"},
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                            "SDOHCC-CodeSystemTemporaryCodes",
                            "code": "food-insecurity",
                        }
                    ]
                }
            ],
        },
    )
    return secure_services


def _refer(client: Any, csrf: str, consent: bool) -> str:
    form = {
        "csrf_token": csrf,
        "service": "pantry",
        "category": "food-insecurity",
        "need": "Weekly groceries",
        "note": "Prefers mornings",
        "goal": "p1-goal",
        **({"consent": "yes"} if consent else {}),
    }
    r = client.post("/app/patients/p1/referrals", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(r.headers["location"]).split("/referrals/")[1].split("?")[0]


def test_the_coach_refers_with_consent_and_sends_a_link(secure_client: Any, world: Any) -> None:
    csrf = login(secure_client, world, coach())
    form = secure_client.get("/app/patients/p1/referrals/new?service=pantry")
    assert form.status_code == 200 and "Springfield Food Bank" in form.text and "Eat well" in form.text
    tid = _refer(secure_client, csrf, consent=True)
    task = world.repo.read("Task", tid).content
    assert task["status"] == "requested" and task["owner"]["reference"] == "Organization/food-bank"
    sr = world.repo.read("ServiceRequest", task["focus"]["reference"].split("/")[1]).content
    assert sr["extension"][0]["valueReference"] == {"reference": "Goal/p1-goal"}
    assert sr["supportingInfo"][0]["reference"].startswith("Consent/")
    page = secure_client.get(f"/app/patients/p1/referrals/{tid}")
    assert "requested" in page.text and "created as requested" in page.text
    made = secure_client.post(f"/app/patients/p1/referrals/{tid}/link", data={"csrf_token": csrf})
    assert made.status_code == 200
    url = re.search(r'value="(http[^"]+/r/[^"]+)"', made.text)
    assert url and url.group(1)
    token = url.group(1).rsplit("/", 1)[1]
    assert token not in secure_client.get(f"/app/patients/p1/referrals/{tid}").text  # shown once
    assert "Ada" not in made.text.split("Email text")[1].split("</textarea>")[0]  # no PHI in the message
    secure_client.cookies.clear()
    assert secure_client.get(f"/r/{token}").status_code == 200
    login(secure_client, world, coach())
    patient_page = secure_client.get("/app/patients/p1")
    assert 'data-testid="referral-status">requested' in patient_page.text
    csrf = login(secure_client, world, coach())
    r = secure_client.post(
        f"/app/patients/p1/referrals/{tid}/revoke", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    secure_client.cookies.clear()
    assert secure_client.get(f"/r/{token}").status_code == 410


def test_without_consent_it_stays_a_draft_until_the_patient_accepts(secure_client: Any, world: Any) -> None:
    csrf = login(secure_client, world, coach())
    tid = _refer(secure_client, csrf, consent=False)
    assert world.repo.read("Task", tid).content["status"] == "draft"
    assert world.repo.search_params("Consent", []).matches == []
    r = secure_client.post(f"/app/patients/p1/referrals/{tid}/link", data={"csrf_token": csrf})
    assert r.status_code == 409  # nothing leaves the practice without consent
    csrf = login(secure_client, world, patient("p1"))
    me = secure_client.get("/app/me")
    assert 'data-testid="my-referrals"' in me.text and "waiting for you" in me.text
    r = secure_client.post(
        f"/app/me/referrals/{tid}", data={"csrf_token": csrf, "action": "accept"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    assert world.repo.read("Task", tid).content["status"] == "requested"
    consents = world.repo.search_params("Consent", [("patient", "Patient/p1")]).matches
    assert (
        len(consents) == 1
        and consents[0].content["provision"]["actor"][0]["reference"]["reference"] == "Organization/food-bank"
    )


def test_the_patient_declines_and_cannot_touch_another_patients_referral(
    secure_client: Any, world: Any
) -> None:
    csrf = login(secure_client, world, coach())
    tid = _refer(secure_client, csrf, consent=False)
    csrf = login(secure_client, world, patient("p2"))
    r = secure_client.post(f"/app/me/referrals/{tid}", data={"csrf_token": csrf, "action": "accept"})
    assert r.status_code == 404
    csrf = login(secure_client, world, patient("p1"))
    r = secure_client.post(
        f"/app/me/referrals/{tid}", data={"csrf_token": csrf, "action": "decline"}, follow_redirects=False
    )
    assert r.status_code == 303
    task = world.repo.read("Task", tid).content
    assert task["status"] == "cancelled" and task["statusReason"]["text"] == "declined by the patient"


def test_pages_refuse_patients(secure_client: Any, world: Any) -> None:
    csrf = login(secure_client, world, patient("p1"))
    assert secure_client.get("/app/patients/p1/referrals/new").status_code == 403
    assert secure_client.post("/app/patients/p1/referrals", data={"csrf_token": csrf}).status_code == 403


def test_the_run_chart_marks_the_referral_outcome() -> None:
    data = {
        "from": date(2026, 3, 1),
        "to": date(2026, 3, 10),
        "unit": "steps",
        "median": 5000,
        "point": [{"date": date(2026, 3, d), "value": 5000 + d * 10} for d in range(1, 11)],
        "analysis": {},
        "phase": [],
        "annotation": [],
    }
    fig = RunChartFigure.from_service(data, "Steps")
    from dataclasses import replace

    fig = replace(fig, events=((date(2026, 3, 3), "Food pantry enrolled"),))
    svg = str(draw(fig))
    assert 'class="rc-event"' in svg and "Food pantry enrolled, Mar 3" in svg
    assert "Referral outcome: Food pantry enrolled, Mar 3." in fig.sentence()
