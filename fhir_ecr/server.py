"""The application as ``mecr serve`` and ``mecr demo`` run it: :func:`~fhir_ecr.app.create_app`, plus the
sandbox EHR at /sandbox-ehr when ``MECR_SANDBOX_EHR`` is on."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from .app import create_app
from .composition import build_services
from .config import Settings, get_settings
from .sandbox_ehr.mount import mount_sandbox_ehr
from .services import Services

__all__ = ["serve_app", "worker_app", "settle_collector"]


def serve_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """mECR's app for ``settings``, with the sandbox EHR mounted when ``settings.sandbox_ehr``."""
    services = services or build_services(settings)
    app = create_app(settings, services=services)
    if settings.sandbox_ehr:
        mount_sandbox_ehr(app, settings, services)
    return app


def worker_app() -> FastAPI:
    """App factory for ``mecr serve --workers N`` (the parent process has already applied migrations)."""
    settings = get_settings()
    app = serve_app(settings, services=build_services(settings, migrate=False))
    settle_collector()
    return app


def settle_collector() -> None:
    """Tune Python's cyclic garbage collector for a server process, once its app is built.

    Start-up leaves about 230,000 long-lived container objects (modules, the FHIR models, compiled search
    parameters, profiles): every full collection walked all of them again, and a request that allocates a lot
    (a transaction Bundle of 500 resources, its 500 AuditEvents) set off many. ``gc.freeze()`` moves what exists
    now out of the collector's view for good (it is never garbage), and a higher first threshold makes the young
    collections rarer; reference counting still frees everything without cycles at once. Measured on
    ``bench_store``'s transactions through the app (docs/benchmarks.md): 17 % less CPU per Observation frozen,
    20 % with the threshold. Only for ``mecr serve``: test processes build many apps and keep the defaults."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)
