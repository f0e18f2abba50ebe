"""Browser journeys in headless Chromium (Playwright) against a real server with authorization on.

Skipped — loudly, with the reason in the summary — only when Chromium is missing and ``MECR_REQUIRE_BROWSER``
is not set; CI sets it, so a missing browser fails there. The coach's launch from the sandbox EHR is the
SMART tests' journey (tests/auth); these start from a signed-in session.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from typing import Any

import pytest

from fhir_ecr.coaching import resources as res
from fhir_ecr.store.search import parse_search
from fhir_ecr.web.messaging import send_message
from tests.web.web_support import (
    PATIENT,
    SESSION_COOKIE,
    coach_principal,
    load_demo,
    login,
    patient_principal,
    wait_until,
)

CHROMIUM = os.environ.get("MECR_CHROMIUM", "/usr/bin/chromium")


def _chromium_or_skip() -> str:
    if os.path.exists(CHROMIUM) or shutil.which(CHROMIUM):
        return CHROMIUM
    reason = f"Chromium not found at {CHROMIUM}: browser journeys NOT run"
    if os.environ.get("MECR_REQUIRE_BROWSER"):
        pytest.fail(reason + " (MECR_REQUIRE_BROWSER is set)")
    pytest.skip(reason)
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def browser():
    path = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path)
        yield b
        b.close()


@pytest.fixture
def demo(secure_services):
    return load_demo(secure_services)


def signed_in(browser: Any, server: Any, cookie: str, **kwargs: Any) -> Any:
    context = browser.new_context(**kwargs)
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": server.url}])
    return context


def checkins_today(services: Any, habit: str, day: Any) -> list[dict[str, Any]]:
    query = parse_search(
        "Observation",
        [
            ("patient", f"Patient/{PATIENT}"),
            ("code", f"{res.MECR_CODES}|habit-check-in"),
            ("date", day.isoformat()),
        ],
        default_count=100,
    )
    found = [s.content for s in services.repo.search(query).matches]
    return [o for o in found if res.checkin_from_observation(o)[1] == habit]


def test_patient_checks_in_offline_and_it_syncs_once(browser, secure_live_server, secure_services, demo):
    cookie, _ = login(secure_services, patient_principal())
    context = signed_in(browser, secure_live_server, cookie, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/me")
    walk = page.locator('li[data-habit="walk"]')
    assert walk.locator('button[data-status="done"]').get_attribute("aria-pressed") == "false"
    context.set_offline(True)
    walk.locator('button[data-status="partly"]').click()
    walk.locator('button[data-status="done"]').click()  # changed their mind: the queue keeps the latest tap
    walk.locator('button[data-status="done"]').click()
    wait_until(page, "document.getElementById('sync-status').textContent.includes('back online')")
    assert walk.locator('button[data-status="done"]').get_attribute("aria-pressed") == "true"
    assert checkins_today(secure_services, "walk", demo) == []
    context.set_offline(False)
    wait_until(page, "localStorage.getItem('mecr.checkins.v1') === '{}'", timeout=10_000)
    stored = checkins_today(secure_services, "walk", demo)
    assert len(stored) == 1
    assert res.checkin_from_observation(stored[0])[2].status.value == "done"
    page.reload()  # after a reload the server's state shows the check-in
    assert (
        page.locator('li[data-habit="walk"] button[data-status="done"]').get_attribute("aria-pressed")
        == "true"
    )
    context.close()


def test_coach_message_reaches_the_patient(browser, secure_live_server, secure_services, demo):
    coach_cookie, _ = login(secure_services, coach_principal())
    coach = signed_in(browser, secure_live_server, coach_cookie)
    page = coach.new_page()
    page.goto(f"{secure_live_server.url}/app/patients/{PATIENT}/messages")
    page.get_by_label("Write a message").fill("Nice work this week, Ana!")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/messages$"))
    assert page.get_by_text("Nice work this week, Ana!").is_visible()
    coach.close()
    patient_cookie, _ = login(secure_services, patient_principal())
    patient = signed_in(browser, secure_live_server, patient_cookie, viewport={"width": 390, "height": 844})
    page = patient.new_page()
    page.goto(f"{secure_live_server.url}/app/me")
    assert page.locator("[data-unread]").inner_text() == "1"
    page.get_by_role("link", name=re.compile("Messages")).click()
    assert page.get_by_text("Nice work this week, Ana!").is_visible()
    page.goto(f"{secure_live_server.url}/app/me")
    assert page.locator("[data-unread]").count() == 0
    patient.close()


def test_caseload_ranks_the_patient_with_a_new_signal_first(
    browser, secure_live_server, secure_services, demo
):
    send_message(secure_services.repo, "demo-ben", "Quick question", from_patient=True)
    cookie, _ = login(secure_services, coach_principal())
    context = signed_in(browser, secure_live_server, cookie)
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/caseload")
    rows = page.locator("table.caseload tbody tr")
    assert rows.first.get_attribute("data-patient") == PATIENT
    assert "Steps: new signal, moving toward the goal" in rows.first.inner_text()
    assert rows.nth(1).get_attribute("data-patient") == "demo-ben"
    rows.first.get_by_role("link", name="Ana Lopez").click()
    page.wait_for_url(re.compile(f"/app/patients/{PATIENT}$"))
    assert page.locator("svg.runchart circle.rc-signal").count() > 0
    context.close()


def test_coach_documents_a_session(browser, secure_live_server, secure_services, demo):
    cookie, _ = login(secure_services, coach_principal())
    context = signed_in(browser, secure_live_server, cookie)
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/patients/{PATIENT}")
    page.get_by_role("link", name="Document a session").click()
    yesterday = (demo - timedelta(days=1)).isoformat()
    page.get_by_label("Date").fill(yesterday)
    page.get_by_label("Next steps").fill("Try the stairs at work")
    page.get_by_label("Start").fill(
        ""
    )  # the form starts at now; without a start time it is refused, nothing lost
    page.get_by_role("button", name="Save session").click()
    assert page.locator("#start_time-error").is_visible()
    assert page.get_by_label("Next steps").input_value() == "Try the stairs at work"
    page.get_by_label("Start").fill("09:00")
    page.get_by_label("End", exact=True).fill("09:40")
    page.get_by_label("Walk 8,000 steps a day").check()
    page.get_by_role("button", name="Save session").click()
    page.wait_for_url(re.compile(r"saved=session"))
    eid = re.search(r"encounter=([\w.-]+)", page.url).group(1)
    enc = secure_services.repo.read("Encounter", eid).content
    assert enc["length"]["value"] == 40 and enc["subject"]["reference"] == f"Patient/{PATIENT}"
    context.close()


PAGES = [
    ("coach", "/app/caseload"),
    ("coach", f"/app/patients/{PATIENT}"),
    ("coach", f"/app/patients/{PATIENT}/sessions/new"),
    ("coach", f"/app/patients/{PATIENT}/goals/new"),
    ("coach", f"/app/patients/{PATIENT}/habits"),
    ("coach", f"/app/patients/{PATIENT}/messages"),
    ("patient", "/app/me"),
    ("patient", "/app/me/messages"),
]


def test_no_serious_accessibility_violations(browser, secure_live_server, secure_services, demo):
    """axe-core on every page (one server for all of them): no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found = {}
    for who in ("coach", "patient"):
        cookie, _ = login(secure_services, coach_principal() if who == "coach" else patient_principal())
        context = signed_in(browser, secure_live_server, cookie)
        page = context.new_page()
        for page_who, path in PAGES:
            if page_who != who:
                continue
            page.goto(f"{secure_live_server.url}{path}")
            violations = axe.run(page).response["violations"]
            serious = [
                (v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
                for v in violations
                if v["impact"] in ("serious", "critical")
            ]
            if serious:
                found[path] = serious
        context.close()
    assert found == {}
