"""The application's services, built once by ``create_app`` and handed to routes as a dependency."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import Request

from .config import Settings
from .fhir.operations import OperationRegistry
from .store.repository import FhirRepository

__all__ = ["Services", "get_services"]


@dataclass
class Services:
    """Settings, the repository and the operation registry of one application instance."""

    settings: Settings
    engine: sa.Engine
    repo: FhirRepository
    operations: OperationRegistry
    conformance: Any = None  # the ProfileValidator of the mECR IG (fhir_ecr.conformance), used by $validate
    supported_profiles: dict[str, list[str]] = field(default_factory=dict)  # type -> mECR profile URLs
    read_only_types: frozenset[str] = frozenset()  # types the API serves but does not let callers write
    auth_store: Any = None  # fhir_ecr.store.auth_store.AuthStore
    vault: Any = None  # fhir_ecr.auth.vault.Vault
    sessions: Any = None  # fhir_ecr.auth.sessions.SessionManager
    audit: Any = None  # fhir_ecr.auth.audit.AuditTrail
    http: Any = None  # the httpx.AsyncClient mECR uses to talk to EHRs (created on first use; tests inject one)
    sync_store: Any = None  # fhir_ecr.store.sync_store.SyncStore (EMR sync and Bulk Data export tables)
    sync: Any = None  # fhir_ecr.sync.service.SyncService
    jobs: Any = None  # fhir_ecr.jobs.JobRunner
    started: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    _capability: dict[str, Any] | None = None

    @property
    def fhir_base(self) -> str:
        return self.settings.fhir_base

    def repo_for(self, access: Any) -> FhirRepository:
        """The repository as one caller sees it (every access checked by their ``Access``)."""
        return self.repo.guarded(access)

    def capability_statement(self) -> dict[str, Any]:
        """The CapabilityStatement (built once; it only changes with the code)."""
        if self._capability is None:
            from .fhir.capability import capability_statement, security_component, smart_configuration

            security = security_component(smart_configuration(self.settings.base_url)) \
                if self.settings.auth == "on" else None  # off: nothing to describe; external: the gate's own
            self._capability = capability_statement(self.fhir_base, self.operations, software_date=self.started,
                                                    security=security,
                                                    supported_profiles=self.supported_profiles or None,
                                                    read_only_types=self.read_only_types)
        return self._capability


def get_services(request: Request) -> Services:
    """FastAPI dependency: the running application's services."""
    return request.app.state.services  # type: ignore[no-any-return]
