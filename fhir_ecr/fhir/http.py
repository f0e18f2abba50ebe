"""HTTP details of the FHIR REST API: media types, bodies, ETags, ``Prefer``, responses.

https://hl7.org/fhir/R4/http.html: JSON is ``application/fhir+json``; ``_format`` overrides ``Accept``; version
ids travel as weak ETags ``W/"n"``; ``Prefer: return=minimal|representation|OperationOutcome`` chooses the body
of a write's response; ``Prefer: handling=strict`` makes unknown search parameters an error.

Bodies are read with the size limit (``MECR_MAX_BODY_BYTES``, 413), which the edge middleware
(:class:`fhir_ecr.asgi.RequestGuard`) also enforces for every other body; ids in the URL follow the FHIR id rule
(https://hl7.org/fhir/R4/datatypes.html#id: 1-64 of ``A-Z a-z 0-9 - .``) or are refused with 400; a NUL character
in a JSON body is refused with 400 (no FHIR string may hold one).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from ..outcomes import bad_request, not_found, not_supported, outcome, too_large
from ..store import jsonexact
from ..store.validation import is_fhir_id

__all__ = [
    "FHIR_JSON",
    "fhir_response",
    "read_json_body",
    "parse_json_once",
    "read_form_body",
    "check_id",
    "check_version",
    "parse_etag",
    "prefer",
    "check_format",
    "resource_headers",
]

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
_PATCH_TYPES = {"application/json-patch+json"}
_XML_FORMATS = {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
_JSON_FORMATS = {"json", *_JSON_TYPES}


def fhir_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, pretty: bool = False
) -> Response:
    """A response with a FHIR JSON body (or no body when ``body`` is None); numbers are written exactly as they
    were read (:mod:`fhir_ecr.store.jsonexact`)."""
    if body is None:
        return Response(status_code=status, headers=headers)
    option = orjson.OPT_INDENT_2 if pretty else 0
    return Response(
        content=jsonexact.dumps(body, option=option),
        status_code=status,
        media_type=f"{FHIR_JSON}; charset=utf-8",
        headers=headers,
    )


def check_format(request: Request) -> None:
    """Refuse (406) a request that asks for XML only, through ``_format`` or ``Accept``."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        base = fmt.split(";")[0].strip().lower()
        if base in _XML_FORMATS:
            raise not_supported("this server speaks FHIR JSON only (_format=json)", 406)
        if base not in _JSON_FORMATS:
            raise not_supported(f"unknown _format {fmt!r}", 406)
        return
    accept = request.headers.get("accept", "")
    if not accept:
        return
    kinds = [a.split(";")[0].strip().lower() for a in accept.split(",")]
    if kinds and all(k in _XML_FORMATS for k in kinds):
        raise not_supported("this server speaks FHIR JSON only; ask for application/fhir+json", 406)


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    """The whole body; 413 as soon as it is (or says it is) larger than ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"the body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"the body is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


#: Where :func:`parse_json_once` leaves a request body it parsed (in the ASGI scope's ``state``), with its text.
_PARSED = "mecr.parsed_body"


def parse_json_once(scope: MutableMapping[str, Any], raw: bytes) -> Any:
    """``raw`` parsed as :func:`read_json_body` parses it, and kept in the request's ``scope`` so that the route's
    :func:`read_json_body` of the same body does not parse it again. For middleware that must look into a body
    before the route (:class:`fhir_ecr.conformance.ReadOnlyGuard`): a transaction of 500 Observations takes 0.6 ms
    to parse alone and about 3 ms of the event loop in a busy server (docs/benchmarks.md, sixth pass). Raises
    :data:`jsonexact.JSONDecodeError` (nothing kept) when it is not JSON. The route takes it over: a route may
    change what it parsed (a transaction rewrites its references in place), so it is not handed out twice."""
    parsed = jsonexact.loads(raw)
    scope.setdefault("state", {})[_PARSED] = (raw, parsed)
    return parsed


async def read_json_body(request: Request, max_bytes: int, *, patch: bool = False) -> Any:
    """The request body parsed as JSON (numbers kept exactly, :mod:`fhir_ecr.store.jsonexact`); 413 when too
    large, 415 for a non-JSON media type, 400 when malformed or when a string in it holds a NUL character."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = _PATCH_TYPES if patch else _JSON_TYPES
    if ctype and ctype not in allowed:
        if ctype in _XML_FORMATS:
            raise not_supported("XML bodies are not supported; send application/fhir+json", 415)
        if not (patch and ctype in _JSON_TYPES):
            raise not_supported(f"unsupported media type {ctype!r}", 415)
    raw = await _read_limited(request, max_bytes)
    if not raw.strip():
        raise bad_request("the request body is empty")
    kept = request.scope.get("state", {}).pop(_PARSED, None)
    try:
        parsed = kept[1] if kept is not None and kept[0] == raw else jsonexact.loads(raw)
    except jsonexact.JSONDecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if b"\\u0000" in raw and _holds_nul(
        parsed
    ):  # orjson refuses a raw NUL byte; only the escape can make one
        raise bad_request("the body holds a NUL character (U+0000), which no FHIR string may contain")
    return parsed


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


async def read_form_body(request: Request, max_bytes: int) -> str:
    """An ``application/x-www-form-urlencoded`` body as text (for ``parse_qsl``), with the body size limit."""
    return (await _read_limited(request, max_bytes)).decode("utf-8", errors="replace")


def check_id(rid: str) -> None:
    """Refuse (400) an id in the URL that breaks the FHIR id rule (https://hl7.org/fhir/R4/datatypes.html#id)."""
    if not is_fhir_id(rid):
        shown = rid if len(rid) <= 80 and rid.isprintable() else f"{rid[:40]!r}…"
        raise bad_request(f"{shown} is not a FHIR id: 1 to 64 of A-Z, a-z, 0-9, '-' and '.'")


_MAX_VERSION = 2**31 - 1


def check_version(rtype: str, rid: str, vid: str) -> None:
    """A version id that cannot exist (not a number, or past any integer the store holds) is unknown: 404."""
    if not (vid.isascii() and vid.isdigit()) or len(vid) > 10 or int(vid) > _MAX_VERSION:
        raise not_found(rtype, rid, vid[:20])


_ETAG = re.compile(r'^\s*(?:W/)?"?([A-Za-z0-9\-.]+)"?\s*$')


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    """The version number in an ``If-Match``-style header (``W/"3"``), or None when absent."""
    if value is None:
        return None
    m = _ETAG.match(value)
    if not m or not m.group(1).isdigit():
        raise bad_request(f'{header} must be a version ETag such as W/"3", not {value!r}')
    return int(m.group(1))


def prefer(request: Request) -> dict[str, str]:
    """The ``Prefer`` header's preferences, e.g. ``{"return": "minimal", "handling": "strict"}``."""
    out: dict[str, str] = {}
    for part in request.headers.get("prefer", "").split(","):
        for item in part.split(";"):
            key, _, value = item.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip().strip('"').lower()
    return out


def resource_headers(stored: Any, fhir_base: str, *, location: bool = False) -> dict[str, str]:
    """ETag and Last-Modified (and Location) for a stored version."""
    headers = {"ETag": stored.etag, "Last-Modified": stored.last_modified}
    if location:
        headers["Location"] = f"{fhir_base}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
    return headers


def write_body(stored: Any, preference: str | None, info: str) -> Any:
    """The body of a write's response under ``Prefer: return=…``."""
    if preference == "minimal":
        return None
    if preference == "operationoutcome":
        return outcome([{"severity": "information", "code": "informational", "diagnostics": info}])
    return stored.content
