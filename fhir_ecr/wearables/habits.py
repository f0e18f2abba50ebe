"""The habit bridge: daily summaries whose code is that of an active habit (on or after the habit's start) go
through :meth:`CoachingService.apply_wearable_observation`; a day at or above the target becomes a ``done``
check-in (idempotent per habit and day; ``docs/wearables.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from ..coaching import resources as coaching_res
from ..store.repository import FhirRepository
from .report import ImportSummary

if TYPE_CHECKING:
    from ..coaching.service import CoachingService

__all__ = ["HabitWindow", "connect", "habit_window"]

_OK_STATUSES: Final = ("final", "amended", "corrected")


@dataclass(frozen=True)
class HabitWindow:
    """Codings of the patient's active habits with a daily target, and the earliest habit start."""

    codings: frozenset[tuple[str, str]]
    start: date


def habit_window(repo: FhirRepository, patient_id: str) -> HabitWindow | None:
    """The patient's active habits that a daily summary can check in; None when there is none."""
    plans = repo.search_params(
        "CarePlan",
        [
            ("patient", f"Patient/{patient_id}"),
            ("category", f"{coaching_res.MECR_CODES}|habit-plan"),
            ("status", "active"),
        ],
        default_count=1000,
    )
    codings: set[tuple[str, str]] = set()
    start: date | None = None
    for stored in plans.matches:
        try:
            habits = coaching_res.habits_of_plan(stored.content or {})
        except ValueError:
            continue
        for habit in habits:
            if habit.daily_amount and habit.codings:
                codings.update(habit.codings)
                start = habit.start if start is None else min(start, habit.start)
    return HabitWindow(frozenset(codings), start) if codings and start else None


def connect(
    coaching: CoachingService, observations: list[dict[str, Any]], habits: HabitWindow, summary: ImportSummary
) -> None:
    """Check in the habits these stored summaries meet; counts the check-ins made or changed."""
    tz_start = habits.start.isoformat()
    for obs in observations:
        if obs.get("status") not in _OK_STATUSES:
            continue
        codes = {(c.get("system"), c.get("code")) for c in (obs.get("code") or {}).get("coding", [])}
        if not codes & habits.codings:
            continue
        # effectivePeriod.start is the local midnight written with its offset: its date is the local day
        if str((obs.get("effectivePeriod") or {}).get("start", ""))[:10] < tz_start:
            continue
        result = coaching.apply_wearable_observation(obs)
        summary.checkins += sum(1 for c in result.checkins if c.created or c.changed)
