"""The SMART App Launch client: EHR and standalone launch, callback, token exchange, refresh.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html

A web adapter (FastAPI or anything else) drives it with three calls::

    client = SmartLaunchClient(http, registrations, state_store)
    redirect = await client.begin_ehr_launch(request.query, session_id=sid, scope=SCOPE)   # launch URL
    result = await client.handle_callback(request.query, session_id=sid)                  # redirect URL
    result = await client.refresh(result)                                                 # later

and keeps ``result`` in server-side session storage (app-launch.md: apps "SHALL NOT store bearer tokens
in cookies that are transmitted as clear text").
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from . import _http
from .auth import BearerAuth
from .authorize import AuthorizationRedirect, build_authorization_request
from .client_auth import ClientAuthentication
from .discovery import SmartConfiguration, fetch_smart_configuration, parse_smart_configuration
from .errors import (
    AuthorizationError,
    ConfigurationError,
    DiscoveryError,
    IdTokenError,
    LaunchError,
    ScopeError,
    TokenError,
    UntrustedIssuerError,
)
from .id_token import IdTokenClaims, IdTokenVerifier
from .pkce import generate_pkce
from .scopes import ScopeSet
from .state import PendingAuthorization, StateStore, consume_state, new_state, save_pending
from .token_endpoint import request_token
from .tokens import TokenResponse, merge_refreshed

__all__ = ["ClientRegistration", "LaunchResult", "SmartLaunchClient"]

#: How long the user has to finish logging in at the EHR before ``state`` expires.
DEFAULT_STATE_LIFETIME = 600.0


def _issuer_key(iss: str) -> str:
    return iss.rstrip("/")


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """The app's registration with one EHR (app-launch.md, "Register App with EHR").

    ``iss`` is the EHR's FHIR base URL; ``auth`` the client type and credentials; ``redirect_uris`` the
    fixed, fully-specified redirect URIs registered there (the first is the default).
    """

    iss: str
    auth: ClientAuthentication
    redirect_uris: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.redirect_uris:
            raise ConfigurationError("a registration needs at least one redirect_uri")
        for uri in self.redirect_uris:
            _http.ensure_secure_url(uri, what="redirect_uri")

    @property
    def client_id(self) -> str:
        return self.auth.client_id


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """A completed launch: the tokens, the launch context, and the verified user identity."""

    iss: str
    client_id: str
    token: TokenResponse
    configuration: SmartConfiguration = field(repr=False)
    id_token: IdTokenClaims | None = None
    launch: str | None = None

    @property
    def scope(self) -> ScopeSet:
        """The *granted* scope; base behaviour on this, not on what was requested."""
        return self.token.scope

    @property
    def patient(self) -> str | None:
        return self.token.patient

    @property
    def encounter(self) -> str | None:
        return self.token.encounter

    @property
    def fhir_user(self) -> str | None:
        """The verified ``fhirUser`` as an absolute URL, when ``openid fhirUser`` was granted."""
        return None if self.id_token is None else self.id_token.fhir_user_url(self.iss)

    def auth(self) -> BearerAuth:
        """An ``httpx.Auth`` presenting the access token to this launch's FHIR server only."""
        return BearerAuth(self.token.access_token, self.iss)


class SmartLaunchClient:
    """Runs SMART launches against the EHRs in ``registrations`` (the allow-list of issuers).

    ``http`` is the one injected ``httpx.AsyncClient`` for discovery, token and JWKS calls; ``state_store``
    keeps pending authorizations; ``clock`` returns epoch seconds (injectable for tests).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        registrations: Iterable[ClientRegistration],
        state_store: StateStore,
        *,
        clock: Callable[[], float] = time.time,
        state_lifetime: float = DEFAULT_STATE_LIFETIME,
        id_token_leeway: int = 60,
        allow_insecure_http: bool = False,
    ) -> None:
        self._http = http
        self._registrations = {_issuer_key(r.iss): r for r in registrations}
        if not self._registrations:
            raise ConfigurationError("register the app with at least one EHR")
        self._store = state_store
        self._clock = clock
        self._state_lifetime = state_lifetime
        self._allow_insecure_http = allow_insecure_http
        self._verifier = IdTokenVerifier(
            http, clock=clock, leeway=id_token_leeway, allow_insecure_http=allow_insecure_http
        )

    def registration_for(self, iss: str) -> ClientRegistration:
        """The registration for ``iss``, or :class:`UntrustedIssuerError` (A-EHR-2: allow-list only)."""
        registration = self._registrations.get(_issuer_key(iss))
        if registration is None:
            raise UntrustedIssuerError(iss)
        return registration

    async def discover(self, iss: str) -> SmartConfiguration:
        """Discovery for a registered ``iss`` (an unknown one is refused before any request is sent)."""
        self.registration_for(iss)
        return await fetch_smart_configuration(self._http, iss, allow_insecure_http=self._allow_insecure_http)

    async def authorize(
        self,
        iss: str,
        *,
        session_id: str,
        scope: str | Iterable[str] | ScopeSet,
        launch: str | None = None,
        redirect_uri: str | None = None,
        prefer_post: bool = False,
    ) -> AuthorizationRedirect:
        """Start a launch: discover, create state/PKCE/nonce, remember them, return the redirect.

        With ``launch`` (EHR launch) the ``launch`` scope is added if missing (A-EHR-3) and the value is
        echoed unchanged; without it this is a standalone launch. ``aud`` is ``iss`` exactly.
        """
        registration = self.registration_for(iss)
        if launch is not None and not launch:
            raise LaunchError("an EHR launch needs a non-empty 'launch' value")
        chosen_redirect = redirect_uri or registration.redirect_uris[0]
        if chosen_redirect not in registration.redirect_uris:
            raise ConfigurationError(f"redirect_uri {chosen_redirect!r} is not registered with {iss}")
        scopes = scope if isinstance(scope, ScopeSet) else ScopeSet.parse(scope)
        if launch is not None and not scopes.ehr_launch:
            scopes = scopes.with_scopes("launch")
        if not len(scopes):
            raise ConfigurationError("scope is required; request the minimum the app needs")

        config = await self.discover(iss)
        method = registration.auth.method
        if method != "none" and not config.supports_auth_method(method):
            raise DiscoveryError(f"{iss} does not accept {method!r} at its token endpoint")

        pkce = generate_pkce()
        state = new_state()
        nonce = secrets.token_urlsafe(32) if scopes.openid else None
        now = self._clock()
        redirect = build_authorization_request(
            config,
            client_id=registration.client_id,
            redirect_uri=chosen_redirect,
            scope=scopes,
            state=state,
            code_verifier=pkce.verifier,
            aud=iss,
            launch=launch,
            nonce=nonce,
            prefer_post=prefer_post,
        )
        await save_pending(
            self._store,
            PendingAuthorization(
                state=state,
                session_id=session_id,
                iss=iss,
                client_id=registration.client_id,
                redirect_uri=chosen_redirect,
                code_verifier=pkce.verifier,
                scope=str(scopes),
                created_at=now,
                expires_at=now + self._state_lifetime,
                launch=launch,
                nonce=nonce,
                configuration=dict(config.raw),
            ),
        )
        return redirect

    async def begin_ehr_launch(
        self,
        query: Mapping[str, str],
        *,
        session_id: str,
        scope: str | Iterable[str] | ScopeSet,
        redirect_uri: str | None = None,
        prefer_post: bool = False,
    ) -> AuthorizationRedirect:
        """Handle ``GET {launch_url}?iss=...&launch=...`` (A-EHR-1: both are required)."""
        iss, launch = query.get("iss"), query.get("launch")
        if not iss or not launch:
            raise LaunchError("an EHR launch needs both 'iss' and 'launch' parameters")
        return await self.authorize(
            iss,
            session_id=session_id,
            scope=scope,
            launch=launch,
            redirect_uri=redirect_uri,
            prefer_post=prefer_post,
        )

    async def handle_callback(self, params: Mapping[str, str], *, session_id: str) -> LaunchResult:
        """Handle the redirect: check ``state``, surface ``error=``, exchange the code, check the id_token.

        Order matters: ``state`` is validated first (an injected error response must not be believed),
        then an OAuth ``error`` is raised as :class:`AuthorizationError`, then the code is exchanged at
        once (codes live about a minute, A-CB-4).
        """
        now = self._clock()
        pending = await consume_state(self._store, params.get("state"), session_id=session_id, now=now)
        if params.get("error"):
            raise AuthorizationError(
                f"the EHR refused authorization: {params['error']}"
                + (f" - {params['error_description']}" if params.get("error_description") else ""),
                error=params["error"],
                error_description=params.get("error_description"),
                error_uri=params.get("error_uri"),
            )
        code = params.get("code")
        if not code:
            raise AuthorizationError(
                "the redirect carried neither 'code' nor 'error'", error="invalid_request"
            )
        config = parse_smart_configuration(pending.configuration, pending.iss)
        callback_iss = params.get("iss")
        if config.authorization_response_iss_parameter_supported and callback_iss != config.issuer:
            # RFC 9207: a mismatched issuer on the redirect means an authorization-server mix-up.
            raise AuthorizationError(f"the redirect's iss {callback_iss!r} is not {config.issuer!r}")

        registration = self.registration_for(pending.iss)
        if registration.client_id != pending.client_id:
            raise ConfigurationError("the app's registration with this EHR changed during the launch")
        requested = ScopeSet.parse(pending.scope)
        token = await request_token(
            self._http,
            config.token_endpoint,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_uri,
                "code_verifier": pending.code_verifier,
            },
            auth=registration.auth,
            requested_scope=requested,
            now=self._clock(),
            server_algorithms=config.token_endpoint_auth_signing_alg_values_supported,
        )
        claims = await self._identity(token, config, registration.client_id, pending.nonce, requested)
        return LaunchResult(
            iss=pending.iss,
            client_id=registration.client_id,
            token=token,
            configuration=config,
            id_token=claims,
            launch=pending.launch,
        )

    async def _identity(
        self,
        token: TokenResponse,
        config: SmartConfiguration,
        client_id: str,
        nonce: str | None,
        requested: ScopeSet,
    ) -> IdTokenClaims | None:
        if not requested.openid:
            return None  # an id_token we did not ask for is not trusted, so not exposed either
        if token.id_token is None:
            if token.scope.openid:
                raise IdTokenError("'openid' was granted but the token response has no id_token")
            return None
        return await self._verifier.verify(token.id_token, config=config, client_id=client_id, nonce=nonce)

    async def refresh(
        self, result: LaunchResult, *, scope: str | Iterable[str] | None = None
    ) -> LaunchResult:
        """Get a new access token with the refresh token (app-launch.md, "Refresh access token").

        ``scope``, when given, must not exceed what was granted ("no new permissions can be obtained at
        refresh time"). A new ``refresh_token`` replaces the old one; when none is returned the old one is
        kept. A confidential client authenticates exactly as for the code exchange.
        """
        if not result.token.refresh_token:
            raise TokenError("no refresh_token was issued; request offline_access or online_access")
        registration = self.registration_for(result.iss)
        form = {"grant_type": "refresh_token", "refresh_token": result.token.refresh_token}
        requested = result.token.scope
        if scope is not None:
            narrower = ScopeSet.parse(scope)
            if not result.token.scope.covers(narrower):
                raise ScopeError(
                    f"refresh scope {str(narrower)!r} exceeds the granted {str(result.token.scope)!r}"
                )
            form["scope"] = str(narrower)
            requested = narrower
        refreshed = await request_token(
            self._http,
            result.configuration.token_endpoint,
            form,
            auth=registration.auth,
            requested_scope=requested,
            now=self._clock(),
            server_algorithms=result.configuration.token_endpoint_auth_signing_alg_values_supported,
        )
        claims = result.id_token
        if refreshed.id_token is not None and result.token.requested_scope.openid:
            # OIDC Core §12.2: a refreshed id_token carries no nonce; everything else is checked again.
            claims = await self._verifier.verify(
                refreshed.id_token, config=result.configuration, client_id=registration.client_id, nonce=None
            )
        return dataclasses.replace(
            result,
            # requested_scope stays what the launch asked for; scope is what the server now grants.
            token=dataclasses.replace(
                merge_refreshed(result.token, refreshed), requested_scope=result.token.requested_scope
            ),
            id_token=claims,
        )
