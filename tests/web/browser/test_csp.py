"""The Content-Security-Policy in a real browser (headless Chromium): every page of a coach's launch from the
sandbox EHR, the coach's pages, the patient app and the plain SMART pages load with no CSP violation (none
reported by `securitypolicyviolation` events, none in the console), each document carries the policy, and the
styles (now all in static files) still apply."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.web_support import (
    PATIENT,
    SESSION_COOKIE,
    coach_principal,
    load_demo,
    login,
    patient_principal,
    wait_until,
)

pytestmark = pytest.mark.slow

_REPORT = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__reportCsp(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " on " + location.pathname);
});
"""


class Watch:
    """Everything the browser says about CSP on one page: violations, console lines, documents without policy."""

    def __init__(self, context: Any) -> None:
        self.violations: list[str] = []
        self.console: list[str] = []
        self.unprotected: list[str] = []
        self.documents: list[str] = []
        context.expose_function("__reportCsp", lambda text: self.violations.append(text))
        context.add_init_script(_REPORT)
        self.page = context.new_page()
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def _response(self, response: Any) -> None:
        if response.request.resource_type == "document" and response.status < 300:
            self.documents.append(response.url)
            if "content-security-policy" not in response.headers:
                self.unprotected.append(response.url)

    def clean(self) -> None:
        self.page.wait_for_timeout(150)  # late violations (the SMART style fetch) are reported asynchronously
        assert self.violations == [] and self.console == [], (self.violations, self.console)
        assert self.documents and self.unprotected == [], self.unprotected

    def style(self, selector: str, prop: str) -> str:
        return str(self.page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))


def test_a_coach_launch_and_the_coach_pages(
    browser: Any, sandbox_live_server: Any, secure_services: Any
) -> None:
    base = sandbox_live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch(context)
    page = watch.page
    page.goto(f"{base}/sandbox-ehr/")
    assert watch.style("header", "backgroundColor") == "rgb(34, 51, 68)"  # sandbox.css applies
    page.get_by_label("Signed-in coach").first.select_option("coach-dana")
    page.get_by_label("Patient chart").first.select_option("pat-1001")
    page.get_by_role("button", name=re.compile("launch", re.I)).first.click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(re.compile(r"/app/patients/[^/]+$"))
    assert watch.style(".skip", "position") == "absolute"  # app.css applies
    # The launch's smart_style_url was fetched (connect-src) and its colours adopted.
    wait_until(
        page, "getComputedStyle(document.documentElement).getPropertyValue('--bg').trim() === '#f6f7f9'"
    )
    patient_url = page.url
    for path in ("/messages", "/goals/new", "/sessions/new", "/habits", "/print"):
        page.goto(patient_url + path)
        assert page.locator("main").count() == 1
    page.goto(f"{base}/app/caseload")
    watch.clean()
    context.close()


def test_the_demo_coach_and_patient_pages(
    browser: Any, secure_live_server: Any, secure_services: Any
) -> None:
    load_demo(secure_services)
    base = secure_live_server.url
    cookie, _ = login(secure_services, coach_principal())
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": base}])
    watch = Watch(context)
    for path in (
        "/app/caseload",
        f"/app/patients/{PATIENT}",
        f"/app/patients/{PATIENT}/messages",
        f"/app/patients/{PATIENT}/habits",
        f"/app/patients/{PATIENT}/print",
    ):
        response = watch.page.goto(base + path)
        assert response is not None and response.status == 200, path
        assert watch.style(".skip", "position") == "absolute"
    # The SMART goal helper (a script fetching /app/goal-check) runs under the policy.
    watch.page.goto(f"{base}/app/patients/{PATIENT}/goals/new")
    watch.clean()
    context.close()

    cookie, _ = login(secure_services, patient_principal())
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": base}])
    watch = Watch(phone)
    for path in ("/app/me", "/app/me/messages"):
        response = watch.page.goto(base + path)
        assert response is not None and response.status == 200, path
        assert watch.style(".skip", "position") == "absolute"
    watch.page.goto(f"{base}/app/me")
    watch.page.locator(
        'li[data-habit] button[data-status="done"]'
    ).first.click()  # the one-tap check-in script
    watch.clean()
    phone.close()


def test_the_plain_pages(browser: Any, secure_live_server: Any) -> None:
    base = secure_live_server.url
    context = browser.new_context()
    watch = Watch(context)
    for path, status in (("/", 200), ("/smart/login?ehr=nowhere", 404), ("/app/signin", 200)):
        response = watch.page.goto(base + path)
        assert response is not None and response.status == status
    watch.page.goto(base + "/")
    assert watch.style("body", "maxWidth") == "640px"  # plain.css applies (40rem)
    # documents answered with 4xx are not in `documents`; the home page's and sign-in's are
    watch.clean()
    context.close()
