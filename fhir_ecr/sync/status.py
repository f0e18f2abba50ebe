"""What ``mecr sync status`` and the status page show per EMR: the last pull of each type and its lag, the outbox
depth, and the parked failures (each retryable). Counts, types, times and the EHR's registry id only."""

from __future__ import annotations

import json
import time
from typing import Any

from .bulk_pull import BULK_MARK
from .pull import instant_us

__all__ = ["sync_status"]


def _lag(high_water: str | None, now: float) -> int | None:
    if not high_water:
        return None
    try:
        return max(0, int(now - instant_us(high_water) / 1_000_000))
    except ValueError:
        return None


def sync_status(services: Any, ehr_id: str | None = None, parked_limit: int = 50) -> list[dict[str, Any]]:
    """One entry per EMR with sync configured (or just ``ehr_id``)."""
    store = services.sync_store
    now = time.time()
    out = []
    for row, config in services.sync.configured():
        if ehr_id is not None and row["id"] != ehr_id:
            continue
        marks = {m["res_type"]: m for m in store.marks(row["id"])}
        types = []
        for rtype in [
            *config.pull_types,
            *([BULK_MARK] if config.mode == "bulk" or BULK_MARK in marks else []),
        ]:
            m = marks.get(rtype) or {}
            state = json.loads(m["state"]) if m.get("state") else None
            types.append(
                {
                    "type": "Bulk Data" if rtype == BULK_MARK else rtype,
                    "high_water": m.get("high_water"),
                    "lag_seconds": _lag(m.get("high_water"), now),
                    "last_started": m.get("last_started"),
                    "last_finished": m.get("last_finished"),
                    "last_count": m.get("last_count"),
                    "last_error": m.get("last_error"),
                    "in_progress": bool(state and state.get("status")),
                }
            )
        counts = store.outbox_counts(row["id"]).get(row["id"], {})
        oldest = store.oldest_pending(row["id"])
        parked = store.outbox(row["id"], ["parked"], limit=parked_limit)
        out.append(
            {
                "ehr": row["id"],
                "name": row["name"],
                "mode": config.mode,
                "interval_minutes": config.interval_minutes,
                "enabled": config.enabled,
                "pull": [str(s) for s in config.pull],
                "push": [str(s) for s in config.push],
                "types": types,
                "outbox": {
                    "pending": counts.get("pending", 0),
                    "claimed": counts.get("claimed", 0),
                    "parked": counts.get("parked", 0),
                    "done": counts.get("done", 0),
                    "skipped": counts.get("skipped", 0),
                    "oldest_age_seconds": int(now - oldest) if oldest is not None else None,
                },
                "parked": [
                    {
                        "id": p.id,
                        "type": p.res_type,
                        "resource": f"{p.res_type}/{p.res_id}",
                        "status": p.last_status,
                        "detail": p.detail,
                        "attempts": p.attempts,
                        "outcome": _diagnostics(p.outcome),
                        "when": p.finished,
                    }
                    for p in parked
                ],
            }
        )
    return out


def _diagnostics(outcome: str | None) -> str | None:
    if not outcome:
        return None
    try:
        data = json.loads(outcome)
    except ValueError:
        return None
    texts = [
        str(i.get("diagnostics") or i.get("code")) for i in data.get("issue") or [] if isinstance(i, dict)
    ]
    return "; ".join(texts)[:500] or None
