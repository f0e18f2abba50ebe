"""Shared helpers for the smart_launch tests: a fake clock, test-time keys, a respx-mocked EHR.

Keys are generated at test time; no private key is ever committed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from smart_launch import ClientKeySet

FHIR_BASE = "https://ehr.example.org/r4/fhir"
ISSUER = "https://ehr.example.org/auth"
AUTHORIZE_URL = "https://ehr.example.org/auth/authorize"
TOKEN_URL = "https://ehr.example.org/auth/token"
JWKS_URL = "https://ehr.example.org/auth/jwks"
REDIRECT_URI = "https://mecr.example.com/smart/callback"


class Clock:
    """A settable clock returning epoch seconds."""

    def __init__(self, now: float | None = None) -> None:
        self.now = float(int(now if now is not None else time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def smart_configuration(**overrides: Any) -> dict[str, Any]:
    """A conformant smart-configuration document (as smart-launcher-v2 serves it), with overrides."""
    doc: dict[str, Any] = {
        "issuer": ISSUER,
        "jwks_uri": JWKS_URL,
        "authorization_endpoint": AUTHORIZE_URL,
        "token_endpoint": TOKEN_URL,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient", "offline_access"],
        "response_types_supported": ["code"],
        "capabilities": [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "sso-openid-connect",
            "context-ehr-patient",
            "permission-v2",
            "permission-offline",
            "authorize-post",
        ],
        "code_challenge_methods_supported": ["S256"],
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


class IssuerKeys:
    """The fake EHR's id_token signing keys (RS256, RS384, ES256) and a helper that signs id_tokens."""

    def __init__(self) -> None:
        self.rs256 = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
        self.rs384 = RSAKey.generate_key(2048, parameters={"alg": "RS384", "use": "sig"}, auto_kid=True)
        self.es256 = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)
        self.by_alg = {"RS256": self.rs256, "RS384": self.rs384, "ES256": self.es256}

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.rs256, self.rs384, self.es256]).as_dict(private=False))

    def sign(
        self, claims: dict[str, Any], *, alg: str = "RS256", kid: str | None = None, key: Any = None
    ) -> str:
        signing_key = key if key is not None else self.by_alg[alg]
        header = {"alg": alg, "kid": kid if kid is not None else signing_key.kid}
        return jwt.encode(header, claims, signing_key, algorithms=[alg])


@pytest.fixture(scope="session")
def issuer_keys() -> IssuerKeys:
    return IssuerKeys()


@pytest.fixture(scope="session")
def client_keys() -> ClientKeySet:
    """The app's own RS384 + ES384 key set, generated once per test session."""
    return ClientKeySet.generate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """A respx router standing in for the EHR; every request must match a route."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
async def http(router: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
