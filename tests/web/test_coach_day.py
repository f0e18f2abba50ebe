"""The coach's day, server-side (issue #16): banners on every patient page, MRNs, times in the reader's zone,
signing out, errors as pages, forms, run charts that agree with themselves, the launch's Deny page."""

from __future__ import annotations

import html as htmllib
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fhir_ecr.auth.sessions import SESSION_COOKIE
from fhir_ecr.coaching import resources as res
from fhir_ecr.web import views
from fhir_ecr.web.messaging import send_message
from fhir_ecr.web.runcharts import RunChartFigure, draw
from tests.auth.test_sandbox_launch import ORIGIN, _authorize, _local
from tests.web.web_support import PATIENT, coach_principal, load_demo, login, patient_principal

NY = "America/New_York"
SUBPAGES = [
    "",
    "/print",
    "/messages",
    "/sessions/new",
    "/goals/new",
    "/goals/demo-goal-steps/edit",
    "/habits",
]


@pytest.fixture
def ny(secure_services, secure_settings):
    """The demo practice's zone (`make demo` sets MECR_DEFAULT_TIME_ZONE=America/New_York)."""
    secure_services.settings = secure_settings.model_copy(update={"default_time_zone": NY})


@pytest.fixture
def demo(secure_services, ny):
    return load_demo(secure_services)


@pytest.fixture
def coach(secure_services, secure_client, demo):
    _, session = login(secure_services, coach_principal(), secure_client)
    return session


def text(html: str) -> str:
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


# -- wrong-patient safety -----------------------------------------------------------------------------------------


def test_every_patient_page_shows_the_banner_with_the_mrn(secure_client, coach):
    for sub in SUBPAGES:
        resp = secure_client.get(f"/app/patients/{PATIENT}{sub}")
        assert resp.status_code == 200, (sub, resp.text[:300])
        banner = re.search(r'<section class="banner" aria-label="Patient">(.*?)</section>', resp.text, re.S)
        assert banner, sub
        words = text(banner.group(1))
        assert (
            "Ana Lopez" in words and "female" in words and "MRN MRN-1001" in words and " y " in words + " "
        ), sub
        assert "born 1978-03-14" in words


def test_the_ehr_can_say_it_shows_its_own_banner(secure_services, secure_client, demo):
    login(secure_services, coach_principal(), secure_client, context={"need_patient_banner": False})
    for sub in SUBPAGES:
        resp = secure_client.get(f"/app/patients/{PATIENT}{sub}")
        assert resp.status_code == 200 and 'class="banner"' not in resp.text, sub


def test_the_banner_never_shows_an_ehr_internal_id(secure_services, secure_client, demo):
    repo = secure_services.repo
    linked = repo.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Linked", "given": ["Lee"]}],
            "identifier": [
                {"system": "urn:mecr:ehr:sandbox:Patient", "value": "pat-internal-77"},
                {
                    "system": "http://example.org/mrn",
                    "value": "A-5521",
                    "type": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                    },
                },
            ],
        }
    ).stored.id
    only_link = repo.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Bare"}],
            "identifier": [{"system": "urn:mecr:ehr:sandbox:Patient", "value": "pat-internal-78"}],
        }
    ).stored.id
    login(secure_services, coach_principal(), secure_client)
    page = secure_client.get(f"/app/patients/{linked}").text
    assert "MRN A-5521" in page and "pat-internal-77" not in page
    page = secure_client.get(f"/app/patients/{only_link}").text
    assert "pat-internal-78" not in page and "MRN" not in text(
        re.search(r'class="banner".*?</section>', page, re.S)[0]
    )
    caseload = secure_client.get("/app/caseload", params={"scope": "all"}).text
    assert "pat-internal" not in caseload and "MRN A-5521" in caseload
    # nor can a search find a patient by the EHR's internal id
    assert (
        f'data-patient="{linked}"'
        not in secure_client.get("/app/caseload", params={"scope": "all", "q": "pat-internal-77"}).text
    )


# -- times in the reader's zone ---------------------------------------------------------------------------------


def test_messages_and_sessions_are_shown_in_the_readers_zone(secure_services, secure_client, demo):
    repo = secure_services.repo
    stored = send_message(repo, PATIENT, "Walked in the rain", from_patient=True)
    sent = datetime.fromisoformat(stored["sent"].replace("Z", "+00:00"))
    login(secure_services, coach_principal(), secure_client)
    page = secure_client.get(f"/app/patients/{PATIENT}/messages").text
    assert f"{sent.astimezone(ZoneInfo(NY)):%b %-d, %H:%M}" in page
    assert page.count("Times are shown in America/New_York") == 1
    patient_page = secure_client.get(f"/app/patients/{PATIENT}").text
    session = next(
        e for e in repo.search_params("Encounter", [("_id", "demo-video-session")]).matches
    ).content
    start = datetime.fromisoformat(session["period"]["start"])
    assert f"{start.astimezone(ZoneInfo(NY)):%b %-d, %H:%M}" in patient_page
    # a coach who set their own zone reads in it
    person = repo.read("Practitioner", "demo-coach-person").content
    repo.update(
        "Practitioner",
        "demo-coach-person",
        {**person, "extension": [{"url": res.TIMEZONE_URL, "valueCode": "Europe/London"}]},
    )
    page = secure_client.get(f"/app/patients/{PATIENT}/messages").text
    assert f"{sent.astimezone(ZoneInfo('Europe/London')):%b %-d, %H:%M}" in page
    assert "Times are shown in Europe/London" in page
    # the patient reads in their own zone
    views.coaching_service(views.Data(repo, NY)).set_time_zone(PATIENT, "America/Los_Angeles")
    login(secure_services, patient_principal(), secure_client)
    page = secure_client.get("/app/me/messages").text
    assert f"{sent.astimezone(ZoneInfo('America/Los_Angeles')):%b %-d, %H:%M}" in page
    assert page.count("Times are shown in America/Los_Angeles") == 1


# -- signing out ----------------------------------------------------------------------------------------------


def test_sign_out_is_on_every_page_and_ends_the_session(secure_services, secure_client, demo):
    cookie, session = login(secure_services, coach_principal(), secure_client)
    for path in ["/app/caseload", *(f"/app/patients/{PATIENT}{s}" for s in SUBPAGES), "/app/nowhere"]:
        assert 'action="/app/signout"' in secure_client.get(path).text, path
    refused = secure_client.post("/app/signout")  # no CSRF token: refused, as an HTML page
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert secure_services.sessions.load(cookie) is not None
    resp = secure_client.post("/app/signout", data={"csrf_token": session.csrf_token}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/app/signed-out?who=coach"
    assert f"{SESSION_COOKIE}=" in resp.headers["set-cookie"] and "Max-Age=0" in resp.headers["set-cookie"]
    assert resp.headers["clear-site-data"] == '"cache"'
    assert secure_services.sessions.load(cookie) is None
    ended = secure_client.get("/app/signed-out?who=coach")
    assert (
        ended.status_code == 200 and "You have signed out" in ended.text and "data-signed-out" in ended.text
    )
    secure_client.cookies.set(SESSION_COOKIE, cookie)  # the old cookie opens nothing any more
    assert secure_client.get("/app/caseload").status_code == 401


def test_a_patient_signs_out_of_the_app(secure_services, secure_client, demo):
    _, session = login(secure_services, patient_principal(), secure_client)
    for path in ("/app/me", "/app/me/messages"):
        assert 'action="/app/signout"' in secure_client.get(path).text
    resp = secure_client.post("/app/signout", data={"csrf_token": session.csrf_token})
    assert resp.status_code == 200 and 'href="/smart/login?ehr=sandbox"' in resp.text
    assert "no longer keeps a copy of your app" in resp.text
    assert secure_client.get("/app/me").status_code == 401


# -- errors are pages ---------------------------------------------------------------------------------------------


def test_errors_below_app_are_pages_with_a_way_back(secure_services, secure_client, coach, monkeypatch):
    for path, status, title in (
        ("/app/nowhere", 404, "Not found"),
        ("/app/patients/nobody", 404, "Not found"),
        ("/app/static/missing.css", 404, "Not found"),
    ):
        resp = secure_client.get(path)
        assert resp.status_code == status and resp.headers["content-type"].startswith("text/html"), path
        assert f"<h1>{title}</h1>" in resp.text and 'href="/app/caseload"' in resp.text
        assert "content-security-policy" in resp.headers
    resp = secure_client.get("/app/signout")  # a form's address, opened as a page
    assert resp.status_code == 405 and "<h1>Not here</h1>" in resp.text
    resp = secure_client.post(
        f"/app/patients/{PATIENT}/messages",
        data={"text": "hi"},
        headers={"Referer": f"http://127.0.0.1:8000/app/patients/{PATIENT}/messages"},
    )
    assert (
        resp.status_code == 403
        and "CSRF" in resp.text
        and resp.headers["content-type"].startswith("text/html")
    )
    assert f'href="/app/patients/{PATIENT}/messages">Back to the page you came from' in resp.text

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "patient_page", boom)
    resp = secure_client.get(f"/app/patients/{PATIENT}")
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("text/html")
    assert "<h1>Something went wrong</h1>" in resp.text and "a bug" not in resp.text
    assert "content-security-policy" in resp.headers
    # the scripts' JSON endpoints keep their OperationOutcomes
    resp = secure_client.post("/app/me/check-in", json={}, headers={"X-CSRF-Token": "wrong"})
    assert resp.status_code == 403 and resp.json()["resourceType"] == "OperationOutcome"


def test_anonymous_errors_point_to_the_start(secure_client):
    resp = secure_client.get("/app/nowhere")
    assert resp.status_code == 404 and 'href="/app"' in resp.text and 'action="/app/signout"' not in resp.text


def test_site_and_app_icons_are_served(secure_client):
    ico = secure_client.get("/favicon.ico")
    assert (
        ico.status_code == 200
        and ico.headers["content-type"] == "image/x-icon"
        and ico.content[:4] == b"\0\0\1\0"
    )
    manifest = secure_client.get("/app/manifest.webmanifest").json()
    for icon in manifest["icons"]:
        got = secure_client.get(icon["src"])
        assert got.status_code == 200 and got.headers["content-type"] == icon["type"], icon
    assert secure_client.get("/app/static/apple-touch-icon.png").content[:8] == b"\x89PNG\r\n\x1a\n"


# -- forms --------------------------------------------------------------------------------------------------------


def _field_errors(page: str) -> dict[str, str]:
    """field name -> the id of the error that follows it inside the same field wrapper."""
    out = {}
    for block in re.findall(r'<div class="field[^"]*"[^>]*>(.*?)</div>', page, re.S):
        name = re.search(r'name="([\w]+)"', block)
        err = re.search(r'<p class="field-error" id="([\w-]+)"', block)
        if name and err:
            out[name.group(1)] = err.group(1)
    return out


def test_each_error_sits_under_its_own_field(secure_client, coach, demo):
    url = f"/app/patients/{PATIENT}/sessions"
    resp = secure_client.post(
        url,
        data={
            "csrf_token": coach.csrf_token,
            "date": "someday",
            "start_time": "",
            "modality": "fax",
            "coach": "",
            "time_zone": "Mars/Olympus",
        },
    )
    assert resp.status_code == 422
    placed = _field_errors(resp.text)
    for field in ("date", "start_time", "modality", "coach", "time_zone"):
        assert placed.get(field) == f"{field}-error", (field, placed)
        assert re.search(rf'name="{field}"[^>]*aria-describedby="{field}-error"', resp.text), field
    resp = secure_client.post(
        f"/app/patients/{PATIENT}/goals",
        data={
            "csrf_token": coach.csrf_token,
            "description": "x",
            "category": "nope",
            "measure": "41950-7",
            "value": "abc",
        },
    )
    placed = _field_errors(resp.text)
    assert placed == {
        "description": "description-error",
        "category": "category-error",
        "value": "value-error",
    }


def test_the_session_form_starts_at_now_in_the_coachs_zone(secure_client, coach):
    page = secure_client.get(f"/app/patients/{PATIENT}/sessions/new").text
    now = datetime.now(ZoneInfo(NY))
    day = re.search(r'name="date" value="([\d-]+)"', page).group(1)
    start = re.search(r'name="start_time" value="(\d\d:\d\d)"', page).group(1)
    shown = datetime.fromisoformat(f"{day}T{start}").replace(tzinfo=ZoneInfo(NY))
    assert timedelta(0) <= now - shown < timedelta(minutes=6)
    assert f'name="time_zone" value="{NY}"' in page


def test_a_new_habit_has_no_check_ins_yet_and_a_check_in_returns_the_streak(
    secure_services, secure_client, coach
):
    url = f"/app/patients/{PATIENT}/habits"
    version = re.search(r'name="version" value="(\d+)"', secure_client.get(url).text).group(1)
    resp = secure_client.post(
        url,
        data={
            "csrf_token": coach.csrf_token,
            "plan": "demo-ana-habits",
            "version": version,
            "action": "add",
            "title": "Drink water",
            "schedule": "daily",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303
    row = re.search(
        r"<th scope=\"row\">Drink water.*?</tr>", secure_client.get(f"/app/patients/{PATIENT}").text, re.S
    )
    assert (
        row
        and "no check-ins yet" in row.group(0)
        and "0-day" not in row.group(0)
        and "best 0" not in row.group(0)
    )
    _, patient = login(secure_services, patient_principal(), secure_client)
    app = secure_client.get("/app/me").text
    item = re.search(r'data-habit="drink-water".*?</li>', app, re.S).group(0)
    assert "no check-ins yet" in item and "0-day" not in item
    today = datetime.now(ZoneInfo(NY)).date().isoformat()
    resp = secure_client.post(
        "/app/me/check-in",
        headers={"X-CSRF-Token": patient.csrf_token},
        json={"plan": "demo-ana-habits", "habit": "drink-water", "status": "done", "date": today},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["streak"] == {"current": 1, "best": 1, "unit": "day", "text": "1-day streak"}


# -- run charts that agree with themselves ----------------------------------------------------------------------


def test_the_run_charts_words_marks_alternative_and_table_agree(secure_client, coach):
    page = secure_client.get(f"/app/patients/{PATIENT}").text
    figure = re.search(r'<figure class="runchart-figure">(.*?)</figure>', page, re.S).group(1)
    svgs = re.findall(
        r'<svg class="runchart[^"]*"[^>]*aria-label="([^"]+)"[^>]*><title>([^<]+)</title>(.*?)</svg>',
        figure,
        re.S,
    )
    assert len(svgs) == 2  # the wide drawing and the narrow one (phones)
    sentence = htmllib.unescape(re.search(r'<p class="rc-sentence[^"]*">([^<]+)</p>', figure).group(1))
    for label, title, _ in svgs:
        assert htmllib.unescape(label) == htmllib.unescape(title) == sentence
    table = re.search(r'<table class="data">(.*?)</table>', page, re.S).group(1)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]]
    cells = [[re.sub(r"<[^>]+>", "", c) for c in row] for row in cells]
    marked = [r for r in cells if r[4]]
    for _, _, body in svgs:
        assert body.count('class="rc-signal') == len(marked)
    assert f"{len(marked)} points marked in red" in sentence
    # every phase's median is named in the words, as the table gives it; "md" is spelled "median"
    for phase, median in {(r[2], r[3]) for r in cells}:
        assert f"{htmllib.unescape(phase)}: median {median}" in sentence
    assert " md" not in sentence and ">md<" not in figure
    # limits with their direction
    assert re.search(
        r"Longest run \d+ — more than \d+ would be a signal; crossings \d+ — fewer than \d+ would be a "
        r"signal\.",
        sentence,
    )
    # the PDSA change's label is shortened in the drawing when it must be, with the full text on hover
    assert "<title>PDSA change on" in figure and "Walk after lunch with a colleague" in sentence


def test_a_run_chart_without_enough_baseline_says_so_everywhere():
    from datetime import date

    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(16)]
    data = {
        "unit": "/d",
        "from": days[0],
        "to": days[-1],
        "median": 6000.0,
        "point": [
            {
                "date": d,
                "value": 5000.0 + 200 * (i % 5) + (3000 if i >= 8 else 0),
                "shift": False,
                "astronomical": False,
            }
            for i, d in enumerate(days)
        ],
        "analysis": {"signal": False, "rule": [], "withheld": "not enough baseline yet", "useful": 16},
        "baseline": {"points": 8, "needed": 20, "enough": False},
        "phase": [
            {"from": days[0], "to": days[7], "median": 5400.0, "label": "baseline"},
            {"from": days[8], "to": days[-1], "median": 8400.0, "label": "Walk at lunch"},
        ],
        "annotation": [{"date": days[8], "title": "Walk at lunch with a friend from the office every day"}],
    }
    fig = RunChartFigure.from_service(data, "Steps")
    said = fig.sentence()
    assert (
        "No signal reported: not enough baseline yet (8 of 20 points before the latest PDSA change)." in said
    )
    assert "Longest run" not in said and "No point is marked." in said
    assert (
        "median of all 16 days" in said.lower()
        and ": median 5,400 steps" in said
        and ": median 8,400 steps" in said
    )
    narrow = str(draw(fig, width=330, height=280))
    assert htmllib.unescape(re.search(r'aria-label="([^"]+)"', narrow).group(1)) == said
    label = re.search(r'<g class="rc-pdsa">.*?<text[^>]*>([^<]+)</text>', narrow, re.S).group(1)
    assert label.endswith(
        "…"
    ) and "PDSA change on Mar 9: Walk at lunch with a friend from the office every day" in htmllib.unescape(
        narrow
    )
    assert all(float(size) >= 12 for size in re.findall(r'font-size="([\d.]+)"', narrow))


# -- the launch: Deny, and the demo's people ----------------------------------------------------------------------


@pytest.fixture
def app_client(sandbox_settings, secure_services):
    """mECR with the sandbox EHR, reached in process (as tests/auth/test_sandbox_launch.py does)."""
    import httpx
    from fastapi.testclient import TestClient

    from fhir_ecr.server import serve_app

    secure_services.settings = sandbox_settings
    app = serve_app(sandbox_settings, services=secure_services)
    secure_services.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN)
    with TestClient(app, base_url=ORIGIN, raise_server_exceptions=False) as client:
        yield client


def test_deny_explains_and_offers_a_retry(app_client):
    r = app_client.post(
        "/sandbox-ehr/launch",
        data={"client_id": "mecr", "practitioner": "coach-dana", "patient": "pat-1001"},
        follow_redirects=False,
    )
    r = app_client.get(_local(r.headers["location"]), follow_redirects=False)
    form = app_client.get(_local(r.headers["location"]))
    tx = re.search(r'name="tx" value="([^"]+)"', form.text).group(1)
    back = app_client.post(
        "/sandbox-ehr/authorize/decision", data={"tx": tx, "decision": "deny"}, follow_redirects=False
    )
    page = app_client.get(_local(back.headers["location"]))
    assert page.status_code == 403 and "mECR was not allowed in" in page.text
    assert "nothing was shared" in page.text and 'href="/sandbox-ehr/"' in page.text


def test_the_sandbox_launch_finds_the_demo_people_unchanged(app_client, secure_services):
    import json
    from pathlib import Path

    from fhir_ecr.fhir.bundles import process_bundle

    people = Path(__file__).resolve().parents[2] / "examples" / "demo" / "02-coaching-people.json"
    process_bundle(
        secure_services.repo,
        json.loads(people.read_text()),
        fhir_base=secure_services.fhir_base,
        max_entries=1000,
    )
    before = secure_services.repo.read("Patient", "demo-ana").content
    r = app_client.post(
        "/sandbox-ehr/launch",
        data={"client_id": "mecr", "practitioner": "coach-dana", "patient": "pat-1001"},
        follow_redirects=False,
    )
    r = app_client.get(_local(r.headers["location"]), follow_redirects=False)
    r = app_client.get(_local(_authorize(app_client, r.headers["location"])), follow_redirects=False)
    assert r.headers["location"] == "/app/patients/demo-ana"
    after = secure_services.repo.read("Patient", "demo-ana").content
    for key in ("name", "birthDate", "gender", "telecom"):
        assert after[key] == before[key], key  # the EHR's demographics are the demo's: nothing to refresh
    coach = secure_services.repo.read("Practitioner", "demo-coach-person").content
    assert coach["name"][0]["family"] == "Whitfield"
