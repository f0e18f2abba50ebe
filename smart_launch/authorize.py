"""The authorization request (the browser redirect to the EHR's ``authorization_endpoint``).

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#obtain-authorization-code

:func:`build_authorization_request` is pure: every random value (state, PKCE verifier, nonce) is made by
the caller and passed in, so the result is fully determined by its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode

from .discovery import SmartConfiguration
from .errors import DiscoveryError
from .pkce import code_challenge_s256
from .scopes import ScopeSet

__all__ = ["AuthorizationRedirect", "build_authorization_request"]


@dataclass(frozen=True, slots=True)
class AuthorizationRedirect:
    """Where to send the browser: GET ``url``, or POST ``params`` as a form to ``endpoint``.

    app-launch.md: "Clients SHALL use either the HTTP GET or the HTTP POST method"; POST (form
    serialization) only when the server advertises ``authorize-post``.
    """

    endpoint: str
    params: Mapping[str, str]
    method: Literal["GET", "POST"] = "GET"

    @property
    def url(self) -> str:
        """The GET URL: the endpoint with the parameters added to any query it already has."""
        separator = "&" if "?" in self.endpoint else "?"
        return self.endpoint + separator + urlencode(self.params, quote_via=quote)

    @property
    def state(self) -> str:
        return self.params["state"]


def build_authorization_request(
    config: SmartConfiguration,
    *,
    client_id: str,
    redirect_uri: str,
    scope: ScopeSet,
    state: str,
    code_verifier: str,
    aud: str,
    launch: str | None = None,
    nonce: str | None = None,
    prefer_post: bool = False,
) -> AuthorizationRedirect:
    """The authorization request parameters (app-launch.md, "Request"):

    ``response_type=code``; ``client_id``; ``redirect_uri`` (a registered one -- the caller checks);
    ``launch`` exactly as received, in an EHR launch only; ``scope``; ``state``; ``aud`` = the FHIR base
    (in an EHR launch, ``iss`` unchanged); ``code_challenge`` = S256 of the verifier and
    ``code_challenge_method=S256`` ("PKCE is mandatory", never ``plain``); ``nonce`` when given
    (OIDC, with ``openid``). No ``max_age`` or ``auth_time`` is ever sent (A-AUTH-10).
    """
    if config.authorization_endpoint is None:
        raise DiscoveryError("the server has no authorization_endpoint; it cannot run a user launch")
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
    }
    if launch is not None:
        params["launch"] = launch
    params.update(
        scope=str(scope),
        state=state,
        aud=aud,
        code_challenge=code_challenge_s256(code_verifier),
        code_challenge_method="S256",
    )
    if nonce is not None:
        params["nonce"] = nonce
    method: Literal["GET", "POST"] = "POST" if prefer_post and config.supports("authorize-post") else "GET"
    return AuthorizationRedirect(endpoint=config.authorization_endpoint, params=params, method=method)
