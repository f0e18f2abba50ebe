"""Helpers for authorization tests: sign in as a principal, register a system client and get a token."""

from __future__ import annotations

import time
from typing import Any

from fhir_ecr.auth import Principal
from fhir_ecr.auth.registry import COACH_APP_SCOPES, PATIENT_APP_SCOPES, add_client
from fhir_ecr.auth.sessions import SESSION_COOKIE, create_session
from smart_launch import ClientKeySet, ScopeSet, build_client_assertion


def coach(practitioner_id: str = "coach1", scopes: str = COACH_APP_SCOPES) -> Principal:
    return Principal(
        kind="practitioner",
        subject=f"Practitioner/{practitioner_id}",
        fhir_user=f"Practitioner/{practitioner_id}",
        scopes=ScopeSet.parse(scopes),
        display="Coach One",
    )


def patient(patient_id: str, scopes: str = PATIENT_APP_SCOPES) -> Principal:
    return Principal(
        kind="patient",
        subject=f"Patient/{patient_id}",
        patient_id=patient_id,
        fhir_user=f"Patient/{patient_id}",
        scopes=ScopeSet.parse(scopes),
        display="Pat",
    )


def login(client: Any, services: Any, principal: Principal, **context: Any) -> str:
    """Sign the TestClient in as ``principal``; returns the session's CSRF token."""
    cookie, session = create_session(services, principal, context=context or None)
    client.cookies.set(SESSION_COOKIE, cookie)
    return session.csrf_token


def bearer(services: Any, principal: Principal, ttl: int | None = None) -> dict[str, str]:
    """An Authorization header with a token issued straight to ``principal`` (no client round trip)."""
    token, _ = services.sessions.issue_token(principal)
    if ttl is not None:  # rewrite the expiry (e.g. in the past)
        from fhir_ecr.store.auth_store import CRED, secret_hash

        with services.engine.begin() as conn:
            conn.execute(
                CRED.update()
                .where(CRED.c.key_hash == secret_hash(token))
                .values(expires=int(time.time()) + ttl)
            )
    return {"Authorization": f"Bearer {token}"}


class SystemClient:
    """A registered backend-services client with its own keys."""

    def __init__(self, services: Any, client_id: str = "sync-bot", scope: str = "system/*.rs") -> None:
        self.services = services
        self.client_id = client_id
        self.keys = ClientKeySet.generate()
        add_client(services, client_id=client_id, scope=scope, jwks=self.keys.public_jwks())

    def assertion(
        self,
        *,
        aud: str | None = None,
        now: float | None = None,
        client_id: str | None = None,
        alg: str = "RS384",
        lifetime: int = 300,
    ) -> str:
        return build_client_assertion(
            self.keys,
            client_id=client_id or self.client_id,
            token_url=aud or f"{self.services.settings.base_url}/auth/token",
            now=now or time.time(),
            alg=alg,
            lifetime=lifetime,
        )

    def token_form(self, scope: str = "system/*.rs", **kw: Any) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(**kw),
        }

    def token(self, client: Any, scope: str = "system/*.rs") -> dict[str, str]:
        r = client.post("/auth/token", data=self.token_form(scope))
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}
