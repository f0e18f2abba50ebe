"""Server-side page tests: what each page shows, who may open it, and what its forms write."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from fhir_ecr.coaching import resources as res
from fhir_ecr.store.search import parse_search
from fhir_ecr.web.messaging import send_message, thread
from tests.web.web_support import PATIENT, coach_principal, load_demo, login, patient_principal


def search(services, rtype, params):
    return [s.content for s in services.repo.search(parse_search(rtype, params, default_count=1000)).matches]


@pytest.fixture
def demo(secure_services):
    return load_demo(secure_services)


@pytest.fixture
def coach(secure_services, secure_client, demo):
    _, session = login(secure_services, coach_principal(), secure_client)
    return session


@pytest.fixture
def patient(secure_services, secure_client, demo):
    _, session = login(secure_services, patient_principal(), secure_client)
    return session


def test_anonymous_gets_the_sign_in_page(secure_client):
    for path in ("/app/caseload", "/app/patients/x", "/app/me", "/app"):
        resp = secure_client.get(path, follow_redirects=False)
        assert resp.status_code == 401, path
        assert resp.headers["content-type"].startswith("text/html")
        assert 'href="/smart/login?ehr=sandbox"' in resp.text and 'href="/sandbox-ehr/"' in resp.text


def test_coach_patient_page_shows_the_coaching_picture(secure_client, coach, demo):
    resp = secure_client.get(f"/app/patients/{PATIENT}")
    assert resp.status_code == 200, resp.text[:500]
    html = resp.text
    assert 'class="banner"' in html and "Ana Lopez" in html and "MRN MRN-1001" in html
    assert resp.headers["cache-control"] == "no-store"
    # goals as sparklines with a text alternative, the status and the new run-chart signal
    assert html.count('class="spark"') >= 1 + 4  # the steps goal + four wearable trends
    assert re.search(r'aria-label="Walk 8,000 steps a day: latest [\d,]+ steps', html)
    assert "signal: " in html and "(new)" in html
    # habits: adherence, the repaired streak day, the paused habit with its reason
    repaired = (demo - timedelta(days=5)).strftime("%b %-d")
    assert f"repaired {repaired}" in html
    assert "paused: travel" in html
    # the run chart: median, signal points, the PDSA change, a data table
    assert 'class="rc-signal"' in html and "PDSA: Walk after lunch" in html and "Data table" in html
    assert "Group session" in html and html.count("Group session") == 1  # not the group-level Encounter too
    # a second look: the signal is no longer new
    assert "(new)" not in secure_client.get(f"/app/patients/{PATIENT}").text


def test_banner_hidden_when_the_ehr_shows_its_own(secure_services, secure_client, demo):
    login(secure_services, coach_principal(), secure_client, context={"need_patient_banner": False})
    html = secure_client.get(f"/app/patients/{PATIENT}").text
    assert 'class="banner"' not in html and "Run chart" in html


def test_patient_cannot_open_another_patients_page(secure_client, patient):
    resp = secure_client.get("/app/patients/demo-ben")
    assert resp.status_code == 403
    assert "Ben" not in resp.text and "Not allowed" in resp.text
    assert secure_client.get("/app/caseload").status_code == 403
    assert secure_client.get("/app", follow_redirects=False).headers["location"] == "/app/me"


def test_unknown_patient_is_a_404_page(secure_client, coach):
    resp = secure_client.get("/app/patients/nobody")
    assert resp.status_code == 404 and "Not found" in resp.text


def test_print_view(secure_client, coach):
    resp = secure_client.get(f"/app/patients/{PATIENT}/print")
    assert (
        resp.status_code == 200 and "Coaching summary: Ana Lopez" in resp.text and "data-print" in resp.text
    )


def test_session_form_keeps_values_on_error_and_writes_the_encounter(
    secure_services, secure_client, coach, demo
):
    url = f"/app/patients/{PATIENT}/sessions"
    form = secure_client.get(f"{url}/new")
    assert form.status_code == 200 and 'name="csrf_token"' in form.text
    assert 'value="demo-coach" selected' in form.text  # the signed-in coach's role is preselected
    bad = {
        "csrf_token": coach.csrf_token,
        "date": demo.isoformat(),
        "start_time": "",
        "duration": "30",
        "modality": "video",
        "session_type": "follow-up",
        "coach": "demo-coach",
        "time_zone": "America/New_York",
        "goals": "demo-goal-steps",
        "next_steps": "Walk at lunch on Tuesdays",
    }
    resp = secure_client.post(url, data=bad)
    assert resp.status_code == 422
    assert 'id="start_time-error"' in resp.text and 'aria-describedby="start_time-error"' in resp.text
    assert "Walk at lunch on Tuesdays" in resp.text and 'value="demo-goal-steps" checked' in resp.text
    ended = (demo - timedelta(days=1)).isoformat()
    good = {**bad, "date": ended, "start_time": "10:00"}
    resp = secure_client.post(url, data=good, follow_redirects=False)
    assert resp.status_code == 303, resp.text[:800]
    eid = re.search(r"encounter=([\w.-]+)", resp.headers["location"]).group(1)
    enc = secure_services.repo.read("Encounter", eid).content
    assert enc["subject"]["reference"] == f"Patient/{PATIENT}" and enc["length"]["value"] == 30
    assert enc["participant"][0]["individual"]["reference"] == "PractitionerRole/demo-coach"
    notes = search(secure_services, "DocumentReference", [("encounter", f"Encounter/{eid}")])
    assert len(notes) == 1 and notes[0]["context"]["related"] == [{"reference": "Goal/demo-goal-steps"}]
    # a service rule (no session ending in the future) comes back next to its field
    future = {**good, "date": (demo + timedelta(days=2)).isoformat()}
    resp = secure_client.post(url, data=future)
    assert resp.status_code == 422 and 'id="end_time-error"' in resp.text


def test_form_without_csrf_token_is_refused(secure_client, coach):
    resp = secure_client.post(f"/app/patients/{PATIENT}/messages", data={"text": "hi"})
    assert resp.status_code == 403


def test_goal_editor_and_smart_helper(secure_services, secure_client, coach, demo):
    checks = secure_client.get(
        "/app/goal-check", params={"description": "be healthier", "measure": "", "value": "", "due": ""}
    ).json()
    assert [c["ok"] for c in checks] == [False, False, False]
    due = (demo + timedelta(days=90)).isoformat()
    checks = secure_client.get(
        "/app/goal-check",
        params={"description": "Sleep 7 hours a night", "measure": "93832-4", "value": "7", "due": due},
    ).json()
    assert [c["letter"] for c in checks if c["ok"]] == ["S", "M", "T"]
    url = f"/app/patients/{PATIENT}/goals"
    bad = {
        "csrf_token": coach.csrf_token,
        "description": "Lose weight",
        "category": "weight-management",
        "measure": "29463-7",
        "direction": "between",
        "value": "80",
        "value_high": "70",
        "due": due,
    }
    resp = secure_client.post(url, data=bad)
    assert (
        resp.status_code == 422
        and 'id="value_high-error"' in resp.text
        and 'value="Lose weight"' in resp.text
    )
    good = {**bad, "direction": "at_most", "value": "75", "value_high": ""}
    assert secure_client.post(url, data=good, follow_redirects=False).status_code == 303
    goal = next(
        g
        for g in search(secure_services, "Goal", [("patient", f"Patient/{PATIENT}")])
        if g["description"]["text"] == "Lose weight"
    )
    assert goal["target"][0]["detailQuantity"]["comparator"] == "<=" and goal["target"][0]["dueDate"] == due
    edit = secure_client.get(f"{url}/{goal['id']}/edit")
    assert edit.status_code == 200 and 'value="75"' in edit.text


def test_habits_editor_add_pause_resume_and_stale_version(secure_services, secure_client, coach):
    url = f"/app/patients/{PATIENT}/habits"
    page = secure_client.get(url).text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    base = {"csrf_token": coach.csrf_token, "plan": "demo-ana-habits", "version": version}
    resp = secure_client.post(
        url,
        data={**base, "action": "add", "title": "Drink water", "schedule": "per-week", "times_per_week": "9"},
    )
    assert resp.status_code == 422 and 'id="times_per_week-error"' in resp.text
    resp = secure_client.post(
        url,
        data={
            **base,
            "action": "add",
            "title": "Drink water",
            "schedule": "weekdays",
            "weekdays": ["mon", "thu"],
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303
    plan = secure_services.repo.read("CarePlan", "demo-ana-habits")
    habits = {h.habit_id: h for h in res.habits_of_plan(plan.content)}
    assert "drink-water" in habits
    stale = secure_client.post(url, data={**base, "action": "pause", "habit_id": "walk", "reason": "illness"})
    assert stale.status_code == 412 and "changed this plan" in stale.text
    fresh = {**base, "version": str(plan.version_id)}
    assert (
        secure_client.post(
            url, data={**fresh, "action": "pause", "habit_id": "walk", "reason": ""}
        ).status_code
        == 422
    )
    assert (
        secure_client.post(
            url,
            data={**fresh, "action": "pause", "habit_id": "walk", "reason": "illness", "reason_text": "flu"},
            follow_redirects=False,
        ).status_code
        == 303
    )
    plan = secure_services.repo.read("CarePlan", "demo-ana-habits")
    assert {h.habit_id: h for h in res.habits_of_plan(plan.content)}["walk"].status == "on-hold"
    assert (
        secure_client.post(
            url,
            data={**base, "version": str(plan.version_id), "action": "resume", "habit_id": "walk"},
            follow_redirects=False,
        ).status_code
        == 303
    )
    plan = secure_services.repo.read("CarePlan", "demo-ana-habits")
    assert {h.habit_id: h for h in res.habits_of_plan(plan.content)}["walk"].status == "in-progress"
    # A version that is not an ASCII number is no version at all (it used to crash int("²")).
    for odd in ("²", "99999999999999999999999"):
        resp = secure_client.post(
            url,
            data={**base, "version": odd, "action": "pause", "habit_id": "walk", "reason": "illness"},
            follow_redirects=False,
        )
        assert resp.status_code in (303, 412, 422), (odd, resp.status_code)  # never a 500


def test_messages_both_sides_with_unread_counts(secure_services, secure_client, demo):
    _, coach = login(secure_services, coach_principal(), secure_client)
    resp = secure_client.post(
        f"/app/patients/{PATIENT}/messages",
        data={"csrf_token": coach.csrf_token, "text": "How did the walks go?"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    sent = search(secure_services, "Communication", [("subject", f"Patient/{PATIENT}")])
    assert len(sent) == 1 and sent[0]["sender"]["reference"] == "Practitioner/demo-coach-person"
    _, pat = login(secure_services, patient_principal(), secure_client)
    me = secure_client.get("/app/me").text
    assert 'data-unread aria-label="1 unread"' in me
    msgs = secure_client.get("/app/me/messages").text
    assert "How did the walks go?" in msgs and "Your coach" in msgs
    assert "data-unread" not in secure_client.get("/app/me").text
    assert (
        secure_client.post(
            "/app/me/messages",
            data={"csrf_token": pat.csrf_token, "text": "Great, 5 of 7"},
            follow_redirects=False,
        ).status_code
        == 303
    )
    assert (
        secure_client.post("/app/me/messages", data={"csrf_token": pat.csrf_token, "text": "  "}).status_code
        == 422
    )
    conv = thread(secure_services.repo, PATIENT)
    assert [m.from_patient for m in conv.messages] == [False, True] and conv.unanswered == 1
    login(secure_services, coach_principal(), secure_client)
    rows = secure_client.get("/app/caseload").text
    assert "1 unanswered message (today)" in rows and 'aria-label="1 unread message"' in rows


def test_check_in_is_idempotent_per_day_and_needs_csrf(secure_services, secure_client, patient, demo):
    body = {"plan": "demo-ana-habits", "habit": "stretch", "status": "done", "date": demo.isoformat()}
    assert secure_client.post("/app/me/check-in", json=body).status_code == 403  # no CSRF header
    headers = {"X-CSRF-Token": patient.csrf_token}
    first = secure_client.post("/app/me/check-in", json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = secure_client.post("/app/me/check-in", json=body, headers=headers).json()
    assert again["id"] == first.json()["id"] and again["changed"] is False
    found = search(
        secure_services,
        "Observation",
        [
            ("patient", f"Patient/{PATIENT}"),
            ("code", f"{res.MECR_CODES}|habit-check-in"),
            ("date", demo.isoformat()),
        ],
    )
    assert len([o for o in found if res.checkin_from_observation(o)[1] == "stretch"]) == 1
    other = secure_client.post(
        "/app/me/check-in",
        headers=headers,
        json={**body, "plan": "demo-ana-habits", "date": (demo + timedelta(days=3)).isoformat()},
    )
    assert other.status_code == 422 and other.json()["resourceType"] == "OperationOutcome"


def test_patient_app_and_settings(secure_services, secure_client, patient):
    html = secure_client.get("/app/me").text
    assert 'rel="manifest"' in html and "Walk after lunch" in html and 'data-status="done"' in html
    assert "Screens off by 22:00" in html.split("Paused:")[1]  # the paused habit is not a tap target today
    resp = secure_client.post(
        "/app/me/settings",
        data={
            "csrf_token": patient.csrf_token,
            "time_zone": "America/Chicago",
            "reminder": "19:30",
            "hide_sensitive": "on",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303
    stored = secure_services.repo.read("Patient", PATIENT).content
    assert res.patient_time_zone(stored, "UTC") == "America/Chicago"
    html = secure_client.get("/app/me").text
    assert 'value="19:30"' in html and 'name="hide_sensitive" checked' in html
    assert secure_client.get("/app/manifest.webmanifest").json()["start_url"] == "/app/me"
    sw = secure_client.get("/app/sw.js")
    assert sw.headers["service-worker-allowed"] == "/app/"


def test_caseload_ranks_a_new_signal_first_and_filters(secure_services, secure_client, coach):
    send_message(secure_services.repo, "demo-cara", "Hello?", from_patient=True)
    html = secure_client.get("/app/caseload", params={"scope": "all"}).text
    order = re.findall(r'data-patient="([\w-]+)"', html)
    assert (
        order[0] == PATIENT and order[1] == "demo-cara"
    )  # new signal (100) before an unanswered message (40)
    assert "Steps: new signal, moving toward the goal" in html
    only = re.findall(
        r'data-patient="([\w-]+)"', secure_client.get("/app/caseload", params={"q": "nguyen"}).text
    )
    assert only == ["demo-cara"]
    by_mrn = re.findall(
        r'data-patient="([\w-]+)"', secure_client.get("/app/caseload", params={"q": "mrn-1002"}).text
    )
    assert by_mrn == ["demo-ben"]
    msgs = re.findall(
        r'data-patient="([\w-]+)"', secure_client.get("/app/caseload", params={"show": "messages"}).text
    )
    assert msgs == ["demo-cara"]
    secure_client.get(f"/app/patients/{PATIENT}")  # seen: no longer a *new* signal
    order = re.findall(r'data-patient="([\w-]+)"', secure_client.get("/app/caseload").text)
    assert order[0] == "demo-cara"


def test_javascript_shipped_is_small():
    static = Path(__file__).resolve().parents[2] / "fhir_ecr" / "web" / "static"
    total = sum(p.stat().st_size for p in static.glob("*.js"))
    assert total < 100 * 1024, total


def test_patient_page_shows_a_write_made_after_a_cached_view(secure_services, secure_client, coach, demo):
    from fhir_ecr.coaching.cache import view_cache
    from tests.coaching.coaching_support import steps_reading

    first = secure_client.get(f"/app/patients/{PATIENT}")
    assert first.status_code == 200 and "12,345" not in first.text
    stats = view_cache(secure_services.engine).stats
    hits = stats.hits
    assert secure_client.get(f"/app/patients/{PATIENT}").text.count('class="spark"') == first.text.count(
        'class="spark"'
    )
    assert stats.hits > hits  # the second view came from the cache
    secure_services.repo.create(steps_reading(PATIENT, demo, 12345))  # e.g. a wearable import
    html = secure_client.get(f"/app/patients/{PATIENT}").text
    assert re.search(r'aria-label="Walk 8,000 steps a day: latest 12,345 steps', html), html[:300]


def test_patient_app_visit_warms_the_coach_page(secure_services, secure_client, demo):
    from fhir_ecr.coaching.cache import view_cache

    login(secure_services, patient_principal(), secure_client)
    assert secure_client.get("/app/me").status_code == 200
    assert secure_client.get(f"/app/patients/{PATIENT}").status_code in (401, 403)  # the cache opens no door
    stats = view_cache(secure_services.engine).stats
    hits = stats.hits
    login(secure_services, coach_principal(), secure_client)
    assert secure_client.get(f"/app/patients/{PATIENT}").status_code == 200
    assert stats.hits > hits
