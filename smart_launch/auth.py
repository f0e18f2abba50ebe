"""``httpx.Auth`` that attaches a SMART access token to FHIR requests.

app-launch.md, "Access FHIR API": the app "issues a request that includes an Authorization header that
presents the access_token as a Bearer token". The token is attached only to requests under the FHIR
base it was issued for: it must not be sent to other servers (e.g. by following an absolute reference,
or to a Bulk Data file host whose manifest says ``requiresAccessToken: false``).
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from .errors import ConfigurationError

__all__ = ["BearerAuth", "within_base"]


def within_base(url: httpx.URL, fhir_base: str) -> bool:
    """Whether ``url`` is ``fhir_base`` or below it (same scheme, host, port and path prefix)."""
    base = httpx.URL(fhir_base.rstrip("/") + "/")
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return False
    path = url.path if url.path.endswith("/") else url.path + "/"
    return path.startswith(base.path)


class BearerAuth(httpx.Auth):
    """Attach ``Authorization: Bearer <token>`` to requests under ``fhir_base`` only.

    Usage: ``httpx.AsyncClient(auth=BearerAuth(result.token.access_token, result.iss))``.
    """

    def __init__(self, access_token: str, fhir_base: str) -> None:
        if not access_token:
            raise ConfigurationError("BearerAuth needs an access token")
        self._token = access_token
        self._base = fhir_base

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if within_base(request.url, self._base):
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
