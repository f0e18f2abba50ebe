"""Page plumbing: templates, the signed-in context every page gets, and HTML error pages for ``/app``.

Pages answer errors in HTML, not as OperationOutcomes: :class:`PageRoute` turns a
:class:`~fhir_ecr.outcomes.FhirError` raised anywhere below a page route into an error page with the same
status (401: the sign-in page; 403: "not yours" with no data; 404: not found). JSON endpoints used by the
pages' scripts stay on a plain router, so their errors stay OperationOutcomes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from ..auth import Access, Principal
from ..outcomes import FhirError, forbidden, unauthorized
from . import charts

__all__ = ["PageRoute", "STATIC_DIR", "TEMPLATES", "page", "require_coach", "require_patient_app"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


def _fingerprint(name: str) -> str:
    try:
        return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    except FileNotFoundError:
        return "0"


_VERSIONS: dict[str, str] = {}


def static_url(name: str) -> str:
    """``/app/static/{name}?v=<content hash>``: cached for long, refreshed when the file changes."""
    if name not in _VERSIONS:
        _VERSIONS[name] = _fingerprint(name)
    return f"/app/static/{name}?v={_VERSIONS[name]}"


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


TEMPLATES.env.globals.update(static_url=static_url, fmt=charts.fmt_number)
TEMPLATES.env.filters.update(pct=_pct, day=_day, unitword=lambda u: charts.fmt_number(0, u)[2:] or u)


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


def error_page(request: Request, exc: FhirError) -> HTMLResponse:
    """The HTML page for an error below ``/app``: sign-in (401), not allowed (403), not found, or generic."""
    if exc.status == 401:
        return page(request, "signin.html", {"title": "Sign in"}, 401)
    titles = {403: "Not allowed", 404: "Not found", 410: "Removed", 412: "Changed by someone else"}
    message = {403: "You do not have access to this page.",
               404: "There is nothing here. The record may have been removed, or the link is wrong."}
    detail = message.get(exc.status) or "; ".join(str(i.get("diagnostics", "")) for i in exc.issues)
    return page(request, "error.html", {"title": titles.get(exc.status, "Something went wrong"),
                                        "status": exc.status, "detail": detail}, exc.status)


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

