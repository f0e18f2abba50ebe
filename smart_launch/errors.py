"""The one error hierarchy of ``smart_launch``.

Every failure this package reports is a :class:`SmartError`; foreign errors (httpx, joserfc, JSON) are
translated once, at the boundary where they happen, and chained with ``from exc``::

    SmartError
    ├── ConfigurationError        the caller's set-up is wrong (unregistered redirect_uri, unusable key, ...)
    ├── LaunchError               a launch request the app must not act on
    │   └── UntrustedIssuerError  ``iss`` is not on the app's allow-list of registered EHRs
    ├── EhrUnavailableError       the EHR could not be reached (connection refused, DNS, timeout, TLS)
    ├── DiscoveryError            ``.well-known/smart-configuration`` is missing, malformed or unsafe
    ├── StateError                the ``state`` on the redirect cannot be trusted
    │   ├── UnknownStateError     missing, or never issued by us
    │   ├── ReplayedStateError    already used once
    │   ├── ExpiredStateError     issued too long ago
    │   └── SessionMismatchError  issued to another browser session
    ├── OAuthError                an OAuth 2.0 error response (carries ``error`` / ``error_description``)
    │   ├── AuthorizationError    ``error=`` on the redirect, or a redirect with neither code nor error
    │   └── TokenError            the token endpoint refused, failed or answered nonsense
    ├── IdTokenError              the OpenID Connect id_token failed validation
    └── ScopeError                a scope string is invalid (strict parsing) or exceeds what was granted
"""

from __future__ import annotations

__all__ = [
    "AuthorizationError",
    "ConfigurationError",
    "DiscoveryError",
    "EhrUnavailableError",
    "ExpiredStateError",
    "IdTokenError",
    "LaunchError",
    "OAuthError",
    "ReplayedStateError",
    "ScopeError",
    "SessionMismatchError",
    "SmartError",
    "StateError",
    "TokenError",
    "UnknownStateError",
    "UntrustedIssuerError",
]


class SmartError(Exception):
    """Base class of every error raised by ``smart_launch``."""


class ConfigurationError(SmartError):
    """The app's own configuration or arguments are unusable (a programming or deployment error)."""


class LaunchError(SmartError):
    """A launch request (``GET {launch_url}?iss=...&launch=...``) that the app must not act on."""


class UntrustedIssuerError(LaunchError):
    """``iss`` is not a registered EHR.

    app-launch.md, "App Protection": ``iss`` is attacker-controllable, so the app only proceeds for an
    issuer it is registered with and never sends a secret or an assertion to an unknown one.
    """

    def __init__(self, iss: str) -> None:
        super().__init__(f"issuer {iss!r} is not a registered EHR; refusing to launch")
        self.iss = iss


class EhrUnavailableError(SmartError):
    """The EHR (FHIR or authorization server) could not be reached at all."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class DiscoveryError(SmartError):
    """The SMART configuration document is unavailable, malformed or fails a required check."""


class StateError(SmartError):
    """The ``state`` returned to the redirect URI cannot be trusted.

    app-launch.md: "The app SHALL validate the value of the state parameter upon return to the redirect
    URL and SHALL ensure that the state value is securely tied to the user's current session."
    """


class UnknownStateError(StateError):
    """The redirect carried no ``state``, or one this app never issued (or has long forgotten)."""


class ReplayedStateError(StateError):
    """The ``state`` was already consumed by an earlier redirect: it is single use."""


class ExpiredStateError(StateError):
    """The ``state`` is older than the app's authorization-request lifetime."""


class SessionMismatchError(StateError):
    """The ``state`` belongs to a different browser session (a login-CSRF attempt or a shared link)."""


class OAuthError(SmartError):
    """An OAuth 2.0 error response (RFC 6749 §4.1.2.1 and §5.2).

    ``error`` is the registered error code (``invalid_grant``, ``access_denied``, ...) when the server sent
    one, ``error_description`` and ``error_uri`` its optional human-readable companions.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri


class AuthorizationError(OAuthError):
    """The authorization server redirected back with ``error=...`` (or with neither code nor error)."""


class TokenError(OAuthError):
    """The token endpoint refused the request, failed, or answered with an unusable body.

    ``status_code`` is the HTTP status when a response arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        super().__init__(message, error=error, error_description=error_description, error_uri=error_uri)
        self.status_code = status_code


class IdTokenError(SmartError):
    """The id_token failed OpenID Connect Core §3.1.3.7 validation."""


class ScopeError(SmartError):
    """A scope string is not valid SMART/OIDC syntax, or a request exceeds the granted scopes."""
