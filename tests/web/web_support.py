"""Factories for the page tests: the coaching demo data, signed-in coach and patient sessions."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir_ecr.auth import Principal
from fhir_ecr.auth.sessions import SESSION_COOKIE, create_session
from fhir_ecr.coaching.demo import demo_coaching_bundles, demo_today
from fhir_ecr.fhir.bundles import process_bundle
from smart_launch.scopes import ScopeSet

__all__ = [
    "COACH",
    "PATIENT",
    "SESSION_COOKIE",
    "coach_principal",
    "load_demo",
    "login",
    "patient_principal",
    "wait_until",
]

COACH = "Practitioner/demo-coach-person"
PATIENT = "demo-ana"


def coach_principal(fhir_user: str = COACH, scopes: str = "user/*.cruds") -> Principal:
    return Principal(
        kind="practitioner",
        subject=fhir_user,
        scopes=ScopeSet.parse(scopes),
        fhir_user=fhir_user,
        patient_id=None,
        display="Dana Whitfield",
    )


def patient_principal(patient_id: str = PATIENT) -> Principal:
    return Principal(
        kind="patient",
        subject=f"Patient/{patient_id}",
        scopes=ScopeSet.parse("patient/*.cruds"),
        fhir_user=f"Patient/{patient_id}",
        patient_id=patient_id,
        display="Ana Lopez",
    )


def load_demo(services: Any, today: date | None = None) -> date:
    """Load the coaching demo (Ana Lopez, Brian Okafor, Chloe Nguyen, their coach Dana Whitfield) straight into
    the store; returns its ``today``: by default today in the demo's time zone, the patients' own (``mecr demo``
    moves the demo to that day too), so that the tests pass at any hour, also when it is tomorrow in UTC."""
    today = today or demo_today()
    for bundle in demo_coaching_bundles(today):
        process_bundle(services.repo, bundle, fhir_base=services.fhir_base, max_entries=10_000)
    return today


def login(
    services: Any, principal: Principal, client: Any = None, *, context: dict[str, Any] | None = None
) -> tuple[str, Any]:
    """A server-side session for ``principal``; sets the cookie on a TestClient when given one."""
    cookie, session = create_session(services, principal, context=context or {})
    if client is not None:
        client.cookies.set(SESSION_COOKIE, cookie)
    return cookie, session


def wait_until(page: Any, expression: str, timeout: float = 5000) -> None:
    """Poll ``expression`` in the page until it is truthy. Playwright's ``wait_for_function`` evaluates its
    predicate with ``eval`` inside the page, which the pages' Content-Security-Policy (no 'unsafe-eval') forbids;
    ``page.evaluate`` runs through the DevTools protocol, outside the page's policy."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(50)
