"""Browser journey (headless Chromium) of a closed-loop referral (docs/referrals.md): the coach refers Ana to the
demo practice's food pantry with her consent; the food bank opens its link at phone width, accepts and completes;
the coach's page shows completed and the steps goal's run chart marks the outcome; an expired and a revoked link
show a clear page and change nothing. And the way there: from Ana's page the coach finds a food resource near her
home in the demo's community directory (pre-filled with her need and ZIP code) and refers her to it with consent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.directory.importer import DirectoryImporter
from fhir_ecr.directory.sources import read_directory
from fhir_ecr.store.auth_store import CRED, secret_hash
from mappings.community.systems import SDOHCC_CATEGORY
from tests.web.browser.test_journeys import browser, signed_in  # noqa: F401 - the module's Chromium fixture
from tests.web.web_support import PATIENT, coach_principal, load_demo, login

DEMO_PRACTICE = Path(__file__).resolve().parents[3] / "examples" / "demo" / "01-practice.json"
DEMO_DIRECTORY = Path(__file__).resolve().parents[3] / "examples" / "demo" / "directory"
STEPS = "41950-7"


@pytest.fixture
def demo(secure_services: Any) -> Any:
    load_demo(secure_services)
    bundle = json.loads(DEMO_PRACTICE.read_text())
    for entry in bundle["entry"]:  # the demo practice's food bank and its pantry
        r = entry["resource"]
        if (r["resourceType"], r["id"]) in (
            ("Organization", "springfield-food-bank"),
            ("HealthcareService", "food-bank-pantry"),
        ):
            secure_services.repo.update(r["resourceType"], r["id"], r)
    return secure_services


def _refer(browser: Any, server: Any, services: Any) -> tuple[Any, str]:  # noqa: F811
    cookie, _ = login(services, coach_principal())
    context = signed_in(browser, server, cookie)
    page = context.new_page()
    page.goto(f"{server.url}/app/patients/{PATIENT}/referrals/new?service=food-bank-pantry")
    assert "Springfield Community Food Bank" in page.content()
    page.fill('input[name="need"]', "Weekly groceries from the pantry")
    page.select_option('select[name="goal"]', "demo-goal-steps")
    page.check('[data-testid="consent"]')
    page.click('button:has-text("Make the referral")')
    page.wait_for_selector('[data-testid="referral-status"]')
    assert page.inner_text('[data-testid="referral-status"]') == "requested"
    page.click('[data-testid="make-link"]')
    url = page.input_value('[data-testid="link-url"]')
    assert "/r/" in url
    return context, url


def test_the_loop_closes_and_the_goal_chart_marks_it(
    browser: Any,  # noqa: F811
    secure_live_server: Any,  # noqa: F811
    demo: Any,
) -> None:
    server, services = secure_live_server, demo
    coach_ctx, url = _refer(browser, server, services)
    # the food bank, on a phone, with no account
    org = browser.new_context(viewport={"width": 390, "height": 844})
    page = org.new_page()
    page.goto(url)
    assert page.inner_text('[data-testid="person-name"]').strip() == "Ana Lopez"
    body = page.content()
    assert "555-0101" in body and "Weekly groceries" in body
    assert "8,000" not in body and "Walk" not in body  # the goal is the practice's, not the organisation's
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # fits the phone
    page.click('[data-testid="accept"]')
    page.wait_for_selector('[data-testid="done"]')
    assert page.inner_text('[data-testid="status"]') == "accepted"
    page.fill("#provided", "Food pantry enrolled")
    page.click('[data-testid="complete"]')
    page.wait_for_selector('[data-testid="done"]')
    assert page.inner_text('[data-testid="status"]') == "completed"
    org.close()
    # the coach sees it closed, on the goal and on its run chart
    page = coach_ctx.new_page()
    page.goto(f"{server.url}/app/patients/{PATIENT}?series={STEPS}")
    assert "completed" in page.inner_text('[data-testid="referrals"]')
    assert "Food pantry enrolled" in page.inner_text('[data-testid="goal-referral"]')
    mark = page.locator("svg.runchart .rc-event text").first
    assert (mark.text_content() or "").startswith("Food pantry enrolled, ")
    assert "Referral outcome: Food pantry enrolled" in (
        page.locator("svg.runchart title").first.text_content() or ""
    )
    coach_ctx.close()


def test_expired_and_revoked_links_show_a_clear_page_and_change_nothing(
    browser: Any,  # noqa: F811
    secure_live_server: Any,
    demo: Any,
) -> None:
    server, services = secure_live_server, demo
    coach_ctx, url = _refer(browser, server, services)
    token = url.rsplit("/", 1)[1]
    org = browser.new_context(viewport={"width": 390, "height": 844})
    page = org.new_page()
    page.goto(url)  # opened while it worked: the form is on screen
    with services.engine.begin() as conn:
        conn.execute(
            CRED.update().where(CRED.c.key_hash == secret_hash(token)).values(expires=int(time.time()) - 1)
        )
    page.click('[data-testid="accept"]')  # replayed after expiry
    page.wait_for_selector('[data-testid="link-gone"]')
    assert "This link no longer works" in page.content() and "Ana" not in page.content()
    tasks = services.repo.search_params("Task", [("patient", f"Patient/{PATIENT}"), ("status", "accepted")])
    assert tasks.matches == []
    # a fresh link, then revoked by the coach
    cpage = coach_ctx.pages[0]
    cpage.click('[data-testid="make-link"]')
    fresh = cpage.input_value('[data-testid="link-url"]')
    page.goto(fresh)
    assert page.locator('[data-testid="accept"]').count() == 1
    cpage.click('[data-testid="revoke-link"]')
    cpage.wait_for_selector("text=The organisation's link was revoked.")
    page.click('[data-testid="accept"]')
    page.wait_for_selector('[data-testid="link-gone"]')
    assert services.repo.search_params(
        "Task", [("patient", f"Patient/{PATIENT}"), ("status", "requested")]
    ).matches
    org.close()
    coach_ctx.close()


def test_the_coach_finds_a_food_resource_near_the_patient_and_refers_with_consent(
    browser: Any,  # noqa: F811
    secure_live_server: Any,  # noqa: F811
    demo: Any,
) -> None:
    server, services = secure_live_server, demo
    read = read_directory(DEMO_DIRECTORY, name="springfield-demo")
    DirectoryImporter(services.repo).import_directory(read.directory, name=read.name)
    services.repo.create(  # Ana's need, as the practice recorded it (a Gravity SDOH category)
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "category": [{"coding": [{"system": SDOHCC_CATEGORY, "code": "food-insecurity"}]}],
            "code": {"text": "Food insecurity"},
        }
    )
    cookie, _ = login(services, coach_principal())
    context = signed_in(browser, server, cookie)
    page = context.new_page()
    page.goto(f"{server.url}/app/patients/{PATIENT}")
    page.click(f'a[href="/app/directory?patient={PATIENT}"]')
    page.wait_for_url(f"**/app/directory?patient={PATIENT}")
    assert (
        page.get_by_label("Need").input_value() == "food-insecurity"
    )  # her need and her ZIP code, pre-filled
    assert page.get_by_label("Near ZIP").input_value() == "62704"
    cards = page.locator("li.service")
    assert cards.count() >= 1
    first = cards.first
    name = first.locator("h2").inner_text()
    assert first.get_by_text("Food Insecurity").is_visible()
    distances = [float(d.split()[0]) for d in page.locator("li.service .distance").all_inner_texts()]
    assert distances == sorted(distances)  # nearest first
    first.get_by_role("link", name="Refer").click()
    page.wait_for_url("**/referrals/new?service=**")
    assert name in page.content()
    page.fill('input[name="need"]', "Groceries near home")
    page.select_option('select[name="goal"]', "demo-goal-steps")
    page.check('[data-testid="consent"]')
    page.click('button:has-text("Make the referral")')
    page.wait_for_selector('[data-testid="referral-status"]')
    assert page.inner_text('[data-testid="referral-status"]') == "requested"
    # on record: a referral to the organisation that offers the service found, and Ana's consent to share with it
    tasks = services.repo.search_params(
        "Task", [("patient", f"Patient/{PATIENT}"), ("status", "requested")]
    ).matches
    assert len(tasks) == 1
    owner = tasks[0].content["owner"]["reference"]
    assert (
        owner.startswith("Organization/") and owner != "Organization/springfield-food-bank"
    )  # from the directory
    consents = services.repo.search_params("Consent", [("patient", f"Patient/{PATIENT}")]).matches
    assert [c.content["provision"]["actor"][0]["reference"]["reference"] for c in consents] == [owner]
    context.close()
