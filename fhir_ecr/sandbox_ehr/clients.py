"""Registered apps and how the token endpoint authenticates them.

Specs: https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-symmetric.html,
https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html (the server side:
"Signature Verification" and the checks on the authentication JWT), RFC 6749 §2.3.1 and §5.2.

A client authenticates the one way it was registered with: ``none`` (public: ``client_id`` in the body, no
credentials), ``client_secret_basic`` (HTTP Basic), or ``private_key_jwt`` (a one-time RS384/ES384 JWT checked
against the client's JWKS, fetched from its ``jwks_url`` or given inline). Every failure is ``invalid_client``.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from smart_launch import CLIENT_ASSERTION_TYPE, ScopeSet

from .errors import OAuthError

__all__ = ["AuthMethod", "ClientAuthenticator", "DEFAULT_CLIENT_SCOPE", "SandboxClient"]

AuthMethod = Literal["none", "client_secret_basic", "private_key_jwt"]

#: What a registered app may ask for unless its registration says otherwise.
DEFAULT_CLIENT_SCOPE = (
    "launch launch/patient openid fhirUser profile offline_access online_access patient/*.cruds user/*.cruds"
)
#: client-confidential-asymmetric.md: the client signs with RS384 or ES384.
ASSERTION_ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
#: "exp ... SHALL be no more than five minutes in the future"; a few seconds of clock skew are tolerated.
MAX_ASSERTION_LIFETIME = 300
CLOCK_SKEW = 5
#: How long a fetched JWKS is trusted before it is fetched again.
JWKS_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class SandboxClient:
    """An app registered with the sandbox EHR.

    ``redirect_uris`` must match the authorization request's ``redirect_uri`` exactly; ``launch_url`` is where
    the EHR front page sends an EHR launch (``{launch_url}?iss=...&launch=...``); ``login_url`` (optional) is the
    app's own standalone-login entry, linked from the front page. ``scope`` is everything the app may be granted.
    """

    client_id: str
    redirect_uris: Sequence[str]
    launch_url: str | None = None
    auth_method: AuthMethod = "none"
    client_secret: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = None
    scope: str = DEFAULT_CLIENT_SCOPE
    name: str = ""
    login_url: str | None = None

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("a client needs a client_id")
        object.__setattr__(self, "redirect_uris", tuple(self.redirect_uris))
        if self.auth_method == "client_secret_basic" and not self.client_secret:
            raise ValueError(f"client {self.client_id!r}: client_secret_basic needs a client_secret")
        if self.auth_method == "private_key_jwt" and not (self.jwks_url or self.jwks):
            raise ValueError(f"client {self.client_id!r}: private_key_jwt needs a jwks_url or a jwks")
        if self.auth_method not in ("none", "client_secret_basic", "private_key_jwt"):
            raise ValueError(f"client {self.client_id!r}: unknown auth method {self.auth_method!r}")

    @property
    def allowed_scope(self) -> ScopeSet:
        return ScopeSet.parse(self.scope)

    @property
    def display_name(self) -> str:
        return self.name or self.client_id


def _invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def _b64json(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid_client("client_assertion is not a JWT") from exc
    if not isinstance(value, dict):
        raise _invalid_client("client_assertion is not a JWT")
    return value


class ClientAuthenticator:
    """Finds and authenticates the client of a token request.

    ``http`` (optional, injected) fetches registered JWKS URLs; without it a short-lived client is used for
    each (cached) fetch. Seen assertion ``jti`` values are remembered until their ``exp`` (replay → refused).
    """

    def __init__(
        self,
        clients: Sequence[SandboxClient],
        *,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        if len(self._clients) != len(clients):
            raise ValueError("client ids must be unique")
        self._clock = clock
        self._http = http
        self._jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jti: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str | None) -> SandboxClient | None:
        return self._clients.get(client_id) if client_id else None

    @property
    def clients(self) -> tuple[SandboxClient, ...]:
        return tuple(self._clients.values())

    async def authenticate(
        self, headers: Mapping[str, str], form: Mapping[str, str], *, token_url: str
    ) -> SandboxClient:
        """The authenticated client of a token request, or :class:`OAuthError` ``invalid_client``."""
        authorization = headers.get("authorization", "")
        body_client_id = form.get("client_id")
        if "client_secret" in form:
            raise _invalid_client("client_secret_post is not supported; use HTTP Basic")
        if authorization:
            client = self._basic(authorization)
        elif "client_assertion" in form or "client_assertion_type" in form:
            client = await self._assertion(form, token_url)
        else:
            public = self.get(body_client_id)
            if public is None:
                raise _invalid_client("unknown client")
            if public.auth_method != "none":
                raise _invalid_client(f"this client must authenticate with {public.auth_method}")
            client = public
        if body_client_id is not None and body_client_id != client.client_id:
            raise _invalid_client("client_id does not match the authenticated client")
        return client

    def _basic(self, authorization: str) -> SandboxClient:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _invalid_client("unsupported Authorization scheme at the token endpoint")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _invalid_client("malformed HTTP Basic credentials") from exc
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise _invalid_client("malformed HTTP Basic credentials")
        client = self.get(unquote(raw_id))  # RFC 6749 §2.3.1: both parts are form-urlencoded
        secret = unquote(raw_secret)
        if client is None or client.auth_method != "client_secret_basic" or client.client_secret is None:
            raise _invalid_client("unknown client or wrong authentication method")
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise _invalid_client("wrong client secret")
        return client

    async def _assertion(self, form: Mapping[str, str], token_url: str) -> SandboxClient:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _invalid_client(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        assertion = form.get("client_assertion") or ""
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _invalid_client("client_assertion is not a compact JWS")
        header, unverified = _b64json(parts[0]), _b64json(parts[1])
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise _invalid_client(f"client_assertion alg must be RS384 or ES384, not {alg!r}")
        if header.get("typ") != "JWT":
            raise _invalid_client("client_assertion header typ must be 'JWT'")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid_client("client_assertion header has no kid")
        client = self.get(unverified.get("iss") if isinstance(unverified.get("iss"), str) else None)
        if client is None or client.auth_method != "private_key_jwt":
            raise _invalid_client("the assertion's iss is not a client registered for private_key_jwt")
        if "jku" in header and header["jku"] != client.jwks_url:
            raise _invalid_client("jku does not match the registered JWKS URL")

        key = await self._key(client, kid, ASSERTION_ALGORITHMS[alg])
        try:
            claims = jwt.decode(assertion, key, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError) as exc:
            raise _invalid_client("client_assertion signature is invalid") from exc

        now = self._clock()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise _invalid_client("client_assertion iss and sub must both be the client_id")
        aud = claims.get("aud")
        if not (aud == token_url or (isinstance(aud, list) and token_url in aud)):
            raise _invalid_client("client_assertion aud must be the token endpoint URL")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise _invalid_client("client_assertion has no exp")
        if exp <= now - CLOCK_SKEW:
            raise _invalid_client("client_assertion has expired")
        if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise _invalid_client("client_assertion exp is more than five minutes in the future")
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and nbf > now + CLOCK_SKEW:
            raise _invalid_client("client_assertion is not valid yet (nbf)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _invalid_client("client_assertion has no jti")
        with self._lock:
            for stale in [k for k, until in self._jti.items() if until < now - CLOCK_SKEW]:
                del self._jti[stale]
            if (client.client_id, jti) in self._jti:
                raise _invalid_client("client_assertion jti was already used")
            self._jti[(client.client_id, jti)] = float(exp)
        return client

    async def _key(self, client: SandboxClient, kid: str, kty: str) -> RSAKey | ECKey:
        for refresh in (False, True):
            jwks = await self._jwks(client, refresh=refresh)
            for entry in jwks.get("keys", []):
                if isinstance(entry, dict) and entry.get("kid") == kid and entry.get("kty") == kty:
                    try:
                        key = JWKRegistry.import_key(dict(entry))
                    except (JoseError, ValueError, TypeError) as exc:
                        raise _invalid_client("the registered JWKS holds an unusable key") from exc
                    if isinstance(key, (RSAKey, ECKey)):
                        return key
            if client.jwks is not None:
                break  # an inline JWKS cannot change
        raise _invalid_client(f"no {kty} key with kid {kid!r} in the client's JWKS")

    async def _jwks(self, client: SandboxClient, *, refresh: bool) -> dict[str, Any]:
        if client.jwks is not None:
            return dict(client.jwks)
        url = client.jwks_url
        assert url is not None
        cached = self._jwks_cache.get(url)
        if cached and not refresh and cached[0] > self._clock():
            return cached[1]
        try:
            if self._http is not None:
                response = await self._http.get(url, headers={"Accept": "application/json"})
            else:
                async with httpx.AsyncClient(timeout=5.0) as http:
                    response = await http.get(url, headers={"Accept": "application/json"})
            document = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise _invalid_client("the client's JWKS URL could not be fetched") from exc
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _invalid_client("the client's JWKS URL did not return a JWK set")
        self._jwks_cache[url] = (self._clock() + JWKS_CACHE_SECONDS, document)
        return document
