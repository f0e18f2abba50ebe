"""The IG's conformance resources in the store: loaded at start-up, read-only through the API.

StructureDefinition, ValueSet and CodeSystem resources are the implementation guide's own: they change only
when ``profiles/`` is rebuilt, and the validator compiles them from ``profiles/generated/``, not from the
store, so a client editing them could only make the served copies lie about what is enforced. Hence:

- :func:`load_conformance_resources` writes each one with its IG id at start-up, as an update: unchanged
  content is a no-op (no new version), so restarts are idempotent;
- :func:`install_read_only_guard` refuses, before any route runs, every write to these types through the
  API: create, update, patch and delete on ``/fhir/{type}...`` answer **405** (the interaction is not
  allowed on that type; ``Allow: GET, HEAD``), and a batch/transaction Bundle with an entry that writes one
  answers **403** (the Bundle endpoint itself allows POST). Reads, searches (``GET`` and ``POST _search``)
  and ``$operations`` such as ``$validate`` pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from ..asgi import read_body, replay
from ..fhir.http import fhir_response, parse_json_once
from ..outcomes import issue, outcome
from ..store import jsonexact
from .ig import ImplementationGuide

__all__ = ["READ_ONLY_TYPES", "load_conformance_resources", "install_read_only_guard", "ReadOnlyGuard"]

READ_ONLY_TYPES = frozenset({"StructureDefinition", "ValueSet", "CodeSystem"})
_STATE_KEY = "conformance.ig-digest"
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def load_conformance_resources(repo: Any, ig: ImplementationGuide) -> int:
    """Store the IG's StructureDefinitions, ValueSets and CodeSystems; return how many versions were written.

    One transaction. A digest of the IG kept in the store's key-value state skips the work when nothing
    changed since the last load; otherwise each resource is an update, a no-op when its content is unchanged.
    The resources are SUSHI's output, checked by the IG build, so they skip the structural validation.
    """
    resources = sorted(ig.conformance_resources(), key=lambda r: (r["resourceType"], r["id"]))
    digest = hashlib.sha256(orjson.dumps(resources, option=orjson.OPT_SORT_KEYS)).hexdigest()
    written = 0
    with repo.unit() as uow:
        if uow.get_state(_STATE_KEY) == digest:
            return 0
        for resource in resources:
            result = uow.update(resource["resourceType"], resource["id"], resource, validated=True)
            written += int(result.changed)
        uow.set_state(_STATE_KEY, digest)
    return written


def _first_segment(url: str) -> str:
    path = url.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    for part in parts:  # absolute URLs: the first segment that is a read-only type
        if part in READ_ONLY_TYPES:
            return part
    return parts[0] if parts else ""


def _bundle_writes_read_only(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        return None
    for n, entry in enumerate(body.get("entry") or []):
        if not isinstance(entry, dict):
            continue
        raw_request = entry.get("request")
        request: dict[str, Any] = raw_request if isinstance(raw_request, dict) else {}
        method = str(request.get("method", "")).upper()
        if method not in _WRITE_METHODS:
            continue
        resource = entry.get("resource")
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        rtype = rtype if isinstance(rtype, str) else None  # a malformed entry: the route answers 400
        target = rtype if rtype in READ_ONLY_TYPES else _first_segment(str(request.get("url", "")))
        if target in READ_ONLY_TYPES and not str(request.get("url", "")).split("?")[0].rstrip("/").endswith(
            "_search"
        ):
            return f"Bundle.entry[{n}]"
    return None


class ReadOnlyGuard:
    """ASGI middleware: refuses API writes of the IG's conformance resources (see the module docstring)."""

    def __init__(self, app: ASGIApp, prefix: str = "/fhir", max_body_bytes: int = 10 * 1024 * 1024) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        parts = [p for p in path[len(self.prefix) :].split("/") if p]
        if parts and parts[0] in READ_ONLY_TYPES:
            is_operation = any(p.startswith("$") for p in parts[1:])
            is_search = len(parts) == 2 and parts[1] == "_search" and scope["method"] == "POST"
            if not (is_operation or is_search):
                body = outcome(
                    [
                        issue(
                            "not-supported",
                            f"{parts[0]} resources are the implementation guide's and "
                            "are read-only here; change them in profiles/ and rebuild",
                            expression=parts[0],
                        )
                    ]
                )
                await fhir_response(body, 405, {"Allow": "GET, HEAD"})(scope, receive, send)
                return
        if not parts and scope["method"] == "POST":
            await self._bundle(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _bundle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw, fits = await read_body(receive, self.max_body_bytes)
        where = None
        if fits:
            try:  # parsed once: the route takes the parsed body from the scope (parse_json_once)
                where = _bundle_writes_read_only(parse_json_once(scope, raw))
            except jsonexact.JSONDecodeError:
                where = None  # the route answers the malformed body
        else:
            body = outcome(
                [issue("too-long", f"the request body is larger than {self.max_body_bytes} bytes")]
            )
            await fhir_response(body, 413)(scope, receive, send)
            return
        if where is not None:
            body = outcome(
                [
                    issue(
                        "forbidden",
                        "StructureDefinition, ValueSet and CodeSystem resources are the "
                        "implementation guide's and are read-only here",
                        expression=where,
                    )
                ]
            )
            await fhir_response(body, 403)(scope, receive, send)
            return
        await self.app(scope, replay(raw, receive), send)


def install_read_only_guard(app: Any, prefix: str = "/fhir", max_body_bytes: int = 10 * 1024 * 1024) -> None:
    """Add :class:`ReadOnlyGuard` to a FastAPI/Starlette ``app``."""
    app.add_middleware(ReadOnlyGuard, prefix=prefix, max_body_bytes=max_body_bytes)
