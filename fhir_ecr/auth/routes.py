"""SMART App Launch routes (mECR as the app) and mECR's own authorization endpoints.

- ``GET /smart/launch?iss=&launch=`` — EHR launch: only a registered ``iss`` (else a page, and no request is
  sent anywhere); discovery, PKCE S256, single-use ``state`` bound to this browser, redirect to the EHR.
- ``GET /smart/login?ehr=<id>`` — a patient's standalone launch at a registered EHR.
- ``GET /smart/callback`` — checks ``state``, exchanges the code, verifies the id_token, reads the EHR's Patient
  (and the user from ``fhirUser``), links them to mECR's records, starts a session, and sends the browser to
  ``/app/patients/{id}`` (coach) or ``/app/me`` (a patient: standalone, or an EHR launch from the patient portal).
  A launch mECR refuses on purpose is a 403 page with the reason; an EHR that fails is a 502 page.
- ``POST /smart/logout`` — ends the session.
- ``GET /.well-known/jwks.json`` — mECR's public keys (for ``private_key_jwt`` at EHR token endpoints).
- ``GET /fhir/.well-known/smart-configuration`` and ``POST /auth/token`` — backend-services access to mECR.

The launch cookie (``mecr_launch``) binds ``state`` to this browser. Its value is always one the server issued
(a client-chosen value is replaced: no session fixation); an issued value is kept while its launch record lives,
so two launches in two tabs both complete. With ``MECR_COOKIE_SAMESITE=none`` the cookies are also
``Partitioned`` (CHIPS), so a browser that blocks third-party cookies still keeps them inside the EHR's frame.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from smart_launch import LaunchResult, SmartLaunchClient
from smart_launch.errors import (
    AuthorizationError,
    DiscoveryError,
    EhrUnavailableError,
    IdTokenError,
    LaunchError,
    SmartError,
    StateError,
    TokenError,
    UntrustedIssuerError,
)

from ..assets import static_url
from ..services import Services
from ..store.auth_store import secret_hash
from .linking import LinkConflict, link_resource
from .principal import Principal
from .registry import COACH_APP_SCOPES, PATIENT_APP_SCOPES, ehr_registration
from .sessions import SESSION_COOKIE
from .token_service import TokenRequestError, issue_client_token

__all__ = ["router", "LAUNCH_COOKIE", "LaunchRefused", "delete_cookie", "page", "page_html", "set_cookie"]

log = logging.getLogger("mecr.auth")
router = APIRouter(tags=["SMART on FHIR"])
LAUNCH_COOKIE = "mecr_launch"
LAUNCH_COOKIE_SECONDS = 900


class DbStateStore:
    """smart_launch's StateStore over the ``auth_once`` table (atomic pop: DELETE … RETURNING)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def put(self, key: str, value: str, expires_at: float) -> None:
        await run_in_threadpool(self.store.put_once, f"state:{key}"[:128], value, expires_at)

    async def pop(self, key: str) -> str | None:
        return await run_in_threadpool(self.store.pop_once, f"state:{key}"[:128])


def _services(request: Request) -> Any:
    return request.app.state.services


def http_client(services: Services) -> httpx.AsyncClient:
    """The one outbound HTTP client (to EHRs); tests inject their own as ``services.http``."""
    if services.http is None:
        services.http = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)
    return services.http


def page_html(
    title: str, message: str, status: int, *, links: list[tuple[str, str]] | None = None
) -> HTMLResponse:
    """A plain, accessible page (the home page and the launch error pages)."""
    return page(title, message, status, links=links)


def page(
    title: str, message: str, status: int, *, links: list[tuple[str, str]] | None = None
) -> HTMLResponse:
    """A plain, accessible page for launch errors (no data, no stack trace); styled by /app/static/plain.css."""
    items = "".join(f'<li><a href="{html.escape(u)}">{html.escape(t)}</a></li>' for t, u in links or [])
    body = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width, initial-scale=1'><title>{html.escape(title)} – mECR</title>"
        f'<link rel="stylesheet" href="{html.escape(static_url("plain.css"))}"></head><body><main>'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        f"{'<ul>' + items + '</ul>' if items else ''}</main></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _secure(services: Any) -> bool:
    flag = services.settings.cookie_secure
    return services.settings.base_url.startswith("https://") if flag is None else bool(flag)


def _cookie_options(services: Any) -> dict[str, Any]:
    """HttpOnly always; SameSite per MECR_COOKIE_SAMESITE; Secure on https (and always with SameSite=None)."""
    samesite = services.settings.cookie_samesite
    return {"httponly": True, "samesite": samesite, "secure": _secure(services) or samesite == "none"}


def _partition_last_cookie(response: Response) -> None:
    """Add ``Partitioned`` to the Set-Cookie header just added (Starlette does so only on Python 3.14+).

    CHIPS (https://developer.mozilla.org/en-US/docs/Web/Privacy/Guides/Privacy_sandbox/Partitioned_cookies): a
    browser that blocks third-party cookies still keeps a partitioned one in a cross-site frame, in a jar of
    that top-level site, which is all a launch inside the EHR's frame needs."""
    for i in range(len(response.raw_headers) - 1, -1, -1):
        name, value = response.raw_headers[i]
        if name == b"set-cookie":
            response.raw_headers[i] = (name, value + b"; Partitioned")
            return


def set_cookie(response: Response, services: Any, key: str, value: str, *, max_age: int, path: str) -> None:
    """Set one of mECR's cookies with the attributes of :func:`_cookie_options` (+ Partitioned with None)."""
    options = _cookie_options(services)
    response.set_cookie(key, value, max_age=max_age, path=path, **options)
    if options["samesite"] == "none":
        _partition_last_cookie(response)


def delete_cookie(response: Response, services: Any, key: str, *, path: str) -> None:
    """Delete a cookie set by :func:`set_cookie` (a partitioned cookie is deleted only by a partitioned one)."""
    options = _cookie_options(services)
    response.delete_cookie(key, path=path, **options)
    if options["samesite"] == "none":
        _partition_last_cookie(response)


def _launch_record(value: str) -> str:
    return f"launch-browser:{secret_hash(value)}"


def _browser_id(services: Any, offered: str | None) -> str:
    """The launch cookie's value for a new launch: ``offered`` only if this server issued it and its record
    lives (then for another 15 minutes); any other value, such as one an attacker planted, is replaced."""
    store = services.auth_store
    now = time.time()
    expires = now + LAUNCH_COOKIE_SECONDS
    if offered and len(offered) <= 128:
        record = store.peek_once(_launch_record(offered))
        try:
            alive = record is not None and float(record) > now
        except ValueError:
            alive = False
        if alive:
            store.put_once(_launch_record(offered), str(expires), expires)
            return offered
    value = secrets.token_urlsafe(32)
    store.put_once(_launch_record(value), str(expires), expires)
    return value


async def _client_for(services: Any, ehr: dict[str, Any]) -> SmartLaunchClient:
    registration = ehr_registration(services, ehr)
    return SmartLaunchClient(
        http_client(services),
        [registration],
        DbStateStore(services.auth_store),
        allow_insecure_http=services.settings.environment != "production",
    )


async def _begin(request: Request, ehr: dict[str, Any], *, launch: str | None) -> Response:
    services = _services(request)
    browser = await run_in_threadpool(_browser_id, services, request.cookies.get(LAUNCH_COOKIE))
    try:
        client = await _client_for(services, ehr)
        if launch is not None:
            redirect = await client.begin_ehr_launch(
                {"iss": ehr["iss"], "launch": launch}, session_id=browser, scope=ehr["launch_scope"]
            )
        else:
            redirect = await client.authorize(ehr["iss"], session_id=browser, scope=ehr["patient_scope"])
    except EhrUnavailableError:
        return page(
            "The EHR is not answering",
            "mECR could not reach the EHR to start the sign-in. Try again in "
            "a moment; if it persists, tell your practice's IT team.",
            502,
        )
    except DiscoveryError as exc:
        log.warning("SMART discovery refused for EHR %s: %s", ehr["id"], type(exc).__name__)
        return page(
            "This EHR's SMART configuration is not usable",
            f"mECR will not sign in through this EHR: {exc}",
            502,
        )
    except SmartError as exc:
        return page("The launch could not start", str(exc), 400)
    response = RedirectResponse(redirect.url, status_code=302)
    set_cookie(response, services, LAUNCH_COOKIE, browser, max_age=LAUNCH_COOKIE_SECONDS, path="/smart")
    return response


@router.get("/smart/launch", summary="EHR launch (SMART App Launch)", response_class=HTMLResponse)
async def smart_launch(request: Request) -> Response:
    iss = request.query_params.get("iss")
    launch = request.query_params.get("launch")
    if not iss or not launch:
        return page(
            "Incomplete launch",
            "An EHR launch needs both iss and launch parameters. Open mECR from your EHR.",
            400,
        )
    ehr = await run_in_threadpool(_services(request).auth_store.ehr_by_iss, iss)
    if ehr is None:
        return page(
            "This EHR is not registered with mECR",
            "mECR only accepts launches from EHRs its administrator registered (mecr ehr add). Nothing "
            "was sent to the server that asked for this launch.",
            400,
        )
    return await _begin(request, ehr, launch=launch)


@router.get("/smart/login", summary="Patient standalone launch", response_class=HTMLResponse)
async def smart_login(request: Request) -> Response:
    ehr_id = request.query_params.get("ehr", "")
    ehr = await run_in_threadpool(_services(request).auth_store.ehr, ehr_id) if ehr_id else None
    if ehr is None:
        return page(
            "Unknown patient portal",
            "Choose your practice's patient portal from the mECR home page.",
            404,
            links=[("mECR home", "/")],
        )
    return await _begin(request, ehr, launch=None)


@router.get("/smart/callback", summary="SMART redirect URI", response_class=HTMLResponse)
async def smart_callback(request: Request) -> Response:
    services = _services(request)
    browser = request.cookies.get(LAUNCH_COOKIE)
    params = dict(request.query_params)
    state_value = params.get("state", "")
    pending_raw = None
    ehr = None
    # Which EHR? The pending authorization names its iss; peek without consuming (the client consumes it).
    if state_value:
        pending_raw = await run_in_threadpool(_peek_state, services, state_value)
    if not browser:
        if _is_live(
            pending_raw
        ):  # this server started the launch moments ago: the cookie was set, not sent back
            return _cookie_blocked_page(services)
        return page(
            "Sign-in expired",
            "This sign-in did not start in this browser, or took too long. Open mECR from your EHR again.",
            400,
        )
    if pending_raw is not None:
        ehr = await run_in_threadpool(services.auth_store.ehr_by_iss, pending_raw.get("iss", ""))
    if ehr is None:
        return page(
            "Sign-in could not be completed",
            "This sign-in response is unknown, used already or expired. Open mECR from your EHR again.",
            400,
        )
    try:
        client = await _client_for(services, ehr)
        result = await client.handle_callback(params, session_id=browser)
    except StateError:
        return page(
            "Sign-in could not be completed",
            "This sign-in response is unknown, used already, expired "
            "or belongs to another browser. Open mECR from your EHR again.",
            400,
        )
    except AuthorizationError as exc:
        return _not_authorized_page(services, ehr, pending_raw, exc)
    except EhrUnavailableError:
        return page("The EHR is not answering", "The sign-in could not be completed; try again.", 502)
    except (TokenError, IdTokenError) as exc:
        log.warning("SMART callback failed for EHR %s: %s", ehr["id"], type(exc).__name__)
        return page("Sign-in could not be completed", f"The EHR's answer was not acceptable: {exc}", 502)
    except (LaunchError, UntrustedIssuerError, SmartError) as exc:
        return page("Sign-in could not be completed", str(exc), 400)
    try:
        principal, context, target = await _establish(services, ehr, result)
    except LaunchRefused as exc:
        log.info("SMART launch from EHR %s refused: %s", ehr["id"], exc.reason)
        return page("mECR cannot open this launch", str(exc), 403)
    except _EhrFailed as exc:
        return page("Sign-in could not be completed", str(exc), 502)
    except LinkConflict as exc:
        log.warning("launch from EHR %s refused: identity conflict (see mecr ehr conflicts)", ehr["id"])
        return page(
            "This record needs an administrator",
            f"mECR cannot tell which of its records belongs to the person the EHR named ({exc.reason}). "
            "Nothing was opened or changed. Your practice's mECR administrator can see and resolve this "
            "with `mecr ehr conflicts`.",
            409,
        )
    tokens = {
        "access_token": result.token.access_token,
        "refresh_token": result.token.refresh_token,
        "expires_at": result.token.expires_at,
        "scope": str(result.scope),
        "iss": result.iss,
    }
    cookie, _session = await run_in_threadpool(
        services.sessions.create, principal, context=context, ehr_tokens=tokens
    )
    response = RedirectResponse(target, status_code=303)
    set_cookie(
        response, services, SESSION_COOKIE, cookie, max_age=services.settings.session_ttl_seconds, path="/"
    )
    delete_cookie(response, services, LAUNCH_COOKIE, path="/smart")
    return response


def _not_authorized_page(
    services: Any, ehr: dict[str, Any], pending: dict[str, Any] | None, exc: AuthorizationError
) -> HTMLResponse:
    """The EHR sent ``error=…`` back (the person chose Deny, or the EHR refused): say what happened, that nothing
    was shared, and how to try again — a new sign-in for a patient, the EHR for a launch (docs/web.md)."""
    launched = bool((pending or {}).get("launch"))
    base = services.settings.base_url.rstrip("/")
    links: list[tuple[str, str]] = []
    if (
        launched
        and services.settings.sandbox_ehr
        and str(ehr.get("iss", "")).startswith(f"{base}/sandbox-ehr")
    ):
        links.append(("Try again: launch mECR from the sandbox EHR", "/sandbox-ehr/"))
    elif not launched:
        links.append(("Try again: sign in and choose Allow", f"/smart/login?ehr={ehr['id']}"))
    links.append(("mECR's start page", "/"))
    if exc.error == "access_denied":
        again = (
            "open mECR from the patient's chart in your EHR again and choose Allow"
            if launched
            else "sign in again and choose Allow"
        )
        return page(
            "mECR was not allowed in",
            "The sign-in was declined (Deny): the EHR did not authorize mECR, so "
            f"mECR has not opened and nothing was shared with it. To use mECR, {again}.",
            403,
            links=links,
        )
    detail = exc.error_description or exc.error or "access denied"
    return page(
        "The EHR did not authorize mECR",
        f"The EHR answered: {detail}. Nothing was shared with mECR.",
        403,
        links=links,
    )


def _is_live(pending: dict[str, Any] | None) -> bool:
    """A pending authorization that is neither used nor expired."""
    if pending is None or pending.get("consumed"):
        return False
    try:
        return float(pending.get("expires_at") or 0) > time.time()
    except (TypeError, ValueError):
        return False


def _cookie_blocked_page(services: Any) -> HTMLResponse:
    """The launch began here, but its cookie did not come back: the browser blocked it (a cross-site frame)."""
    settings = services.settings
    if settings.cookie_samesite != "none":
        fix = (
            "Ask your practice's IT team to set MECR_COOKIE_SAMESITE=none (it needs mECR on an https address), "
            "or open mECR in a new window from your EHR."
        )
    elif not settings.base_url.startswith("https://"):
        fix = (
            "MECR_COOKIE_SAMESITE=none needs mECR on an https address (MECR_BASE_URL); until then, open mECR in "
            "a new window from your EHR."
        )
    else:
        fix = (
            "This browser blocks even partitioned cookies in frames: open mECR in a new window from your EHR."
        )
    return page(
        "The browser blocked mECR's cookie in this frame",
        "Your EHR opened mECR inside its own page, and the browser did not keep mECR's sign-in cookie "
        f"there, so the sign-in cannot be completed. {fix}",
        400,
    )


def _peek_state(services: Any, state: str) -> dict[str, Any] | None:
    """The pending authorization under ``state``, read without consuming it (smart_launch consumes it)."""
    text = services.auth_store.peek_once(f"state:{state}"[:128])
    if text is None:
        return None
    try:
        return json.loads(text)  # type: ignore[no-any-return]
    except ValueError:
        return None


class LaunchRefused(Exception):
    """mECR refuses this launch on purpose (a 403 page with the reason)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # a short, PHI-free label for the log


class _EhrFailed(Exception):
    """The EHR did not answer as a SMART EHR must (a 502 page)."""


async def _fetch(services: Any, result: LaunchResult, url: str) -> dict[str, Any]:
    base = result.iss.rstrip("/")
    if not url.startswith(base + "/"):
        raise LaunchRefused(
            "The EHR named a user outside its own FHIR server; mECR does not follow it.",
            "fhirUser outside iss",
        )
    try:
        response = await http_client(services).get(
            url, auth=result.auth(), headers={"Accept": "application/fhir+json"}
        )
    except httpx.HTTPError as exc:
        raise _EhrFailed("the EHR's FHIR server did not answer") from exc
    if response.status_code != 200:
        raise _EhrFailed(
            f"the EHR's FHIR server refused to read {url.rsplit('/', 2)[-2]} ({response.status_code})"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise _EhrFailed("the EHR's FHIR server returned an unusable resource") from exc
    if not isinstance(body, dict) or not body.get("id"):
        raise _EhrFailed("the EHR's FHIR server returned an unusable resource")
    return body


def _display(resource: dict[str, Any]) -> str:
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family") or ""]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return f"{resource.get('resourceType')}/{resource.get('id')}"


async def _establish(
    services: Any, ehr: dict[str, Any], result: LaunchResult
) -> tuple[Principal, dict[str, Any], str]:
    """Read the launch's patient and user from the EHR, link them locally, and decide where the user lands.

    The user is a patient when ``fhirUser`` is a Patient — in a standalone launch or in an EHR launch from the
    patient portal — or, in a standalone launch without ``fhirUser``, when the EHR gave a patient context. A
    patient sees their own record only: a patient context naming someone else is refused. A coach is a
    Practitioner or PractitionerRole, or the user of an EHR launch that did not say who the user is; a
    standalone launch that names nobody is refused.
    """
    base = result.iss.rstrip("/")
    user_url = result.fhir_user
    user_type: str | None = None
    user_id: str | None = None
    if user_url:
        parts = user_url.rstrip("/").rsplit("/", 2)
        user_type, user_id = (parts[-2], parts[-1]) if len(parts) == 3 else ("(unknown)", None)
    # Refusals first, before anything is read from the EHR or linked to a local record.
    if user_url and not user_url.startswith(base + "/"):
        raise LaunchRefused(
            "The EHR named a user outside its own FHIR server; mECR does not follow it.",
            "fhirUser outside iss",
        )
    if user_type not in (None, "Practitioner", "PractitionerRole", "Patient"):
        raise LaunchRefused(
            f"mECR opens for practitioners and patients, not for a {user_type}.", f"user type {user_type}"
        )
    if user_type == "Patient" and result.patient and user_id != result.patient:
        raise LaunchRefused(
            "mECR's patient app shows the signed-in patient's own record only, and this launch "
            "opened someone else's. Open mECR from your own record.",
            "patient user is not the patient in context",
        )
    if user_type is None and result.launch is None and not result.patient:
        # A standalone sign-in (the patient portal's) that names neither user nor patient must not fall through
        # to the coach's workspace.
        raise LaunchRefused(
            "The sign-in did not say who you are. Sign in again and allow mECR to see your "
            "identity and your patient record.",
            "standalone launch without user or patient",
        )
    local_patient = remote_patient = None
    if result.patient:
        remote_patient = await _fetch(services, result, f"{base}/Patient/{result.patient}")
        local_patient = await run_in_threadpool(link_resource, services.repo, ehr["id"], remote_patient)
    local_user = None
    user: dict[str, Any] | None = None
    if user_url:
        if user_type == "Patient" and remote_patient is not None and user_id == remote_patient["id"]:
            user = remote_patient
        else:
            user = await _fetch(services, result, user_url)
        if user_type in ("Practitioner", "Patient"):
            local_user = await run_in_threadpool(link_resource, services.repo, ehr["id"], user)
    context = {
        "need_patient_banner": result.token.need_patient_banner
        if result.token.need_patient_banner is not None
        else True,
        "smart_style_url": result.token.smart_style_url,
        "encounter": result.encounter,
        "ehr_id": ehr["id"],
        "ehr_patient": result.patient,
    }
    if user_type == "Patient" or (user_type is None and result.launch is None):
        if (
            user_type == "Patient" and remote_patient is None
        ):  # from the portal: their own record is the context
            local_patient, remote_patient = local_user, user
            context["ehr_patient"] = user_id
        if local_patient is None or (user_type == "Patient" and local_user != local_patient):
            raise LaunchRefused(
                "mECR could not tell which patient signed in. Sign in again and allow mECR to "
                "see your patient record.",
                "no patient context",
            )
        principal = Principal(
            kind="patient",
            subject=f"Patient/{local_patient}",
            patient_id=local_patient,
            fhir_user=f"Patient/{local_patient}",
            scopes=_scopes(PATIENT_APP_SCOPES),
            display=_display(remote_patient or {}),
            ehr_id=ehr["id"],
        )
        return principal, context, "/app/me"
    subject = f"Practitioner/{local_user}" if local_user else f"ehr:{ehr['id']}:user"
    principal = Principal(
        kind="practitioner",
        subject=subject,
        patient_id=local_patient,
        fhir_user=f"Practitioner/{local_user}" if local_user else None,
        scopes=_scopes(COACH_APP_SCOPES),
        display=_display(user) if user else "Coach",
        ehr_id=ehr["id"],
    )
    return principal, context, f"/app/patients/{local_patient}" if local_patient else "/app/caseload"


def _scopes(text: str) -> Any:
    from smart_launch import ScopeSet

    return ScopeSet.parse(text)


@router.post("/smart/logout", summary="End the session", response_class=HTMLResponse)
async def smart_logout(request: Request) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(_services(request).sessions.end, cookie)
    response = RedirectResponse("/", status_code=303)
    delete_cookie(response, _services(request), SESSION_COOKIE, path="/")
    return response


@router.get("/.well-known/jwks.json", summary="mECR's public signing keys (JWKS)")
async def jwks(request: Request) -> JSONResponse:
    keys = await run_in_threadpool(_services(request).vault.public_jwks)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/fhir/.well-known/smart-configuration", summary="SMART configuration of mECR's FHIR API")
async def smart_configuration(request: Request) -> JSONResponse:
    from .discovery import smart_configuration as configuration  # one document, also in the metadata

    return JSONResponse(configuration(_services(request).settings.base_url))


@router.post("/auth/token", summary="Token endpoint for backend-services clients (client_credentials)")
async def token(request: Request) -> JSONResponse:
    services = _services(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if ctype != "application/x-www-form-urlencoded":
        return JSONResponse(
            {"error": "invalid_request", "error_description": "send a form-encoded body"},
            400,
            headers=headers,
        )
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        body = await issue_client_token(services, form, http_client(services))
    except TokenRequestError as exc:
        return JSONResponse(exc.body(), exc.status, headers=headers)
    return JSONResponse(body, headers=headers)
