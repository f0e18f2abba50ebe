"""The whole launch against the embedded sandbox EHR, in process: EHR front page → mECR /smart/launch → the
sandbox's authorize page → /smart/callback → the coach's page; then a patient's standalone launch.

mECR reaches the sandbox through an ASGI transport here; tests/web/browser runs the same journey in Chromium
over real HTTP."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from fhir_ecr.auth.sessions import SESSION_COOKIE
from fhir_ecr.server import serve_app

ORIGIN = "http://127.0.0.1:8000"
_TX = re.compile(r'name="tx" value="([^"]+)"')
_CHECKED = re.compile(r'name="scope" value="([^"]+)" checked')


@pytest.fixture
def app_client(sandbox_settings: Any, secure_services: Any) -> Iterator[TestClient]:
    secure_services.settings = sandbox_settings
    app = serve_app(sandbox_settings, services=secure_services)
    secure_services.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN)
    with TestClient(app, base_url=ORIGIN, raise_server_exceptions=False) as client:
        yield client


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _authorize(client: TestClient, url: str, **extra: str) -> str:
    page = client.get(_local(url))
    assert page.status_code == 200, page.text
    tx = _TX.search(page.text)
    assert tx, page.text
    form: dict[str, Any] = {
        "tx": tx.group(1),
        "decision": "allow",
        "scope": [html.unescape(v) for v in _CHECKED.findall(page.text)],
        **extra,
    }
    answer = client.post("/sandbox-ehr/authorize/decision", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def test_coach_launch_from_the_sandbox(app_client: TestClient, secure_services: Any) -> None:
    r = app_client.post(
        "/sandbox-ehr/launch",
        data={"client_id": "mecr", "practitioner": "coach-dana", "patient": "pat-1001"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ORIGIN}/smart/launch?iss=")
    r = app_client.get(_local(r.headers["location"]), follow_redirects=False)
    assert r.status_code == 302, r.text
    callback = _authorize(app_client, r.headers["location"])
    assert callback.startswith(f"{ORIGIN}/smart/callback?")
    r = app_client.get(_local(callback), follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/app/patients/")
    session = secure_services.sessions.load(app_client.cookies.get(SESSION_COOKIE))
    assert session.principal.kind == "practitioner" and session.principal.display == "Dana Whitfield"
    pid = r.headers["location"].rsplit("/", 1)[1]
    patient = app_client.get(f"/fhir/Patient/{pid}").json()
    assert patient["name"][0]["family"] == "Lopez"
    assert {"system": "urn:mecr:ehr:sandbox:Patient", "value": "pat-1001"} in patient["identifier"]
    coach = app_client.get(f"/fhir/{session.principal.fhir_user}").json()
    assert any(i.get("value") == "1234567893" for i in coach["identifier"])  # the NPI came along
    page = app_client.get(f"/app/patients/{pid}")
    assert page.status_code == 200 and "Lopez" in page.text


def test_patient_standalone_launch_from_the_sandbox(app_client: TestClient, secure_services: Any) -> None:
    r = app_client.get("/smart/login?ehr=sandbox", follow_redirects=False)
    assert r.status_code == 302, r.text
    callback = _authorize(app_client, r.headers["location"], patient="pat-1002")
    r = app_client.get(_local(callback), follow_redirects=False)
    assert r.headers["location"] == "/app/me", r.text
    session = secure_services.sessions.load(app_client.cookies.get(SESSION_COOKIE))
    assert session.principal.kind == "patient"
    me = app_client.get(f"/fhir/Patient/{session.principal.patient_id}").json()
    assert me["name"][0]["family"] == "Okafor"
    other = secure_services.repo.create({"resourceType": "Patient", "name": [{"family": "Other"}]}).stored.id
    assert app_client.get(f"/fhir/Patient/{other}").status_code == 404  # as if it did not exist
    page = app_client.get(f"/app/patients/{other}")
    assert page.status_code == 403 and "Other" not in page.text


def test_patient_portal_ehr_launch_lands_on_app_me(app_client: TestClient, secure_services: Any) -> None:
    """A patient opens mECR from the EHR's patient portal (an EHR launch whose fhirUser is the Patient): their
    own app, not a 502."""
    r = app_client.post(
        "/sandbox-ehr/launch",
        data={"client_id": "mecr", "portal": "1", "patient": "pat-1005"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ORIGIN}/smart/launch?iss=")
    r = app_client.get(_local(r.headers["location"]), follow_redirects=False)
    assert r.status_code == 302, r.text
    callback = _authorize(app_client, r.headers["location"])
    r = app_client.get(_local(callback), follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/app/me"
    session = secure_services.sessions.load(app_client.cookies.get(SESSION_COOKIE))
    assert session.principal.kind == "patient" and session.principal.display == "Elena Rossi"
    me = app_client.get("/app/me")
    assert me.status_code == 200 and "Elena" in me.text
    assert (
        app_client.get(f"/fhir/Patient/{session.principal.patient_id}").json()["name"][0]["family"] == "Rossi"
    )
    other = secure_services.repo.create({"resourceType": "Patient", "name": [{"family": "Other"}]}).stored.id
    assert app_client.get(f"/fhir/Patient/{other}").status_code == 404  # as if it did not exist
    assert app_client.get("/app/caseload").status_code == 403  # a patient, not a coach


def test_home_page_offers_the_launches(app_client: TestClient) -> None:
    r = app_client.get("/")
    assert r.status_code == 200
    assert 'href="/sandbox-ehr/"' in r.text and 'href="/smart/login?ehr=sandbox"' in r.text
    assert 'href="/docs"' in r.text


def test_no_token_or_phi_in_the_logs(app_client: TestClient, secure_services: Any, caplog: Any) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    test_coach_launch_from_the_sandbox(app_client, secure_services)
    cookie = app_client.cookies.get(SESSION_COOKIE)
    tokens = secure_services.sessions.ehr_tokens(cookie)
    text = caplog.text  # every logger, SQLAlchemy's statements and pool included (rows are never logged)
    assert "GET /app/patients/{patient_id}" in text or "/app/patients" in text  # the access log ran
    for secret in (tokens["access_token"], cookie, "Lopez", "pat-1001", "MRN-1001"):
        assert secret not in text, secret


def test_launch_lands_on_the_demo_records(app_client: TestClient, secure_services: Any) -> None:
    """With the demo data loaded, the sandbox's Ana Lopez (MRN-1001) and coach Dana (NPI) link to the demo's
    records, so the coach sees the coaching history, not an empty new patient."""
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
    r = app_client.post(
        "/sandbox-ehr/launch",
        data={"client_id": "mecr", "practitioner": "coach-dana", "patient": "pat-1001"},
        follow_redirects=False,
    )
    r = app_client.get(_local(r.headers["location"]), follow_redirects=False)
    r = app_client.get(_local(_authorize(app_client, r.headers["location"])), follow_redirects=False)
    assert r.headers["location"] == "/app/patients/demo-ana"
    session = secure_services.sessions.load(app_client.cookies.get(SESSION_COOKIE))
    assert session.principal.fhir_user == "Practitioner/demo-coach-person"
