"""The organisation's referral link (/r/{token}): shows only what consent allows, acts through the workflow,
CSRF-protected, audited; expired, revoked or unknown links show a clear page and change nothing."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from fhir_ecr.referrals.links import issue_link, live_links, revoke_links
from fhir_ecr.store.auth_store import CRED, secret_hash
from tests.auth.support import bearer, coach
from tests.referrals.world import consent, seed, task


@pytest.fixture
def sent(secure_client: Any, secure_services: Any) -> Any:
    """The referral t1 sent to the food bank with the patient's consent, and a link to it."""
    seed(secure_services.repo)
    h = bearer(secure_services, coach())
    assert secure_client.post("/fhir/Consent", json=consent("p1"), headers=h).status_code == 201
    assert (
        secure_client.put("/fhir/Task/t1", json=task("t1", "sr1", "p1", "requested"), headers=h).status_code
        == 200
    )
    return secure_services, issue_link(secure_services, "t1", "food-bank", "Practitioner/coach1")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _task(services: Any) -> dict[str, Any]:
    return services.repo.read("Task", "t1").content  # type: ignore[no-any-return]


def _audits(services: Any) -> list[dict[str, Any]]:
    services.audit.flush() if hasattr(services.audit, "flush") else None
    time.sleep(0.3)
    found = services.repo.search_params("AuditEvent", [("_count", "200")]).matches
    return [s.content for s in found if "referral-link:t1" in str(s.content)]


def test_the_page_shows_the_minimum_and_the_organisation_accepts_then_completes(
    secure_client: Any, sent: Any
) -> None:
    services, token = sent
    r = secure_client.get(f"/r/{token}")
    assert r.status_code == 200, r.text
    html = r.text
    assert "Ada Doe" in html and "555-0100" in html and "Food pantry enrolment" in html
    for secret in ("1970-01-01", "MRN-p1", "Type 2 diabetes", "150/95", "Eat well"):
        assert secret not in html
    csrf = _csrf(html)
    # no CSRF token, or the wrong one: refused, nothing changes
    assert secure_client.post(f"/r/{token}", data={"action": "accept"}).status_code == 403
    assert (
        secure_client.post(f"/r/{token}", data={"action": "accept", "csrf_token": "x" * 32}).status_code
        == 403
    )
    assert _task(services)["status"] == "requested"
    r = secure_client.post(
        f"/r/{token}", data={"action": "accept", "csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert _task(services)["status"] == "accepted"
    r = secure_client.post(
        f"/r/{token}",
        data={"action": "note", "note": "Called, visit on Tuesday", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "Called, visit on Tuesday" in r.text
    # an illegal step is refused with the workflow's words and changes nothing
    r = secure_client.post(f"/r/{token}", data={"action": "reject", "reason": "x", "csrf_token": csrf})
    assert r.status_code == 409 and "allowed:" in r.text
    r = secure_client.post(
        f"/r/{token}",
        data={"action": "complete", "provided": "Food pantry enrolled", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "Food pantry enrolled" in r.text
    t = _task(services)
    assert t["status"] == "completed" and t["output"][0]["valueReference"]["reference"].startswith(
        "Procedure/"
    )
    proc = services.repo.read(
        "Procedure", t["output"][0]["valueReference"]["reference"].split("/")[1]
    ).content
    assert proc["performer"][0]["actor"]["reference"] == "Organization/food-bank"
    assert proc["subject"] == {"reference": "Patient/p1"}
    prov = [
        s.content["activity"]["text"]
        for s in services.repo.search_params("Provenance", [("target", "Task/t1")]).matches
    ]
    assert prov == ["draft → requested", "requested → accepted", "accepted → completed"]
    assert _audits(services)  # every use is in the audit trail


def test_a_declined_referral_needs_a_reason(secure_client: Any, sent: Any) -> None:
    services, token = sent
    csrf = _csrf(secure_client.get(f"/r/{token}").text)
    r = secure_client.post(f"/r/{token}", data={"action": "reject", "reason": " ", "csrf_token": csrf})
    assert r.status_code == 422
    r = secure_client.post(
        f"/r/{token}",
        data={"action": "reject", "reason": "Outside our area", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert _task(services)["statusReason"]["text"] == "Outside our area"


def test_expired_revoked_and_unknown_links_show_a_clear_page_and_change_nothing(
    secure_client: Any, sent: Any
) -> None:
    services, token = sent
    csrf = _csrf(secure_client.get(f"/r/{token}").text)
    with services.engine.begin() as conn:  # the link's time is up
        conn.execute(
            CRED.update().where(CRED.c.key_hash == secret_hash(token)).values(expires=int(time.time()) - 1)
        )
    for r in (
        secure_client.get(f"/r/{token}"),
        secure_client.post(f"/r/{token}", data={"action": "accept", "csrf_token": csrf}),
    ):
        assert r.status_code == 410 and "This link no longer works" in r.text and "Ada" not in r.text
    assert _task(services)["status"] == "requested"
    fresh = issue_link(services, "t1", "food-bank", "Practitioner/coach1")
    assert secure_client.get(f"/r/{fresh}").status_code == 200
    assert len(live_links(services, "t1")) == 1
    assert revoke_links(services, "t1") == 1
    r = secure_client.post(f"/r/{fresh}", data={"action": "accept", "csrf_token": csrf})
    assert r.status_code == 410
    assert secure_client.get("/r/not-a-token").status_code == 410
    assert _task(services)["status"] == "requested"


def test_a_new_link_replaces_the_old_and_consent_withdrawn_closes_it(secure_client: Any, sent: Any) -> None:
    services, token = sent
    newer = issue_link(services, "t1", "food-bank", "Practitioner/coach1")
    assert secure_client.get(f"/r/{token}").status_code == 410
    found = services.repo.search_params("Consent", [("patient", "Patient/p1")]).matches[0].content
    services.repo.update("Consent", found["id"], {**found, "status": "inactive"})
    r = secure_client.get(f"/r/{newer}")
    assert r.status_code == 410 and "Ada" not in r.text


def test_the_page_fits_a_phone(secure_client: Any, sent: Any) -> None:
    _, token = sent
    html = secure_client.get(f"/r/{token}").text
    assert 'name="viewport" content="width=device-width' in html
