"""ASGI middleware that finds out who is calling, before any route runs.

For each HTTP request it sets ``scope["state"]["principal"]`` (and ``["session"]`` for a browser session):

- ``MECR_AUTH=off``: the developer principal (may do everything), but only for a request that arrived on a
  loopback address (``scope["server"]``, the local end of the connection): a server bound to another interface
  some way the start-up check did not see (``uvicorn --host 0.0.0.0``) answers everyone else 403;
- ``MECR_AUTH=external``: whatever an outer layer put there (the sandbox EHR's FHIR server);
- ``MECR_AUTH=on``: ``Authorization: Bearer <token>`` (a token mECR issued to a system client) or the
  ``mecr_session`` cookie. A bad or expired bearer token is a 401 at once. Unsafe methods authenticated by the
  cookie need the session's CSRF token (``X-CSRF-Token`` header, the ``csrf_token`` form field, or for a
  multipart upload the ``csrf_token`` query parameter) and, when the browser sends ``Origin``, our own origin.

Paths under ``/fhir`` and ``/api`` need a principal (401 OperationOutcome otherwise), except the public
discovery documents ``/fhir/metadata`` and ``/fhir/.well-known/smart-configuration``. Pages (``/app``) render
their own sign-in page. Scope and compartment checks happen later, in :class:`~fhir_ecr.auth.access.Access`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool

from ..asgi import StatusRecorder, read_body, replay
from ..config import is_loopback_host
from ..outcomes import issue, outcome
from .audit import audit_events
from .principal import DEVELOPER
from .sessions import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE

__all__ = ["AuthMiddleware", "PROTECTED_PREFIXES", "PUBLIC_PATHS"]

PROTECTED_PREFIXES = ("/fhir", "/api")
PUBLIC_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})
# The embedded EHR authenticates its own callers; the token endpoint authenticates clients, not sessions.
SKIP_PREFIXES = ("/sandbox-ehr", "/auth/token")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Starlette's TestClient calls the app in-process, with no socket, and reports this name as the server.
_IN_PROCESS = "testserver"
log = logging.getLogger("mecr.auth")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _reply(send: Send, status: int, diagnostics: str, code: str, www: str | None = None) -> None:
    body = orjson.dumps(outcome([issue(code, diagnostics)]))
    headers = [
        (b"content-type", b"application/fhir+json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if www:
        headers.append((b"www-authenticate", www.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    """Authenticates each request; see the module docstring."""

    def __init__(self, app: Any, services: Any) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        mode = self.services.settings.auth
        if mode == "off" and not _arrived_on_loopback(scope):
            log.error(
                "refused a request: MECR_AUTH=off (no authorization) serves loopback addresses only, and "
                "this server was reached on %s; bind it to 127.0.0.1 or turn authorization on",
                _local_address(scope),
            )
            await _reply(
                send,
                403,
                "this server runs without authorization (MECR_AUTH=off), which is allowed only "
                "on a loopback address; it refuses requests from the network",
                "forbidden",
            )
            return
        if path.startswith(SKIP_PREFIXES):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if mode == "off":
            state["principal"] = DEVELOPER
        elif mode == "on":
            headers = _headers(scope)
            authz = headers.get("authorization", "")
            if authz:
                kind, _, token = authz.partition(" ")
                if kind.lower() != "bearer" or not token.strip():
                    await _reply(
                        send,
                        401,
                        "the Authorization header must be 'Bearer <access token>'",
                        "login",
                        'Bearer realm="mecr", error="invalid_request"',
                    )
                    return
                principal = await run_in_threadpool(self.services.sessions.resolve_token, token.strip())
                if principal is None:
                    await _reply(
                        send,
                        401,
                        "the access token is invalid or expired",
                        "login",
                        'Bearer realm="mecr", error="invalid_token"',
                    )
                    return
                state["principal"] = principal
            else:
                cookie = _cookie(headers)
                if cookie:
                    session = await run_in_threadpool(self.services.sessions.load, cookie)
                    if session is not None:
                        if scope["method"] in _UNSAFE:
                            receive, ok, why = await self._check_csrf(
                                scope, headers, receive, session.csrf_token
                            )
                            if not ok:
                                await _reply(send, 403, why, "forbidden")
                                return
                        state["principal"] = session.principal
                        state["session"] = session
                        state["session_cookie"] = cookie
        principal = state.get("principal")
        if principal is None and path.startswith(PROTECTED_PREFIXES) and path not in PUBLIC_PATHS:
            await _reply(
                send,
                401,
                "authentication required: a SMART session or a bearer token",
                "login",
                'Bearer realm="mecr"',
            )
            return
        if mode != "on" or principal is None:
            await self.app(scope, receive, send)
            return
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            access = state.get("access")
            if access is not None and self.services.audit is not None:
                route = getattr(scope.get("route"), "path", None) or "(no route)"
                client = scope.get("client")
                self.services.audit.record_all(
                    audit_events(
                        access,
                        method=scope["method"],
                        route=route,
                        status=recorder.status,
                        address=client[0] if client else None,
                    )
                )

    async def _check_csrf(
        self, scope: dict[str, Any], headers: dict[str, str], receive: Any, expected: str
    ) -> tuple[Any, bool, str]:
        origin = headers.get("origin")
        if origin and origin != "null":
            ours = urlsplit(self.services.settings.base_url)
            theirs = urlsplit(origin)
            host = headers.get("host", "")
            if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc) and theirs.netloc != host:
                return receive, False, "cross-origin request refused"
        given = headers.get(CSRF_HEADER)
        if given is None:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "application/x-www-form-urlencoded":
                body, fits = await read_body(receive, self.services.settings.max_body_bytes)
                if not fits:
                    return receive, False, "the form is too large"
                receive = replay(body, receive)
                values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD)
                given = values[0] if values else None
            else:
                values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(CSRF_FIELD)
                given = values[0] if values else None
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return receive, False, "missing or wrong CSRF token (reload the page and try again)"
        return receive, True, ""


def _local_address(scope: dict[str, Any]) -> str:
    server = scope.get("server")
    return str(server[0]) if server else "(unknown: no TCP address)"


def _arrived_on_loopback(scope: dict[str, Any]) -> bool:
    """Whether the connection's local end is a loopback address (unix sockets and unknown ends are not)."""
    server = scope.get("server")
    if not server or server[1] is None:
        return False
    return is_loopback_host(str(server[0])) or server[0] == _IN_PROCESS


def _cookie(headers: dict[str, str]) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel else None
