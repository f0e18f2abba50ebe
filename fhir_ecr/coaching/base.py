"""What the coaching service's reads and writes share: the clock and the patient's "today", the patient's time
zone, goal progress over a series, the searches every part uses, and the translation of the pure core's errors.
(:mod:`fhir_ecr.coaching.service` writes, :mod:`fhir_ecr.coaching.views` reads; both build on this.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.adherence import AdherencePolicy
from fhir_ecr.coaching.errors import CoachingError
from fhir_ecr.coaching.progress import GoalProgress, ProgressPolicy, goal_progress
from fhir_ecr.coaching.streaks import StreakPolicy
from fhir_ecr.outcomes import FhirError, issue
from fhir_ecr.store.repository import FhirRepository, Stored, UnitOfWork
from fhir_ecr.store.search import parse_search

__all__ = ["CoachingBase", "business_rule", "unknown_reference"]


_PAGE = 10_000
_FIRST_SINCE = 24  # readings read from a goal's start: its first day's latest reading is among them
#: Longest run chart, in days (ten years): a longer one is refused (400) rather than computed.
MAX_CHART_DAYS = 3660
_CLOSED_GOALS = {"completed", "cancelled", "rejected", "entered-in-error"}
_INACTIVE_HABITS = {"stopped", "cancelled", "entered-in-error", "completed"}
_PRIORITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-priority"


def business_rule(diagnostics: str, expression: str | None = None) -> FhirError:
    """422: well-formed input that a coaching rule does not allow."""
    return FhirError(issue("business-rule", diagnostics, expression=expression), 422)


def unknown_reference(diagnostics: str, expression: str | None = None) -> FhirError:
    """422: the input names something (a habit, a coach) that does not exist."""
    return FhirError(issue("not-found", diagnostics, expression=expression), 422)


@contextmanager
def _core_errors() -> Iterator[None]:
    # The pure core raises ValueError subclasses; they mean "the input is wrong" (errors.py).
    try:
        yield
    except CoachingError as exc:
        raise FhirError(issue("invalid", str(exc)), 400) from exc


def _search_all(uow: UnitOfWork, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every match, fetched in pages of ``_PAGE`` (one query for a normal patient), without a total count."""
    query = parse_search(rtype, params, strict=True, default_count=_PAGE, max_count=_PAGE)
    query.total = "none"
    out: list[dict[str, Any]] = []
    while True:
        result = uow.search(query)
        out += [s.content for s in result.matches if s.content is not None]
        if result.next_cursor is None:
            return out
        query.cursor = result.next_cursor


# What the summary reads of each check-in and each reading (res.checkin_from_observation, res.measurements_by_day).
# What the summary reads of each check-in and each reading (res.checkin_from_observation, res.measurements_by_day).
_CHECKIN_ELEMENTS = ["status", "extension", "basedOn", "effectiveDateTime", "valueCodeableConcept"]
_READING_ELEMENTS = [
    "status",
    "code",
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "valueQuantity",
]


class CoachingBase:
    """The service's settings, clock and shared rules (see :class:`~fhir_ecr.coaching.service.CoachingService`)."""

    def __init__(
        self,
        repo: FhirRepository,
        *,
        default_tz: str = "UTC",
        progress_policy: ProgressPolicy | None = None,
        streak_policy: StreakPolicy | None = None,
        adherence_policy: AdherencePolicy | None = None,
        windows: Sequence[int] = (7, 30, 90),
        run_chart_days: int = 84,
        history_days: int = 400,
        now: Callable[[], datetime] | None = None,
        use_cache: bool = True,
    ) -> None:
        try:
            ZoneInfo(default_tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown default time zone {default_tz!r}") from exc
        self.repo = repo
        self.default_tz = default_tz
        self.progress_policy = progress_policy or ProgressPolicy()
        self.streak_policy = streak_policy or StreakPolicy()
        self.adherence_policy = adherence_policy or AdherencePolicy()
        self.windows = tuple(windows)
        self.run_chart_days = run_chart_days
        self.history_days = max(history_days, *self.windows, run_chart_days)
        self._now = now
        self.use_cache = use_cache

    # -- time --------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The current instant: the injected clock, else the repository's (so tests can pin both)."""
        if self._now is not None:
            return self._now()
        return datetime.fromtimestamp(self.repo.clock() / 1_000_000, UTC)

    def today(self, tz: str) -> date:
        """Today's date in the IANA zone ``tz``."""
        return self.now().astimezone(ZoneInfo(tz)).date()

    def _patient(self, uow: UnitOfWork, patient_id: str) -> tuple[dict[str, Any], str]:
        content = uow.read("Patient", patient_id).content or {}
        return content, res.patient_time_zone(content, self.default_tz)

    def _progress(
        self,
        info: res.GoalInfo,
        observations: Sequence[Mapping[str, Any]],
        tz: str,
        today: date,
        start: date | None = None,
    ) -> tuple[GoalProgress, list[Any]] | None:
        """Progress over one measurement a day. A quantity without comparator takes its direction from the goal's
        own baseline: its first measurement on or after ``start`` (Goal.startDate, else the day the goal was
        created), never an older one; with none yet, the goal is in progress (R1: no evidence of its own)."""
        if info.target is None:
            return None
        series = res.measurements_by_day(observations, tz, info.unit)
        with _core_errors():
            target = info.target
            if info.inferred_direction:
                own = [m for m in series if start is None or m.when >= start]
                if not own:
                    return goal_progress(target, [], today=today, policy=self.progress_policy), series
                target = res.goal_info_target(info, own[0].value) or target
            return goal_progress(target, series, today=today, policy=self.progress_policy), series

    @staticmethod
    def _goal_start(
        uow: UnitOfWork, info: res.GoalInfo, tz: str, stored: Stored | None = None
    ) -> date | None:
        """Goal.startDate, else the local day the goal was created (its first version)."""
        if info.start is not None:
            return info.start
        try:
            first = (
                stored if stored is not None and stored.version_id == 1 else uow.vread("Goal", info.id, "1")
            )
        except FhirError:
            return None
        return datetime.fromtimestamp(first.last_updated / 1_000_000, UTC).astimezone(ZoneInfo(tz)).date()
