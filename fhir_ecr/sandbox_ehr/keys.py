"""The sandbox's signing key: one RSA key per sandbox database, kept in its ``kv`` state.

The key signs id_tokens (RS256, which OpenID Connect servers must support) and the sandbox's own access tokens
(JWTs with ``typ: at+jwt``, RFC 9068), and its public half is served at ``jwks_uri``. Keeping it in the database
means a restart keeps the key, so tokens issued before the restart still verify. It is a sandbox: the private
key is stored unencrypted in the sandbox's own database, which holds only made-up demo data.
"""

from __future__ import annotations

import json
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from ..outcomes import FhirError
from ..store.repository import FhirRepository

__all__ = ["KEY_STATE", "TokenSigner", "InvalidJwt", "load_signing_key"]

KEY_STATE = "sandbox_ehr.signing_jwk"
ACCESS_TOKEN_TYP = "at+jwt"


class InvalidJwt(Exception):
    """A token the sandbox did not issue, or one that is expired or meant for someone else."""


def load_signing_key(repo: FhirRepository) -> RSAKey:
    """The sandbox's RSA key from its database, generated and stored on first use."""
    for _ in range(2):  # a concurrent first start may win the insert; then read what it stored
        with repo.unit(write=False) as uow:
            text = uow.get_state(KEY_STATE)
        if text is not None:
            key = RSAKey.import_key(json.loads(text))
            return key
        try:
            with repo.unit() as uow:
                if uow.get_state(KEY_STATE) is None:
                    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
                    uow.set_state(KEY_STATE, json.dumps(key.as_dict(private=True)))
        except FhirError:  # unique-key conflict: another process stored its key first
            continue
    raise RuntimeError("could not load or store the sandbox signing key")


class TokenSigner:
    """Signs and verifies the sandbox's JWTs with its one RS256 key."""

    def __init__(self, key: RSAKey) -> None:
        self._key = key

    @property
    def kid(self) -> str:
        return str(self._key.kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWK set served at ``jwks_uri``."""
        public = self._key.as_dict(private=False)
        public.update(alg="RS256", use="sig", kid=self.kid)
        return {"keys": [public]}

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        return jwt.encode({"alg": "RS256", "kid": self.kid, "typ": typ}, claims, self._key)

    def verify_access_token(self, token: str, *, issuer: str, audience: str, now: float) -> dict[str, Any]:
        """The claims of an access token this sandbox issued for ``audience``; :class:`InvalidJwt` otherwise.

        Checked: signature (RS256, our key), ``typ: at+jwt`` (so an id_token is never accepted as an access
        token), ``iss``, ``aud`` and ``exp`` (RFC 9068 §4).
        """
        try:
            decoded = jwt.decode(token, self._key, algorithms=["RS256"])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidJwt("the token is not one this server issued") from exc
        if decoded.header.get("typ") != ACCESS_TOKEN_TYP:
            raise InvalidJwt("not an access token")
        claims = decoded.claims
        if claims.get("iss") != issuer:
            raise InvalidJwt("the token was issued by another server")
        if claims.get("aud") != audience:
            raise InvalidJwt("the token is meant for another resource server (aud)")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or now >= exp:
            raise InvalidJwt("the token has expired")
        return claims
