"""mECR's token endpoint for backend-services clients: every check of the client assertion."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fhir_ecr.auth.registry import RegistryError, add_client
from smart_launch import ClientKeySet
from tests.auth.support import SystemClient


@pytest.fixture
def bot(secure_services: Any) -> SystemClient:
    return SystemClient(secure_services, scope="system/Patient.rs system/Observation.rs")


def _error(r: Any, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == error
    assert r.headers["cache-control"] == "no-store"


def test_issues_a_token_for_the_granted_scopes(secure_client: Any, bot: SystemClient) -> None:
    r = secure_client.post("/auth/token", data=bot.token_form("system/Patient.rs system/Condition.rs"))
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs"  # the registration does not cover Condition
    h = {"Authorization": f"Bearer {body['access_token']}"}
    assert secure_client.get("/fhir/Patient", headers=h).status_code == 200
    assert secure_client.get("/fhir/Condition", headers=h).status_code == 403


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_both_algorithms(secure_client: Any, bot: SystemClient, alg: str) -> None:
    assert secure_client.post("/auth/token", data=bot.token_form(alg=alg)).status_code == 200


def test_assertion_checks(secure_client: Any, secure_services: Any, bot: SystemClient) -> None:
    form = bot.token_form("system/Patient.rs")
    assert secure_client.post("/auth/token", data=form).status_code == 200
    _error(secure_client.post("/auth/token", data=form), 401, "invalid_client")  # jti replay
    _error(
        secure_client.post("/auth/token", data=bot.token_form(aud="https://elsewhere/token")),
        401,
        "invalid_client",
    )
    _error(
        secure_client.post("/auth/token", data=bot.token_form(now=time.time() - 400, lifetime=60)),
        401,
        "invalid_client",
    )  # expired
    _error(
        secure_client.post("/auth/token", data=bot.token_form(client_id="stranger")), 401, "invalid_client"
    )
    other = ClientKeySet.generate()  # signed with keys that are not the registered ones
    forged = dict(bot.token_form())
    from smart_launch import build_client_assertion

    forged["client_assertion"] = build_client_assertion(
        other, client_id=bot.client_id, now=time.time(), token_url="http://127.0.0.1:8000/auth/token"
    )
    _error(secure_client.post("/auth/token", data=forged), 401, "invalid_client")
    _error(
        secure_client.post("/auth/token", data={**bot.token_form(), "client_assertion": "x.y"}),
        401,
        "invalid_client",
    )
    _error(secure_client.post("/auth/token", data=bot.token_form("user/*.rs")), 400, "invalid_scope")
    _error(
        secure_client.post("/auth/token", data={**bot.token_form(), "grant_type": "authorization_code"}),
        400,
        "unsupported_grant_type",
    )
    _error(
        secure_client.post("/auth/token", json={"grant_type": "client_credentials"}), 400, "invalid_request"
    )


def test_registration_rules(secure_services: Any) -> None:
    keys = ClientKeySet.generate()
    with pytest.raises(RegistryError, match="system/"):
        add_client(secure_services, client_id="c1", scope="user/*.rs", jwks=keys.public_jwks())
    with pytest.raises(RegistryError, match="private"):
        add_client(secure_services, client_id="c1", scope="system/*.rs", jwks=keys.private_jwks())
    with pytest.raises(RegistryError, match="exactly one"):
        add_client(secure_services, client_id="c1", scope="system/*.rs")
    with pytest.raises(RegistryError, match="https"):
        add_client(secure_services, client_id="c1", scope="system/*.rs", jwks_url="http://example.com/jwks")


def test_removing_a_client_revokes_its_tokens(
    secure_client: Any, secure_services: Any, bot: SystemClient
) -> None:
    h = bot.token(secure_client, "system/Patient.rs")
    assert secure_client.get("/fhir/Patient", headers=h).status_code == 200
    assert secure_services.auth_store.remove_client(bot.client_id)
    assert secure_client.get("/fhir/Patient", headers=h).status_code == 401


def test_billing_operations_are_for_billing_staff(secure_client: Any, secure_services: Any) -> None:
    from tests.auth.support import login, patient

    pid = secure_services.repo.create({"resourceType": "Patient"}).stored.id
    reader = SystemClient(secure_services, "reader", scope="system/*.rs")
    h = reader.token(secure_client)
    r = secure_client.get("/fhir/Claim/$billing-preview?from=2026-01-01&to=2026-01-31", headers=h)
    assert r.status_code == 200, r.text
    r = secure_client.post(
        "/fhir/Claim/$billing-export",
        headers=h,
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "from", "valueDate": "2026-01-01"},
                {"name": "to", "valueDate": "2026-01-31"},
            ],
        },
    )
    assert r.status_code == 403  # read-only scopes cannot mark lines billed
    login(secure_client, secure_services, patient(pid))
    assert secure_client.get("/fhir/Claim/$billing-preview?from=2026-01-01&to=2026-01-31").status_code == 403
