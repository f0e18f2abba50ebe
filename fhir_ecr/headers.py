"""Security headers on every response, set in one ASGI middleware so that no route can miss them.

- Every response: ``X-Content-Type-Options: nosniff`` (no MIME sniffing of JSON or uploads into HTML) and
  ``Referrer-Policy: same-origin`` (page URLs carry patient ids; other sites never see them).
- Every HTML response also gets a Content-Security-Policy that runs only mECR's own files: no inline script or
  style, no plugins, no ``<base>``; it may be framed only by mECR itself and by the EHRs in the registry (the
  origin of each registered ``iss``), and its scripts may fetch from those EHRs too (the SMART launch's
  ``smart_style_url``). The sandbox EHR's pages may be framed by the sandbox only.

Specs: CSP Level 3 (https://www.w3.org/TR/CSP3/), ``frame-ancestors`` §6.4.2; Referrer Policy
(https://www.w3.org/TR/referrer-policy/); ``nosniff`` (https://fetch.spec.whatwg.org/#x-content-type-options-header).

The EHR origins are read from the registry at most once per ``ttl`` seconds (default 10), so a newly registered
EHR (``mecr ehr add``, also from another process) takes effect within that time, without a query per request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

__all__ = ["EhrOrigins", "SecurityHeaders", "install_security_headers", "origin_of", "page_policy"]

_SHARED = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
)
# The API explorers (Swagger UI, ReDoc) are served from mECR itself (fastapi-offline) and hold no PHI; they start
# with an inline script, inline styles and (ReDoc) a blob: worker, so their pages allow those and nothing remote.
_EXPLORER = (
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'self'",
)
_EXPLORER_PATHS = ("/docs", "/redoc")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-case, or None when it is not a plain http(s) origin (so nothing
    odd, such as ``;`` or a space, ever reaches a policy)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return origin if _ORIGIN.match(origin) else None


def page_policy(ehr_origins: Iterable[str] = ()) -> str:
    """The Content-Security-Policy of mECR's pages, framed by mECR and by ``ehr_origins``."""
    extra = "".join(f" {o}" for o in dict.fromkeys(ehr_origins))
    return "; ".join((*_SHARED, f"connect-src 'self'{extra}", f"frame-ancestors 'self'{extra}"))


_cached_page_policy = lru_cache(maxsize=16)(page_policy)  # called with the cached tuple of origins
SANDBOX_POLICY = "; ".join((*_SHARED, "connect-src 'self'", "frame-ancestors 'self'"))
EXPLORER_POLICY = "; ".join(_EXPLORER)


class EhrOrigins:
    """The origins of the registered EHRs' ``iss`` URLs, re-read at most every ``ttl`` seconds."""

    def __init__(
        self,
        load: Callable[[], Iterable[dict[str, Any]]],
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self.clock = clock
        self._origins: tuple[str, ...] = ()
        self._read_at: float | None = None

    def invalidate(self) -> None:
        """Forget the cached origins (the next page reads the registry again)."""
        self._read_at = None

    async def get(self) -> tuple[str, ...]:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.ttl:
            rows = await run_in_threadpool(lambda: list(self._load()))
            origins = (origin_of(str(r.get("iss") or "")) for r in rows)
            self._origins = tuple(dict.fromkeys(o for o in origins if o))
            self._read_at = now
        return self._origins


class SecurityHeaders:
    """ASGI middleware: see the module docstring. ``ehr_origins`` None: pages may be framed by this site only
    (the sandbox EHR served on its own); ``sandbox_prefix`` is where a mounted sandbox EHR lives."""

    def __init__(
        self, app: Any, *, ehr_origins: EhrOrigins | None = None, sandbox_prefix: str | None = "/sandbox-ehr"
    ) -> None:
        self.app = app
        self.ehr_origins = ehr_origins
        self.sandbox_prefix = sandbox_prefix

    async def _policy(self, path: str) -> str:
        if path.startswith(_EXPLORER_PATHS):
            return EXPLORER_POLICY
        if self.ehr_origins is None or (self.sandbox_prefix and path.startswith(self.sandbox_prefix)):
            return SANDBOX_POLICY
        return _cached_page_policy(await self.ehr_origins.get())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                # A page that set its own policy keeps it (the sandbox's page that frames an app; an inner
                # application's policy, such as the mounted sandbox's).
                has_policy = any(k.lower() == b"content-security-policy" for k, _ in headers)
                if not has_policy and _is_html(headers):
                    policy = await self._policy(path)
                    headers.append((b"content-security-policy", policy.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OURS = frozenset({b"x-content-type-options", b"referrer-policy"})


def _is_html(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers)


def install_security_headers(
    app: Any, *, ehr_origins: EhrOrigins | None = None, sandbox_prefix: str | None = "/sandbox-ehr"
) -> None:
    """Wrap ``app``'s whole middleware stack (outside Starlette's ServerErrorMiddleware, so even a 500 gets the
    headers) in :class:`SecurityHeaders`."""
    build = app.build_middleware_stack

    def build_with_headers() -> Any:
        return SecurityHeaders(build(), ehr_origins=ehr_origins, sandbox_prefix=sandbox_prefix)

    app.build_middleware_stack = build_with_headers
