"""SMART Backend Services: system-to-system access with ``client_credentials`` and a JWT assertion.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/backend-services.html

The EMR sync gets a token from :meth:`BackendServicesClient.get_token`, or lets an ``httpx.AsyncClient``
do it through :meth:`BackendServicesClient.auth`::

    tokens = BackendServicesClient(token_http, token_url=..., client_id=..., keys=keys,
                                   scope="system/Patient.rs system/Observation.rs")
    fhir = httpx.AsyncClient(base_url=fhir_base, auth=tokens.auth(fhir_base))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable

import anyio
import httpx

from . import _http
from .auth import within_base
from .client_auth import PrivateKeyJwt
from .discovery import fetch_smart_configuration
from .errors import ConfigurationError, ScopeError
from .keys import ClientKeySet
from .scopes import ScopeSet
from .token_endpoint import request_token
from .tokens import TokenResponse

__all__ = ["BackendServicesAuth", "BackendServicesClient"]

#: backend-services.md: "expires_in ... SHOULD NOT exceed 300"; assumed when a server leaves it out.
DEFAULT_LIFETIME = 300


class BackendServicesClient:
    """Gets and caches a Backend Services access token.

    Every token request carries a fresh one-time assertion (``iss`` = ``sub`` = client_id, ``aud`` =
    token URL, ``exp`` <= 5 min, unique ``jti``; RS384 or ES384). The token is reused until
    ``refresh_margin`` seconds before it expires; no refresh token is used ("SHOULD NOT be issued") -- a
    new token is simply requested. ``http`` is the injected client used for the token endpoint only; do
    not give it :meth:`auth`, or token requests would try to authenticate themselves.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str,
        client_id: str,
        keys: ClientKeySet,
        scope: str | Iterable[str],
        algorithm: str | None = None,
        server_algorithms: Iterable[str] | None = None,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.time,
        allow_insecure_http: bool = False,
        jku: str | None = None,
    ) -> None:
        _http.ensure_secure_url(token_url, allow_insecure_http=allow_insecure_http, what="token URL")
        scopes = ScopeSet.parse(scope, strict=True)
        # backend-services.md "Scopes": system/ scopes; user/ and patient/ need context a backend lacks.
        system = [s for s in scopes.resource_scopes if s.context == "system"]
        if not system or len(system) != len(scopes):
            raise ScopeError(f"Backend Services requests system/ resource scopes only; got {str(scopes)!r}")
        self._http = http
        self.token_url = token_url
        self.scope = scopes
        self._auth = PrivateKeyJwt(client_id=client_id, keys=keys, algorithm=algorithm, jku=jku)
        self._server_algorithms = frozenset(server_algorithms) if server_algorithms is not None else None
        if self._server_algorithms is not None:
            keys.choose_algorithm(self._server_algorithms, algorithm)  # fail now, not on first use
        self._margin = refresh_margin
        self._clock = clock
        self._token: TokenResponse | None = None
        self._lock = anyio.Lock()

    @classmethod
    async def from_discovery(
        cls,
        http: httpx.AsyncClient,
        fhir_base: str,
        *,
        client_id: str,
        keys: ClientKeySet,
        scope: str | Iterable[str],
        **options: object,
    ) -> BackendServicesClient:
        """Discover the token endpoint and signing algorithms of ``fhir_base``, then build the client."""
        config = await fetch_smart_configuration(
            http,
            fhir_base,
            purpose="backend",
            allow_insecure_http=bool(options.get("allow_insecure_http", False)),
        )
        if not config.supports_auth_method("private_key_jwt"):
            raise ConfigurationError(f"{fhir_base} does not accept private_key_jwt client authentication")
        return cls(
            http,
            token_url=config.token_endpoint,
            client_id=client_id,
            keys=keys,
            scope=scope,
            server_algorithms=config.token_endpoint_auth_signing_alg_values_supported,
            **options,  # type: ignore[arg-type]
        )

    @property
    def client_id(self) -> str:
        return self._auth.client_id

    def _fresh(self, token: TokenResponse | None) -> bool:
        return token is not None and not token.expired(self._clock(), self._margin)

    async def get_token(self) -> TokenResponse:
        """The cached token while it is fresh; otherwise a new one (one request even under concurrency)."""
        if self._fresh(self._token):
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._fresh(self._token):
                assert self._token is not None
                return self._token
            token = await request_token(
                self._http,
                self.token_url,
                {"grant_type": "client_credentials", "scope": str(self.scope)},
                auth=self._auth,
                requested_scope=self.scope,
                now=self._clock(),
                server_algorithms=self._server_algorithms,
            )
            if token.expires_in is None:
                token = dataclasses.replace(token, expires_in=DEFAULT_LIFETIME)
            self._token = token
            return token

    async def get_access_token(self) -> str:
        """Just the access token string."""
        return (await self.get_token()).access_token

    def invalidate(self, access_token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``access_token``, when given)."""
        if access_token is None or (self._token is not None and self._token.access_token == access_token):
            self._token = None

    def auth(self, fhir_base: str) -> BackendServicesAuth:
        """An ``httpx.Auth`` adding the bearer token to requests under ``fhir_base``."""
        return BackendServicesAuth(self, fhir_base)


class BackendServicesAuth(httpx.Auth):
    """Adds ``Authorization: Bearer`` from a :class:`BackendServicesClient` (async clients only).

    On a 401 the cached token is dropped and the request retried once with a new token (the server may
    have revoked it or its clock may run ahead of ours). Requests outside ``fhir_base`` go out without
    the token (A-API-1: never send it to another server).
    """

    def __init__(self, client: BackendServicesClient, fhir_base: str) -> None:
        self._client = client
        self._base = fhir_base

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise ConfigurationError("BackendServicesAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not within_base(request.url, self._base):
            yield request
            return
        token = await self._client.get_access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self._client.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await self._client.get_access_token()}"
            yield request
