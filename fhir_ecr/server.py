"""The application as ``mecr serve`` and ``mecr demo`` run it: :func:`~fhir_ecr.app.create_app`, plus the
sandbox EHR at /sandbox-ehr when ``MECR_SANDBOX_EHR`` is on."""

from __future__ import annotations

from fastapi import FastAPI

from .app import create_app
from .composition import build_services
from .config import Settings, get_settings
from .sandbox_ehr.mount import mount_sandbox_ehr
from .services import Services

__all__ = ["serve_app", "worker_app"]


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
    return serve_app(settings, services=build_services(settings, migrate=False))
