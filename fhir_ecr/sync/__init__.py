"""EMR ↔ mECR sync (docs/sync.md): pull the chart from each registered EMR (paged incremental searches or Bulk
Data), push coaching records back through a transactional outbox, on the job runner (:mod:`fhir_ecr.jobs`).

- :mod:`.config` what to pull and push per EMR; :mod:`.service` the EMRs and connections to them;
- :mod:`.client` HTTP to an EMR (Backend Services tokens, errors translated once);
- :mod:`.mapping` pulled copies and pushed bodies (pure); :mod:`.pull`, :mod:`.bulk_pull` pulling;
  :mod:`.push` the outbox hook and delivery; :mod:`.refresh` the kept views' refresh after writes;
  :mod:`.tasks` the jobs; :mod:`.status` what the status page and
  ``mecr sync status`` show; :mod:`.cli`, :mod:`.web` the operator's and the practice admin's ends.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install_sync"]


def install_sync(services: Any) -> None:
    """Give ``services`` the sync store, the job runner and the sync service, and hook the outbox into the store."""
    from ..jobs import JobRunner
    from ..store.sync_store import SyncStore
    from .push import outbox_hook
    from .refresh import refresh_hook
    from .service import SyncService

    services.sync_store = SyncStore(services.engine)
    services.jobs = JobRunner(services.settings)
    services.jobs.bind(services)
    services.sync = SyncService(services)
    services.repo.write_hooks.append(outbox_hook(services.sync, services.jobs))
    services.repo.write_hooks.append(
        refresh_hook(services.jobs)
    )  # the kept coaching views, soon after a write
