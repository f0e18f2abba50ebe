"""SMART launches in a real browser (headless Chromium): real redirects, real cookies, real HTTP between mECR
and the sandbox EHR."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_coach_launch_then_patient_launch(
    browser: Any, sandbox_live_server: Any, secure_services: Any
) -> None:
    base = sandbox_live_server.url
    # A coach, inside the EHR, picks a patient and launches mECR.
    coach = browser.new_context(viewport={"width": 1280, "height": 900})
    page = coach.new_page()
    page.goto(f"{base}/sandbox-ehr/")
    page.get_by_label("Signed-in coach").first.select_option("coach-dana")
    page.get_by_label("Patient chart").first.select_option("pat-1001")
    page.get_by_role("button", name=re.compile("launch", re.I)).first.click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(re.compile(r"/app/patients/[^/]+$"))
    assert "Ana" in page.content() and "Lopez" in page.content()
    coach_page_url = page.url
    coach.close()

    # A patient signs in on their phone through the patient portal.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{base}/smart/login?ehr=sandbox")
    page.get_by_label(re.compile("Brian Okafor", re.I)).check()
    page.get_by_role("button", name="Sign in and allow").click()
    page.wait_for_url(re.compile(r"/app/me$"))
    assert "Brian" in page.content()
    # Another patient's page: a 403 page, with none of their data.
    response = page.goto(coach_page_url)
    assert response is not None and response.status == 403
    assert "Lopez" not in page.content()
    phone.close()
