"""The coach's day in headless Chromium (issue #16): the caseload's ranking and reasons on a crafted practice of 15
patients, the banner on every patient page, signing out (and the app's offline copy leaving the device), times in
the reader's zone, errors as pages, phone widths without horizontal overflow, and axe-core on every page."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_ecr.web import views
from fhir_ecr.web.messaging import send_message
from tests.web.caseload_world import EXPECTED, build_caseload_world
from tests.web.web_support import (
    PATIENT,
    SESSION_COOKIE,
    coach_principal,
    load_demo,
    login,
    patient_principal,
    wait_until,
)

NY = "America/New_York"
COACH_PAGES = [
    "/app/caseload",
    *(
        f"/app/patients/{PATIENT}{s}"
        for s in (
            "",
            "/print",
            "/messages",
            "/sessions/new",
            "/goals/new",
            "/goals/demo-goal-steps/edit",
            "/habits",
        )
    ),
]
PATIENT_PAGES = ["/app/me", "/app/me/messages"]
ANYONE_PAGES = ["/app/signin", "/app/signed-out?who=patient", "/app/signed-out?who=coach", "/app/nowhere"]


@pytest.fixture
def ny(secure_services: Any, secure_settings: Any) -> None:
    secure_services.settings = secure_settings.model_copy(update={"default_time_zone": NY})


@pytest.fixture
def demo(secure_services: Any, ny: None) -> Any:
    return load_demo(secure_services)


def context_for(browser: Any, server: Any, cookie: str | None, **kwargs: Any) -> Any:
    context = browser.new_context(**kwargs)
    if cookie:
        context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": server.url}])
    return context


def test_the_caseload_ranks_a_crafted_practice_by_need(
    browser: Any, secure_live_server: Any, secure_services: Any, ny: None
) -> None:
    ids = build_caseload_world(secure_services, "Practitioner/caseload-coach")
    cookie, _ = login(secure_services, coach_principal("Practitioner/caseload-coach"))
    context = context_for(browser, secure_live_server, cookie, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/caseload")
    rows = page.locator("table.caseload tbody tr")
    assert rows.count() == 15
    scores = [int(rows.nth(i).get_attribute("data-score")) for i in range(15)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    by_id = {rows.nth(i).get_attribute("data-patient"): rows.nth(i) for i in range(15)}
    for name, kind in EXPECTED.items():
        row = by_id[ids[name]]
        chip = row.locator(f'[data-reason="{kind}"]').first
        assert chip.is_visible(), name
    assert rows.first.get_attribute("data-patient") == ids["Wendy Walsh"]
    assert "moving away from the goal" in rows.first.inner_text()
    # the worst first, the fine last
    order = [rows.nth(i).get_attribute("data-patient") for i in range(15)]
    assert order.index(ids["Wendy Walsh"]) < order.index(ids["Bert Brooks"]) < order.index(ids["Olive Olsen"])
    # search by MRN and filter by reason, with counts that agree
    page.get_by_label("Search").fill("CL-0005")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"q=CL-0005"))
    assert page.locator("table.caseload tbody tr").count() == 1
    assert "1 of 15 patients" in page.locator("p.count").inner_text()
    page.get_by_label("Search").fill("")
    page.get_by_label("Show").select_option("data")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"show=data"))
    shown = {
        page.locator("table.caseload tbody tr").nth(i).get_attribute("data-patient")
        for i in range(page.locator("table.caseload tbody tr").count())
    }
    assert shown == {ids["Sid Stone"], ids["Nia Noor"]}
    assert "2 of 15 patients" in page.locator("p.count").inner_text()
    # a row leads to the patient's page, which carries their banner
    page.goto(f"{secure_live_server.url}/app/caseload")
    page.get_by_role("link", name="Olive Olsen").click()
    assert page.locator("section.banner").inner_text().startswith("Olive Olsen")
    context.close()


def test_every_patient_page_carries_the_banner(
    browser: Any, secure_live_server: Any, secure_services: Any, demo: Any
) -> None:
    cookie, _ = login(secure_services, coach_principal())
    context = context_for(browser, secure_live_server, cookie)
    page = context.new_page()
    for path in COACH_PAGES[1:]:
        page.goto(secure_live_server.url + path)
        banner = page.locator("section.banner")
        assert banner.is_visible(), path
        words = banner.inner_text()
        assert "Ana Lopez" in words and "MRN MRN-1001" in words and "female" in words and " y" in words, path
    context.close()


def test_sign_out_ends_the_session_and_clears_the_apps_offline_copy(
    browser: Any, secure_live_server: Any, secure_services: Any, demo: Any
) -> None:
    cookie, _ = login(secure_services, patient_principal())
    context = context_for(browser, secure_live_server, cookie, viewport={"width": 390, "height": 844})
    page = context.new_page()
    base = secure_live_server.url
    page.goto(f"{base}/app/me")
    # the service worker takes control and keeps the app page for offline use
    assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()
    cached = (
        "caches.open('mecr-app-v1').then(c => c.keys()).then(k => k.some(r => r.url.includes('/app/me')))"
    )
    for _ in range(100):
        if page.evaluate(cached):
            break
        page.wait_for_timeout(100)
    assert page.evaluate(cached), "the app page was never cached"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/app/signed-out\?who=patient$"))
    wait_until(page, "document.body.getAttribute('data-cleared') === 'true'")
    assert page.get_by_text("You have signed out").is_visible()
    assert page.evaluate("caches.keys().then(k => k.filter(n => n.startsWith('mecr-')).length)") == 0
    assert page.evaluate("navigator.serviceWorker.getRegistrations().then(r => r.length)") == 0
    assert secure_services.sessions.load(cookie) is None
    page.get_by_role("link", name=re.compile("Sign in again")).is_visible()
    response = page.goto(f"{base}/app/me")
    assert (
        response is not None and response.status == 401 and page.get_by_text("Sign in to mECR").is_visible()
    )
    context.close()
    # a coach signs out from any page too
    cookie, _ = login(secure_services, coach_principal())
    context = context_for(browser, secure_live_server, cookie)
    page = context.new_page()
    page.goto(f"{base}/app/patients/{PATIENT}/habits")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/app/signed-out\?who=coach$"))
    assert page.get_by_role("link", name="launch it from the sandbox EHR").count() == 0  # no sandbox here
    assert page.goto(f"{base}/app/caseload").status == 401
    context.close()


def test_times_are_in_the_readers_zone_and_a_check_in_speaks(
    browser: Any, secure_live_server: Any, secure_services: Any, demo: Any
) -> None:
    sent = send_message(secure_services.repo, PATIENT, "Short walk today", from_patient=True)["sent"]
    instant = datetime.fromisoformat(sent.replace("Z", "+00:00"))
    cookie, _ = login(secure_services, coach_principal())
    context = context_for(browser, secure_live_server, cookie)
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/patients/{PATIENT}/messages")
    assert (
        page.locator("li.msg time").last.inner_text() == f"{instant.astimezone(ZoneInfo(NY)):%b %-d, %H:%M}"
    )
    assert page.locator("footer.page-foot").inner_text().startswith("Times are shown in America/New_York")
    context.close()
    views.coaching_service(views.Data(secure_services.repo, NY)).set_time_zone(PATIENT, "America/Los_Angeles")
    cookie, _ = login(secure_services, patient_principal())
    context = context_for(browser, secure_live_server, cookie, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/me/messages")
    la = f"{instant.astimezone(ZoneInfo('America/Los_Angeles')):%b %-d, %H:%M}"
    assert page.locator("li.msg time").last.inner_text() == la
    # one tap: the streak and the live region change without a reload
    page.goto(f"{secure_live_server.url}/app/me")
    stretch = page.locator('li[data-habit="walk"]')
    before = stretch.locator("[data-streak]").inner_text()
    stretch.locator('button[data-status="done"]').click()
    wait_until(page, "document.getElementById('sync-status').textContent.includes('saved;')")
    said = page.locator("#sync-status").inner_text()
    assert said.startswith("Walk after lunch: done saved;") and "streak" in said
    assert stretch.locator("[data-streak]").inner_text() != before or "streak" in before
    assert page.locator("#sync-status").get_attribute("aria-live") == "polite"
    context.close()


def test_errors_are_pages_with_a_way_back(
    browser: Any, secure_live_server: Any, secure_services: Any, demo: Any
) -> None:
    cookie, _ = login(secure_services, coach_principal())
    context = context_for(browser, secure_live_server, cookie)
    page = context.new_page()
    response = page.goto(f"{secure_live_server.url}/app/patients/{PATIENT}/nothing-here")
    assert response is not None and response.status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    page.get_by_role("link", name="Go to the caseload").click()
    page.wait_for_url(re.compile(r"/app/caseload$"))
    assert page.locator("table.caseload").is_visible()
    assert page.goto(f"{secure_live_server.url}/favicon.ico").status == 200
    context.close()


@pytest.mark.parametrize("width", [360, 390])
def test_phone_widths_have_no_horizontal_overflow(
    browser: Any, secure_live_server: Any, secure_services: Any, demo: Any, width: int
) -> None:
    """Every page fits a 360 and a 390 px screen: nothing scrolls sideways; the run chart's narrow drawing is the
    one shown, its labels at least 12 px; the habit table stacks."""
    send_message(secure_services.repo, PATIENT, "A rather long message " * 12, from_patient=True)
    overflow = {}
    for who, paths in (("coach", COACH_PAGES), ("patient", PATIENT_PAGES), (None, ANYONE_PAGES)):
        cookie = (
            login(secure_services, coach_principal() if who == "coach" else patient_principal())[0]
            if who
            else None
        )
        context = context_for(
            browser,
            secure_live_server,
            cookie,
            viewport={"width": width, "height": 800},
            is_mobile=True,
            service_workers="block",
        )
        page = context.new_page()
        for path in paths:
            page.goto(secure_live_server.url + path)
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > width:
                overflow[path] = wide
        if who == "coach":
            page.goto(f"{secure_live_server.url}/app/patients/{PATIENT}")
            assert (
                page.locator("svg.runchart-narrow").is_visible()
                and not page.locator("svg.runchart:not(.runchart-narrow)").is_visible()
            )
            smallest = page.evaluate("""() => {
                const svg = document.querySelector('svg.runchart-narrow');
                const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
                return Math.min(...[...svg.querySelectorAll('text')].map(t => parseFloat(t.getAttribute('font-size')) * scale));
            }""")
            assert smallest >= 12, smallest
            cell = page.locator("table.habits td").first
            assert (
                cell.evaluate("e => getComputedStyle(e).display") == "inline-block"
            )  # stacked, labelled cells
        context.close()
    assert overflow == {}


def test_axe_finds_no_serious_violation_on_any_page(
    browser: Any, secure_live_server: Any, secure_services: Any, demo: Any
) -> None:
    """axe-core on every page, at desktop and phone width: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    send_message(secure_services.repo, PATIENT, "How do I log a swim?", from_patient=True)
    found = {}
    for width in (1280, 390):
        for who, paths in (("coach", COACH_PAGES), ("patient", PATIENT_PAGES), (None, ANYONE_PAGES)):
            cookie = (
                login(secure_services, coach_principal() if who == "coach" else patient_principal())[0]
                if who
                else None
            )
            context = context_for(
                browser,
                secure_live_server,
                cookie,
                viewport={"width": width, "height": 900},
                service_workers="block",
            )
            page = context.new_page()
            for path in paths:
                page.goto(secure_live_server.url + path)
                violations = axe.run(page).response["violations"]
                serious = [
                    (v["id"], [n["target"] for n in v["nodes"]][:3])
                    for v in violations
                    if v["impact"] in ("serious", "critical")
                ]
                if serious:
                    found[f"{path} @ {width}"] = serious
            context.close()
    assert found == {}
