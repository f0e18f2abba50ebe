"""The composition root: ``build_services(settings)`` wires the engine, the repository, the operations and the
auth services of one process. The app, the CLIs and the job workers call it; nothing below it imports it."""

from __future__ import annotations

from .auth.access import SERVER_WRITTEN_TYPES
from .auth.audit import AuditTrail
from .auth.sessions import SessionManager
from .auth.vault import Vault
from .billing.operations import register_billing_operations
from .bulk import register_bulk_operations
from .coaching.derived import install_derived
from .coaching.operations import register_coaching_operations
from .config import Settings
from .conformance import (
    READ_ONLY_TYPES,
    default_validator,
    register_validate_operation,
    standard_validator,
)
from .fhir.builtin_ops import register_builtin_operations
from .fhir.operations import OperationRegistry
from .referrals.hook import install_referrals
from .services import Services
from .store.auth_store import AuthStore
from .store.db import make_engine, upgrade
from .store.repository import FhirRepository
from .store.validation_pool import ValidationPool
from .sync import install_sync
from .web.caseload_refresh import refresh_rows
from .web.views import trend_series

__all__ = ["build_services"]


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Engine, repository and operations for ``settings`` (applying migrations unless told not to)."""
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    conformance = default_validator()  # the mECR IG's profiles, compiled once per process
    # Structure and required bindings, then profiles: one OperationOutcome lists every problem.
    repo = FhirRepository(
        engine,
        fhir_base=settings.fhir_base,
        enforce_references=settings.enforce_references,
        validator=standard_validator(),  # `conformance` composed after the structure (the same cached object)
    )
    # a large transaction's validation beside its writes, by the same validator (docs/architecture.md)
    if settings.validation_workers:
        repo.validation_pool = ValidationPool.shared(standard_validator, settings.validation_workers)
    operations = OperationRegistry()
    register_builtin_operations(operations)
    register_validate_operation(operations)
    register_coaching_operations(operations, default_tz=settings.default_time_zone)
    register_billing_operations(operations)
    register_bulk_operations(operations)  # $export (docs/sync.md)
    auth_store = AuthStore(engine)
    vault = Vault(settings, repo)
    sessions = SessionManager(
        auth_store,
        vault,
        session_ttl=settings.session_ttl_seconds,
        token_ttl=settings.access_token_ttl_seconds,
    )
    services = Services(
        settings=settings,
        engine=engine,
        repo=repo,
        operations=operations,
        conformance=conformance,
        supported_profiles=conformance.supported_profiles(),
        read_only_types=READ_ONLY_TYPES | SERVER_WRITTEN_TYPES,
        auth_store=auth_store,
        vault=vault,
        sessions=sessions,
        audit=AuditTrail(repo),
    )
    # the coaching views' derived tables, kept at write time, and driving the searches they answer exactly
    install_derived(repo, search=settings.derived_search)  # (docs/architecture.md)
    install_sync(services)  # EMR sync: the outbox hook, the job runner (docs/sync.md)
    install_referrals(services)  # the referral workflow's checks and Provenance (docs/referrals.md)
    services.view_refreshers.append(refresh_rows)  # the caseload's rows, drawn ahead (docs/web.md)
    services.kept_overview_series = tuple(trend_series())  # the patient page's overview, kept ahead too
    return services
