"""The coaching operations over HTTP (TestClient), on SQLite and PostgreSQL, including every error path."""

from __future__ import annotations

import base64
from datetime import date, timedelta

import pytest

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.demo import demo_coaching_bundles
from fhir_ecr.coaching.sessions import parse_session_note
from tests.coaching.coaching_support import NOW, make_world, pin_clock, steps_reading
from tests.helpers import assert_outcome

REPEATED = ["goal", "habit", "adherence", "point", "phase", "annotation", "pause", "rule", "pdsa", "repaired"]


def params(**values):
    """A Parameters body; str values become valueString, dicts valueReference/valueQuantity."""
    return res.to_parameters(values)


def as_dict(resp):
    assert resp.status_code == 200, resp.text[:500]
    return res.parameters_to_dict(resp.json(), REPEATED)


def test_check_in_operation_is_idempotent_per_day(client, repo):
    w = make_world(repo)
    url = f"/fhir/CarePlan/{w.plan}/$check-in"
    one = as_dict(
        client.post(
            url,
            json=params(
                habitId="walk",
                status="done",
                date="2026-03-19",
                quantity={"value": 20, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
                note="with Sam",
            ),
        )
    )
    two = as_dict(client.post(url, json=params(habitId="walk", status="not-done", date="2026-03-19")))
    assert one["created"] is True and two["created"] is False and two["version"] == 2
    assert one["return"]["id"] == two["return"]["id"]
    assert one["return"]["note"] == [{"text": "with Sam"}]
    assert two["return"]["valueCodeableConcept"]["coding"][0]["code"] == "not-done"
    bundle = client.get(
        "/fhir/Observation", params={"identifier": f"{res.CHECKIN_ID_SYSTEM}|{w.plan}/walk/2026-03-19"}
    )
    assert bundle.json()["total"] == 1
    history = client.get(f"/fhir/Observation/{one['return']['id']}/_history").json()
    assert history["total"] == 2
    # A dateTime is turned into the patient's local date: 03:30Z on the 20th is the 19th in New York.
    three = as_dict(client.post(url, json=params(habitId="walk", status="done", date="2026-03-20T03:30:00Z")))
    assert three["localDate"] == "2026-03-19" and three["return"]["id"] == one["return"]["id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"status": "done"}, 400, "required"),
        ({"habitId": "walk", "status": "done", "date": "19/03/2026"}, 400, "invalid"),
        ({"habitId": "walk", "status": "done", "date": "2026-03-19T10:00:00"}, 400, "invalid"),
        ({"habitId": "walk", "status": "done", "date": "2026-02-30"}, 400, "invalid"),
        ({"habitId": "walk", "status": "great"}, 400, "value"),
        ({"habitId": "walk", "status": "done", "quantity": "lots"}, 400, "invalid"),
        ({"habitId": "swim", "status": "done"}, 422, "not-found"),
        ({"habitId": "walk", "status": "done", "date": "2026-03-21"}, 422, "business-rule"),
        ({"habitId": "walk", "status": "done", "date": "2026-02-27"}, 422, "business-rule"),
    ],
)
def test_check_in_errors(client, repo, body, status, code):
    w = make_world(repo)
    assert_outcome(client.post(f"/fhir/CarePlan/{w.plan}/$check-in", json=params(**body)), status, code)


def test_check_in_wrong_patient_unknown_plan_and_get(client, repo):
    w = make_world(repo)
    body = params(habitId="walk", status="done", patient={"reference": f"Patient/{w.other_patient}"})
    assert_outcome(client.post(f"/fhir/CarePlan/{w.plan}/$check-in", json=body), 422, "business-rule")
    assert_outcome(
        client.post("/fhir/CarePlan/nope/$check-in", json=params(habitId="walk", status="done")),
        404,
        "not-found",
    )
    assert_outcome(client.get(f"/fhir/CarePlan/{w.plan}/$check-in"), 405, "not-supported")
    assert_outcome(
        client.post(f"/fhir/CarePlan/{w.plan}/$check-in", json={"resourceType": "Patient"}), 400, "required"
    )


def test_habit_operation_with_if_match(client, repo):
    w = make_world(repo)
    url = f"/fhir/CarePlan/{w.plan}/$habit"
    paused = client.post(
        url,
        json=params(action="pause", habitId="gym", reason="injury", start="2026-03-16"),
        headers={"If-Match": f'W/"{w.plan_version}"'},
    )
    out = as_dict(paused)
    assert out["version"] == w.plan_version + 1
    gym = res.habits_of_plan(out["return"])[1]
    assert gym.status == "on-hold" and gym.status_reason == "injury"
    stale = client.post(
        url, json=params(action="resume", habitId="gym"), headers={"If-Match": f'W/"{w.plan_version}"'}
    )
    assert_outcome(stale, 412, "conflict")
    added = as_dict(
        client.post(
            url,
            json=params(
                action="add",
                habitId="water",
                title="Water",
                schedule="weekdays",
                dayOfWeek=["mon", "thu"],
                start="2026-03-02",
            ),
        )
    )
    assert res.habits_of_plan(added["return"])[2].schedule.kind.value == "weekdays"
    assert_outcome(client.post(url, json=params(action="explode", habitId="gym")), 400, "value")
    assert_outcome(
        client.post(url, json=params(action="add", habitId="x", title="X", schedule="hourly")), 400, "invalid"
    )
    assert_outcome(
        client.post(url, json=params(action="pause", habitId="gym", reason="travel")), 422, "business-rule"
    )
    assert_outcome(
        client.post(url, json=params(action="resume", habitId="gym"), headers={"If-Match": "soon"}),
        400,
        "invalid",
    )
    summary = as_dict(client.get(f"/fhir/Patient/{w.patient}/$coaching-summary"))
    gym_summary = next(h for h in summary["habit"] if h["habitId"] == "gym")
    assert gym_summary["status"] == "on-hold" and gym_summary["pause"][0]["reason"] == "injury"


def test_coaching_summary_over_http(client, repo):
    w = make_world(repo)
    for n in range(1, 20):
        day = date(2026, 3, n)
        if n != 12:  # one miss on Thursday 12 March: repaired (one repair per week)
            client.post(
                f"/fhir/CarePlan/{w.plan}/$check-in",
                json=params(habitId="walk", status="done", date=day.isoformat()),
            )
    for n, steps in enumerate((6000, 6500, 7000, 7600)):
        repo.create(steps_reading(w.patient, date(2026, 3, 16 + n), steps))
    out = as_dict(client.get(f"/fhir/Patient/{w.patient}/$coaching-summary"))
    assert out["timeZone"] == "America/New_York" and out["today"] == "2026-03-20"
    walk = next(h for h in out["habit"] if h["habitId"] == "walk")
    assert walk["streak"]["current"] == 18 and walk["streak"]["repaired"] == ["2026-03-12"]
    assert {a["days"] for a in walk["adherence"]} == {7, 30, 90}
    seven = next(a for a in walk["adherence"] if a["days"] == 7)
    assert seven["scheduled"] == 6 and seven["done"] == 6
    [goal] = out["goal"]
    assert goal["achievementStatus"]["code"] == "improving" and goal["statusRule"] == "R9"
    assert goal["latest"] == 7600 and goal["runChart"]["points"] == 4
    assert_outcome(client.get("/fhir/Patient/missing/$coaching-summary"), 404, "not-found")
    assert_outcome(client.get(f"/fhir/Goal/{w.goal}/$coaching-summary"), 400, "not-supported")


def test_run_chart_operation_and_errors(client, repo):
    w = make_world(repo)
    for n in range(10):
        repo.create(steps_reading(w.patient, date(2026, 3, 1 + n), 5000 + 100 * n))
    ok = as_dict(
        client.get(
            "/fhir/Observation/$run-chart",
            params={
                "patient": f"Patient/{w.patient}",
                "code": "http://loinc.org|41950-7",
                "from": "2026-03-03",
                "to": "2026-03-08",
            },
        )
    )
    assert [p["date"] for p in ok["point"]] == [f"2026-03-0{d}" for d in range(3, 9)]
    assert ok["median"] == 5450 and ok["analysis"]["points"] == 6
    base = {"patient": w.patient, "code": "http://loinc.org|41950-7"}
    assert_outcome(client.get("/fhir/Observation/$run-chart", params={"code": base["code"]}), 400, "required")
    assert_outcome(client.get("/fhir/Observation/$run-chart", params={"patient": w.patient}), 400, "required")
    assert_outcome(
        client.get("/fhir/Observation/$run-chart", params={**base, "code": "41950-7"}), 400, "invalid"
    )
    assert_outcome(
        client.get("/fhir/Observation/$run-chart", params={**base, "from": "March"}), 400, "invalid"
    )
    assert_outcome(
        client.get("/fhir/Observation/$run-chart", params={**base, "from": "2026-03-09", "to": "2026-03-01"}),
        400,
        "invalid",
    )
    assert_outcome(
        client.get("/fhir/Observation/$run-chart", params={**base, "patient": "Patient/none"}),
        404,
        "not-found",
    )


def test_pdsa_operation(client, repo):
    w = make_world(repo)
    url = f"/fhir/Goal/{w.goal}/$pdsa"
    out = as_dict(client.post(url, json=params(title="Walk with Sam", date="2026-03-10", plan="Sam joins")))
    note = out["return"]["activity"][0]["progress"][0]
    assert note["time"] == "2026-03-10" and note["text"].startswith("PDSA: Walk with Sam")
    assert_outcome(client.post(url, json=params(date="2026-03-10")), 400, "required")
    assert_outcome(client.post(url, json=params(title="x", habitId="gym")), 422, "not-found")
    assert_outcome(client.post("/fhir/Goal/none/$pdsa", json=params(title="x")), 404, "not-found")


def test_individual_session(client, repo):
    w = make_world(repo)
    body = params(
        coach={"reference": f"PractitionerRole/{w.coach}"},
        start="2026-03-19T16:00:00-04:00",
        end="2026-03-19T16:32:30-04:00",
        modality="audio-only",
        sessionType="initial",
        reason="Low activity",
        goal={"reference": f"Goal/{w.goal}"},
        reviewed="Step counts",
        barriers="Knee pain",
        nextSteps="Try swimming",
    )
    out = client.post(f"/fhir/Patient/{w.patient}/$coaching-session", json=body)
    assert out.status_code == 200, out.text
    resources = [e["resource"] for e in out.json()["entry"]]
    [enc] = [r for r in resources if r["resourceType"] == "Encounter"]
    assert enc["class"]["code"] == "VR" and enc["extension"][0]["valueCoding"]["code"] == "audio-only"
    assert enc["length"]["value"] == 32 and enc["type"][0]["coding"][0]["code"] == "coaching-session-initial"
    assert enc["participant"][0]["individual"] == {"reference": f"PractitionerRole/{w.coach}"}
    assert enc["serviceProvider"]["reference"].startswith("Organization/") and "partOf" not in enc
    [doc] = [r for r in resources if r["resourceType"] == "DocumentReference"]
    assert doc["context"]["encounter"] == [{"reference": f"Encounter/{enc['id']}"}]
    assert doc["context"]["related"] == [{"reference": f"Goal/{w.goal}"}]
    note = parse_session_note(doc)
    assert (note.reviewed, note.barriers, note.next_steps) == ("Step counts", "Knee pain", "Try swimming")
    assert "## Barriers\nKnee pain" in base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()


def test_group_session_one_encounter_per_participant(client, repo):
    w = make_world(repo)
    third = repo.create({"resourceType": "Patient", "name": [{"family": "Third"}]}).stored.id
    group = repo.create(
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": f"Patient/{p}"}} for p in (w.patient, w.other_patient, third)
            ],
        }
    ).stored.id
    body = params(
        coach=f"PractitionerRole/{w.coach}",
        start="2026-03-17T12:00:00-04:00",
        end="2026-03-17T13:00:00-04:00",
        modality="in-person",
        reviewed="Walking routes",
    )
    out = client.post(f"/fhir/Group/{group}/$coaching-session", json=body)
    assert out.status_code == 200, out.text
    encounters = [e["resource"] for e in out.json()["entry"] if e["resource"]["resourceType"] == "Encounter"]
    parent = next(e for e in encounters if "partOf" not in e)
    children = [e for e in encounters if "partOf" in e]
    assert parent["subject"] == {"reference": f"Group/{group}"}  # IG invariant mecr-enc-5
    assert sorted(e["subject"]["reference"] for e in children) == sorted(
        f"Patient/{p}" for p in (w.patient, w.other_patient, third)
    )
    assert all(e["partOf"] == {"reference": f"Encounter/{parent['id']}"} for e in children)
    assert all(e["type"][0]["coding"][0]["code"] == "coaching-session-group" for e in encounters)
    assert all(e["class"]["code"] == "AMB" and e["length"]["value"] == 60 for e in encounters)
    stored = client.get("/fhir/Encounter", params={"part-of": f"Encounter/{parent['id']}"}).json()
    assert stored["total"] == 3


def test_session_errors(client, repo):
    w = make_world(repo)
    small = repo.create(
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{w.patient}"}}],
        }
    ).stored.id
    not_coach = repo.create({"resourceType": "PractitionerRole", "active": True}).stored.id
    good = {
        "coach": f"PractitionerRole/{w.coach}",
        "start": "2026-03-19T16:00:00-04:00",
        "end": "2026-03-19T16:30:00-04:00",
        "modality": "video",
    }
    url = f"/fhir/Patient/{w.patient}/$coaching-session"
    cases = [
        ({**good, "end": "2026-03-19T15:00:00-04:00"}, 400, "invalid"),
        ({**good, "start": "yesterday"}, 400, "invalid"),
        ({**good, "start": "2026-03-19T16:00:00"}, 400, "invalid"),
        ({**good, "modality": "carrier-pigeon"}, 400, "value"),
        ({k: v for k, v in good.items() if k != "coach"}, 400, "required"),
        ({**good, "coach": "PractitionerRole/ghost"}, 422, "not-found"),
        ({**good, "coach": f"PractitionerRole/{not_coach}"}, 422, "business-rule"),
        ({**good, "end": "2026-03-21T16:30:00-04:00"}, 422, "business-rule"),
        ({**good, "goal": "Goal/ghost"}, 422, "not-found"),
    ]
    for body, status, code in cases:
        assert_outcome(client.post(url, json=params(**body)), status, code)
    assert_outcome(
        client.post(f"/fhir/Group/{small}/$coaching-session", json=params(**good)), 422, "business-rule"
    )
    other_goal = repo.create(
        {
            **repo.read("Goal", w.goal).content,
            "id": None,
            "subject": {"reference": f"Patient/{w.other_patient}"},
        }
    ).stored.id
    assert_outcome(client.post(url, json=params(**good, goal=f"Goal/{other_goal}")), 422, "business-rule")


def test_operations_are_in_the_capability_statement(client):
    cs = client.get("/fhir/metadata").json()
    names = {op["name"] for r in cs["rest"][0]["resource"] for op in r.get("operation", [])}
    assert {"coaching-summary", "check-in", "habit", "run-chart", "coaching-session", "pdsa"} <= names


def test_demo_bundles_load_and_show_every_feature(client, repo):
    today = date(2026, 3, 20)
    pin_clock(repo, NOW)
    for bundle in demo_coaching_bundles(today):
        resp = client.post("/fhir", json=bundle)
        assert resp.status_code == 200, resp.text[:800]
    out = as_dict(client.get("/fhir/Patient/demo-ana/$coaching-summary"))
    habits = {h["habitId"]: h for h in out["habit"]}
    assert habits["walk"]["streak"]["repaired"] == [(today - timedelta(days=5)).isoformat()]
    assert habits["walk"]["streak"]["current"] >= 50
    assert habits["screens-off"]["status"] == "on-hold" and habits["screens-off"]["statusReason"] == "travel"
    steps = next(g for g in out["goal"] if g["reference"]["reference"] == "Goal/demo-goal-steps")
    assert steps["runChart"]["signal"] and "shift" in steps["runChart"]["rule"]
    assert steps["runChart"]["pdsa"] == ["Walk after lunch with a colleague"]
    group = client.get("/fhir/Encounter", params={"part-of": "Encounter/demo-group-session"}).json()
    assert group["total"] == 3
