"""How the app authenticates at the token endpoint: public, symmetric (Basic) or asymmetric (JWT).

Specs:
https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#request-access-token (public vs confidential),
https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-symmetric.html,
https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html.

Each method turns a token request form into the form plus headers to send. A public client puts
``client_id`` in the body; a confidential client authenticates and leaves ``client_id`` out of the body.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

from joserfc import jwt

from .errors import ConfigurationError
from .keys import ClientKeySet

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "ClientAuthentication",
    "ClientSecretBasic",
    "PrivateKeyJwt",
    "PublicClient",
    "build_client_assertion",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: client-confidential-asymmetric.md: ``exp`` "SHALL be no more than five minutes in the future".
MAX_ASSERTION_LIFETIME = 300


class ClientAuthentication(Protocol):
    """A token-endpoint client authentication method."""

    @property
    def client_id(self) -> str: ...

    @property
    def method(self) -> str:
        """The ``token_endpoint_auth_methods_supported`` name (``none`` for a public client)."""
        ...

    def apply(
        self,
        form: Mapping[str, str],
        *,
        token_url: str,
        now: float,
        server_algorithms: frozenset[str] | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Return the form to send and the extra headers, authenticated for ``token_url``."""
        ...


@dataclass(frozen=True, slots=True)
class PublicClient:
    """A public client: no secret, ``client_id`` in the body (app-launch.md, "For public apps ...")."""

    client_id: str
    method: str = field(default="none", init=False)

    def apply(
        self,
        form: Mapping[str, str],
        *,
        token_url: str,
        now: float,
        server_algorithms: frozenset[str] | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        return {**form, "client_id": self.client_id}, {}


@dataclass(frozen=True, slots=True)
class ClientSecretBasic:
    """Confidential symmetric client: ``Authorization: Basic base64(client_id:client_secret)``.

    client-confidential-symmetric.md: "the client authenticates by supplying an Authorization header
    with HTTP Basic authentication". Both parts are form-urlencoded first, as RFC 6749 §2.3.1 says.
    """

    client_id: str
    client_secret: str = field(repr=False)
    method: str = field(default="client_secret_basic", init=False)

    def __post_init__(self) -> None:
        if not self.client_secret:
            raise ConfigurationError("a confidential symmetric client needs a client_secret")

    def apply(
        self,
        form: Mapping[str, str],
        *,
        token_url: str,
        now: float,
        server_algorithms: frozenset[str] | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        body = {k: v for k, v in form.items() if k != "client_id"}
        return body, {"Authorization": f"Basic {token}"}


def build_client_assertion(
    keys: ClientKeySet,
    *,
    client_id: str,
    token_url: str,
    now: float,
    alg: str | None = None,
    lifetime: int = MAX_ASSERTION_LIFETIME,
    jku: str | None = None,
) -> str:
    """Sign a one-time authentication JWT (client-confidential-asymmetric.md, "Authentication JWT").

    Header ``alg`` (RS384 or ES384), ``kid`` (required; authlib's ``PrivateKeyJWT`` leaves it out and
    smart-launcher-v2 then refuses the assertion), ``typ: "JWT"``, and ``jku`` only when given (it
    "SHALL match the JWKS URL value that the client supplied ... at registration"). Claims ``iss`` =
    ``sub`` = client_id, ``aud`` = the token URL, ``exp`` at most five minutes ahead, a unique ``jti``.
    """
    if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ConfigurationError(f"assertion lifetime must be 1-{MAX_ASSERTION_LIFETIME} seconds")
    algorithm = alg or keys.algorithms[0]
    key = keys.signing_key(algorithm)
    header: dict[str, str] = {"alg": algorithm, "kid": str(key.kid), "typ": "JWT"}
    if jku is not None:
        header["jku"] = jku
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": int(now) + lifetime,
        "jti": secrets.token_urlsafe(32),
    }
    return jwt.encode(header, claims, key, algorithms=[algorithm])


@dataclass(frozen=True, slots=True)
class PrivateKeyJwt:
    """Confidential asymmetric client: a signed JWT assertion instead of a secret.

    ``algorithm`` pins RS384 or ES384; left ``None``, the first algorithm of ``keys`` that the server
    lists in ``token_endpoint_auth_signing_alg_values_supported`` is used.
    """

    client_id: str
    keys: ClientKeySet
    algorithm: str | None = None
    jku: str | None = None
    method: str = field(default="private_key_jwt", init=False)

    def __post_init__(self) -> None:
        if self.algorithm is not None:
            self.keys.signing_key(self.algorithm)  # fail at configuration time, not at the first login

    def apply(
        self,
        form: Mapping[str, str],
        *,
        token_url: str,
        now: float,
        server_algorithms: frozenset[str] | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        alg = self.keys.choose_algorithm(server_algorithms, self.algorithm)
        assertion = build_client_assertion(
            self.keys, client_id=self.client_id, token_url=token_url, now=now, alg=alg, jku=self.jku
        )
        body = {k: v for k, v in form.items() if k != "client_id"}
        body.update(client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion)
        return body, {}
