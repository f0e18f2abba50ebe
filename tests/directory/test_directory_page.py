"""The coach's directory page ``/app/directory``: filters, pre-filled needs and ZIP code from the patient, the
"Refer" links, who may open it; and in headless Chromium (desktop and a 390 px phone) a food resource found
near a ZIP code."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.directory.importer import DirectoryImporter
from fhir_ecr.store.mecr_params import distance_km
from mappings.community import SDOHCC_CATEGORY
from tests.directory.test_directory_search import _directory
from tests.web.web_support import SESSION_COOKIE, coach_principal, login, patient_principal


def _world(services: Any) -> str:
    DirectoryImporter(services.repo).import_directory(_directory(), name="test")
    pid = services.repo.create(
        {
            "resourceType": "Patient",
            "name": [{"given": ["Ana"], "family": "Lopez"}],
            "address": [{"line": ["5 Oak St"], "postalCode": "62701"}],
        }
    ).stored.id
    services.repo.create(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "category": [{"coding": [{"system": SDOHCC_CATEGORY, "code": "food-insecurity"}]}],
            "code": {"text": "Food insecurity"},
        }
    )
    return pid


def _cards(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-service="')[1:]]


def test_the_page_filters_and_prefills_from_the_patient(secure_client: Any, secure_services: Any) -> None:
    pid = _world(secure_services)
    login(secure_services, coach_principal(), secure_client)
    page = secure_client.get("/app/directory?category=food-insecurity&zip=62701&radius=10")
    assert page.status_code == 200
    assert _cards(page.text) == ["hsds-pantry", "hsds-meals"]  # nearest first; Chicago is too far
    assert "0.1 km" in page.text and "/referrals/new" not in page.text  # from the ZIP code's centroid
    everything = secure_client.get("/app/directory")
    assert set(_cards(everything.text)) == {"hsds-pantry", "hsds-meals", "hsds-chicago", "hsds-rides"}
    spanish = secure_client.get("/app/directory?language=es")
    assert _cards(spanish.text) == ["hsds-pantry"]
    # the patient's need (food insecurity) and ZIP code fill the form; each result can be referred
    mine = secure_client.get(f"/app/directory?patient={pid}")
    assert _cards(mine.text) == ["hsds-pantry", "hsds-meals"]
    assert '<option value="food-insecurity" selected>' in mine.text and 'value="62701"' in mine.text
    assert f'href="/app/patients/{pid}/referrals/new?service=hsds-pantry"' in mine.text
    assert "Food Insecurity" in mine.text and "Ana Lopez" in mine.text
    # the coach can widen the search: an explicit empty category is "any"
    wider = secure_client.get(f"/app/directory?patient={pid}&category=&zip=62701&radius=500")
    assert len(_cards(wider.text)) == 4
    unknown = secure_client.get("/app/directory?zip=99999")
    assert "No directory location has the ZIP code 99999" in unknown.text
    # the patient page links here
    assert f'href="/app/directory?patient={pid}"' in secure_client.get(f"/app/patients/{pid}").text


def test_bad_values_and_who_may_open_it(secure_client: Any, secure_services: Any) -> None:
    pid = _world(secure_services)
    assert secure_client.get("/app/directory").status_code == 401
    login(secure_services, patient_principal(pid), secure_client)
    assert secure_client.get("/app/directory").status_code == 403
    login(secure_services, coach_principal(), secure_client)
    for query in ("category=nonsense", "day=someday", "age=old", "radius=0"):
        resp = secure_client.get(f"/app/directory?{query}")
        assert resp.status_code == 400 and "text/html" in resp.headers["content-type"], query
    assert secure_client.get("/app/directory?patient=nobody").status_code == 404


@pytest.mark.parametrize("width", [1280, 390])
def test_a_coach_finds_a_food_resource_near_a_zip_code(
    browser: Any, secure_live_server: Any, secure_services: Any, width: int
) -> None:
    _world(secure_services)
    cookie, _ = login(secure_services, coach_principal())
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": secure_live_server.url}])
    page = context.new_page()
    page.goto(f"{secure_live_server.url}/app/directory")
    page.get_by_label("Need").select_option("food-insecurity")
    page.get_by_label("Near ZIP").fill("62701")
    page.get_by_label("Within").select_option("5")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**zip=62701**")
    cards = page.locator("li.service")
    assert cards.count() == 2
    first = cards.first
    assert first.locator("h2").inner_text() == "Westside Food Pantry"
    assert first.get_by_text("Food Insecurity").is_visible()
    km = float(first.locator(".distance").inner_text().split()[0])
    centroid = ((39.8000 + 39.8020) / 2, (-89.6500 - 89.6480) / 2)
    assert abs(km - distance_km(*centroid, 39.8000, -89.6500)) < 0.1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal overflow"
    context.close()
