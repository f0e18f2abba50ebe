"""mECR's own token endpoint for backend-services clients (SMART Backend Services, client_credentials).

A registered client (``mecr client add``) posts ``grant_type=client_credentials``, ``scope`` and a
``client_assertion`` JWT signed with one of its registered keys. Checked: ``alg`` RS384/ES384, ``kid`` in the
client's JWKS, the signature, ``iss`` = ``sub`` = the client id, ``aud`` = this token URL, ``exp`` in the future
and at most five minutes ahead, ``jti`` never seen before. Granted: the requested scopes the registration
covers (``system/`` only). The access token is opaque, stored by hash, and lives ``access_token_ttl_seconds``.
Errors are RFC 6749 §5.2 JSON (``invalid_client`` 401, others 400).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from smart_launch import ScopeSet

from .principal import Principal

__all__ = ["TokenRequestError", "issue_client_token", "CLIENT_ASSERTION_TYPE"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
MAX_LIFETIME = 300


class TokenRequestError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import base64

    try:
        head, body, _sig = token.split(".")

        def part(seg: str) -> dict[str, Any]:
            value = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
            if not isinstance(value, dict):
                raise ValueError
            return value

        return part(head), part(body)
    except (ValueError, TypeError) as exc:
        raise TokenRequestError("invalid_client", "client_assertion is not a JWT", 401) from exc


async def issue_client_token(services: Any, form: dict[str, str], http: httpx.AsyncClient) -> dict[str, Any]:
    """Handle one client_credentials token request; the token response body or :class:`TokenRequestError`."""
    if form.get("grant_type") != "client_credentials":
        raise TokenRequestError(
            "unsupported_grant_type", "this endpoint issues client_credentials grants only"
        )
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
        raise TokenRequestError("invalid_client", "authenticate with a private_key_jwt client_assertion", 401)
    assertion = form["client_assertion"]
    header, claims = _unverified(assertion)
    client_id = claims.get("iss")
    client = services.auth_store.client(str(client_id)) if isinstance(client_id, str) else None
    if client is None:
        raise TokenRequestError("invalid_client", "unknown client", 401)
    if claims.get("sub") != client_id:
        raise TokenRequestError(
            "invalid_client", "the assertion's sub must equal its iss (the client id)", 401
        )
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenRequestError(
            "invalid_client", f"assertion alg must be one of {', '.join(ALGORITHMS)}", 401
        )
    if not header.get("kid"):
        raise TokenRequestError("invalid_client", "the assertion header needs a kid", 401)
    jwks = await _client_jwks(client, http)
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # a JWKS dict, checked by joserfc
        key = keys.get_by_kid(header["kid"])
        verified = jwt.decode(assertion, key, algorithms=[str(alg)]).claims
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise TokenRequestError(
            "invalid_client",
            "the assertion's signature does not verify with the client's registered keys",
            401,
        ) from exc
    token_url = f"{services.settings.base_url}/auth/token"
    aud = verified.get("aud")
    if (aud if isinstance(aud, list) else [aud]) != [token_url]:
        raise TokenRequestError("invalid_client", f"the assertion's aud must be {token_url}", 401)
    now = time.time()
    exp = verified.get("exp")
    if not isinstance(exp, (int, float)) or exp <= now - 5:
        raise TokenRequestError("invalid_client", "the assertion has expired", 401)
    if exp > now + MAX_LIFETIME + 5:
        raise TokenRequestError("invalid_client", "the assertion's exp is more than five minutes ahead", 401)
    jti = verified.get("jti")
    if not isinstance(jti, str) or not jti:
        raise TokenRequestError("invalid_client", "the assertion needs a jti", 401)
    if not services.auth_store.add_once(f"jti:{client_id}:{jti}"[:128], exp + 60):
        raise TokenRequestError("invalid_client", "this assertion (jti) was used already", 401)
    registered = ScopeSet.parse(client["scope"])
    requested = ScopeSet.parse(form.get("scope", ""))
    granted: list[str] = []
    for token in requested:  # the intersection: what was asked for, as far as the registration allows
        asked = ScopeSet.parse(token)
        if not asked.resource_scopes:
            continue
        if registered.covers(asked):
            candidates = [token]
        else:  # a wider request (system/*.rs) gets the registered scopes it covers
            candidates = [g for g in registered if asked.covers(ScopeSet.parse(g))]
        granted += [c for c in candidates if c not in granted]
    if not granted:
        raise TokenRequestError(
            "invalid_scope", f"none of the requested scopes is allowed; registered: {client['scope']}"
        )
    principal = Principal(
        kind="system",
        subject=f"client:{client_id}",
        scopes=ScopeSet.parse(granted),
        client_id=str(client_id),
        display=client["name"],
        organization=client.get("organization") or None,
    )
    token, ttl = services.sessions.issue_token(principal)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl, "scope": " ".join(granted)}


async def _client_jwks(client: dict[str, Any], http: httpx.AsyncClient) -> dict[str, Any]:
    if client.get("jwks"):
        return json.loads(client["jwks"])  # type: ignore[no-any-return]
    try:
        response = await http.get(client["jwks_url"], timeout=10)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise TokenRequestError("invalid_client", "the client's JWKS URL could not be read", 401) from exc
    if not isinstance(data, dict):
        raise TokenRequestError("invalid_client", "the client's JWKS is not a JSON object", 401)
    return data
