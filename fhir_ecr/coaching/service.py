"""The coaching service: goals, habits, check-ins, PDSA notes, summaries and run charts over the FHIR store.

Every fact is a FHIR resource read and written through :class:`~fhir_ecr.store.repository.FhirRepository`
(never SQL), so each write is validated, indexed, versioned and audited in one place. The pure computations
(:mod:`~fhir_ecr.coaching.schedule`, ``adherence``, ``streaks``, ``progress``, ``runchart``) get their inputs
from :mod:`~fhir_ecr.coaching.fhir_io`. "Today" is the patient's local date: the repository's clock read in the
patient's time zone (``Patient.extension`` ``timezone``, else ``default_tz``). The reads (summary, run chart,
the patient page's overview) are cached per patient data version (:mod:`fhir_ecr.coaching.cache`).

Errors: the service raises only :class:`~fhir_ecr.outcomes.FhirError` (built by the outcomes factories)::

    FhirError
     ├── 400 invalid / required / value   malformed input (bad date, unknown status code, bad schedule)
     ├── 404 not-found                    the CarePlan / Goal / Patient addressed does not exist
     ├── 412 conflict                     If-Match (expected_version) is not the current version
     └── 422 business-rule / not-found    well-formed but not allowed: unknown habit, check-in in the future
                                          or before the habit started or after it stopped, wrong patient

:class:`~fhir_ecr.coaching.errors.CoachingError` from the pure core is translated once, here, into 400 invalid.

``achievementStatus`` rule: a measurable goal's status is :func:`~fhir_ecr.coaching.progress.goal_progress`
over one measurement per patient-local day (the day's latest reading of an Observation coded with the goal's
``target.measure``, status final/amended/corrected, converted to the target's unit). It is recomputed and
written (only when it changes) whenever a check-in for a habit serving the goal, or a wearable reading of
its measure, is written through this service, and on demand (:meth:`CoachingService.recompute_goal`).
Goals that are not measurable, or whose lifecycle is completed/cancelled/rejected/entered-in-error, are
left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_ecr.coaching import fhir_io as io
from fhir_ecr.coaching.adherence import AdherencePolicy, ledger_adherence
from fhir_ecr.coaching.cache import view_cache
from fhir_ecr.coaching.errors import CoachingError
from fhir_ecr.coaching.progress import AchievementStatus, GoalProgress, ProgressPolicy, goal_progress
from fhir_ecr.coaching.runchart import ChangeChart, RunChartAnalysis, analyse_changes
from fhir_ecr.coaching.schedule import CheckIn, CheckInStatus, Pause, ledger
from fhir_ecr.coaching.streaks import StreakPolicy, ledger_streaks
from fhir_ecr.outcomes import FhirError, bad_request, issue, precondition_failed
from fhir_ecr.store.repository import FhirRepository, Stored, UnitOfWork
from fhir_ecr.store.search import parse_search

__all__ = [
    "CheckInResult",
    "CoachingService",
    "WearableResult",
    "business_rule",
    "shift_direction",
    "unknown_reference",
]

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


@dataclass(frozen=True)
class CheckInResult:
    """A written check-in: the stored Observation, whether it was created or changed, the local day."""

    stored: Stored
    created: bool
    changed: bool
    day: date
    goal_status: str | None = None


@dataclass
class WearableResult:
    """What one wearable reading did: check-ins written and goals whose status was recomputed."""

    observation: Stored | None
    checkins: list[CheckInResult] = field(default_factory=list)
    goals: dict[str, str] = field(default_factory=dict)


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


def _elements(uow: UnitOfWork, rtype: str, params: list[tuple[str, str]], elements: list[str]
              ) -> Iterator[dict[str, Any]]:
    """Every match with only the named elements, picked out by the store, parsed one at a time as iterated."""
    return uow.search_elements(parse_search(rtype, params, strict=True), elements)


# What the summary reads of each check-in and each reading (io.checkin_from_observation, io.measurements_by_day).
_CHECKIN_ELEMENTS = ["status", "extension", "basedOn", "effectiveDateTime", "valueCodeableConcept"]
_READING_ELEMENTS = ["status", "code", "effectiveDateTime", "effectiveInstant", "effectivePeriod", "valueQuantity"]


def _coding_token(codings: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{s}|{c}".replace(",", "\\,") for s, c in codings)


class CoachingService:
    """Coaching rules over the repository. Cheap to build: one per request is fine (the computed views are
    cached per database and patient data version in :mod:`fhir_ecr.coaching.cache`, not in the service;
    ``use_cache=False`` computes every read afresh)."""

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
        return content, io.patient_time_zone(content, self.default_tz)

    # -- patients ----------------------------------------------------------------------------------------

    def set_time_zone(self, patient_id: str, tz: str) -> Stored:
        """Record the patient's IANA time zone (the ``timezone`` extension) — it decides check-in dates."""
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad_request(f"unknown time zone {tz!r}", "timeZone") from None
        with self.repo.unit() as uow:
            stored = uow.read("Patient", patient_id)
            content = copy.deepcopy(stored.content or {})
            exts = [e for e in content.get("extension", []) or [] if e.get("url") != io.TIMEZONE_URL]
            content["extension"] = [*exts, {"url": io.TIMEZONE_URL, "valueCode": tz}]
            return uow.update("Patient", patient_id, content, expected_version=stored.version_id).stored

    # -- goals -------------------------------------------------------------------------------------------

    def create_goal(
        self,
        patient_id: str,
        *,
        description: str,
        category: str,
        measure: Mapping[str, str] | None = None,
        at_least: float | None = None,
        at_most: float | None = None,
        between: tuple[float, float] | None = None,
        unit: str | None = None,
        due: date | None = None,
        start: date | None = None,
        expressed_by: str | None = None,
        priority: str | None = None,
        addresses: Sequence[str] = (),
        goal_id: str | None = None,
    ) -> Stored:
        """Create a SMART coaching Goal (``mecr-coaching-goal``) and compute its achievementStatus.

        ``measure`` is a LOINC Coding from the IG's coaching-target-measure value set; give exactly one of
        ``at_least`` / ``at_most`` (``detailQuantity`` with comparator) or ``between`` (``detailRange``).
        """
        given = [x is not None for x in (at_least, at_most, between)]
        if measure is not None and sum(given) != 1:
            raise bad_request("a measurable goal needs exactly one of at_least, at_most or between", "target")
        if measure is None and any(given):
            raise bad_request("a goal target needs a measure", "target.measure")
        goal: dict[str, Any] = {
            "resourceType": "Goal",
            "meta": {"profile": [io.GOAL_PROFILE]},
            "lifecycleStatus": "active",
            "achievementStatus": {"coding": [AchievementStatus.IN_PROGRESS.coding()]},
            "category": [{"coding": [{"system": io.GOAL_CATEGORY_SYSTEM, "code": category}]}],
            "description": {"text": description},
            "subject": {"reference": f"Patient/{patient_id}"},
            "expressedBy": {"reference": expressed_by or f"Patient/{patient_id}"},
        }
        if priority:
            goal["priority"] = {"coding": [{"system": _PRIORITY_SYSTEM, "code": priority}]}
        if start:
            goal["startDate"] = start.isoformat()
        if measure is not None:
            target: dict[str, Any] = {"measure": {"coding": [dict(measure)]}}
            if between is not None:
                low, high = between
                target["detailRange"] = {"low": io.quantity(low, unit or "1"), "high": io.quantity(high, unit or "1")}
            else:
                value = at_least if at_least is not None else at_most
                assert value is not None
                target["detailQuantity"] = {**io.quantity(value, unit or "1"),
                                            "comparator": ">=" if at_least is not None else "<="}
            if due:
                target["dueDate"] = due.isoformat()
            goal["target"] = [target]
        if addresses:
            goal["addresses"] = [{"reference": r} for r in addresses]
        with _core_errors():
            io.goal_info(goal)
        with self.repo.unit() as uow:
            _, tz = self._patient(uow, patient_id)
            if goal_id:
                stored = uow.update("Goal", goal_id, {**goal, "id": goal_id}).stored
            else:
                stored = uow.create(goal).stored
                uow.flush()
            updated, _ = self._recompute(uow, stored, tz)
            return updated or stored

    def recompute_goal(self, goal_id: str) -> tuple[Stored, GoalProgress | None]:
        """Recompute (and store, if it changed) the goal's achievementStatus from the evidence now."""
        with self.repo.unit() as uow:
            stored = uow.read("Goal", goal_id)
            pid = io.ref_id((stored.content or {}).get("subject"), "Patient")
            tz = self._patient(uow, pid)[1] if pid else self.default_tz
            updated, progress = self._recompute(uow, stored, tz)
            return updated or stored, progress

    def _progress(self, info: io.GoalInfo, observations: Sequence[Mapping[str, Any]], tz: str,
                  today: date, start: date | None = None) -> tuple[GoalProgress, list[Any]] | None:
        """Progress over one measurement a day. A quantity without comparator takes its direction from the goal's
        own baseline: its first measurement on or after ``start`` (Goal.startDate, else the day the goal was
        created), never an older one; with none yet, the goal is in progress (R1: no evidence of its own)."""
        if info.target is None:
            return None
        series = io.measurements_by_day(observations, tz, info.unit)
        with _core_errors():
            target = info.target
            if info.inferred_direction:
                own = [m for m in series if start is None or m.when >= start]
                if not own:
                    return goal_progress(target, [], today=today, policy=self.progress_policy), series
                target = io.goal_info_target(info, own[0].value) or target
            return goal_progress(target, series, today=today, policy=self.progress_policy), series

    @staticmethod
    def _goal_start(uow: UnitOfWork, info: io.GoalInfo, tz: str, stored: Stored | None = None) -> date | None:
        """Goal.startDate, else the local day the goal was created (its first version)."""
        if info.start is not None:
            return info.start
        try:
            first = stored if stored is not None and stored.version_id == 1 else uow.vread("Goal", info.id, "1")
        except FhirError:
            return None
        return datetime.fromtimestamp(first.last_updated / 1_000_000, UTC).astimezone(ZoneInfo(tz)).date()

    def _recompute(self, uow: UnitOfWork, stored: Stored, tz: str,
                   observations: Sequence[Mapping[str, Any]] | None = None
                   ) -> tuple[Stored | None, GoalProgress | None]:
        goal = stored.content or {}
        with _core_errors():
            info = io.goal_info(goal)
        if info.target is None or info.lifecycle in _CLOSED_GOALS or info.patient_id is None:
            return None, None
        if observations is None:
            observations = _search_all(uow, "Observation", [("patient", f"Patient/{info.patient_id}"),
                                                            ("code", _coding_token(info.measure))])
        start = self._goal_start(uow, info, tz, stored) if info.inferred_direction else None
        result = self._progress(info, observations, tz, self.today(tz), start)
        if result is None:
            return None, None
        progress, _ = result
        if info.achievement == progress.status.value:
            return None, progress
        content = copy.deepcopy(goal)
        content["achievementStatus"] = {"coding": [progress.status.coding()]}
        written = uow.update("Goal", stored.id, content, expected_version=stored.version_id)
        return written.stored, progress

    # -- habit plans -------------------------------------------------------------------------------------

    def create_plan(self, patient_id: str, title: str, habits: Sequence[Mapping[str, Any]], *,
                    author: str | None = None, start: date | None = None, plan_id: str | None = None) -> Stored:
        """Create a habit plan (``mecr-habit-plan`` CarePlan) with its first habits (build them with
        :func:`~fhir_ecr.coaching.fhir_io.habit_activity`)."""
        if not habits:
            raise bad_request("a habit plan needs at least one habit (mecr-habit-plan: activity 1..*)", "activity")
        with self.repo.unit() as uow:
            self._patient(uow, patient_id)  # 404 for an unknown patient
            first = start or min(
                io.parse_local_date(h["detail"]["scheduledTiming"]["repeat"]["boundsPeriod"]["start"], "start")
                for h in habits)
            plan: dict[str, Any] = {
                "resourceType": "CarePlan",
                "meta": {"profile": [io.PLAN_PROFILE]},
                "status": "active",
                "intent": "plan",
                "category": [{"coding": [{"system": io.MECR_CODES, "code": "habit-plan", "display": "Habit plan"}]}],
                "title": title,
                "subject": {"reference": f"Patient/{patient_id}"},
                "period": {"start": first.isoformat()},
                "activity": [copy.deepcopy(dict(h)) for h in habits],
            }
            if author:
                plan["author"] = {"reference": author}
            self._check_plan(uow, plan, patient_id)
            if plan_id:
                return uow.update("CarePlan", plan_id, {**plan, "id": plan_id}).stored
            stored = uow.create(plan).stored
            uow.flush()
            return stored

    def _check_plan(self, uow: UnitOfWork, plan: dict[str, Any], patient_id: str) -> None:
        """Every habit parses, and every goal a habit serves is the patient's; CarePlan.goal lists them."""
        plan.setdefault("id", "new")
        with _core_errors():
            habits = io.habits_of_plan(plan)
        if plan["id"] == "new":
            del plan["id"]
        ids = [h.habit_id for h in habits]
        if len(ids) != len(set(ids)):
            raise bad_request("two habits of one plan share a habit id (mecr-plan-1)", "CarePlan.activity")
        goal_ids = sorted({h.goal_id for h in habits if h.goal_id})
        for gid in goal_ids:
            try:
                goal = uow.read("Goal", gid).content or {}
            except FhirError:
                raise unknown_reference(f"Goal/{gid} does not exist", "goal") from None
            if io.ref_id(goal.get("subject"), "Patient") != patient_id:
                raise business_rule(f"Goal/{gid} is not a goal of Patient/{patient_id}", "goal")
        if goal_ids:
            plan["goal"] = [{"reference": f"Goal/{g}"} for g in goal_ids]

    def _plan(self, uow: UnitOfWork, plan_id: str, expected_version: int | None) -> tuple[Stored, dict[str, Any]]:
        stored = uow.read("CarePlan", plan_id)
        content = stored.content or {}
        if not any(c.get("system") == io.MECR_CODES and c.get("code") == "habit-plan"
                   for cat in content.get("category", []) or [] for c in cat.get("coding", []) or []):
            raise business_rule(f"CarePlan/{plan_id} is not a habit plan", "CarePlan.category")
        if expected_version is not None and stored.version_id != expected_version:
            raise precondition_failed(
                f"CarePlan/{plan_id} is at version {stored.version_id}, not {expected_version} (If-Match)")
        return stored, copy.deepcopy(content)

    def _modify_plan(self, plan_id: str, expected_version: int | None,
                     change: Callable[[dict[str, Any], date], None]) -> Stored:
        with self.repo.unit() as uow:
            stored, content = self._plan(uow, plan_id, expected_version)
            patient_id = io.ref_id(content.get("subject"), "Patient") or ""
            _, tz = self._patient(uow, patient_id)
            change(content, self.today(tz))
            self._check_plan(uow, content, patient_id)
            return uow.update("CarePlan", plan_id, content, expected_version=stored.version_id).stored

    @staticmethod
    def _activity(content: dict[str, Any], habit_id: str) -> dict[str, Any]:
        for activity in content.get("activity", []) or []:
            if any(e.get("url") == io.HABIT_ID_URL and e.get("valueString") == habit_id
                   for e in activity.get("extension", []) or []):
                return activity  # type: ignore[no-any-return]
        raise unknown_reference(f"habit {habit_id!r} is not in CarePlan/{content.get('id')}", "habitId")

    def add_habit(self, plan_id: str, activity: Mapping[str, Any], *, expected_version: int | None = None) -> Stored:
        """Add a habit (a :func:`~fhir_ecr.coaching.fhir_io.habit_activity`) to the plan."""
        def change(content: dict[str, Any], today: date) -> None:
            content.setdefault("activity", []).append(copy.deepcopy(dict(activity)))
        return self._modify_plan(plan_id, expected_version, change)

    def change_habit(self, plan_id: str, habit_id: str, *, title: str | None = None,
                     description: str | None = None, repeat: Mapping[str, Any] | None = None,
                     goal_id: str | None = None, daily_amount: Mapping[str, Any] | None = None,
                     expected_version: int | None = None) -> Stored:
        """Change what a habit is, its schedule (the new schedule applies to its whole history), goal or amount."""
        def change(content: dict[str, Any], today: date) -> None:
            detail = self._activity(content, habit_id)["detail"]
            if title is not None:
                detail["code"]["text"] = title
            if description is not None:
                detail["description"] = description
            if repeat is not None:
                bounds = detail["scheduledTiming"]["repeat"].get("boundsPeriod")
                detail["scheduledTiming"]["repeat"] = {**{k: v for k, v in repeat.items() if k != "boundsPeriod"},
                                                       "boundsPeriod": bounds}
            if goal_id is not None:
                detail["goal"] = [{"reference": f"Goal/{goal_id}"}]
            if daily_amount is not None:
                detail["dailyAmount"] = dict(daily_amount)
        return self._modify_plan(plan_id, expected_version, change)

    def pause_habit(self, plan_id: str, habit_id: str, reason: str, *, start: date | None = None,
                    until: date | None = None, reason_text: str | None = None,
                    expected_version: int | None = None) -> Stored:
        """Pause a habit from ``start`` (default today) to ``until`` (open when None): status on-hold with
        statusReason (mecr-plan-2) and a ``habit-pause`` entry, so the paused days leave adherence and streaks."""
        def change(content: dict[str, Any], today: date) -> None:
            activity = self._activity(content, habit_id)
            detail = activity["detail"]
            if detail.get("status") in _INACTIVE_HABITS:
                raise business_rule(f"habit {habit_id!r} is {detail.get('status')} and cannot be paused", "habitId")
            if detail.get("status") == "on-hold":
                raise business_rule(f"habit {habit_id!r} is already paused", "habitId")
            first = start or today
            with _core_errors():
                pause = Pause(first, until, reason)
                habit = io.habit_from_activity(plan_id, activity, 0)
            if first < habit.start:
                raise business_rule(f"a pause cannot start before the habit started ({habit.start})", "start")
            if any(p.end is None or p.end >= first for p in habit.pauses):
                raise business_rule("the pause overlaps an earlier pause of this habit", "start")
            detail["status"] = "on-hold"
            detail["statusReason"] = io._pause_reason(reason, reason_text)
            activity.setdefault("extension", []).append(io.pause_extension(pause, reason_text))
        return self._modify_plan(plan_id, expected_version, change)

    def resume_habit(self, plan_id: str, habit_id: str, *, on: date | None = None,
                     expected_version: int | None = None) -> Stored:
        """Resume a paused habit on ``on`` (default today): the open pause ends the day before."""
        def change(content: dict[str, Any], today: date) -> None:
            activity = self._activity(content, habit_id)
            if activity["detail"].get("status") != "on-hold":
                raise business_rule(f"habit {habit_id!r} is not paused", "habitId")
            resume = on or today
            self._close_pause(activity, resume, plan_id)
            activity["detail"]["status"] = "in-progress"
            activity["detail"].pop("statusReason", None)
        return self._modify_plan(plan_id, expected_version, change)

    @staticmethod
    def _close_pause(activity: dict[str, Any], resume: date, plan_id: str) -> None:
        kept = []
        for ext in activity.get("extension", []) or []:
            if ext.get("url") != io.HABIT_PAUSE_URL:
                kept.append(ext)
                continue
            with _core_errors():
                pause = io.pause_of_extension(ext)
            if pause.end is not None:
                kept.append(ext)
                continue
            if resume < pause.start:
                raise business_rule(f"cannot resume before the pause started ({pause.start})", "on")
            if resume > pause.start:  # resuming on the pause's first day leaves no paused day: drop it
                kept.append(io.end_pause(ext, resume - timedelta(days=1)))
        activity["extension"] = kept

    def stop_habit(self, plan_id: str, habit_id: str, *, on: date | None = None,
                   expected_version: int | None = None) -> Stored:
        """Stop a habit: status stopped, the schedule ends on ``on`` (default today), an open pause ends."""
        def change(content: dict[str, Any], today: date) -> None:
            activity = self._activity(content, habit_id)
            detail = activity["detail"]
            if detail.get("status") in _INACTIVE_HABITS:
                raise business_rule(f"habit {habit_id!r} is already {detail.get('status')}", "habitId")
            end = on or today
            bounds = detail["scheduledTiming"]["repeat"]["boundsPeriod"]
            if end < io.parse_local_date(bounds["start"], "habit start"):
                raise business_rule("a habit cannot stop before it started", "on")
            self._close_pause(activity, end + timedelta(days=1), plan_id)
            bounds["end"] = end.isoformat()
            detail["status"] = "stopped"
            detail.pop("statusReason", None)
        return self._modify_plan(plan_id, expected_version, change)

    def add_pdsa(self, goal_id: str, *, title: str, day: date | None = None, habit_id: str | None = None,
                 plan: str = "", do: str = "", study: str = "", act: str = "", author: str | None = None,
                 expected_version: int | None = None) -> Stored:
        """Record a PDSA change for a goal as an ``activity.progress`` note on the habit that carries it.

        ``habit_id`` picks the habit; without it the goal must be served by exactly one habit.
        """
        with self.repo.unit(write=False) as uow:
            goal = uow.read("Goal", goal_id).content or {}
            pid = io.ref_id(goal.get("subject"), "Patient") or ""
            plans = _search_all(uow, "CarePlan", [("patient", f"Patient/{pid}"),
                                                  ("category", f"{io.MECR_CODES}|habit-plan")])
        with _core_errors():
            serving = [h for p in plans for h in io.habits_of_plan(p) if h.goal_id == goal_id
                       and (habit_id is None or h.habit_id == habit_id)]
        if not serving:
            what = f"habit {habit_id!r}" if habit_id else "no habit"
            raise unknown_reference(f"{what} serving Goal/{goal_id} was found", "habitId")
        if len(serving) > 1:
            raise bad_request(f"Goal/{goal_id} is served by several habits; say which with habitId", "habitId")
        habit = serving[0]

        def change(content: dict[str, Any], today: date) -> None:
            when = day or today
            if when > today:
                raise business_rule(f"a PDSA change cannot be dated in the future ({when} > {today})", "date")
            activity = self._activity(content, habit.habit_id)
            activity.setdefault("progress", []).append(
                io.pdsa_annotation(when, title, plan=plan, do=do, study=study, act=act, author=author))
        return self._modify_plan(habit.plan_id, expected_version, change)

    # -- check-ins ---------------------------------------------------------------------------------------

    def check_in(
        self,
        plan_id: str,
        habit_id: str,
        status: str | CheckInStatus,
        *,
        day: date | None = None,
        at: datetime | None = None,
        quantity: Mapping[str, Any] | None = None,
        note: str | None = None,
        patient_id: str | None = None,
    ) -> CheckInResult:
        """Record how a habit went on one patient-local day; the latest check-in of a day wins.

        The day is ``day`` (already local), or the local date of the instant ``at``, or today. The check-in's
        identifier is deterministic per plan, habit and day, and it is written with a conditional update on
        it (https://hl7.org/fhir/R4/http.html#cond-update): a second check-in the same day is a new version of
        the same Observation (status ``amended``), and the store's history keeps the first.
        """
        try:
            parsed_status = CheckInStatus(str(status.value if isinstance(status, CheckInStatus) else status))
        except ValueError:
            raise FhirError(issue("value", f"status must be done, partly or not-done, not {status!r}",
                                  expression="status"), 400) from None
        with self.repo.unit() as uow:
            result = self._check_in(uow, plan_id, habit_id, parsed_status, day=day, at=at, quantity=quantity,
                                    note=note, patient_id=patient_id)
            assert result is not None  # only an only_upgrade write can be skipped
            return result

    def _check_in(self, uow: UnitOfWork, plan_id: str, habit_id: str, status: CheckInStatus, *,
                  day: date | None, at: datetime | None, quantity: Mapping[str, Any] | None, note: str | None,
                  patient_id: str | None, derived_from: str | None = None, only_upgrade: bool = False,
                  plan_content: Mapping[str, Any] | None = None, tz: str | None = None
                  ) -> CheckInResult | None:
        if plan_content is None:
            _, content = self._plan(uow, plan_id, None)
        else:
            content = copy.deepcopy(dict(plan_content))
        owner = io.ref_id(content.get("subject"), "Patient")
        if owner is None:
            raise business_rule(f"CarePlan/{plan_id} has no patient subject")
        if patient_id is not None and patient_id != owner:
            raise business_rule(f"habit plan CarePlan/{plan_id} belongs to another patient, not Patient/{patient_id}",
                                "patient")
        if tz is None:
            tz = self._patient(uow, owner)[1]
        activity = self._activity(content, habit_id)
        with _core_errors():
            habit = io.habit_from_activity(plan_id, activity, 0)
        today = self.today(tz)
        if day is None:
            day = at.astimezone(ZoneInfo(tz)).date() if at is not None else today
        if day > today:
            raise business_rule(f"a check-in cannot be for a future day ({day}; today is {today} in {tz})", "date")
        if day < habit.start:
            raise business_rule(f"habit {habit_id!r} started on {habit.start}; no check-in for {day}", "date")
        if habit.end is not None and day > habit.end:
            raise business_rule(f"habit {habit_id!r} stopped on {habit.end}; no check-in for {day}", "date")
        if habit.status in ("cancelled", "entered-in-error"):
            raise business_rule(f"habit {habit_id!r} is {habit.status}", "habitId")
        ident = io.checkin_identifier(plan_id, habit_id, day)
        criteria = f"identifier={ident['system']}|{ident['value']}"
        existing = uow.match_conditional("Observation", criteria)
        previous = (existing.content or {}) if existing is not None else None
        if only_upgrade and previous is not None:
            parsed = io.checkin_from_observation(previous)
            if parsed is not None and parsed[2].status is CheckInStatus.DONE:
                return None
        obs = io.checkin_observation(habit, owner, day, status, quantity=quantity, note=note,
                                     derived_from=derived_from)
        if previous is not None:
            def essence(o: Mapping[str, Any]) -> tuple[Any, ...]:
                return tuple(o.get(k) for k in ("valueCodeableConcept", "component", "note", "focus", "derivedFrom"))
            # R4 observation-status: a changed result after the first report is "amended".
            obs["status"] = previous.get("status", "final") if essence(previous) == essence(obs) else "amended"
            if obs["status"] not in ("final", "amended", "corrected"):
                obs["status"] = "amended"
        written = uow.conditional_update("Observation", criteria, obs)
        goal_status = None
        if habit.goal_id:
            try:
                goal = uow.read("Goal", habit.goal_id)
            except FhirError:
                goal = None
            if goal is not None:
                updated, progress = self._recompute(uow, goal, tz)
                goal_status = progress.status.value if progress else None
        return CheckInResult(written.stored, written.created, written.changed, day, goal_status)

    def apply_wearable_observation(self, observation: Mapping[str, Any]) -> WearableResult:
        """Let a wearable daily reading count: habits it satisfies get a ``done`` check-in, goals are updated.

        Rule: a habit of an active habit plan of the reading's patient is satisfied when the habit's
        ``detail.code`` shares a coding with the reading's ``code`` and the reading's value (converted to the
        unit of the habit's ``dailyAmount``) is at least ``dailyAmount``, on an active, unpaused day of the
        habit. The check-in is ``done``, carries the value as its amount and ``derivedFrom`` the reading.
        A reading below the target writes nothing (no check-in already counts as missed), and a day that
        already has a ``done`` check-in is left as it is. Then every active measurable goal of the patient
        whose ``target.measure`` is the reading's code is recomputed.

        The importer calls this after storing the reading; a reading without an id is stored first
        (conditionally on its first identifier, so a re-import does not duplicate it).
        """
        if not isinstance(observation, Mapping) or observation.get("resourceType") != "Observation":
            raise bad_request("apply_wearable_observation needs an Observation")
        pid = io.ref_id(observation.get("subject"), "Patient")
        if pid is None:
            raise bad_request("the wearable Observation has no Patient subject", "Observation.subject")
        codings = {(c.get("system"), c.get("code")) for c in (observation.get("code") or {}).get("coding", []) or []}
        with self.repo.unit() as uow:
            if observation.get("id"):
                stored: Stored | None = uow.read("Observation", str(observation["id"]))
            else:
                ident = (observation.get("identifier") or [None])[0]
                condition = f"identifier={ident['system']}|{ident['value']}" if ident else None
                stored = uow.create(dict(observation), if_none_exist=condition).stored
                uow.flush()
            assert stored is not None
            content = stored.content or {}
            result = WearableResult(stored)
            if content.get("status") not in ("final", "amended", "corrected"):
                return result
            _, tz = self._patient(uow, pid)
            day = io.effective_local_date(content, tz)
            if day is None:
                return result
            plans = _search_all(uow, "CarePlan", [("patient", f"Patient/{pid}"),
                                                  ("category", f"{io.MECR_CODES}|habit-plan"), ("status", "active")])
            for plan in plans:
                with _core_errors():
                    habits = io.habits_of_plan(plan)
                for habit in habits:
                    if not codings & set(habit.codings) or not habit.daily_amount:
                        continue
                    if habit.status in _INACTIVE_HABITS and (habit.end is None or day > habit.end):
                        continue
                    if not habit.schedule.is_active(day) or any(p.covers(day) for p in habit.pauses):
                        continue
                    if day > self.today(tz):
                        continue
                    target = habit.daily_amount.get("value")
                    value = io.measurement_value(content, habit.daily_amount.get("code"))
                    if not isinstance(target, (int, float)) or value is None or value < float(target):
                        continue
                    amount = io.quantity(value, str(habit.daily_amount.get("code") or "1"),
                                         habit.daily_amount.get("unit"))
                    written = self._check_in(uow, habit.plan_id, habit.habit_id, CheckInStatus.DONE, day=day, at=None,
                                             quantity=amount, note=None, patient_id=pid,
                                             derived_from=f"Observation/{stored.id}", only_upgrade=True,
                                             plan_content=plan, tz=tz)
                    if written is not None:
                        result.checkins.append(written)
            goals = _search_all(uow, "Goal", [("patient", f"Patient/{pid}")])
            for goal in goals:
                info = io.goal_info(goal)
                if info.target is None or not codings & set(info.measure):
                    continue
                goal_stored = uow.read("Goal", info.id)
                _, progress = self._recompute(uow, goal_stored, tz)
                if progress is not None:
                    result.goals[info.id] = progress.status.value
            return result

    # -- reads -------------------------------------------------------------------------------------------
    #
    # Each read is a view computed from the patient's data, cached per patient data version (coaching.cache):
    # ``_cached_view`` authorises the caller exactly as the uncached read would (the Patient is read through
    # the caller's repository, the guard is asked about every type the view reads), then uses the entry for
    # (view, patient, data version, local today, service parameters) or computes it in the same unit of work,
    # reading the version before the data, so what is cached is never older than its version.

    def _params_key(self) -> Hashable:
        key = (self.default_tz, self.progress_policy, self.streak_policy, self.adherence_policy, self.windows,
               self.run_chart_days, self.history_days)
        try:
            hash(key)
        except TypeError:  # a policy with unhashable fields: its repr names every setting
            return repr(key)
        return key

    def _cached_view(self, view: str, patient_id: str, args: Hashable, types: Sequence[str],
                     compute: Callable[[UnitOfWork, str, date], tuple[Any, ...]]) -> Any:
        """``compute(uow, tz, today) -> (value, [(type, id) read][, {(other view, its args): its value}])``
        through the view cache (the optional third item: views computed along the way, cached as well)."""
        cache = view_cache(self.repo.engine) if self.use_cache else None
        with self.repo.unit(write=False) as uow:
            version = uow.patient_version(patient_id)
            _, tz = self._patient(uow, patient_id)  # the caller may read this patient (404/410/403 otherwise)
            today = self.today(tz)
            guard = self.repo.guard
            if guard is not None:
                for rtype in types:  # scope checks, in the order the computation searches
                    guard.require(rtype, "s")
                conf = guard.confinement()
                if conf is not None and conf.patient_id != patient_id:
                    cache = None  # confined to another record: what they see is not the patient's view
            key = (view, patient_id, version, today, tz, self._params_key(), args)
            if cache is not None:
                hit = cache.get(key)
                if hit is not None:
                    value, refs = hit
                    if guard is not None:  # the audit trail names what the view was computed from
                        guard.after_read([Stored(t, i, 0, 0, False, {"resourceType": t, "id": i}) for t, i in refs],
                                         patient_id)
                    return value
            value, refs, *more = compute(uow, tz, today)
        if cache is not None:
            cache.put(key, (value, refs))
            for (other, other_args), other_value in (more[0] if more else {}).items():
                cache.put((other, *key[1:-1], other_args), (other_value, refs))
        return value

    def coaching_summary(self, patient_id: str) -> dict[str, Any]:
        """Goals with progress and recent run-chart signals, habits with adherence and streaks (a dict)."""
        def compute(uow: UnitOfWork, tz: str, today: date) -> tuple[Any, list[tuple[str, str]]]:
            inputs = self._gather(uow, patient_id, tz, today, ())
            return self._summarize(inputs)[0], inputs.refs()
        return self._cached_view("summary", patient_id, (), _SUMMARY_TYPES, compute)  # type: ignore[no-any-return]

    def patient_overview(self, patient_id: str, series: Sequence[tuple[str, str, str | None]] = ()
                         ) -> dict[str, Any]:
        """What the coach's patient page shows, from one read of the patient's data: ``summary`` (as
        :meth:`coaching_summary`), ``goals`` (the Goal resources), ``goalSeries`` (goal id -> the daily
        ``(date, value)`` measurements of the run-chart window, in the goal's unit), ``series`` (for each
        ``(system, code, unit)`` asked for, keyed ``"system|code"``: its daily measurements over the same window)
        and ``runChart`` (``"system|code"`` -> :meth:`run_chart` over the default window, for every goal measure
        and every series with points)."""
        wanted = tuple((s, c, u) for s, c, u in series)

        def compute(uow: UnitOfWork, tz: str, today: date) -> tuple[Any, list[tuple[str, str]]]:
            inputs = self._gather(uow, patient_id, tz, today, [(s, c) for s, c, _ in wanted])
            summary, goal_series = self._summarize(inputs)
            start = today - timedelta(days=self.run_chart_days - 1)
            out_series: dict[str, list[tuple[date, float]]] = {}
            for system, code, unit in wanted:
                obs = [o for o in inputs.readings if (system, code) in _codings(o)]
                out_series[f"{system}|{code}"] = [(m.when, m.value) for m in io.measurements_by_day(obs, tz, unit)
                                                  if start <= m.when <= today]
            charts: dict[str, Any] = {}
            measures = [m for i in inputs.infos if i.target is not None and i.lifecycle not in _CLOSED_GOALS
                        for m in i.measure]
            for system, code in [*measures, *((s, c) for s, c, _ in wanted if out_series[f"{s}|{c}"])]:
                if f"{system}|{code}" not in charts:
                    charts[f"{system}|{code}"] = self._chart(patient_id, [(system, code)], start, today, tz,
                                                             inputs.readings, inputs.infos, inputs.plans)
            value = {"summary": summary, "goals": inputs.goals, "goalSeries": goal_series, "series": out_series,
                     "runChart": charts}
            return value, inputs.refs(), {("summary", ()): summary,
                                          ("glance", ()): self._glance(uow, inputs, summary, goal_series)}
        return self._cached_view("overview", patient_id, wanted, _SUMMARY_TYPES, compute)  # type: ignore[no-any-return]

    # -- the caseload's view: the same computation as the page's, less the trends and run charts ------------------

    def patient_glance(self, patient_id: str) -> dict[str, Any]:
        """What the caseload shows of a patient, from the same computation as :meth:`patient_overview` (whose
        cache entry fills this one, and the other way round for the summary): ``summary``, ``goals`` (the Goal
        resources), ``goalSeries`` (goal id -> the daily measurements of the run-chart window, in the goal's
        unit: the patient page's sparkline points), ``lastData`` (the local day of the patient's latest
        Observation of any kind up to today — a wearable reading or a check-in — or None) and ``refs`` (the
        ``(type, id)`` of the Goals and CarePlans it was computed from, for a caller's own audit trail)."""
        return self._cached_view("glance", patient_id, (), _GLANCE_TYPES,  # type: ignore[no-any-return]
                                 lambda uow, tz, today: self._glance_compute(uow, patient_id, tz, today))

    def patient_glances(self, patient_ids: Sequence[str]) -> dict[str, dict[str, Any] | FhirError]:
        """:meth:`patient_glance` of many patients in one read transaction (the caseload), with the same access
        checks and cache entries. A patient the caller may not see is left out; a patient whose data cannot be
        computed (a malformed Goal, say) maps to the :class:`FhirError`, so one record never hides the rest."""
        cache = view_cache(self.repo.engine) if self.use_cache else None
        guard = self.repo.guard
        params = self._params_key()
        out: dict[str, dict[str, Any] | FhirError] = {}
        fresh: list[tuple[Hashable, Any, list[tuple[str, str]], dict[Any, Any]]] = []
        with self.repo.unit(write=False) as uow:
            # versions first, then the data they guard (as _cached_view)
            versions = {pid: uow.patient_version(pid) for pid in dict.fromkeys(patient_ids)}
            patients: dict[str, dict[str, Any]] = {}
            ids = list(versions)
            for i in range(0, len(ids), 200):
                for p in _search_all(uow, "Patient", [("_id", ",".join(ids[i:i + 200]))]):
                    patients[str(p.get("id"))] = p
            confined = None
            if guard is not None:
                for rtype in _GLANCE_TYPES:
                    guard.require(rtype, "s")
                conf = guard.confinement()
                confined = conf.patient_id if conf is not None else None
            for pid in ids:
                content = patients.get(pid)
                if content is None:
                    continue
                tz = io.patient_time_zone(content, self.default_tz)
                today = self.today(tz)
                use = cache if confined in (None, pid) else None
                key = ("glance", pid, versions[pid], today, tz, params, ())
                hit = use.get(key) if use is not None else None
                if hit is not None:
                    value, refs = hit
                    if guard is not None:
                        guard.after_read([Stored(t, i, 0, 0, False, {"resourceType": t, "id": i}) for t, i in refs],
                                         pid)
                    out[pid] = value
                    continue
                try:
                    value, refs, more = self._glance_compute(uow, pid, tz, today)
                except FhirError as exc:
                    out[pid] = exc
                    continue
                out[pid] = value
                if use is not None:
                    fresh.append((key, value, refs, more))
        if cache is not None:
            for key, value, refs, more in fresh:
                cache.put(key, (value, refs))
                for (other, other_args), other_value in more.items():
                    cache.put((other, *key[1:-1], other_args), (other_value, refs))  # type: ignore[index]
        return out

    def _glance_compute(self, uow: UnitOfWork, patient_id: str, tz: str, today: date
                        ) -> tuple[dict[str, Any], list[tuple[str, str]], dict[Any, Any]]:
        inputs = self._gather(uow, patient_id, tz, today, ())
        summary, goal_series = self._summarize(inputs)
        return self._glance(uow, inputs, summary, goal_series), inputs.refs(), {("summary", ()): summary}

    def _glance(self, uow: UnitOfWork, inputs: _Inputs, summary: dict[str, Any],
                goal_series: dict[str, list[tuple[date, float]]]) -> dict[str, Any]:
        latest = next(iter(uow.search_elements(parse_search("Observation", [
            ("patient", f"Patient/{inputs.patient_id}"), ("date", f"le{inputs.today.isoformat()}"),
            ("_sort", "-date")], strict=True), ["effectiveDateTime", "effectiveInstant", "effectivePeriod"], limit=1)),
            None)
        last = io.effective_local_date(latest, inputs.tz) if latest is not None else None
        return {"summary": summary, "goals": inputs.goals, "goalSeries": goal_series,
                "lastData": min(last, inputs.today) if last is not None else None, "refs": inputs.refs()}

    def _gather(self, uow: UnitOfWork, patient_id: str, tz: str, today: date,
                extra_codes: Sequence[tuple[str, str]]) -> _Inputs:
        """Everything the summary (and the page) is computed from, read in one unit of work."""
        subject = ("patient", f"Patient/{patient_id}")
        goals = _search_all(uow, "Goal", [subject])
        plans = _search_all(uow, "CarePlan", [subject, ("category", f"{io.MECR_CODES}|habit-plan")])
        # Bounded reads (the p95 target): check-ins of the last history_days days; readings of the trend and
        # run-chart windows plus the first baseline_points days' readings for the baseline.
        since = today - timedelta(days=self.history_days - 1)
        by_habit = self._checkins(uow, [subject, ("code", f"{io.MECR_CODES}|habit-check-in"),
                                        ("date", f"ge{since.isoformat()}")])
        with _core_errors():
            infos = [io.goal_info(g) for g in goals]
        measures = sorted({m for i in infos if i.target is not None and i.lifecycle not in _CLOSED_GOALS
                           for m in i.measure})
        codes = sorted({*measures, *extra_codes})
        readings: list[dict[str, Any]] = []
        if codes:
            recent_days = max(self.run_chart_days, self.progress_policy.trend_window_days) + 1
            readings = list(_elements(uow, "Observation", [
                subject, ("code", _coding_token(codes)),
                ("date", f"ge{(today - timedelta(days=recent_days)).isoformat()}")], _READING_ELEMENTS))
        if measures:
            readings += self._first_readings(uow, patient_id, measures)
        # Goals without comparator: their start, and their first readings since (the direction's baseline).
        starts: dict[str, date] = {}
        for info in infos:
            if info.inferred_direction and info.lifecycle not in _CLOSED_GOALS:
                start = self._goal_start(uow, info, tz)
                if start is not None:
                    starts[info.id] = start
                    readings += list(uow.search_elements(parse_search("Observation", [
                        subject, ("code", _coding_token(info.measure)), ("date", f"ge{start.isoformat()}"),
                        ("_sort", "date")], strict=True), _READING_ELEMENTS, limit=_FIRST_SINCE))
        return _Inputs(patient_id, tz, today, goals, infos, plans, by_habit, readings, starts)

    def _summarize(self, inputs: _Inputs) -> tuple[dict[str, Any], dict[str, list[tuple[date, float]]]]:
        """The summary, and each measured goal's daily measurements of the run-chart window."""
        tz, today = inputs.tz, inputs.today
        with _core_errors():
            habits = [h for p in inputs.plans if p.get("status") not in ("revoked", "entered-in-error")
                      for h in io.habits_of_plan(p)]
            notes = [n for p in inputs.plans for n in io.pdsa_notes(p, io.habits_of_plan(p))]
        by_code: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for obs in inputs.readings:
            for c in (obs.get("code") or {}).get("coding", []) or []:
                by_code.setdefault((c.get("system"), c.get("code")), []).append(obs)
        goal_out = []
        goal_series: dict[str, list[tuple[date, float]]] = {}
        for info in inputs.infos:
            if info.lifecycle in _CLOSED_GOALS:
                continue
            item: dict[str, Any] = {
                "reference": {"reference": f"Goal/{info.id}"},
                "description": info.description,
                "lifecycleStatus": info.lifecycle,
                "storedAchievementStatus": info.achievement,
            }
            # A reading coded with two of the goal's codings counts once.
            obs_for_goal = list({id(o): o for m in info.measure for o in by_code.get(m, [])}.values())
            result = self._progress(info, obs_for_goal, tz, today, inputs.starts.get(info.id))
            if result is not None:
                progress, series = result
                item.update(_progress_dict(progress, info))
                recent = [m for m in series if m.when > today - timedelta(days=self.run_chart_days)]
                goal_series[info.id] = [(m.when, m.value) for m in recent]
                goal_notes = [n for n in notes if n.goal_id == info.id]
                chart = _run_chart([m.when for m in recent], [m.value for m in recent], goal_notes)
                if chart is not None:
                    item["runChart"] = _signals_dict(chart)
            goal_out.append(item)
        habit_out = []
        for habit in habits:
            cis = inputs.by_habit.get((habit.plan_id, habit.habit_id), [])
            with _core_errors():
                # One ledger of the habit's whole life serves every adherence window and the streaks.
                led = ledger(habit.schedule, cis, habit.pauses, today=today)
                windows = {d: ledger_adherence(led, d, self.adherence_policy) for d in self.windows}
                streak = ledger_streaks(led, self.streak_policy)
            last = max((c.day for c in cis), default=None)
            habit_out.append({
                "plan": {"reference": f"CarePlan/{habit.plan_id}"},
                "habitId": habit.habit_id,
                "title": habit.title,
                "status": habit.status,
                "statusReason": habit.status_reason,
                "servesGoal": {"reference": f"Goal/{habit.goal_id}"} if habit.goal_id else None,
                "schedule": habit.schedule.kind.value,
                "start": habit.start,
                "end": habit.end,
                "pause": [{"start": p.start, "end": p.end, "reason": p.reason or None} for p in habit.pauses],
                "adherence": [{"days": d, "rate": a.rate, "scheduled": a.scheduled, "earned": a.earned,
                               "done": a.done, "partly": a.partly, "missed": a.missed, "paused": a.paused}
                              for d, a in windows.items()],
                "streak": {
                    "unit": streak.unit.value,
                    "current": streak.current_length,
                    "currentStart": streak.current.start if streak.current else None,
                    "repaired": list(streak.current.repaired) if streak.current else [],
                    "best": streak.best_length,
                },
                "lastCheckIn": last,
            })
        summary = {
            "patient": {"reference": f"Patient/{inputs.patient_id}"},
            "today": today,
            "timeZone": tz,
            "goal": goal_out,
            "habit": habit_out,
        }
        return summary, goal_series

    def _checkins(self, uow: UnitOfWork, params: list[tuple[str, str]]) -> dict[tuple[str, str], list[CheckIn]]:
        """The check-ins matching ``params`` by (plan id, habit id), read from the search index: a check-in's
        identifier, result and status (io.checkins_from_tokens); only check-ins without a check-in identifier
        are read as documents (a few elements each)."""
        rows = uow.search_index_values(parse_search("Observation", params, strict=True), io.CHECKIN_TOKENS)
        by_habit, unkeyed = io.checkins_from_tokens(rows)
        for i in range(0, len(unkeyed), 200):
            ids = ",".join(unkeyed[i:i + 200])
            for obs in _elements(uow, "Observation", [("_id", ids)], _CHECKIN_ELEMENTS):
                parsed = io.checkin_from_observation(obs)
                if parsed is not None:
                    by_habit.setdefault((parsed[0], parsed[1]), []).append(parsed[2])
        return by_habit

    def _first_readings(self, uow: UnitOfWork, patient_id: str, measures: Sequence[tuple[str, str]]
                        ) -> list[dict[str, Any]]:
        """The readings of each measure's first days (the goal baseline): the first ``4 * baseline_points`` of
        each measure in ``_sort=date`` order (earliest date, then key), found from the search index in one
        statement for all measures, then read (a few elements each). (One ``_sort=date`` search per measure
        with a limit was tried: each walks the patient's readings again, 3 x 15 ms against 33 ms here.)"""
        query = parse_search("Observation", [("patient", f"Patient/{patient_id}"), ("code", _coding_token(measures))],
                             strict=True)
        rows = uow.search_index_values(query, [("code", system, code) for system, code in measures], ["date"])
        first: set[str] = set()
        for i in range(len(measures)):
            # rows come in key order, and sorted() is stable: equal dates keep it, as _sort=date does
            having = sorted((r for r in rows if r[1 + i] is not None),
                            key=lambda r: (r[-1] is None, r[-1] if r[-1] is not None else 0))
            first.update(str(r[0]) for r in having[: self.progress_policy.baseline_points * 4])
        if not first:
            return []
        return list(_elements(uow, "Observation", [("_id", ",".join(sorted(first)))], _READING_ELEMENTS))

    def run_chart(self, patient_id: str, codings: Sequence[tuple[str, str]], start: date | None = None,
                  end: date | None = None) -> dict[str, Any]:
        """The daily series of a measure for a patient between two local dates, its median and signals,
        with the PDSA notes of habits serving goals on that measure as phase boundaries."""
        wanted = tuple((s, c) for s, c in codings)

        def compute(uow: UnitOfWork, tz: str, today: date) -> tuple[Any, list[tuple[str, str]]]:
            last = end or today
            first = start or last - timedelta(days=self.run_chart_days - 1)
            if first > last:
                raise bad_request(f"from ({first}) is after to ({last})", "from")
            if (last - first).days >= MAX_CHART_DAYS:
                raise bad_request(f"a run chart covers at most {MAX_CHART_DAYS} days, not {first} to {last}", "from")
            subject = ("patient", f"Patient/{patient_id}")
            # A day padded on both sides: instants are filtered to the local day after conversion.
            readings = list(_elements(uow, "Observation", [
                subject, ("code", _coding_token(wanted)),
                ("date", f"ge{(first - timedelta(days=1)).isoformat()}"),
                ("date", f"le{(last + timedelta(days=1)).isoformat()}")], _READING_ELEMENTS))
            goals = _search_all(uow, "Goal", [subject])
            plans = _search_all(uow, "CarePlan", [subject, ("category", f"{io.MECR_CODES}|habit-plan")])
            with _core_errors():
                infos = [io.goal_info(g) for g in goals]
            value = self._chart(patient_id, wanted, first, last, tz, readings, infos, plans)
            return value, [*(("Goal", str(g.get("id"))) for g in goals), *(("CarePlan", str(p.get("id"))) for p in plans)]
        return self._cached_view("run-chart", patient_id, (wanted, start, end), ("Observation", "Goal", "CarePlan"),
                                 compute)  # type: ignore[no-any-return]

    def _chart(self, patient_id: str, codings: Sequence[tuple[str, str]], start: date, end: date, tz: str,
               readings: Sequence[Mapping[str, Any]], infos: Sequence[io.GoalInfo],
               plans: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """:meth:`run_chart` over readings already read (those of other codes are left out here)."""
        wanted = set(codings)
        readings = [o for o in readings if wanted & _codings(o)]
        with _core_errors():
            goal_ids = {i.id for i in infos if set(i.measure) & wanted}
            unit = next((i.unit for i in infos if i.id in goal_ids and i.unit), None)
            if unit is None:
                unit = next(((o.get("valueQuantity") or {}).get("code") for o in readings
                             if (o.get("valueQuantity") or {}).get("code")), None)
            notes = [n for p in plans for n in io.pdsa_notes(p, io.habits_of_plan(p))
                     if n.goal_id in goal_ids and start <= n.day <= end]
            series = [m for m in io.measurements_by_day(readings, tz, unit) if start <= m.when <= end]
        chart = _run_chart([m.when for m in series], [m.value for m in series], notes)
        out: dict[str, Any] = {
            "patient": {"reference": f"Patient/{patient_id}"},
            "code": [{"system": s, "code": c} for s, c in codings],
            "from": start,
            "to": end,
            "unit": unit,
            "timeZone": tz,
        }
        if chart is None:
            out["point"] = []
            return out
        analysis, split_notes = chart
        overall = analysis.overall
        shift, astro = set(overall.shift_points), set(overall.astronomical_points)
        out["median"] = overall.median
        out["point"] = [{"date": m.when, "value": m.value, "shift": i in shift, "astronomical": i in astro}
                        for i, m in enumerate(series)]
        out["analysis"] = _analysis_dict(overall, series_dates=[m.when for m in series])
        out["baseline"] = _baseline_dict(analysis)
        out["phase"] = [_analysis_dict(p, series_dates=[m.when for m in series]) for p in analysis.phases]
        out["annotation"] = [{"date": n.day, "text": n.text, "title": n.title, "habitId": n.habit_id,
                              "plan": {"reference": f"CarePlan/{n.plan_id}"}} for n in split_notes]
        return out


_SUMMARY_TYPES = ("Goal", "CarePlan", "Observation")  # what the summary searches, in that order
_GLANCE_TYPES = ("Patient", *_SUMMARY_TYPES)  # the caseload's batch also searches the Patients


@dataclass
class _Inputs:
    """What a patient's summary (and page) is computed from, read in one unit of work."""

    patient_id: str
    tz: str
    today: date
    goals: list[dict[str, Any]]
    infos: list[io.GoalInfo]
    plans: list[dict[str, Any]]
    by_habit: dict[tuple[str, str], list[CheckIn]]
    readings: list[dict[str, Any]]
    starts: dict[str, date] = field(default_factory=dict)  # goal id -> its start, for goals without comparator

    def refs(self) -> list[tuple[str, str]]:
        """The resources the view names (for the audit trail of a cache hit)."""
        return [*(("Goal", str(g.get("id"))) for g in self.goals),
                *(("CarePlan", str(p.get("id"))) for p in self.plans)]


def _codings(obs: Mapping[str, Any]) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in (obs.get("code") or {}).get("coding", []) or []}


def _run_chart(days: Sequence[date], values: Sequence[float], notes: Sequence[io.PdsaNote]
               ) -> tuple[ChangeChart, list[io.PdsaNote]] | None:
    """The series' signals with its PDSA changes (runchart.analyse_changes): analysed against its own median,
    reported only once at least ``MIN_BASELINE`` useful points precede the latest change; each change starts a
    phase with its own median. A change on the series' first day starts no phase (there is nothing before it).
    """
    if not values:
        return None
    starts: list[int] = []
    used: list[io.PdsaNote] = []
    for note in sorted(notes, key=lambda n: n.day):
        index = next((i for i, d in enumerate(days) if d >= note.day), None)
        if index is None or index == 0 or (starts and index <= starts[-1]):
            continue
        starts.append(index)
        used.append(note)
    return analyse_changes(values, starts, [n.title for n in used]), used


_WITHHELD_TEXT = {"not-enough-baseline": "not enough baseline yet",
                  "too-few-useful-points": "too few points for a signal"}


def _analysis_dict(a: RunChartAnalysis, series_dates: Sequence[date]) -> dict[str, Any]:
    return {
        "label": a.label or None,
        "from": series_dates[a.first],
        "to": series_dates[a.last],
        "median": a.median,
        "baselineTo": series_dates[a.baseline_last],
        "points": a.n_obs,
        "useful": a.n_useful,
        "longestRun": a.longest_run,
        "longestRunLimit": a.longest_run_limit,
        "crossings": a.crossings,
        "crossingsLimit": a.crossings_limit,
        "signal": a.signal,
        "rule": [r.value for r in a.rules],
        "shiftFrom": series_dates[min(a.shift_points)] if a.shift_points else None,
        "direction": shift_direction(a),
        # every run longer than the limit, oldest first: which side of the median, from, to, how many points
        "shift": [{"side": "above" if r.side > 0 else "below", "from": series_dates[r.indices[0]],
                   "to": series_dates[r.indices[-1]], "points": r.length}
                  for r in a.runs if a.longest_run_limit is not None and r.length > a.longest_run_limit],
        "withheld": _WITHHELD_TEXT.get(a.withheld or ""),
    }


def _baseline_dict(chart: ChangeChart) -> dict[str, Any] | None:
    if chart.baseline_useful is None:
        return None
    return {"points": chart.baseline_useful, "needed": chart.min_baseline, "enough": chart.enough_baseline}


def shift_direction(a: RunChartAnalysis) -> str | None:
    """``"up"`` or ``"down"``: the side of the median of the latest run longer than the limit (a shift), or
    None when no shift fired (a signal of too few crossings alone has no direction)."""
    if a.longest_run_limit is None:
        return None
    runs = [r for r in a.runs if r.length > a.longest_run_limit]
    if not runs:
        return None
    return "up" if max(runs, key=lambda r: r.indices[-1]).side > 0 else "down"


def _signals_dict(chart: tuple[ChangeChart, list[io.PdsaNote]]) -> dict[str, Any]:
    analysis, notes = chart
    overall = analysis.overall
    return {
        "median": overall.median,
        "points": overall.n_obs,
        "signal": analysis.signal,
        "rule": [r.value for r in overall.rules],
        "direction": shift_direction(overall) if analysis.signal else None,
        "pdsa": [n.title for n in notes],
        "baseline": _baseline_dict(analysis),
        "withheld": _WITHHELD_TEXT.get(overall.withheld or ""),
    }


def _progress_dict(p: GoalProgress, info: io.GoalInfo) -> dict[str, Any]:
    return {
        "achievementStatus": p.status.coding(),
        "statusRule": p.rule,
        "unit": info.unit,
        "latest": p.latest.value if p.latest else None,
        "latestDate": p.latest.when if p.latest else None,
        "baseline": p.baseline,
        "percentOfWay": p.percent_of_way,
        "met": p.met,
        "everMet": p.ever_met,
        "slopePerDay": p.slope_per_day,
        "projectedDate": p.projected_date,
        # achieved (or sustaining) on a latest reading older than ProgressPolicy.stale_after_days: not fresh
        "stale": p.stale,
    }
