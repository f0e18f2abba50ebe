"""The application's services, built once by the composition root (:func:`fhir_ecr.composition.build_services`)
and handed to routes as a dependency (:mod:`fhir_ecr.deps`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import Request

from .config import Settings
from .store.auth_store import AuthStore
from .store.repository import FhirRepository, Guard
from .store.sync_store import SyncStore

if TYPE_CHECKING:  # types only: these packages sit above this module (tests/test_architecture.py)
    import httpx

    from .auth.audit import AuditTrail
    from .auth.sessions import SessionManager
    from .auth.vault import Vault
    from .conformance import ProfileValidator
    from .fhir.operations import OperationRegistry
    from .jobs import JobRunner
    from .sync.service import SyncService

__all__ = ["Services", "get_services"]


@dataclass
class Services:
    """Settings, the repository, the operation registry and the auth services of one application instance."""

    settings: Settings
    engine: sa.Engine
    repo: FhirRepository
    operations: OperationRegistry
    conformance: ProfileValidator  # the mECR IG's profiles (fhir_ecr.conformance), used by $validate
    auth_store: AuthStore
    vault: Vault
    sessions: SessionManager
    audit: AuditTrail
    supported_profiles: dict[str, list[str]] = field(default_factory=dict)  # type -> mECR profile URLs
    read_only_types: frozenset[str] = frozenset()  # types the API serves but does not let callers write
    http: httpx.AsyncClient | None = None  # mECR's client for EHRs (created on first use; tests inject one)
    # EMR sync, its tables and the job runner: set by fhir_ecr.sync.install_sync, which build_services calls
    sync_store: SyncStore = field(init=False, repr=False)
    sync: SyncService = field(init=False, repr=False)
    jobs: JobRunner = field(init=False, repr=False)
    # Drawn ahead by the refresh_views job after the kept coaching views (composition root: the caseload's rows)
    view_refreshers: list[Callable[[Any], int]] = field(default_factory=list, repr=False)
    # The series of the patient page's overview, which the refresh_views job keeps with the glances (composition)
    kept_overview_series: tuple[tuple[str, str, str | None], ...] | None = None
    started: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
    _capability: dict[str, Any] | None = None  # the CapabilityStatement, built once by fhir.capability

    @property
    def fhir_base(self) -> str:
        return self.settings.fhir_base

    def repo_for(self, access: Guard) -> FhirRepository:
        """The repository as one caller sees it (every access checked by their ``Access``)."""
        return self.repo.guarded(access)


def get_services(request: Request) -> Services:
    """FastAPI dependency: the running application's services."""
    services: Services = request.app.state.services
    return services
