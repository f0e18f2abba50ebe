"""``create_sandbox_ehr``: the sandbox EHR as one ASGI application, to mount at ``/sandbox-ehr``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..app import create_app
from ..composition import build_services
from ..config import Settings
from ..fhir.errors import install_error_handlers
from ..headers import install_security_headers
from .chart import Chart
from .clients import ClientAuthenticator, SandboxClient
from .gate import FhirGate
from .keys import TokenSigner, load_signing_key
from .oauth import AuthorizationServer
from .routes import build_router
from .seed import seed_demo_data

__all__ = ["create_sandbox_ehr"]


def create_sandbox_ehr(
    *,
    base_url: str,
    database_url: str,
    clients: Sequence[SandboxClient],
    seed: bool = True,
    clock: Callable[[], float] = time.time,
    http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The sandbox EHR: SMART authorization server, EHR pages and a FHIR server over its own database.

    ``base_url`` is the sandbox's public base (``{mecr}/sandbox-ehr``, no trailing slash): the FHIR base (the
    ``iss``) is ``{base_url}/fhir`` and the issuer is ``base_url``. ``database_url`` must not be mECR's own
    database. ``clients`` are the registered apps. ``seed`` loads the demo chart (idempotent). ``clock`` (epoch
    seconds) and ``http`` (used to fetch clients' JWKS URLs) are for tests.

    Mount it on the parent app: ``app.mount("/sandbox-ehr", create_sandbox_ehr(...))``. Migrations, the signing
    key and the seed happen here, synchronously, because a mounted app gets no lifespan events;
    ``app.state.sandbox.dispose()`` closes its database engine.
    """
    base_url = base_url.rstrip("/")
    # auth="external": the engine trusts the principal FhirGate sets (and still checks scopes with it).
    # sandbox_ehr=False whatever MECR_SANDBOX_EHR says: the sandbox's own engine must not mount a sandbox again.
    # refresh_views=False: an EHR shows no coaching views, and nothing works its job queue.
    settings = Settings(
        database_url=database_url, base_url=base_url, auth="external", sandbox_ehr=False, refresh_views=False
    )
    services = build_services(settings)
    engine_app = create_app(settings, services=services)
    if seed:
        seed_demo_data(services.repo)
    signer = TokenSigner(load_signing_key(services.repo))
    chart = Chart(services.repo)
    server = AuthorizationServer(
        base_url=base_url,
        clients=list(clients),
        signer=signer,
        people=chart.person,
        clock=clock,
        authenticator=ClientAuthenticator(list(clients), clock=clock, http=http),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield  # runs only when the sandbox is served on its own, not when mounted
        services.engine.dispose()

    app = FastAPI(
        title="mECR sandbox EHR", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.sandbox = SandboxHandle(server, services)
    install_error_handlers(app)
    app.include_router(build_router(server, chart))
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="sandbox-static")
    app.mount("/", FhirGate(engine_app, server, services.repo, max_body_bytes=settings.max_body_bytes))
    install_security_headers(app, sandbox_prefix=None)  # its pages may be framed by the sandbox only
    return app


class SandboxHandle:
    """What the sandbox app keeps in ``app.state.sandbox``: its authorization server and FHIR services."""

    def __init__(self, server: AuthorizationServer, services: object) -> None:
        self.server = server
        self.services = services

    @property
    def fhir_base(self) -> str:
        return self.server.fhir_base

    def dispose(self) -> None:
        """Close the sandbox's database connections."""
        self.services.engine.dispose()  # type: ignore[attr-defined]
