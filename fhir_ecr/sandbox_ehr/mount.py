"""Mount the sandbox EHR inside a running mECR app (``mecr demo``, ``mecr serve`` with ``MECR_SANDBOX_EHR``).

The sandbox sits above mECR's app (it runs mECR's FHIR engine over its own database), so mECR's ``app.py``
never imports it: the command that serves mounts it (:mod:`fhir_ecr.server`)."""

from __future__ import annotations

from fastapi import FastAPI

from ..auth.registry import add_ehr
from ..config import Settings
from ..services import Services
from .app import create_sandbox_ehr
from .clients import SandboxClient

__all__ = ["SANDBOX_EHR_ID", "mount_sandbox_ehr", "sandbox_database_url"]

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


def mount_sandbox_ehr(
    app: FastAPI, settings: Settings, services: Services, *, sandbox_base_url: str | None = None
) -> None:
    """Mount the sandbox EHR at /sandbox-ehr/ and register it as the EHR ``sandbox`` (mECR authenticates
    there with ``private_key_jwt`` and its own keys). Once per app: a second call changes nothing.

    ``sandbox_base_url`` is the sandbox's public base; default ``{base_url}/sandbox-ehr``. Tests give it another
    host name for the same server, to play an EHR on another site that embeds mECR in a frame."""
    if getattr(app.state, "sandbox_ehr", None) is not None:
        return
    base = settings.base_url
    sandbox_base = (sandbox_base_url or f"{base}/sandbox-ehr").rstrip("/")
    sandbox = create_sandbox_ehr(
        base_url=sandbox_base,
        database_url=sandbox_database_url(settings),
        clients=[
            SandboxClient(
                "mecr",
                [f"{base}/smart/callback"],
                launch_url=f"{base}/smart/launch",
                login_url=f"{base}/smart/login?ehr={SANDBOX_EHR_ID}",
                name="mECR",
                auth_method="private_key_jwt",
                jwks=services.vault.public_jwks(),
            )
        ],
    )
    app.mount("/sandbox-ehr", sandbox)
    app.state.sandbox_ehr = sandbox
    add_ehr(
        services,
        ehr_id=SANDBOX_EHR_ID,
        iss=f"{sandbox_base}/fhir",
        client_id="mecr",
        auth_method="private_key_jwt",
        name="Sandbox EHR",
        replace=True,
    )
    origins = getattr(app.state, "ehr_origins", None)
    if origins is not None:
        origins.invalidate()
