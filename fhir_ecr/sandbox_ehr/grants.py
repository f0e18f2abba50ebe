"""What the sandbox authorization server remembers between requests: launches, pending authorizations,
authorization codes, refresh tokens and revoked grants.

Kept in memory, in one process (the sandbox is a development and test stand-in; run it with one worker).
Everything here is short-lived or single-use, and expired entries are dropped as new ones arrive. Access tokens
are not stored at all: they are signed JWTs, checked by signature, and only a revoked grant (a replayed code or
a replayed refresh token) makes a still-valid one fail.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import OAuthError

__all__ = ["Grant", "GrantStore", "LaunchContext", "PendingAuthorization", "new_token"]

#: RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED"; SMART says about one.
CODE_LIFETIME = 60.0
LAUNCH_LIFETIME = 300.0
REFRESH_LIFETIME = 30 * 24 * 3600.0


def new_token() -> str:
    """An opaque, unguessable value (256 bits)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class LaunchContext:
    """An EHR launch: which coach opened the app for which patient, for which client. ``practitioner_id`` None:
    the patient opened the app from the patient portal (they are the user and the patient in context).
    ``framed``: the EHR shows the app inside its own page (so it shows the patient banner itself)."""

    client_id: str
    practitioner_id: str | None
    patient_id: str
    expires_at: float
    framed: bool = False

    @property
    def user(self) -> str:
        """The launching user's reference: ``Practitioner/x``, or ``Patient/x`` from the patient portal."""
        return (
            f"Practitioner/{self.practitioner_id}" if self.practitioner_id else f"Patient/{self.patient_id}"
        )


@dataclass(frozen=True)
class PendingAuthorization:
    """A validated authorization request waiting for the user's decision on the sandbox's page."""

    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    requested_scope: str
    grantable: tuple[str, ...]
    kind: Literal["ehr", "standalone"]
    expires_at: float
    nonce: str | None = None
    launch: LaunchContext | None = None


@dataclass(frozen=True)
class Grant:
    """What the user allowed: the client, the granted scope and the launch context. Codes, access tokens and
    refresh tokens all belong to one grant (``gid``); revoking it ends them all."""

    gid: str
    client_id: str
    scope: str
    user_kind: Literal["practitioner", "patient", "system"]
    user_id: str  # "Practitioner/coach-dana", "Patient/pat-1001", "client:<id>"
    patient_id: str | None = None
    redirect_uri: str | None = None
    code_challenge: str | None = None
    nonce: str | None = None
    display: str = ""
    fhir_context: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    framed: bool = False  # launched in a frame of the EHR's page


class GrantStore:
    """Single-use values with lifetimes, safe to use from the event loop and worker threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._launches: dict[str, LaunchContext] = {}
        self._pending: dict[str, PendingAuthorization] = {}
        # code -> (grant, expires_at, used)
        self._codes: dict[str, tuple[Grant, float, bool]] = {}
        # refresh token -> (grant, expires_at, spent)
        self._refresh: dict[str, tuple[Grant, float, bool]] = {}
        self._revoked: dict[str, float] = {}

    def _purge(self, now: float) -> None:
        for table in (self._launches, self._pending):
            for key in [k for k, v in table.items() if v.expires_at <= now]:
                del table[key]
        # Used codes are kept a while after expiry so a replay is recognised (and revokes) rather than unknown.
        for key in [k for k, v in self._codes.items() if v[1] + 3600 <= now]:
            del self._codes[key]
        for key in [k for k, v in self._refresh.items() if v[1] <= now]:
            del self._refresh[key]

    # -- launches and pending authorizations ------------------------------------------------------------------

    def add_launch(
        self, client_id: str, practitioner_id: str | None, patient_id: str, *, framed: bool = False
    ) -> str:
        now = self._clock()
        launch = new_token()
        with self._lock:
            self._purge(now)
            self._launches[launch] = LaunchContext(
                client_id, practitioner_id, patient_id, now + LAUNCH_LIFETIME, framed=framed
            )
        return launch

    def take_launch(self, launch: str) -> LaunchContext | None:
        """The launch context, once; None when unknown, used or expired."""
        with self._lock:
            context = self._launches.pop(launch, None)
        return context if context is not None and context.expires_at > self._clock() else None

    def add_pending(self, pending: PendingAuthorization) -> str:
        tx = new_token()
        with self._lock:
            self._purge(self._clock())
            self._pending[tx] = pending
        return tx

    def take_pending(self, tx: str) -> PendingAuthorization | None:
        with self._lock:
            pending = self._pending.pop(tx, None)
        return pending if pending is not None and pending.expires_at > self._clock() else None

    # -- codes ------------------------------------------------------------------------------------------------

    def add_code(self, grant: Grant) -> str:
        code = new_token()
        now = self._clock()
        with self._lock:
            self._purge(now)
            self._codes[code] = (grant, now + CODE_LIFETIME, False)
        return code

    def redeem_code(self, code: str) -> Grant:
        """The grant of an unused, unexpired code, marking it used.

        RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization server MUST deny
        the request and SHOULD revoke (when possible) all tokens previously issued based on that authorization
        code." A replay therefore revokes the grant.
        """
        now = self._clock()
        with self._lock:
            entry = self._codes.get(code)
            if entry is None:
                raise OAuthError("invalid_grant", "unknown authorization code")
            grant, expires_at, used = entry
            if used:
                self._revoke(grant.gid, now)
                raise OAuthError(
                    "invalid_grant", "authorization code was already used; its tokens are revoked"
                )
            self._codes[code] = (grant, expires_at, True)
        if expires_at <= now:
            raise OAuthError("invalid_grant", "authorization code has expired")
        return grant

    # -- refresh tokens ---------------------------------------------------------------------------------------

    def add_refresh(self, grant: Grant) -> str:
        token = new_token()
        now = self._clock()
        with self._lock:
            self._refresh[token] = (grant, now + REFRESH_LIFETIME, False)
        return token

    def spend_refresh(self, token: str, client_id: str) -> Grant:
        """The grant of a live refresh token, which is spent now (rotation: the caller issues a new one).

        OAuth 2.0 Security BCP §4.14.2: a spent refresh token presented again means it leaked; the whole grant
        is revoked.
        """
        now = self._clock()
        with self._lock:
            entry = self._refresh.get(token)
            if entry is None or entry[1] <= now:
                raise OAuthError("invalid_grant", "unknown or expired refresh token")
            grant, expires_at, spent = entry
            if grant.client_id != client_id:
                raise OAuthError("invalid_grant", "the refresh token was issued to another client")
            if spent:
                self._revoke(grant.gid, now)
                raise OAuthError("invalid_grant", "refresh token was already used; the grant is revoked")
            if grant.gid in self._revoked:
                raise OAuthError("invalid_grant", "the grant was revoked")
            self._refresh[token] = (grant, expires_at, True)
        return grant

    # -- revocation -------------------------------------------------------------------------------------------

    def _revoke(self, gid: str, now: float) -> None:
        self._revoked[gid] = now
        for key, (grant, expires_at, _) in list(self._refresh.items()):
            if grant.gid == gid:
                self._refresh[key] = (grant, expires_at, True)

    def is_revoked(self, gid: str | None) -> bool:
        return gid is not None and gid in self._revoked
