"""Server-side browser sessions and the access tokens mECR issues.

A session cookie (``mecr_session``: 256 random bits, HttpOnly, SameSite=Lax, Secure on https) names a row
keyed by the cookie's SHA-256; the row holds the principal, the CSRF token, the launch context and — encrypted
with the vault — the EHR's access/refresh tokens. Nothing about the user is in the cookie itself.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from smart_launch.scopes import ScopeSet

from ..store.auth_store import AuthStore
from .principal import Principal

__all__ = [
    "SESSION_COOKIE",
    "CSRF_HEADER",
    "CSRF_FIELD",
    "Session",
    "SessionManager",
    "create_session",
    "principal_to_dict",
    "principal_from_dict",
]

SESSION_COOKIE = "mecr_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def principal_to_dict(p: Principal) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "subject": p.subject,
        "scopes": str(p.scopes),
        "patient_id": p.patient_id,
        "fhir_user": p.fhir_user,
        "client_id": p.client_id,
        "display": p.display,
        "ehr_id": p.ehr_id,
        "organization": p.organization,
    }


def principal_from_dict(d: dict[str, Any], session_id: str | None = None) -> Principal:
    return Principal(
        kind=d["kind"],
        subject=d["subject"],
        scopes=ScopeSet.parse(d.get("scopes") or ""),
        patient_id=d.get("patient_id"),
        fhir_user=d.get("fhir_user"),
        client_id=d.get("client_id"),
        display=d.get("display") or "",
        ehr_id=d.get("ehr_id"),
        session_id=session_id,
        organization=d.get("organization"),
    )


@dataclass
class Session:
    """A signed-in browser: who, the CSRF token, the launch context (need_patient_banner, smart_style_url,
    encounter, ehr_patient), and the EHR tokens (decrypted on demand by :class:`SessionManager`)."""

    id: str  # a short, non-secret id (for logs and AuditEvent), not the cookie value
    principal: Principal
    csrf_token: str
    context: dict[str, Any] = field(default_factory=dict)
    expires: int = 0

    @property
    def need_patient_banner(self) -> bool:
        return bool(self.context.get("need_patient_banner", True))


class SessionManager:
    """Creates, loads and ends sessions; issues and resolves bearer tokens."""

    def __init__(self, store: AuthStore, vault: Any, *, session_ttl: int, token_ttl: int) -> None:
        self.store = store
        self.vault = vault
        self.session_ttl = session_ttl
        self.token_ttl = token_ttl

    # -- browser sessions ------------------------------------------------------------------------------------

    def create(
        self,
        principal: Principal,
        *,
        context: dict[str, Any] | None = None,
        ehr_tokens: dict[str, Any] | None = None,
    ) -> tuple[str, Session]:
        cookie = secrets.token_urlsafe(32)
        sid = secrets.token_hex(8)
        csrf = secrets.token_urlsafe(32)
        expires = int(time.time()) + self.session_ttl
        data = {"id": sid, "principal": principal_to_dict(principal), "csrf": csrf, "context": context or {}}
        enc = self.vault.encrypt(json.dumps(ehr_tokens)) if ehr_tokens else None
        self.store.put_credential(cookie, "session", json.dumps(data), expires, enc)
        session = Session(sid, _with_session(principal, sid), csrf, dict(context or {}), expires)
        return cookie, session

    def load(self, cookie: str) -> Session | None:
        row = self.store.credential(cookie, "session")
        if row is None:
            return None
        data = json.loads(row.data)
        return Session(
            data["id"],
            principal_from_dict(data["principal"], data["id"]),
            data["csrf"],
            data.get("context") or {},
            row.expires,
        )

    def ehr_tokens(self, cookie: str) -> dict[str, Any] | None:
        row = self.store.credential(cookie, "session")
        if row is None or not row.secret_enc:
            return None
        return json.loads(self.vault.decrypt(row.secret_enc))  # type: ignore[no-any-return]

    def end(self, cookie: str) -> None:
        self.store.delete_credential(cookie)

    # -- bearer tokens ---------------------------------------------------------------------------------------

    def issue_token(self, principal: Principal) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        self.store.put_credential(
            token, "token", json.dumps(principal_to_dict(principal)), int(time.time()) + self.token_ttl
        )
        return token, self.token_ttl

    def resolve_token(self, token: str) -> Principal | None:
        row = self.store.credential(token, "token")
        if row is None:
            return None
        return principal_from_dict(json.loads(row.data))


def _with_session(p: Principal, sid: str) -> Principal:
    from dataclasses import replace

    return replace(p, session_id=sid)


def create_session(
    services: Any,
    principal: Principal,
    *,
    context: dict[str, Any] | None = None,
    ehr_tokens: dict[str, Any] | None = None,
) -> tuple[str, Session]:
    """A new session for ``principal`` (tests and the launch callback): (cookie value, session)."""
    return services.sessions.create(principal, context=context, ehr_tokens=ehr_tokens)  # type: ignore[no-any-return]
