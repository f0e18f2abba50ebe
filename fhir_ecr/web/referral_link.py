"""The community organisation's page for one referral, reached by its link (:mod:`.links`): ``/r/{token}``.

=====================  =============================================================================
``GET /r/{token}``     the referral: the person (name, contact), the need, the notes; the buttons its
                       status allows (accept, decline with a reason, start, add a note, complete with
                       what was provided)
``POST /r/{token}``    one of those actions (form: ``action``, ``reason``, ``note``, ``provided``,
                       ``csrf_token``) -> back to the page (303)
=====================  =============================================================================

No account: the link's holder acts as the organisation that owns the referral (``links.link_principal``), so
the guard shows only what the patient's consent covers and the write hook enforces the workflow. Forms carry a
CSRF token that must match a cookie set on the page (double submit, ``SameSite=Strict``, path ``/r/``) and
come from this origin. Every use — the page, each action, a refusal — is written to the audit trail. An expired,
revoked or unknown link answers a plain page that says so (410) and changes nothing.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import Access
from ..auth.audit import audit_events
from ..outcomes import FhirError
from ..referrals.links import Link, link_principal, resolve_link
from ..referrals.service import organisation_act, organisation_view
from ..referrals.workflow import allowed_next
from .pages import error_page, page

__all__ = ["router", "CSRF_COOKIE"]

router = APIRouter(include_in_schema=False)
CSRF_COOKIE = "mecr_rl_csrf"
_DONE = {
    "accepted": "You accepted the referral. Thank you!",
    "rejected": "You declined the referral.",
    "in-progress": "Marked as started.",
    "completed": "Marked as done. Thank you for closing the loop!",
    "note": "Your note was added.",
}


def _audit(request: Request, access: Access, status: int) -> None:
    services = request.app.state.services
    if services.audit is None:
        return
    client = request.client
    services.audit.record_all(
        audit_events(
            access,
            method=request.method,
            route="/r/{token}",
            status=status,
            address=client.host if client else None,
        )
    )


def _gone(request: Request) -> HTMLResponse:
    return page(request, "referral_link_gone.html", {"title": "This link no longer works"}, 410)


def _render(
    request: Request,
    link: Link,
    access: Access,
    *,
    csrf: str,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    services = request.app.state.services
    repo = services.repo_for(access)
    referral, person = organisation_view(repo, link.task_id)
    moves = allowed_next(referral.status, "organisation")
    expires = datetime.fromtimestamp(link.expires, UTC).strftime("%b %-d, %Y")
    response = page(
        request,
        "referral_link.html",
        {
            "title": f"Referral: {referral.need}",
            "referral": referral,
            "person": person,
            "moves": moves,
            "csrf": csrf,
            "message": message,
            "error": error,
            "expires": expires,
        },
        status,
    )
    # the token is in the URL: the site-wide Referrer-Policy (same-origin) never sends it to another site
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=3600 * 8,
        path="/r/",
        httponly=True,
        samesite="strict",
        secure=services.settings.base_url.startswith("https://"),
    )
    return response


@router.get("/r/{token}")
async def referral_link_page(request: Request, token: str, done: str | None = None) -> Response:
    link = await run_in_threadpool(resolve_link, request.app.state.services, token)
    if link is None:
        return _gone(request)
    access = Access(link_principal(link), request.app.state.services.fhir_base)
    request.state.access = access
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    status = 200
    try:
        return await run_in_threadpool(
            lambda: _render(request, link, access, csrf=csrf, message=_DONE.get(done or ""))
        )
    except FhirError as exc:
        status = exc.status
        if exc.status == 404:  # consent withdrawn or the referral gone: nothing to show
            return _gone(request)
        return error_page(request, exc)
    finally:
        _audit(request, access, status)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True
    ours = urlsplit(request.app.state.services.settings.base_url)
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (
        ours.scheme,
        ours.netloc,
    ) or theirs.netloc == request.headers.get("host")


@router.post("/r/{token}")
async def referral_link_action(request: Request, token: str) -> Response:
    services = request.app.state.services
    link = await run_in_threadpool(resolve_link, services, token)
    if link is None:
        return _gone(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    access = Access(link_principal(link), services.fhir_base)
    request.state.access = access
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    given = form.get("csrf_token") or ""
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()) or not _same_origin(request):
        access.denied = True
        _audit(request, access, 403)
        return page(
            request,
            "error.html",
            {
                "title": "Not allowed",
                "status": 403,
                "detail": "This form is out of date. Reload the page and try again.",
            },
            403,
        )
    action = form.get("action", "")
    status = 303
    try:
        org_name = await run_in_threadpool(_org_name, services, access, link)
        new = await run_in_threadpool(
            lambda: organisation_act(
                services.repo_for(access),
                link.task_id,
                action,
                organization=link.organization,
                org_name=org_name,
                reason=form.get("reason", ""),
                note=form.get("note", ""),
                provided=form.get("provided", ""),
            )
        )
    except FhirError as exc:
        status = exc.status
        if exc.status == 404:
            return _gone(request)
        why = "; ".join(str(i.get("diagnostics", "")) for i in exc.issues if i.get("diagnostics"))
        code = exc.status
        return await run_in_threadpool(
            lambda: _render(request, link, access, csrf=cookie, error=why, status=code)
        )
    finally:
        _audit(request, access, status)
    done = "note" if action == "note" else new
    return RedirectResponse(f"/r/{token}?done={done}", status_code=303)


def _org_name(services: Any, access: Access, link: Link) -> str:
    try:
        return str(
            (services.repo_for(access).read("Organization", link.organization).content or {}).get("name")
            or link.organization
        )
    except FhirError:
        return link.organization
