"""The coaching service: goals, habits, check-ins, PDSA notes, summaries and run charts over the FHIR store.

Every fact is a FHIR resource read and written through :class:`~fhir_ecr.store.repository.FhirRepository`
(never SQL), so each write is validated, indexed, versioned and audited in one place. The pure computations
(:mod:`~fhir_ecr.coaching.schedule`, ``adherence``, ``streaks``, ``progress``, ``runchart``) get their inputs
from :mod:`~fhir_ecr.coaching.resources`. "Today" is the patient's local date: the repository's clock read in the
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.base import (
    _CLOSED_GOALS,
    _INACTIVE_HABITS,
    _PRIORITY_SYSTEM,
    _core_errors,
    _search_all,
    business_rule,
    unknown_reference,
)
from fhir_ecr.coaching.derived.reads import coding_token as _coding_token
from fhir_ecr.coaching.progress import AchievementStatus, GoalProgress
from fhir_ecr.coaching.schedule import CheckInStatus, Pause
from fhir_ecr.coaching.view_shapes import shift_direction
from fhir_ecr.coaching.views import CoachingViews
from fhir_ecr.outcomes import FhirError, bad_request, issue, precondition_failed
from fhir_ecr.store.repository import Stored, UnitOfWork

__all__ = [
    "CheckInResult",
    "CoachingService",
    "WearableResult",
    "business_rule",
    "shift_direction",
    "unknown_reference",
]


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


class CoachingService(CoachingViews):
    """Coaching rules over the repository. Cheap to build: one per request is fine (the computed views are
    cached per database and patient data version in :mod:`fhir_ecr.coaching.cache`, not in the service;
    ``use_cache=False`` computes every read afresh). The reads are :class:`~fhir_ecr.coaching.views.CoachingViews`."""

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
            exts = [e for e in content.get("extension", []) or [] if e.get("url") != res.TIMEZONE_URL]
            content["extension"] = [*exts, {"url": res.TIMEZONE_URL, "valueCode": tz}]
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
            "meta": {"profile": [res.GOAL_PROFILE]},
            "lifecycleStatus": "active",
            "achievementStatus": {"coding": [AchievementStatus.IN_PROGRESS.coding()]},
            "category": [{"coding": [{"system": res.GOAL_CATEGORY_SYSTEM, "code": category}]}],
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
                target["detailRange"] = {
                    "low": res.quantity(low, unit or "1"),
                    "high": res.quantity(high, unit or "1"),
                }
            else:
                value = at_least if at_least is not None else at_most
                assert value is not None
                target["detailQuantity"] = {
                    **res.quantity(value, unit or "1"),
                    "comparator": ">=" if at_least is not None else "<=",
                }
            if due:
                target["dueDate"] = due.isoformat()
            goal["target"] = [target]
        if addresses:
            goal["addresses"] = [{"reference": r} for r in addresses]
        with _core_errors():
            res.goal_info(goal)
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
            pid = res.ref_id((stored.content or {}).get("subject"), "Patient")
            tz = self._patient(uow, pid)[1] if pid else self.default_tz
            updated, progress = self._recompute(uow, stored, tz)
            return updated or stored, progress

    def _recompute(
        self,
        uow: UnitOfWork,
        stored: Stored,
        tz: str,
        observations: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[Stored | None, GoalProgress | None]:
        goal = stored.content or {}
        with _core_errors():
            info = res.goal_info(goal)
        if info.target is None or info.lifecycle in _CLOSED_GOALS or info.patient_id is None:
            return None, None
        if observations is None:
            observations = _search_all(
                uow,
                "Observation",
                [("patient", f"Patient/{info.patient_id}"), ("code", _coding_token(info.measure))],
            )
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

    def create_plan(
        self,
        patient_id: str,
        title: str,
        habits: Sequence[Mapping[str, Any]],
        *,
        author: str | None = None,
        start: date | None = None,
        plan_id: str | None = None,
    ) -> Stored:
        """Create a habit plan (``mecr-habit-plan`` CarePlan) with its first habits (build them with
        :func:`~fhir_ecr.coaching.resources.habit_activity`)."""
        if not habits:
            raise bad_request(
                "a habit plan needs at least one habit (mecr-habit-plan: activity 1..*)", "activity"
            )
        with self.repo.unit() as uow:
            self._patient(uow, patient_id)  # 404 for an unknown patient
            first = start or min(
                res.parse_local_date(
                    h["detail"]["scheduledTiming"]["repeat"]["boundsPeriod"]["start"], "start"
                )
                for h in habits
            )
            plan: dict[str, Any] = {
                "resourceType": "CarePlan",
                "meta": {"profile": [res.PLAN_PROFILE]},
                "status": "active",
                "intent": "plan",
                "category": [
                    {"coding": [{"system": res.MECR_CODES, "code": "habit-plan", "display": "Habit plan"}]}
                ],
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
            habits = res.habits_of_plan(plan)
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
            if res.ref_id(goal.get("subject"), "Patient") != patient_id:
                raise business_rule(f"Goal/{gid} is not a goal of Patient/{patient_id}", "goal")
        if goal_ids:
            plan["goal"] = [{"reference": f"Goal/{g}"} for g in goal_ids]

    def _plan(
        self, uow: UnitOfWork, plan_id: str, expected_version: int | None
    ) -> tuple[Stored, dict[str, Any]]:
        stored = uow.read("CarePlan", plan_id)
        content = stored.content or {}
        if not any(
            c.get("system") == res.MECR_CODES and c.get("code") == "habit-plan"
            for cat in content.get("category", []) or []
            for c in cat.get("coding", []) or []
        ):
            raise business_rule(f"CarePlan/{plan_id} is not a habit plan", "CarePlan.category")
        if expected_version is not None and stored.version_id != expected_version:
            raise precondition_failed(
                f"CarePlan/{plan_id} is at version {stored.version_id}, not {expected_version} (If-Match)"
            )
        return stored, copy.deepcopy(content)

    def _modify_plan(
        self, plan_id: str, expected_version: int | None, change: Callable[[dict[str, Any], date], None]
    ) -> Stored:
        with self.repo.unit() as uow:
            stored, content = self._plan(uow, plan_id, expected_version)
            patient_id = res.ref_id(content.get("subject"), "Patient") or ""
            _, tz = self._patient(uow, patient_id)
            change(content, self.today(tz))
            self._check_plan(uow, content, patient_id)
            return uow.update("CarePlan", plan_id, content, expected_version=stored.version_id).stored

    @staticmethod
    def _activity(content: dict[str, Any], habit_id: str) -> dict[str, Any]:
        for activity in content.get("activity", []) or []:
            if any(
                e.get("url") == res.HABIT_ID_URL and e.get("valueString") == habit_id
                for e in activity.get("extension", []) or []
            ):
                return activity  # type: ignore[no-any-return]
        raise unknown_reference(f"habit {habit_id!r} is not in CarePlan/{content.get('id')}", "habitId")

    def add_habit(
        self, plan_id: str, activity: Mapping[str, Any], *, expected_version: int | None = None
    ) -> Stored:
        """Add a habit (a :func:`~fhir_ecr.coaching.resources.habit_activity`) to the plan."""

        def change(content: dict[str, Any], today: date) -> None:
            content.setdefault("activity", []).append(copy.deepcopy(dict(activity)))

        return self._modify_plan(plan_id, expected_version, change)

    def change_habit(
        self,
        plan_id: str,
        habit_id: str,
        *,
        title: str | None = None,
        description: str | None = None,
        repeat: Mapping[str, Any] | None = None,
        goal_id: str | None = None,
        daily_amount: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> Stored:
        """Change what a habit is, its schedule (the new schedule applies to its whole history), goal or amount."""

        def change(content: dict[str, Any], today: date) -> None:
            detail = self._activity(content, habit_id)["detail"]
            if title is not None:
                detail["code"]["text"] = title
            if description is not None:
                detail["description"] = description
            if repeat is not None:
                bounds = detail["scheduledTiming"]["repeat"].get("boundsPeriod")
                detail["scheduledTiming"]["repeat"] = {
                    **{k: v for k, v in repeat.items() if k != "boundsPeriod"},
                    "boundsPeriod": bounds,
                }
            if goal_id is not None:
                detail["goal"] = [{"reference": f"Goal/{goal_id}"}]
            if daily_amount is not None:
                detail["dailyAmount"] = dict(daily_amount)

        return self._modify_plan(plan_id, expected_version, change)

    def pause_habit(
        self,
        plan_id: str,
        habit_id: str,
        reason: str,
        *,
        start: date | None = None,
        until: date | None = None,
        reason_text: str | None = None,
        expected_version: int | None = None,
    ) -> Stored:
        """Pause a habit from ``start`` (default today) to ``until`` (open when None): status on-hold with
        statusReason (mecr-plan-2) and a ``habit-pause`` entry, so the paused days leave adherence and streaks."""

        def change(content: dict[str, Any], today: date) -> None:
            activity = self._activity(content, habit_id)
            detail = activity["detail"]
            if detail.get("status") in _INACTIVE_HABITS:
                raise business_rule(
                    f"habit {habit_id!r} is {detail.get('status')} and cannot be paused", "habitId"
                )
            if detail.get("status") == "on-hold":
                raise business_rule(f"habit {habit_id!r} is already paused", "habitId")
            first = start or today
            with _core_errors():
                pause = Pause(first, until, reason)
                habit = res.habit_from_activity(plan_id, activity, 0)
            if first < habit.start:
                raise business_rule(f"a pause cannot start before the habit started ({habit.start})", "start")
            if any(p.end is None or p.end >= first for p in habit.pauses):
                raise business_rule("the pause overlaps an earlier pause of this habit", "start")
            detail["status"] = "on-hold"
            detail["statusReason"] = res.pause_reason(reason, reason_text)
            activity.setdefault("extension", []).append(res.pause_extension(pause, reason_text))

        return self._modify_plan(plan_id, expected_version, change)

    def resume_habit(
        self, plan_id: str, habit_id: str, *, on: date | None = None, expected_version: int | None = None
    ) -> Stored:
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
            if ext.get("url") != res.HABIT_PAUSE_URL:
                kept.append(ext)
                continue
            with _core_errors():
                pause = res.pause_of_extension(ext)
            if pause.end is not None:
                kept.append(ext)
                continue
            if resume < pause.start:
                raise business_rule(f"cannot resume before the pause started ({pause.start})", "on")
            if resume > pause.start:  # resuming on the pause's first day leaves no paused day: drop it
                kept.append(res.end_pause(ext, resume - timedelta(days=1)))
        activity["extension"] = kept

    def stop_habit(
        self, plan_id: str, habit_id: str, *, on: date | None = None, expected_version: int | None = None
    ) -> Stored:
        """Stop a habit: status stopped, the schedule ends on ``on`` (default today), an open pause ends."""

        def change(content: dict[str, Any], today: date) -> None:
            activity = self._activity(content, habit_id)
            detail = activity["detail"]
            if detail.get("status") in _INACTIVE_HABITS:
                raise business_rule(f"habit {habit_id!r} is already {detail.get('status')}", "habitId")
            end = on or today
            bounds = detail["scheduledTiming"]["repeat"]["boundsPeriod"]
            if end < res.parse_local_date(bounds["start"], "habit start"):
                raise business_rule("a habit cannot stop before it started", "on")
            self._close_pause(activity, end + timedelta(days=1), plan_id)
            bounds["end"] = end.isoformat()
            detail["status"] = "stopped"
            detail.pop("statusReason", None)

        return self._modify_plan(plan_id, expected_version, change)

    def add_pdsa(
        self,
        goal_id: str,
        *,
        title: str,
        day: date | None = None,
        habit_id: str | None = None,
        plan: str = "",
        do: str = "",
        study: str = "",
        act: str = "",
        author: str | None = None,
        expected_version: int | None = None,
    ) -> Stored:
        """Record a PDSA change for a goal as an ``activity.progress`` note on the habit that carries it.

        ``habit_id`` picks the habit; without it the goal must be served by exactly one habit.
        """
        with self.repo.unit(write=False) as uow:
            goal = uow.read("Goal", goal_id).content or {}
            pid = res.ref_id(goal.get("subject"), "Patient") or ""
            plans = _search_all(
                uow, "CarePlan", [("patient", f"Patient/{pid}"), ("category", f"{res.MECR_CODES}|habit-plan")]
            )
        with _core_errors():
            serving = [
                h
                for p in plans
                for h in res.habits_of_plan(p)
                if h.goal_id == goal_id and (habit_id is None or h.habit_id == habit_id)
            ]
        if not serving:
            what = f"habit {habit_id!r}" if habit_id else "no habit"
            raise unknown_reference(f"{what} serving Goal/{goal_id} was found", "habitId")
        if len(serving) > 1:
            raise bad_request(
                f"Goal/{goal_id} is served by several habits; say which with habitId", "habitId"
            )
        habit = serving[0]

        def change(content: dict[str, Any], today: date) -> None:
            when = day or today
            if when > today:
                raise business_rule(f"a PDSA change cannot be dated in the future ({when} > {today})", "date")
            activity = self._activity(content, habit.habit_id)
            activity.setdefault("progress", []).append(
                res.pdsa_annotation(when, title, plan=plan, do=do, study=study, act=act, author=author)
            )

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
            raise FhirError(
                issue(
                    "value", f"status must be done, partly or not-done, not {status!r}", expression="status"
                ),
                400,
            ) from None
        with self.repo.unit() as uow:
            result = self._check_in(
                uow,
                plan_id,
                habit_id,
                parsed_status,
                day=day,
                at=at,
                quantity=quantity,
                note=note,
                patient_id=patient_id,
            )
            assert result is not None  # only an only_upgrade write can be skipped
            return result

    def _check_in(
        self,
        uow: UnitOfWork,
        plan_id: str,
        habit_id: str,
        status: CheckInStatus,
        *,
        day: date | None,
        at: datetime | None,
        quantity: Mapping[str, Any] | None,
        note: str | None,
        patient_id: str | None,
        derived_from: str | None = None,
        only_upgrade: bool = False,
        plan_content: Mapping[str, Any] | None = None,
        tz: str | None = None,
    ) -> CheckInResult | None:
        if plan_content is None:
            _, content = self._plan(uow, plan_id, None)
        else:
            content = copy.deepcopy(dict(plan_content))
        owner = res.ref_id(content.get("subject"), "Patient")
        if owner is None:
            raise business_rule(f"CarePlan/{plan_id} has no patient subject")
        if patient_id is not None and patient_id != owner:
            raise business_rule(
                f"habit plan CarePlan/{plan_id} belongs to another patient, not Patient/{patient_id}",
                "patient",
            )
        if tz is None:
            tz = self._patient(uow, owner)[1]
        activity = self._activity(content, habit_id)
        with _core_errors():
            habit = res.habit_from_activity(plan_id, activity, 0)
        today = self.today(tz)
        if day is None:
            day = at.astimezone(ZoneInfo(tz)).date() if at is not None else today
        if day > today:
            raise business_rule(
                f"a check-in cannot be for a future day ({day}; today is {today} in {tz})", "date"
            )
        if day < habit.start:
            raise business_rule(f"habit {habit_id!r} started on {habit.start}; no check-in for {day}", "date")
        if habit.end is not None and day > habit.end:
            raise business_rule(f"habit {habit_id!r} stopped on {habit.end}; no check-in for {day}", "date")
        if habit.status in ("cancelled", "entered-in-error"):
            raise business_rule(f"habit {habit_id!r} is {habit.status}", "habitId")
        ident = res.checkin_identifier(plan_id, habit_id, day)
        criteria = f"identifier={ident['system']}|{ident['value']}"
        existing = uow.match_conditional("Observation", criteria)
        previous = (existing.content or {}) if existing is not None else None
        if only_upgrade and previous is not None:
            parsed = res.checkin_from_observation(previous)
            if parsed is not None and parsed[2].status is CheckInStatus.DONE:
                return None
        obs = res.checkin_observation(
            habit, owner, day, status, quantity=quantity, note=note, derived_from=derived_from
        )
        if previous is not None:

            def essence(o: Mapping[str, Any]) -> tuple[Any, ...]:
                return tuple(
                    o.get(k) for k in ("valueCodeableConcept", "component", "note", "focus", "derivedFrom")
                )

            # R4 observation-status: a changed result after the first report is "amended".
            obs["status"] = (
                previous.get("status", "final") if essence(previous) == essence(obs) else "amended"
            )
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
        pid = res.ref_id(observation.get("subject"), "Patient")
        if pid is None:
            raise bad_request("the wearable Observation has no Patient subject", "Observation.subject")
        codings = {
            (c.get("system"), c.get("code")) for c in (observation.get("code") or {}).get("coding", []) or []
        }
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
            day = res.effective_local_date(content, tz)
            if day is None:
                return result
            plans = _search_all(
                uow,
                "CarePlan",
                [
                    ("patient", f"Patient/{pid}"),
                    ("category", f"{res.MECR_CODES}|habit-plan"),
                    ("status", "active"),
                ],
            )
            for plan in plans:
                with _core_errors():
                    habits = res.habits_of_plan(plan)
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
                    value = res.measurement_value(content, habit.daily_amount.get("code"))
                    if not isinstance(target, (int, float)) or value is None or value < float(target):
                        continue
                    amount = res.quantity(
                        value, str(habit.daily_amount.get("code") or "1"), habit.daily_amount.get("unit")
                    )
                    written = self._check_in(
                        uow,
                        habit.plan_id,
                        habit.habit_id,
                        CheckInStatus.DONE,
                        day=day,
                        at=None,
                        quantity=amount,
                        note=None,
                        patient_id=pid,
                        derived_from=f"Observation/{stored.id}",
                        only_upgrade=True,
                        plan_content=plan,
                        tz=tz,
                    )
                    if written is not None:
                        result.checkins.append(written)
            goals = _search_all(uow, "Goal", [("patient", f"Patient/{pid}")])
            for goal in goals:
                info = res.goal_info(goal)
                if info.target is None or not codings & set(info.measure):
                    continue
                goal_stored = uow.read("Goal", info.id)
                _, progress = self._recompute(uow, goal_stored, tz)
                if progress is not None:
                    result.goals[info.id] = progress.status.value
            return result
