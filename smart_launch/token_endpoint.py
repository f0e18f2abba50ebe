"""One POST to a token endpoint, with client authentication and RFC 6749 §5.2 error handling.

Used for the authorization-code exchange, refresh, and Backend Services ``client_credentials``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx

from . import _http
from .client_auth import ClientAuthentication
from .errors import TokenError
from .scopes import ScopeSet
from .tokens import TokenResponse, parse_token_response

__all__ = ["request_token"]

logger = logging.getLogger(__name__)


def _error_text(body: Mapping[str, object], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


async def request_token(
    http: httpx.AsyncClient,
    token_url: str,
    form: Mapping[str, str],
    *,
    auth: ClientAuthentication,
    requested_scope: ScopeSet,
    now: float,
    server_algorithms: frozenset[str] | None = None,
) -> TokenResponse:
    """POST ``form`` (``application/x-www-form-urlencoded``) to ``token_url`` and parse the answer.

    Raises :class:`TokenError` for an error status (carrying the OAuth ``error`` and
    ``error_description`` when the body has them), for a non-JSON body, and for a response that is
    not a valid token response; :class:`EhrUnavailableError` when the server cannot be reached.
    """
    body, headers = auth.apply(form, token_url=token_url, now=now, server_algorithms=server_algorithms)
    response = await _http.post_form(http, token_url, body, headers)
    document = _http.parse_json_object(response)
    if response.status_code != 200:
        if document is not None and isinstance(document.get("error"), str):
            error = str(document["error"])
            description = _error_text(document, "error_description")
            raise TokenError(
                f"token endpoint refused the request (HTTP {response.status_code}): {error}"
                + (f" - {description}" if description else ""),
                status_code=response.status_code,
                error=error,
                error_description=description,
                error_uri=_error_text(document, "error_uri"),
            )
        raise TokenError(
            f"token endpoint failed with HTTP {response.status_code}", status_code=response.status_code
        )
    if document is None:
        raise TokenError("token endpoint answered 200 without a JSON object body", status_code=200)
    if "no-store" not in response.headers.get("Cache-Control", ""):
        # app-launch.md: servers SHALL send "Cache-Control: no-store"; worth knowing, not worth failing.
        logger.warning("token response from %s lacks 'Cache-Control: no-store'", token_url)
    try:
        return parse_token_response(document, requested_scope=requested_scope, now=now)
    except TokenError as exc:
        exc.status_code = response.status_code
        raise
