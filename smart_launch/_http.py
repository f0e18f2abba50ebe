"""The HTTP boundary: every outbound call of ``smart_launch`` goes through here.

httpx errors are translated once, into :class:`~smart_launch.errors.EhrUnavailableError`, so callers never
see an httpx exception. Transport security is checked here too (SMART App Launch, app-launch.md: "Apps
SHALL ensure that ... transmission is ONLY to authenticated servers, over TLS-secured channels"); plain
``http`` is accepted only for loopback hosts (tests, a sandbox EHR on the same machine) unless the
caller opts in explicitly.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import ConfigurationError, EhrUnavailableError

__all__ = ["ensure_secure_url", "get", "parse_json_object", "post_form"]

_JSON_ACCEPT = {"Accept": "application/json"}


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ensure_secure_url(url: str, *, allow_insecure_http: bool = False, what: str = "URL") -> str:
    """Return ``url`` if it is absolute ``https`` (or ``http`` to a loopback host); else raise.

    Raises :class:`ConfigurationError`; callers that receive URLs from a server re-raise it as their own
    error type where that reads better.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"{what} {url!r} is not a valid URL") from exc
    if parsed.scheme == "https" and parsed.host:
        return url
    if parsed.scheme == "http" and parsed.host and (allow_insecure_http or _is_loopback(parsed.host)):
        return url
    raise ConfigurationError(f"{what} {url!r} must be an absolute https URL (TLS is required)")


async def _send(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        # Never follow redirects: a token request must not be re-sent to wherever a 3xx points, and
        # discovery is defined at one exact URL.
        return await http.send(request, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise EhrUnavailableError(
            f"the EHR at {request.url} did not answer in time ({type(exc).__name__})", url=str(request.url)
        ) from exc
    except httpx.HTTPError as exc:
        raise EhrUnavailableError(
            f"the EHR at {request.url} could not be reached ({type(exc).__name__}: {exc})",
            url=str(request.url),
        ) from exc


async def get(http: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET ``url`` asking for JSON."""
    return await _send(http, http.build_request("GET", url, headers=_JSON_ACCEPT))


async def post_form(
    http: httpx.AsyncClient,
    url: str,
    data: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST ``data`` as ``application/x-www-form-urlencoded`` asking for JSON."""
    all_headers = {**_JSON_ACCEPT, **(headers or {})}
    return await _send(http, http.build_request("POST", url, data=dict(data), headers=all_headers))


def parse_json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or ``None`` when it is not one (whatever the Content-Type)."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None
