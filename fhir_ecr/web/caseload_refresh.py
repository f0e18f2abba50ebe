"""The caseload's rows drawn ahead of the coach: after the ``refresh_views`` job has recomputed the kept glances
(a nightly import, a new day), it draws the rows of every coach who opened the caseload in the last
``VIEWER_DAYS`` days, with their zone and scope, and keeps them (``kept_view``, one row per patient and viewer),
so the coach's first view of the morning reads drawn rows (docs/web.md, "The caseload").

Registered on the services by the composition root (``Services.view_refreshers``); the job runner knows nothing
of the pages.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from .caseload import VIEWER_PREFIX, caseload
from .views import Data

__all__ = ["refresh_rows", "VIEWER_DAYS"]

log = logging.getLogger("mecr.web")

#: A coach who has not opened the caseload for this many days gets no rows drawn ahead.
VIEWER_DAYS = 14


def refresh_rows(services: Any) -> int:
    """Draw and keep the caseload rows of the recent viewers whose kept rows no longer hold; returns the viewers."""
    repo = services.repo  # the job's own, unguarded: rows are used only after each viewer's access checks
    with repo.unit(write=False) as uow:
        viewers = uow.states(VIEWER_PREFIX)
    oldest = datetime.now(UTC).date() - timedelta(days=VIEWER_DAYS)
    data = Data(
        repo,
        services.settings.default_time_zone,
        str(getattr(services.settings, "referral_response_days", "7")),
    )
    done = 0
    for key, raw in viewers:
        try:
            record = json.loads(raw)
            if date.fromisoformat(record["day"]) < oldest:
                continue
            principal = SimpleNamespace(
                kind=record.get("kind"), fhir_user=record.get("fhirUser"), patient_id=None
            )
            caseload(
                data,
                principal,
                key[len(VIEWER_PREFIX) :],
                scope=str(record.get("scope") or "mine"),
                viewer_tz=str(record["tz"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("caseload rows not drawn ahead: %s", type(exc).__name__)
            continue
        done += 1
    return done
