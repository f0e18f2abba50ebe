"""``create_app(settings)``: the mECR FastAPI application."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse, Response
from fastapi_offline import FastAPIOffline

from . import __version__, heap
from .asgi import RequestGuard, StatusRecorder
from .auth.middleware import AuthMiddleware
from .auth.routes import router as smart_router
from .coaching.derived import derived_ready
from .composition import build_services
from .config import Settings, get_settings
from .conformance import install_read_only_guard, load_conformance_resources
from .fhir.errors import install_error_handlers
from .fhir.routes import router as fhir_router
from .headers import EhrOrigins, install_security_headers
from .services import Services
from .store.bindings import log_unchecked as log_unchecked_bindings
from .wearables import router as wearables_router
from .wearables.routes import UPLOAD_PATH, upload_limit

# build_services is re-exported for callers written before it moved to fhir_ecr.composition (#14).
__all__ = ["create_app", "build_services", "check_auth_mode", "AccessLog"]


class AccessLog:
    """ASGI middleware: one log line per request with the method, the route *template* (``/fhir/{rtype}/{rid}``),
    the status and the duration — never the concrete path or query, which can carry PHI."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log = logging.getLogger("mecr.access")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            self.log.info(
                "%s %s %s %.1fms",
                scope["method"],
                template,
                recorder.status,
                (time.perf_counter() - start) * 1000,
            )


def check_auth_mode(settings: Settings) -> None:
    """``MECR_AUTH=off`` is for development on this machine only: refuse it anywhere else, loudly.

    ``settings.host`` must be the address the server really binds to (``mecr serve`` passes ``--host`` in with
    :meth:`Settings.bound_to`). A server started some other way (``uvicorn --host``) is caught per request by
    :class:`~fhir_ecr.auth.middleware.AuthMiddleware`, which refuses any request that did not arrive on a
    loopback address while authorization is off."""
    if settings.auth != "off":
        return
    if settings.environment == "production" or not settings.is_loopback:
        raise SystemExit(
            f"refusing to start: MECR_AUTH=off (no authorization) with environment="
            f"{settings.environment} and host={settings.host}; it is allowed only on a loopback "
            "address (127.0.0.1, ::1, localhost) outside production"
        )
    logging.getLogger("mecr.auth").warning(
        "MECR_AUTH=off: NO AUTHORIZATION -- every caller may read and change every record. Development only."
    )


def _check_derived(services: Services) -> None:
    """Whether the derived coaching tables are complete, found once at start-up (a count over every Observation's
    subject row: about 0.3 s at 1,000,000 Observations on PostgreSQL, 1.4 s from a cold cache), so that no request
    waits for it (fhir_ecr/coaching/derived/maintain.py, ``DerivedHook.ready``)."""
    with services.repo.unit(write=False) as uow:
        derived_ready(services.repo, uow)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The mECR application: the FHIR API at /fhir, the OpenAPI page at /docs. (The sandbox EHR is mounted by
    :func:`fhir_ecr.server.serve_app`, the app ``mecr serve`` runs.)"""
    settings = settings or get_settings()
    check_auth_mode(settings)
    services = services or build_services(settings)
    logging.getLogger("mecr").setLevel(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry EHR URLs with patient ids

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        log_unchecked_bindings()  # the base spec's required bindings that need a terminology server
        # serve the IG's conformance resources (idempotent)
        await run_in_threadpool(load_conformance_resources, services.repo, services.conformance.ig)
        # the derived coaching tables counted against the index now, not in the first coach's request
        await run_in_threadpool(_check_derived, services)
        heap.settle()  # the loaded application frozen out of the collector's way (fhir_ecr/heap.py)
        pool = services.repo.validation_pool
        if pool is not None:  # booted in the background now, not in the first large transaction
            pool.start()
        yield
        if pool is not None:
            pool.close()
        services.audit.close()
        if services.http is not None:
            await services.http.aclose()
            services.http = None
        services.jobs.close()
        sandbox = getattr(app.state, "sandbox_ehr", None)
        if sandbox is not None:
            sandbox.state.sandbox.dispose()
        services.engine.dispose()

    app = FastAPIOffline(  # /docs and /redoc load Swagger UI and ReDoc from mECR itself: they work offline
        title="mECR",
        version=__version__,
        description="The mobile Electronic Coaching Record: coaching records as FHIR R4 resources.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    install_read_only_guard(app, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, services=services)
    # CORS for browser SMART apps of other origins: bearer tokens only (no credentials, so session cookies are
    # never sent cross-site); discovery and metadata are public anyway (SMART App Launch, server obligations).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=False,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Accept",
            "If-Match",
            "If-None-Match",
            "If-None-Exist",
            "Prefer",
        ],
        expose_headers=["ETag", "Location", "Last-Modified", "Content-Location"],
    )
    app.include_router(smart_router)  # first: /fhir/.well-known/… must not reach the FHIR read route
    from .bulk import router as bulk_router

    app.include_router(bulk_router)  # /fhir/$export…: before /fhir/{rtype}/{rid} would take them
    app.include_router(fhir_router)
    app.include_router(wearables_router)  # POST /api/patients/{id}/wearable-imports (docs/wearables.md)
    from .web import install_web  # the coach's and the patient's pages under /app (docs/web.md)

    install_web(app)
    from .sync.web import router as sync_pages  # /app/sync, the sync status page (docs/sync.md)

    app.include_router(sync_pages)
    from .web.referral_link import router as referral_link_pages  # /r/{token}, the organisation's link

    app.include_router(referral_link_pages)
    # Outermost but for the access log: the body limit and the NUL check hold for every path, mounts included.
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, larger=[(UPLOAD_PATH, upload_limit(services))]
    )
    app.add_middleware(AccessLog)
    # nosniff and Referrer-Policy on every response, a Content-Security-Policy on every page (fhir_ecr/headers.py)
    app.state.ehr_origins = EhrOrigins(services.auth_store.ehrs)
    install_security_headers(app, ehr_origins=app.state.ehr_origins)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from .auth.access import current_access
        from .auth.routes import page_html

        principal = current_access(request).principal
        if principal is not None and principal.kind == "patient":
            return RedirectResponse("/app/me")
        if principal is not None and principal.kind in ("practitioner", "developer"):
            return RedirectResponse("/app/caseload")
        ehrs = await run_in_threadpool(services.auth_store.ehrs)
        links = []
        if settings.sandbox_ehr:
            links.append(("Coaches: launch mECR from the sandbox EHR", "/sandbox-ehr/"))
        links += [(f"Patients: sign in through {e['name']}", f"/smart/login?ehr={e['id']}") for e in ehrs]
        links += [("FHIR API (OpenAPI)", "/docs"), ("CapabilityStatement", "/fhir/metadata")]
        return page_html(
            "mECR — the coaching record",
            "Coaches open mECR from inside their EHR, already on the "
            "right patient. Patients sign in through their practice's patient portal.",
            200,
            links=links,
        )

    @app.get("/healthz", tags=["operations"], summary="Liveness and database check")
    async def healthz() -> dict[str, str]:
        from starlette.concurrency import run_in_threadpool

        def check() -> None:
            with services.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

        await run_in_threadpool(check)
        return {"status": "ok"}

    return app
