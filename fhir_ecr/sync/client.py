"""Talking to an EMR's FHIR server: SMART Backend Services tokens, requests, search pages, NDJSON streams.

Every request goes through an injected ``httpx.AsyncClient`` and :class:`smart_launch.BackendServicesAuth`
(client_credentials + ``private_key_jwt`` with mECR's own keys; the token is cached until shortly before it
expires, and a 401 drops it and retries once with a new one). httpx's errors and the EMR's refusals are
translated here, once::

    EmrError
     ├── EmrUnavailable   a passing failure: no connection, a timeout, a dropped stream, 408, 429, 5xx, a token
     │                    endpoint that is down, a 401 that survives a new token; ``retry_after`` when the EMR
     │                    said (Retry-After) — try again later
     └── EmrRefused       the EMR refused this request for good (another 4xx): ``status`` and its
                          OperationOutcome — do not repeat it unchanged

No log line here carries a URL with its query or a resource: callers log counts, types and the EHR's registry id.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from smart_launch import BackendServicesClient, ClientKeySet, SmartError
from smart_launch.errors import EhrUnavailableError

from ..store import jsonexact

__all__ = ["EmrError", "EmrUnavailable", "EmrRefused", "EmrClient", "retry_after_seconds", "FHIR_JSON"]

log = logging.getLogger("mecr.sync")

FHIR_JSON = "application/fhir+json"
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})


class EmrError(Exception):
    """Something went wrong talking to the EMR (see the module docstring)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        outcome: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.retry_after = retry_after


class EmrUnavailable(EmrError):
    """A passing failure: retry later (after ``retry_after`` seconds when the EMR said)."""


class EmrRefused(EmrError):
    """A permanent refusal of this request."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _outcome(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = jsonexact.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None


def check(response: httpx.Response, what: str) -> httpx.Response:
    """``response`` if it is a success; else the EmrError it stands for."""
    status = response.status_code
    if status < 400:
        return response
    outcome = _outcome(response)
    retry = retry_after_seconds(response.headers.get("retry-after"))
    if status in _TRANSIENT or status == 401:
        raise EmrUnavailable(f"{what}: the EMR answered {status}", status, outcome, retry)
    raise EmrRefused(f"{what}: the EMR refused it ({status})", status, outcome)


@dataclass
class EmrClient:
    """One EMR's FHIR server, reached with ``http`` (its auth set to the EMR's Backend Services token)."""

    http: httpx.AsyncClient
    base: str
    ehr_id: str

    @classmethod
    async def connect(
        cls,
        http: httpx.AsyncClient,
        *,
        ehr_id: str,
        base: str,
        client_id: str,
        keys: ClientKeySet,
        scope: str,
        token_http: httpx.AsyncClient | None = None,
    ) -> EmrClient:
        """Discover the EMR's token endpoint and set ``http`` up to authenticate there (Backend Services)."""
        try:
            tokens = await BackendServicesClient.from_discovery(
                token_http or http, base, client_id=client_id, keys=keys, scope=scope
            )
        except EhrUnavailableError as exc:
            raise EmrUnavailable(f"EHR {ehr_id}: discovery failed ({type(exc).__name__})") from exc
        except SmartError as exc:
            raise EmrUnavailable(f"EHR {ehr_id}: {exc}") from exc
        http.auth = tokens.auth(base)
        return cls(http, base.rstrip("/"), ehr_id)

    def url(self, path: str) -> str:
        if not path:
            return self.base
        return path if "://" in path else f"{self.base}/{path.lstrip('/')}"

    async def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> httpx.Response:
        """One request; transport failures and refusals raised as :class:`EmrError` (a 412 is returned as is,
        for the caller to handle)."""
        all_headers = {"Accept": FHIR_JSON, **(headers or {})}
        content = None
        if json is not None:
            content = jsonexact.dumps(json)
            all_headers["Content-Type"] = FHIR_JSON
        try:
            response = await self.http.request(
                method, self.url(path), content=content, headers=all_headers, params=params
            )
        except httpx.TimeoutException as exc:
            raise EmrUnavailable(f"{what}: the EMR did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise EmrUnavailable(f"{what}: the EMR could not be reached ({type(exc).__name__})") from exc
        except SmartError as exc:  # the token endpoint failed (BackendServicesAuth)
            raise EmrUnavailable(f"{what}: no access token from the EMR ({type(exc).__name__})") from exc
        if response.status_code == 412:
            return response
        return check(response, what)

    async def get_json(
        self, path: str, *, what: str, params: Any = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self.send("GET", path, what=what, params=params, headers=headers)
        try:
            body = jsonexact.loads(response.content)
        except ValueError as exc:
            raise EmrUnavailable(f"{what}: the EMR's answer is not JSON") from exc
        if not isinstance(body, dict):
            raise EmrUnavailable(f"{what}: the EMR's answer is not a JSON object")
        return body

    async def lines(
        self, url: str, *, what: str, skip: int = 0, with_token: bool = True
    ) -> AsyncIterator[bytes]:
        """The non-empty lines of an NDJSON file, streamed (never the whole file in memory), after the first
        ``skip`` lines. A connection dropped mid-file raises EmrUnavailable. ``with_token=False``: the manifest
        said ``requiresAccessToken: false`` (Bulk Data: the client then does not send it)."""
        headers = {"Accept": "application/fhir+ndjson"}
        options: dict[str, Any] = {} if with_token else {"auth": None}
        try:
            async with self.http.stream("GET", self.url(url), headers=headers, **options) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check(response, what)
                seen = 0
                async for line in _split_lines(response.aiter_bytes()):
                    if not line.strip():
                        continue
                    seen += 1
                    if seen > skip:
                        yield line
        except httpx.TimeoutException as exc:
            raise EmrUnavailable(f"{what}: the download timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise EmrUnavailable(f"{what}: the download broke off ({type(exc).__name__})") from exc
        except SmartError as exc:
            raise EmrUnavailable(f"{what}: no access token from the EMR ({type(exc).__name__})") from exc


async def _split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    rest = b""
    async for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line
    if rest.strip():
        yield rest
