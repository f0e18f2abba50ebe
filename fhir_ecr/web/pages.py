"""Page plumbing: templates, the signed-in context every page gets, and HTML error pages for ``/app``.

Pages answer errors in HTML, not as OperationOutcomes: :class:`PageRoute` turns a
:class:`~fhir_ecr.outcomes.FhirError` raised anywhere below a page route into an error page with the same
status (401: the sign-in page; 403: "not yours" with no data; 404: not found), and :class:`HtmlErrors` does the
same for every other error answered below ``/app`` — an unknown path, a refused CSRF token, a body too large, an
unexpected 500 — so a person never sees raw JSON. The JSON endpoints of the pages' scripts (:data:`JSON_PATHS`)
keep their OperationOutcomes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from ..assets import STATIC_DIR, static_url
from ..auth import Access, Principal
from ..outcomes import FhirError, Unauthorized, forbidden, unauthorized
from . import charts

__all__ = [
    "HtmlErrors",
    "JSON_PATHS",
    "PageRoute",
    "STATIC_DIR",
    "TEMPLATES",
    "error_page",
    "page",
    "require_coach",
    "require_patient_app",
]

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{round(rate * 100)}%"


def _day(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return f"{value:%b %-d}"
    if isinstance(value, str) and len(value) >= 10:
        try:
            return f"{date.fromisoformat(value[:10]):%b %-d}"
        except ValueError:
            return value
    return "" if value is None else str(value)


def _when(value: Any, tz: str | None) -> str:
    """An instant (FHIR dateTime) as the reader's local day and time ("Dec 5, 14:30"); a date stays a day."""
    if not isinstance(value, str) or len(value) < 10:
        return "" if value is None else str(value)
    if len(value) == 10:
        return _day(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        zone = ZoneInfo(tz or "UTC")
    except (ValueError, ZoneInfoNotFoundError):
        return value
    if parsed.tzinfo is None:
        return f"{parsed:%b %-d, %H:%M}"
    return f"{parsed.astimezone(zone):%b %-d, %H:%M}"


def _zone_name(tz: str | None) -> str:
    """``America/New_York (EST)``: the zone's name and its abbreviation now."""
    try:
        return f"{tz} ({datetime.now(ZoneInfo(tz or 'UTC')):%Z})"
    except (ValueError, ZoneInfoNotFoundError):
        return str(tz)


def _streak_words(h: Any, repaired: bool = True) -> str:
    from .views import streak_words  # views imports the coaching service; load it only when a page renders

    return streak_words(h, repaired=repaired)


TEMPLATES.env.globals.update(static_url=static_url, fmt=charts.fmt_number, streak_words=_streak_words)
TEMPLATES.env.filters.update(
    pct=_pct, day=_day, when=_when, zone_name=_zone_name, unitword=lambda u: charts.fmt_number(0, u)[2:] or u
)


def _session(request: Request) -> Any:
    return getattr(request.state, "session", None)


def page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Render ``template`` with the page context: who is signed in, the CSRF token, the launch context."""
    session = _session(request)
    launch = dict(getattr(session, "context", None) or {})
    access: Access | None = getattr(request.state, "access", None)
    principal = access.principal if access is not None else getattr(request.state, "principal", None)
    base = {
        "request": request,
        "principal": principal,
        "csrf_token": getattr(session, "csrf_token", "") or "",
        "need_patient_banner": bool(launch.get("need_patient_banner", True)),
        "smart_style_url": launch.get("smart_style_url") or "",
        "is_coach": principal is not None and principal.kind in ("practitioner", "developer"),
    }
    response = TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"  # pages carry PHI: never in a shared cache
    return response


_TITLES = {
    400: "This request could not be read",
    403: "Not allowed",
    404: "Not found",
    405: "Not here",
    409: "Changed meanwhile",
    410: "Removed",
    412: "Changed by someone else",
    413: "Too large",
    415: "Not a form this page reads",
    422: "Not saved",
    429: "Too many requests",
    500: "Something went wrong",
    502: "Another system did not answer",
    503: "Not available just now",
}
_MESSAGES = {
    403: "You do not have access to this page.",
    404: "There is nothing here. The record may have been removed, or the link is wrong.",
    405: "This address does not take that kind of request. Go back and use the page's own buttons.",
    500: "mECR could not show this page. Go back and try again; if it happens again, tell your practice's mECR "
    "administrator.",
}


def error_page(request: Request, exc: FhirError, *, say: bool = False) -> HTMLResponse:
    """The HTML page for an error below ``/app``: sign-in (401), not allowed (403), not found, or generic —
    each with a way back (the page the reader came from, when it is one of ours, and their start page).
    ``say``: show the error's own words (a refused CSRF token, a body too large) rather than the status's."""
    if isinstance(exc, Unauthorized):
        return page(request, "signin.html", {"title": "Sign in"}, 401)
    own = "; ".join(str(i.get("diagnostics", "")) for i in exc.issues if i.get("diagnostics"))
    detail = (own if say and own and exc.status < 500 else None) or _MESSAGES.get(exc.status) or own
    referer = request.headers.get("referer") or ""
    base = str(request.base_url).rstrip("/")
    back = referer[len(base) :] if referer.startswith(base + "/app") else None
    if back == request.url.path and request.method == "GET":
        back = None  # the page that failed is no way back
    return page(
        request,
        "error.html",
        {
            "title": _TITLES.get(exc.status, "Something went wrong"),
            "status": exc.status,
            "detail": detail,
            "back": back,
        },
        exc.status,
    )


#: The JSON endpoints below /app (the pages' scripts read them): their errors stay OperationOutcomes.
JSON_PATHS = frozenset({"/app/me/check-in", "/app/goal-check", "/app/sw.js", "/app/manifest.webmanifest"})


def _is_page_path(path: str) -> bool:
    return (path == "/app" or path.startswith("/app/")) and path not in JSON_PATHS


class HtmlErrors:
    """ASGI middleware around the whole application: an error answered below ``/app`` with anything but HTML
    (an OperationOutcome from a middleware, the router's 404/405, the 500 handler) becomes the HTML error page
    of :func:`error_page`, same status. Installed outside Starlette's ServerErrorMiddleware, so it sees 500s."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _is_page_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        body: list[bytes] = []
        done = False

        async def capture(message: Any) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                ctype = next((v for k, v in message.get("headers", []) if k.lower() == b"content-type"), b"")
                if message["status"] >= 400 and not ctype.lower().startswith(b"text/html"):
                    held.update(message)
                    return
            elif held and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body") and not done:
                    done = True
                    await self._page(scope, receive, send, held["status"], b"".join(body))
                return
            await send(message)

        await self.app(scope, receive, capture)

    @staticmethod
    async def _page(scope: Any, receive: Any, send: Any, status: int, raw: bytes) -> None:
        try:
            issues = json.loads(raw or b"{}").get("issue") or []
        except (ValueError, AttributeError):
            issues = []
        exc = FhirError(
            [i for i in issues if isinstance(i, dict)]
            or [{"severity": "error", "code": "processing", "diagnostics": ""}],
            status,
        )
        request = Request(scope, receive)
        try:
            # a middleware's refusal says why (e.g. "missing or wrong CSRF token (reload the page and try again)")
            response = error_page(request, exc, say=status != 404)
        except Exception:  # the error page itself failed (the template, the state): a plain page, never JSON
            response = HTMLResponse(
                f"<!doctype html><title>Error {status}</title><h1>Error {status}</h1>"
                '<p><a href="/app">Go to the start page</a></p>',
                status,
            )
        await response(scope, receive, send)


class PageRoute(APIRoute):
    """A route whose FhirErrors become HTML error pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except FhirError as exc:
                return error_page(request, exc)

        return wrapped


def require_coach(access: Access) -> Principal:
    """The signed-in coach (a practitioner, or the developer); 401 when anonymous, 403 for anyone else."""
    p = access.principal
    if p is None:
        raise unauthorized("sign in through your EHR")
    if p.kind not in ("practitioner", "developer"):
        raise forbidden("this page is for coaches")
    return p


def require_patient_app(access: Access, preview: str | None) -> tuple[Principal, str]:
    """The patient whose app this is: the signed-in patient, or (developer only) ``?patient=`` to preview."""
    p = access.principal
    if p is None:
        raise unauthorized("sign in through your patient portal")
    if p.kind == "patient" and p.patient_id:
        return p, p.patient_id
    if p.kind == "developer" and preview:
        return p, preview
    raise forbidden("the patient app is for patients")
