"""HTTP for the sandbox EHR: the front page, the authorization pages, the token endpoint, discovery, JWKS.

Thin: parse the request, ask :class:`~.oauth.AuthorizationServer`, render a page or JSON. OAuth errors at the
token endpoint are RFC 6749 §5.2 JSON (what OAuth clients parse); the FHIR API's errors are OperationOutcomes
(:mod:`.gate`); the browser pages show errors as pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ..headers import SANDBOX_POLICY, origin_of
from .chart import Chart
from .errors import OAuthError
from .oauth import AuthorizationServer, AuthorizeError

__all__ = ["build_router"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PUBLIC_JSON = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}

SMART_STYLE = {
    "color_background": "#f6f7f9",
    "color_error": "#a4262c",
    "color_highlight": "#0b6bcb",
    "color_modal_backdrop": "rgba(0,0,0,0.4)",
    "color_success": "#107c10",
    "color_text": "#1b1b1b",
    "dim_border_radius": "6px",
    "dim_font_size": "16px",
    "dim_spacing_size": "16px",
    "font_family_body": "system-ui, sans-serif",
    "font_family_heading": "system-ui, sans-serif",
}


def _single_values(form: FormData | Any, what: str) -> dict[str, str]:
    """RFC 6749 §3.1/§3.2: "Request and response parameters MUST NOT be included more than once"."""
    out: dict[str, str] = {}
    for key in form:
        values = form.getlist(key)
        if len(values) > 1:
            raise OAuthError("invalid_request", f"parameter {key!r} was sent more than once in the {what}")
        out[key] = str(values[0])
    return out


def build_router(server: AuthorizationServer, chart: Chart) -> APIRouter:
    """The sandbox's routes (everything but ``/fhir/*``, which :class:`~.gate.FhirGate` guards)."""
    router = APIRouter()

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("base", server.base_url)
        response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        # The consent page may be framed by the EHR's own pages only (clickjacking); CSP frame-ancestors 'self'
        # says the same (fhir_ecr/headers.py).
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def error_page(request: Request, message: str, status: int = 400) -> HTMLResponse:
        return page(request, "error.html", status=status, message=message)

    # -- the EHR's own pages ------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse, summary="Sandbox EHR front page")
    async def home(request: Request) -> HTMLResponse:
        coaches, patients = await run_in_threadpool(lambda: (chart.practitioners(), chart.patients()))
        clients = [c for c in server.clients.clients if c.launch_url or c.login_url]
        return page(
            request,
            "index.html",
            coaches=coaches,
            patients=patients,
            clients=clients,
            fhir_base=server.fhir_base,
        )

    @router.post("/launch", summary="EHR launch: send the browser to the app's launch URL")
    async def launch(request: Request) -> Response:
        """A coach's launch (``practitioner``), or a patient's from the portal (``portal=1``: the patient is the
        user); ``frame=1`` shows the app inside an EHR page, as EHRs that embed apps do."""
        form = await request.form()
        client_id, coach, patient = (str(form.get(k) or "") for k in ("client_id", "practitioner", "patient"))
        portal, framed = form.get("portal") == "1", form.get("frame") == "1"
        try:
            url = await run_in_threadpool(
                lambda: server.launch_url(client_id, None if portal else coach, patient, framed=framed)
            )
        except OAuthError as exc:
            return error_page(request, exc.description)
        if not framed:
            return RedirectResponse(url, status_code=303)
        response = page(
            request,
            "launch_frame.html",
            url=url,
            patient=await run_in_threadpool(chart.person, f"Patient/{patient}"),
        )
        # This page frames the app: its origin (and the sandbox's own authorize page, shown in the same frame).
        app_origin = origin_of(url) or "'none'"
        response.headers["Content-Security-Policy"] = f"{SANDBOX_POLICY}; frame-src 'self' {app_origin}"
        return response

    # -- the authorization endpoint -----------------------------------------------------------------------

    async def authorize(request: Request, params: dict[str, str]) -> Response:
        try:
            tx, pending, client = server.begin(params)
        except AuthorizeError as exc:
            if not exc.redirect:
                return error_page(request, f"This app's request was refused: {exc.description}.")
            return RedirectResponse(
                server.error_redirect(params["redirect_uri"], exc, params.get("state")), status_code=303
            )
        if pending.launch is not None:
            user = await run_in_threadpool(chart.person, pending.launch.user)
            patient = await run_in_threadpool(chart.person, f"Patient/{pending.launch.patient_id}")
            return page(
                request,
                "authorize_ehr.html",
                tx=tx,
                client=client,
                user=user,
                patient=patient,
                portal=pending.launch.practitioner_id is None,
                scopes=pending.grantable,
            )
        patients = await run_in_threadpool(chart.patients)
        return page(
            request,
            "authorize_patient.html",
            tx=tx,
            client=client,
            patients=patients,
            scopes=pending.grantable,
        )

    @router.get("/authorize", summary="SMART authorization endpoint (GET)")
    async def authorize_get(request: Request) -> Response:
        try:
            params = _single_values(request.query_params, "authorization request")
        except OAuthError as exc:
            return error_page(request, exc.description)
        return await authorize(request, params)

    @router.post("/authorize", summary="SMART authorization endpoint (POST, authorize-post)")
    async def authorize_post(request: Request) -> Response:
        try:
            params = _single_values(await request.form(), "authorization request")
        except OAuthError as exc:
            return error_page(request, exc.description)
        return await authorize(request, params)

    @router.post("/authorize/decision", summary="The user's answer on the authorization page")
    async def decision(request: Request) -> Response:
        form = await request.form()
        allow = form.get("decision") == "allow"
        try:
            url = await run_in_threadpool(
                lambda: server.decide(
                    str(form.get("tx") or ""),
                    allow=allow,
                    patient_id=str(form.get("patient") or "") or None,
                    scopes=[str(s) for s in form.getlist("scope")],
                )
            )
        except AuthorizeError as exc:
            return error_page(request, exc.description)
        return RedirectResponse(url, status_code=303)

    # -- the token endpoint -------------------------------------------------------------------------------

    @router.post("/token", summary="SMART token endpoint")
    async def token(request: Request) -> Response:
        try:
            if (
                request.headers.get("content-type", "").split(";")[0].strip()
                != "application/x-www-form-urlencoded"
            ):
                raise OAuthError(
                    "invalid_request", "send the token request as application/x-www-form-urlencoded"
                )
            form = _single_values(await request.form(), "token request")
            body = await server.token(request.headers, form)
        except OAuthError as exc:
            headers = dict(_NO_STORE)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="sandbox-ehr"'
            return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
        return JSONResponse(body, headers=_NO_STORE)

    # -- discovery and keys -------------------------------------------------------------------------------

    @router.get("/fhir/.well-known/smart-configuration", summary="SMART discovery")
    async def smart_configuration() -> JSONResponse:
        return JSONResponse(server.smart_configuration(), headers=_PUBLIC_JSON)

    @router.get("/.well-known/openid-configuration", summary="OpenID Connect discovery")
    async def openid_configuration() -> JSONResponse:
        return JSONResponse(server.openid_configuration(), headers=_PUBLIC_JSON)

    @router.get("/.well-known/jwks.json", summary="The sandbox's public signing keys")
    async def jwks() -> JSONResponse:
        return JSONResponse(server.signer.jwks(), headers=_PUBLIC_JSON)

    @router.get("/smart-style.json", summary="The smart_style_url document")
    async def style() -> JSONResponse:
        return JSONResponse(SMART_STYLE, headers=_PUBLIC_JSON)

    return router
