"""SMART App Launch 2.2 client library, free of any web framework.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/

Pieces (pure functions unless noted):

- :mod:`~smart_launch.discovery` -- ``.well-known/smart-configuration`` (fetch: one HTTP call)
- :mod:`~smart_launch.pkce`, :mod:`~smart_launch.state` -- PKCE S256; single-use, session-bound state in
  a caller-provided :class:`StateStore`
- :mod:`~smart_launch.authorize` -- the authorization request
- :mod:`~smart_launch.client` -- :class:`SmartLaunchClient`, EHR/standalone launch, callback, refresh (I/O)
- :mod:`~smart_launch.client_auth`, :mod:`~smart_launch.keys` -- public, ``client_secret_basic`` and
  ``private_key_jwt`` (RS384/ES384) client authentication; the app's JWKS
- :mod:`~smart_launch.tokens`, :mod:`~smart_launch.id_token` -- token responses, launch context, id_token
- :mod:`~smart_launch.scopes` -- v1/v2 scopes and :class:`ScopeSet` authorization questions
- :mod:`~smart_launch.backend` -- Backend Services token client and ``httpx.Auth`` (I/O)

Outbound HTTP only goes through an injected ``httpx.AsyncClient``. Errors (see :mod:`~smart_launch.errors`)::

    SmartError
    ├── ConfigurationError
    ├── LaunchError ── UntrustedIssuerError
    ├── EhrUnavailableError
    ├── DiscoveryError
    ├── StateError ── UnknownStateError, ReplayedStateError, ExpiredStateError, SessionMismatchError
    ├── OAuthError ── AuthorizationError, TokenError
    ├── IdTokenError
    └── ScopeError
"""

from .auth import BearerAuth
from .authorize import AuthorizationRedirect, build_authorization_request
from .backend import BackendServicesAuth, BackendServicesClient
from .client import ClientRegistration, LaunchResult, SmartLaunchClient
from .client_auth import (
    CLIENT_ASSERTION_TYPE,
    ClientAuthentication,
    ClientSecretBasic,
    PrivateKeyJwt,
    PublicClient,
    build_client_assertion,
)
from .discovery import SmartConfiguration, discovery_url, fetch_smart_configuration, parse_smart_configuration
from .errors import (
    AuthorizationError,
    ConfigurationError,
    DiscoveryError,
    EhrUnavailableError,
    ExpiredStateError,
    IdTokenError,
    LaunchError,
    OAuthError,
    ReplayedStateError,
    ScopeError,
    SessionMismatchError,
    SmartError,
    StateError,
    TokenError,
    UnknownStateError,
    UntrustedIssuerError,
)
from .id_token import IdTokenClaims, IdTokenVerifier, validate_id_token
from .keys import SIGNING_ALGORITHMS, ClientKeySet, generate_private_jwks
from .pkce import PkcePair, code_challenge_s256, generate_pkce
from .scopes import INTERACTION_CODES, LaunchScope, ResourceScope, ScopeDecision, ScopeSet, interaction_code
from .state import InMemoryStateStore, PendingAuthorization, StateStore
from .tokens import FhirContextItem, TokenResponse, parse_token_response

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "INTERACTION_CODES",
    "SIGNING_ALGORITHMS",
    "AuthorizationError",
    "AuthorizationRedirect",
    "BackendServicesAuth",
    "BackendServicesClient",
    "BearerAuth",
    "ClientAuthentication",
    "ClientKeySet",
    "ClientRegistration",
    "ClientSecretBasic",
    "ConfigurationError",
    "DiscoveryError",
    "EhrUnavailableError",
    "ExpiredStateError",
    "FhirContextItem",
    "IdTokenClaims",
    "IdTokenError",
    "IdTokenVerifier",
    "InMemoryStateStore",
    "LaunchError",
    "LaunchResult",
    "LaunchScope",
    "OAuthError",
    "PendingAuthorization",
    "PkcePair",
    "PrivateKeyJwt",
    "PublicClient",
    "ReplayedStateError",
    "ResourceScope",
    "ScopeDecision",
    "ScopeError",
    "ScopeSet",
    "SessionMismatchError",
    "SmartConfiguration",
    "SmartError",
    "SmartLaunchClient",
    "StateError",
    "StateStore",
    "TokenError",
    "TokenResponse",
    "UnknownStateError",
    "UntrustedIssuerError",
    "build_authorization_request",
    "build_client_assertion",
    "code_challenge_s256",
    "discovery_url",
    "fetch_smart_configuration",
    "generate_pkce",
    "generate_private_jwks",
    "interaction_code",
    "parse_smart_configuration",
    "parse_token_response",
    "validate_id_token",
]
