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

from . import __version__
from .asgi import RequestGuard, StatusRecorder
from .auth.access import SERVER_WRITTEN_TYPES
from .auth.audit import AuditTrail
from .auth.middleware import AuthMiddleware
from .auth.routes import router as smart_router
from .auth.sessions import SessionManager
from .auth.vault import Vault
from .billing.operations import register_billing_operations
from .coaching.operations import register_coaching_operations
from .config import Settings, get_settings
from .conformance import (
    READ_ONLY_TYPES,
    compose_validators,
    default_validator,
    install_read_only_guard,
    load_conformance_resources,
    register_validate_operation,
)
from .fhir.builtin_ops import register_builtin_operations
from .fhir.errors import install_error_handlers
from .fhir.operations import OperationRegistry
from .fhir.routes import router as fhir_router
from .headers import EhrOrigins, install_security_headers
from .services import Services
from .store.auth_store import AuthStore
from .store.bindings import log_unchecked as log_unchecked_bindings
from .store.db import make_engine, upgrade
from .store.repository import FhirRepository
from .store.validation import validate_resource
from .wearables import router as wearables_router
from .wearables.routes import UPLOAD_PATH, upload_limit

__all__ = ["create_app", "build_services", "check_auth_mode", "worker_app", "AccessLog"]


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
            self.log.info("%s %s %s %.1fms", scope["method"], template, recorder.status,
                          (time.perf_counter() - start) * 1000)


def check_auth_mode(settings: Settings) -> None:
    """``MECR_AUTH=off`` is for development on this machine only: refuse it anywhere else, loudly.

    ``settings.host`` must be the address the server really binds to (``mecr serve`` passes ``--host`` in with
    :meth:`Settings.bound_to`). A server started some other way (``uvicorn --host``) is caught per request by
    :class:`~fhir_ecr.auth.middleware.AuthMiddleware`, which refuses any request that did not arrive on a
    loopback address while authorization is off."""
    if settings.auth != "off":
        return
    if settings.environment == "production" or not settings.is_loopback:
        raise SystemExit(f"refusing to start: MECR_AUTH=off (no authorization) with environment="
                         f"{settings.environment} and host={settings.host}; it is allowed only on a loopback "
                         "address (127.0.0.1, ::1, localhost) outside production")
    logging.getLogger("mecr.auth").warning(
        "MECR_AUTH=off: NO AUTHORIZATION -- every caller may read and change every record. Development only.")


SANDBOX_EHR_ID = "sandbox"


def sandbox_database_url(settings: Settings) -> str:
    """The sandbox EHR's own database: ``MECR_SANDBOX_DATABASE_URL``, or a SQLite file next to the store."""
    if settings.sandbox_database_url:
        return settings.sandbox_database_url
    if settings.is_sqlite:
        path = settings.database_url.split("///", 1)[1]
        stem = path[:-3] if path.endswith(".db") else path
        return f"sqlite:///{stem}-sandbox-ehr.db"
    raise SystemExit("MECR_SANDBOX_EHR with PostgreSQL needs MECR_SANDBOX_DATABASE_URL (a separate database)")


def mount_sandbox_ehr(app: FastAPI, settings: Settings, services: Services, *,
                      sandbox_base_url: str | None = None) -> None:
    """Mount the sandbox EHR at /sandbox-ehr/ and register it as the EHR ``sandbox`` (mECR authenticates
    there with ``private_key_jwt`` and its own keys). Once per app: a second call changes nothing.

    ``sandbox_base_url`` is the sandbox's public base; default ``{base_url}/sandbox-ehr``. Tests give it another
    host name for the same server, to play an EHR on another site that embeds mECR in a frame."""
    from .auth.registry import add_ehr
    from .sandbox_ehr import SandboxClient, create_sandbox_ehr

    if getattr(app.state, "sandbox_ehr", None) is not None:
        return
    base = settings.base_url
    sandbox_base = (sandbox_base_url or f"{base}/sandbox-ehr").rstrip("/")
    sandbox = create_sandbox_ehr(
        base_url=sandbox_base, database_url=sandbox_database_url(settings),
        clients=[SandboxClient("mecr", [f"{base}/smart/callback"], launch_url=f"{base}/smart/launch",
                               login_url=f"{base}/smart/login?ehr={SANDBOX_EHR_ID}", name="mECR",
                               auth_method="private_key_jwt", jwks=services.vault.public_jwks())],
    )
    app.mount("/sandbox-ehr", sandbox)
    app.state.sandbox_ehr = sandbox
    add_ehr(services, ehr_id=SANDBOX_EHR_ID, iss=f"{sandbox_base}/fhir", client_id="mecr",
            auth_method="private_key_jwt", name="Sandbox EHR", replace=True)
    origins = getattr(app.state, "ehr_origins", None)
    if origins is not None:
        origins.invalidate()


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Engine, repository and operations for ``settings`` (applying migrations unless told not to)."""
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    conformance = default_validator()  # the mECR IG's profiles, compiled once per process
    # Structure and required bindings, then profiles: one OperationOutcome lists every problem.
    repo = FhirRepository(engine, fhir_base=settings.fhir_base, enforce_references=settings.enforce_references,
                          validator=compose_validators(validate_resource, conformance))
    operations = OperationRegistry()
    register_builtin_operations(operations)
    register_validate_operation(operations)
    register_coaching_operations(operations, default_tz=settings.default_time_zone)
    register_billing_operations(operations)
    from .bulk import register_bulk_operations  # $export (docs/sync.md)

    register_bulk_operations(operations)
    auth_store = AuthStore(engine)
    vault = Vault(settings, repo)
    sessions = SessionManager(auth_store, vault, session_ttl=settings.session_ttl_seconds,
                              token_ttl=settings.access_token_ttl_seconds)
    services = Services(settings=settings, engine=engine, repo=repo, operations=operations, conformance=conformance,
                        supported_profiles=conformance.supported_profiles(),
                        read_only_types=READ_ONLY_TYPES | SERVER_WRITTEN_TYPES, auth_store=auth_store, vault=vault,
                        sessions=sessions, audit=AuditTrail(repo))
    from .coaching.derived import install_derived  # the coaching views' derived tables (docs/architecture.md)
    from .sync import install_sync  # EMR sync: the outbox hook, the job runner (docs/sync.md)

    install_derived(repo)
    install_sync(services)
    return services


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The mECR application: the FHIR API at /fhir, the OpenAPI page at /docs."""
    settings = settings or get_settings()
    check_auth_mode(settings)
    services = services or build_services(settings)
    logging.getLogger("mecr").setLevel(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry EHR URLs with patient ids

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        log_unchecked_bindings()  # the base spec's required bindings that need a terminology server
        if services.conformance is not None:  # serve the IG's conformance resources (idempotent)
            await run_in_threadpool(load_conformance_resources, services.repo, services.conformance.ig)
        yield
        if services.audit is not None:
            services.audit.close()
        if getattr(services, "http", None) is not None:
            await services.http.aclose()
            services.http = None
        if services.jobs is not None:
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
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=False,
                       allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                       allow_headers=["Authorization", "Content-Type", "Accept", "If-Match", "If-None-Match",
                                      "If-None-Exist", "Prefer"],
                       expose_headers=["ETag", "Location", "Last-Modified", "Content-Location"])
    app.include_router(smart_router)  # first: /fhir/.well-known/… must not reach the FHIR read route
    from .bulk import router as bulk_router

    app.include_router(bulk_router)  # /fhir/$export…: before /fhir/{rtype}/{rid} would take them
    app.include_router(fhir_router)
    app.include_router(wearables_router)  # POST /api/patients/{id}/wearable-imports (docs/wearables.md)
    from .web import install_web  # the coach's and the patient's pages under /app (docs/web.md)

    install_web(app)
    from .sync.web import router as sync_pages  # /app/sync, the sync status page (docs/sync.md)

    app.include_router(sync_pages)
    if settings.sandbox_ehr:
        mount_sandbox_ehr(app, settings, services)
    # Outermost but for the access log: the body limit and the NUL check hold for every path, mounts included.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes,
                       larger=[(UPLOAD_PATH, upload_limit(services))])
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
        return page_html("mECR — the coaching record", "Coaches open mECR from inside their EHR, already on the "
                         "right patient. Patients sign in through their practice's patient portal.", 200,
                         links=links)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database check")
    async def healthz() -> dict[str, str]:
        from starlette.concurrency import run_in_threadpool

        def check() -> None:
            with services.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

        await run_in_threadpool(check)
        return {"status": "ok"}

    return app


def worker_app() -> FastAPI:
    """App factory for ``mecr serve --workers N`` (the parent process has already applied migrations)."""
    settings = get_settings()
    return create_app(settings, services=build_services(settings, migrate=False))
