"""Small ASGI helpers shared by the middlewares (access log, authentication, read-only guard, sandbox gate), and
:class:`RequestGuard`, the app's outermost check of every request.

``RequestGuard`` is the one place where the body size limit is enforced for every path (FHIR interactions and
operations, ``POST _search`` forms, pages and their forms, ``/auth/token``, the sandbox EHR, uploads): a
``Content-Length`` over the limit is answered 413 before the app runs, and a body that streams past it stops
with 413 at the chunk that crosses it, whoever is reading (a route, a middleware). It also refuses (400) a NUL
character in the path, the query string or a header value: no FHIR id, search value or header may hold one,
and PostgreSQL cannot compare or store text holding one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

from .outcomes import FhirError, issue, outcome, too_large

__all__ = ["read_body", "replay", "StatusRecorder", "RequestGuard", "BodyTooLarge"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(receive: Receive, limit: int | None = None) -> tuple[bytes, bool]:
    """The whole request body, and whether it fit in ``limit`` bytes (reading stops past the limit)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), True


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read) and then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class StatusRecorder:
    """Wraps ``send`` and remembers the response status (500 until a response starts)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class BodyTooLarge(FhirError):
    """The request body passed the limit while it was being read (413)."""


def _reply(status: int, code: str, diagnostics: str) -> tuple[Message, Message]:
    body = orjson.dumps(outcome([issue(code, diagnostics)]))
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/fhir+json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def _holds_nul(scope: Message) -> bool:
    if "\x00" in scope.get("path", ""):
        return True
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return True
    return any(b"\x00" in value for _, value in scope.get("headers", ()))


class RequestGuard:
    """ASGI middleware: the body size limit (413) and no NUL characters (400) for every request.

    ``max_body_bytes`` applies to every path except those matching a pattern of ``larger`` (e.g. the wearable
    upload), which get the limit paired with it.
    """

    def __init__(
        self, app: Any, *, max_body_bytes: int, larger: Sequence[tuple[re.Pattern[str], int]] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger = list(larger)

    def limit_for(self, path: str) -> int:
        """The body limit of a request to ``path``."""
        return next((limit for pattern, limit in self.larger if pattern.match(path)), self.max_body_bytes)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _holds_nul(scope):
            for message in _reply(
                400, "invalid", "a NUL character (U+0000) is not allowed in a URL or a header"
            ):
                await send(message)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = next((v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"), None)
        if declared is not None:
            if not declared.strip().isdigit():
                for message in _reply(400, "invalid", "Content-Length must be a number of bytes"):
                    await send(message)
                return
            if int(declared) > limit:
                for message in _reply(413, "too-long", f"the request body is larger than {limit} bytes"):
                    await send(message)
                return
        size = 0

        async def limited() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(
                        too_large(f"the request body is larger than {limit} bytes").issues, 413
                    )
            return message

        started = False

        async def recording(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, recording)
        except BodyTooLarge as exc:
            if started:
                raise
            for message in _reply(413, "too-long", exc.issues[0]["diagnostics"]):
                await send(message)
