"""OpenID Connect id_token validation for ``openid fhirUser`` launches.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html#scopes-for-requesting-identity-data
("This token must be validated according to the OIDC specification") and OpenID Connect Core 1.0
§3.1.3.7, "ID Token Validation".

:func:`validate_id_token` is pure (token, keys, expectations and ``now`` in; claims out).
:class:`IdTokenVerifier` adds fetching and caching of the issuer's JWKS.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from . import _http
from .discovery import SmartConfiguration, resolve_endpoint
from .errors import ConfigurationError, IdTokenError

__all__ = ["ID_TOKEN_ALGORITHMS", "IdTokenClaims", "IdTokenVerifier", "validate_id_token"]

#: Asymmetric algorithms accepted for id_token signatures. OIDC servers must support RS256; SMART
#: servers also use RS384 and ES256/ES384. ``none`` and HMAC are never accepted.
ID_TOKEN_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")

#: fhirUser resource types allowed by scopes-and-launch-context.md ("fhirUser" claim).
FHIR_USER_TYPES = frozenset({"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person"})


class _UnknownKeyError(IdTokenError):
    """The token's ``kid`` is not in the JWKS we hold (the issuer may have rotated keys)."""


@dataclass(frozen=True, slots=True)
class IdTokenClaims:
    """The validated claims of an id_token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    expires_at: int
    issued_at: int
    nonce: str | None = None
    fhir_user: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fhir_user_type(self) -> str | None:
        """``Practitioner``, ``PractitionerRole``, ``Patient``, ... read from the ``fhirUser`` URL."""
        if not self.fhir_user:
            return None
        parts = self.fhir_user.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] in FHIR_USER_TYPES:
            return parts[-2]
        return None

    def fhir_user_url(self, fhir_base: str) -> str | None:
        """``fhirUser`` as an absolute URL; "may be absolute or relative to the FHIR server base URL"."""
        if not self.fhir_user:
            return None
        return resolve_endpoint(fhir_base, self.fhir_user)


def _unverified_part(token: str, index: int) -> dict[str, Any]:
    try:
        segment = token.split(".")[index]
        decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError) as exc:
        raise IdTokenError("id_token is not a compact JWS") from exc
    if not isinstance(decoded, dict):
        raise IdTokenError("id_token is not a compact JWS")
    return decoded


def unverified_issuer(token: str) -> str:
    """The ``iss`` claim of a token, *before* verification (only to find where its keys live)."""
    iss = _unverified_part(token, 1).get("iss")
    if not isinstance(iss, str) or not iss:
        raise IdTokenError("id_token has no 'iss' claim")
    return iss


def _numeric(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise IdTokenError(f"id_token claim {name!r} is missing or not a number")
    return int(value)


def validate_id_token(
    token: str,
    jwks: Mapping[str, Any] | KeySet,
    *,
    issuer: str,
    client_id: str,
    now: float,
    nonce: str | None = None,
    leeway: int = 60,
    algorithms: Sequence[str] = ID_TOKEN_ALGORITHMS,
) -> IdTokenClaims:
    """Verify an id_token's signature and claims (OIDC Core §3.1.3.7).

    Checks: signature with a key from ``jwks`` and an ``alg`` from ``algorithms``; ``iss`` equals
    ``issuer`` exactly; ``aud`` contains ``client_id`` (and ``azp``, when present, is ``client_id``);
    ``exp`` is in the future and ``iat`` not in the future (``leeway`` seconds of clock skew either
    way); ``sub`` is present; ``nonce`` equals the one sent when one was sent.
    """
    header = _unverified_part(token, 0)
    alg = header.get("alg")
    if alg not in algorithms:
        raise IdTokenError(f"id_token alg {alg!r} is not accepted; expected one of {list(algorithms)}")
    try:
        keys = jwks if isinstance(jwks, KeySet) else KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    except (JoseError, KeyError, TypeError, ValueError) as exc:
        raise IdTokenError(f"the issuer's JWKS is unusable: {exc}") from exc
    kid = header.get("kid")
    if kid is not None and not any(key.kid == kid for key in keys):
        raise _UnknownKeyError(f"id_token kid {kid!r} is not in the issuer's JWKS")
    candidates = [keys.get_by_kid(kid)] if kid is not None else list(keys)
    claims: dict[str, Any] | None = None
    last_error: Exception | None = None
    for key in candidates:
        try:
            claims = jwt.decode(token, key, algorithms=[str(alg)]).claims
            break
        except InvalidKeyIdError as exc:
            raise _UnknownKeyError(str(exc)) from exc
        except (JoseError, ValueError, TypeError) as exc:  # wrong key type or a bad signature
            last_error = exc
    if claims is None:
        raise IdTokenError(f"id_token signature is invalid ({last_error})") from last_error

    if claims.get("iss") != issuer:
        raise IdTokenError(f"id_token iss {claims.get('iss')!r} is not the expected issuer {issuer!r}")
    aud = claims.get("aud")
    if isinstance(aud, str):
        audience: tuple[str, ...] = (aud,)
    elif isinstance(aud, list):
        audience = tuple(a for a in aud if isinstance(a, str))
    else:
        audience = ()
    if client_id not in audience:
        raise IdTokenError(f"id_token aud {aud!r} does not contain our client_id")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise IdTokenError(f"id_token azp {azp!r} is not our client_id")
    expires_at = _numeric(claims, "exp")
    if now >= expires_at + leeway:
        raise IdTokenError("id_token has expired")
    issued_at = _numeric(claims, "iat")
    if issued_at > now + leeway:
        raise IdTokenError("id_token iat is in the future")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise IdTokenError("id_token has no 'sub' claim")
    claimed_nonce = claims.get("nonce")
    if nonce is not None and (
        not isinstance(claimed_nonce, str) or not hmac.compare_digest(claimed_nonce.encode(), nonce.encode())
    ):
        raise IdTokenError("id_token nonce does not match the one sent in the authorization request")
    fhir_user = claims.get("fhirUser")
    return IdTokenClaims(
        issuer=issuer,
        subject=subject,
        audience=audience,
        expires_at=expires_at,
        issued_at=issued_at,
        nonce=claimed_nonce if isinstance(claimed_nonce, str) else None,
        fhir_user=fhir_user if isinstance(fhir_user, str) else None,
        claims=claims,
    )


class IdTokenVerifier:
    """Validates id_tokens against the issuer's JWKS, fetched over the injected client and cached.

    The keys come from discovery's ``jwks_uri`` and the expected issuer from its ``issuer``. A server
    that returns an id_token without advertising those is followed the OIDC way (scopes-and-launch-
    context.md: "Examine the ID token for its issuer property; perform a GET
    {issuer}/.well-known/openid-configuration; fetch the server's JSON Web Key"), and the document's
    ``issuer`` must equal the token's. An unknown ``kid`` triggers one re-fetch (key rotation).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float],
        leeway: int = 60,
        algorithms: Sequence[str] = ID_TOKEN_ALGORITHMS,
        allow_insecure_http: bool = False,
    ) -> None:
        self._http = http
        self._clock = clock
        self._leeway = leeway
        self._algorithms = tuple(algorithms)
        self._allow_insecure_http = allow_insecure_http
        self._jwks: dict[str, Mapping[str, Any]] = {}

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            _http.ensure_secure_url(url, allow_insecure_http=self._allow_insecure_http, what=what)
        except ConfigurationError as exc:
            raise IdTokenError(str(exc)) from exc
        response = await _http.get(self._http, url)
        body = _http.parse_json_object(response) if response.status_code == 200 else None
        if body is None:
            raise IdTokenError(f"could not fetch the {what} from {url} (HTTP {response.status_code})")
        return body

    async def _locate(self, token: str, config: SmartConfiguration) -> tuple[str, str]:
        if config.issuer and config.jwks_uri:
            return config.issuer, config.jwks_uri
        issuer = unverified_issuer(token)
        doc = await self._get_json(
            issuer.rstrip("/") + "/.well-known/openid-configuration", "OpenID configuration"
        )
        jwks_uri = doc.get("jwks_uri")
        if doc.get("issuer") != issuer or not isinstance(jwks_uri, str):
            raise IdTokenError("the OpenID configuration does not match the id_token's issuer")
        return issuer, jwks_uri

    async def _keys(self, jwks_uri: str, *, refresh: bool) -> Mapping[str, Any]:
        if refresh or jwks_uri not in self._jwks:
            self._jwks[jwks_uri] = await self._get_json(jwks_uri, "JWKS")
        return self._jwks[jwks_uri]

    async def verify(
        self, token: str, *, config: SmartConfiguration, client_id: str, nonce: str | None
    ) -> IdTokenClaims:
        """Validate ``token`` for ``client_id``; ``nonce`` is the one sent (``None`` if none was)."""
        issuer, jwks_uri = await self._locate(token, config)

        def validate(keys: Mapping[str, Any]) -> IdTokenClaims:
            return validate_id_token(
                token,
                keys,
                issuer=issuer,
                client_id=client_id,
                now=self._clock(),
                nonce=nonce,
                leeway=self._leeway,
                algorithms=self._algorithms,
            )

        try:
            return validate(await self._keys(jwks_uri, refresh=False))
        except _UnknownKeyError:
            return validate(await self._keys(jwks_uri, refresh=True))
