"""FHIR <-> the pure coaching dataclasses: pure functions, no database, no clock.

Builders write resources that conform to the mECR IG profiles (``profiles/``), each with ``meta.profile`` set
to the profile's canonical; parsers read them back into :mod:`~fhir_ecr.coaching.schedule` /
:mod:`~fhir_ecr.coaching.progress` inputs. What lives where:

=====================  ==================================================================================
fact                   FHIR element
=====================  ==================================================================================
patient's time zone    ``Patient.extension`` ``http://hl7.org/fhir/StructureDefinition/timezone``
                       (``valueCode``, an IANA name such as ``America/New_York``); default: the service's
                       ``default_tz`` (UTC unless configured)
habit                  one ``CarePlan.activity`` of a ``mecr-habit-plan`` CarePlan, identified by the
                       ``habit-id`` extension
habit start / stop     ``activity.detail.scheduledTiming.repeat.boundsPeriod`` start / end (local dates)
habit pauses           ``activity.extension`` ``https://mecr.dev/fhir/StructureDefinition/habit-pause``
                       (``period`` of local dates, ``reason``): the pause *history*; the current state is
                       ``detail.status = on-hold`` + ``detail.statusReason`` (IG invariant mecr-plan-2)
habit daily target     ``activity.detail.dailyAmount`` (e.g. 8000 ``/d`` steps) — what a wearable
                       reading must reach to count as done
PDSA note              ``activity.progress`` Annotation whose text starts with ``PDSA:``
check-in               ``mecr-habit-check-in`` Observation, identifier
                       ``https://mecr.dev/fhir/NamingSystem/habit-check-in|{plan}/{habit}/{YYYY-MM-DD}``
coaching session       ``mecr-coaching-session`` Encounter (+ a ClinicalImpression for the structured note)
=====================  ==================================================================================

Operation results are ``Parameters`` resources; :func:`to_parameters` / :func:`parameters_to_dict` convert
between them and plain nested dicts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_ecr.coaching.errors import GoalError, ScheduleError
from fhir_ecr.coaching.progress import GoalTarget, Measurement
from fhir_ecr.coaching.schedule import CheckIn, CheckInStatus, Pause, Schedule, schedule_from_timing

__all__ = [
    "CANONICAL",
    "CHECKIN_ID_SYSTEM",
    "CHECKIN_PROFILE",
    "CHECKIN_RESULT_SYSTEM",
    "COACH_PROFILE",
    "GOAL_ACHIEVEMENT_SYSTEM",
    "GOAL_CATEGORY_SYSTEM",
    "GOAL_PROFILE",
    "HABIT_ID_URL",
    "HABIT_PAUSE_URL",
    "MECR_CODES",
    "MODALITY_SYSTEM",
    "MODALITY_URL",
    "PAUSE_REASON_SYSTEM",
    "PDSA_PREFIX",
    "PLAN_PROFILE",
    "SESSION_PROFILE",
    "TIMEZONE_URL",
    "Habit",
    "GoalInfo",
    "PdsaNote",
    "checkin_identifier",
    "checkin_observation",
    "checkin_from_observation",
    "CHECKIN_TOKENS",
    "checkins_from_tokens",
    "effective_local_date",
    "goal_info",
    "goal_info_target",
    "habit_activity",
    "habit_from_activity",
    "habits_of_plan",
    "measurement_value",
    "measurements_by_day",
    "parameters_to_dict",
    "parse_local_date",
    "patient_time_zone",
    "end_pause",
    "pause_extension",
    "pause_of_extension",
    "pdsa_annotation",
    "pdsa_notes",
    "quantity",
    "ref_id",
    "timing_repeat",
    "to_parameters",
]

CANONICAL = "https://mecr.dev/fhir"
GOAL_PROFILE = f"{CANONICAL}/StructureDefinition/mecr-coaching-goal"
PLAN_PROFILE = f"{CANONICAL}/StructureDefinition/mecr-habit-plan"
CHECKIN_PROFILE = f"{CANONICAL}/StructureDefinition/mecr-habit-check-in"
SESSION_PROFILE = f"{CANONICAL}/StructureDefinition/mecr-coaching-session"
COACH_PROFILE = f"{CANONICAL}/StructureDefinition/mecr-coach"
HABIT_ID_URL = f"{CANONICAL}/StructureDefinition/habit-id"
# The pause history of a habit (IG extension habit-pause: period + reason) on its CarePlan.activity.
HABIT_PAUSE_URL = f"{CANONICAL}/StructureDefinition/habit-pause"
MODALITY_URL = f"{CANONICAL}/StructureDefinition/coaching-session-modality"
MECR_CODES = f"{CANONICAL}/CodeSystem/mecr-codes"
GOAL_CATEGORY_SYSTEM = f"{CANONICAL}/CodeSystem/coaching-goal-category"
CHECKIN_RESULT_SYSTEM = f"{CANONICAL}/CodeSystem/habit-check-in-result"
PAUSE_REASON_SYSTEM = f"{CANONICAL}/CodeSystem/habit-pause-reason"
MODALITY_SYSTEM = f"{CANONICAL}/CodeSystem/session-modality"
CHECKIN_ID_SYSTEM = f"{CANONICAL}/NamingSystem/habit-check-in"
GOAL_ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"
TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
PDSA_PREFIX = "PDSA:"

_RESULT_DISPLAY = {"done": "Done", "partly": "Partly done", "not-done": "Not done"}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HABIT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,63}$")
# UCUM units the coaching series convert between, as factors to a base unit of their family.
_UNIT_FAMILIES: dict[str, tuple[str, float]] = {
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "[lb_av]": ("mass", 453.59237),
    # A daily count: the IG's steps unit is /d, wearables and people also write these.
    "/d": ("per-day", 1.0),
    "{steps}": ("per-day", 1.0),
    "{steps}/d": ("per-day", 1.0),
    "1/d": ("per-day", 1.0),
}


# --- small helpers ----------------------------------------------------------------------------------------


def ref_id(reference: Mapping[str, Any] | str | None, rtype: str) -> str | None:
    """The id of a ``rtype/id`` (or absolute ``…/rtype/id``) reference; None when it points elsewhere."""
    raw = reference.get("reference") if isinstance(reference, Mapping) else reference
    if not isinstance(raw, str):
        return None
    parts = raw.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
        return parts[-1]
    return None


def parse_local_date(value: Any, what: str) -> date:
    """A ``YYYY-MM-DD`` string (or date) as a date; ScheduleError otherwise."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ScheduleError(f"{what} must be a date (YYYY-MM-DD), got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ScheduleError(f"{what} is not a calendar date: {value!r}") from exc


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def effective_local_date(resource: Mapping[str, Any], tz: str) -> date | None:
    """The patient-local date an Observation is for.

    A date-only ``effectiveDateTime`` already *is* the local date (the check-in profile's rule); an instant
    (``effectiveDateTime``, ``effectiveInstant``, or ``effectivePeriod.start`` of a daily summary) is
    converted to the date it falls on in ``tz``.
    """
    raw = resource.get("effectiveDateTime") or resource.get("effectiveInstant")
    if raw is None and isinstance(resource.get("effectivePeriod"), Mapping):
        raw = resource["effectivePeriod"].get("start")
    if not isinstance(raw, str):
        return None
    if _DATE_RE.match(raw):
        return date.fromisoformat(raw)
    instant = _instant(raw)
    if instant is None:
        return None
    return instant.astimezone(ZoneInfo(tz)).date()


def patient_time_zone(patient: Mapping[str, Any] | None, default: str) -> str:
    """The patient's IANA time zone from the ``timezone`` extension, else ``default``.

    An unknown zone name in the extension falls back to ``default`` rather than failing every request for
    that patient; writes through the service refuse unknown names.
    """
    for ext in (patient or {}).get("extension", []) or []:
        if ext.get("url") == TIMEZONE_URL and isinstance(ext.get("valueCode"), str):
            try:
                ZoneInfo(ext["valueCode"])
            except (ZoneInfoNotFoundError, ValueError):
                return default
            return str(ext["valueCode"])
    return default


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _convert(value: float, from_code: str | None, to_code: str | None) -> float | None:
    """``value`` in ``from_code`` expressed in ``to_code``; None when the units are not comparable."""
    if not from_code or not to_code or from_code == to_code:
        return value
    a, b = _UNIT_FAMILIES.get(from_code), _UNIT_FAMILIES.get(to_code)
    if a is None or b is None or a[0] != b[0]:
        return None
    return value * a[1] / b[1]


def measurement_value(observation: Mapping[str, Any], unit: str | None) -> float | None:
    """``valueQuantity.value`` in ``unit`` (UCUM code), or None when absent, not finite or not convertible."""
    qty = observation.get("valueQuantity")
    if not isinstance(qty, Mapping) or not isinstance(qty.get("value"), (int, float, Decimal)):
        return None
    value = float(qty["value"])
    if not math.isfinite(value):
        return None
    return _convert(value, qty.get("code"), unit)


# --- goals ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoalInfo:
    """What the service needs of a Goal: its measure codings, unit and target (None when not measurable)."""

    id: str
    patient_id: str | None
    lifecycle: str
    measure: tuple[tuple[str, str], ...]
    unit: str | None
    target: GoalTarget | None
    description: str
    achievement: str | None
    inferred_direction: bool = False
    start: date | None = None  # Goal.startDate


def goal_info(goal: Mapping[str, Any], baseline_hint: float | None = None) -> GoalInfo:
    """Parse a coaching Goal's first measurable ``target``.

    Comparators as FHIR defines them: ``>=`` at least, ``>`` more than (strict), ``<=`` at most, ``<`` less
    than (strict). A ``detailQuantity`` without a comparator is read as "reach this value": at least when the
    ``baseline_hint`` is below it, at most when above (weight 80 -> 75 kg is at most); the service passes the
    goal's own baseline, its first measurement on or after ``Goal.startDate`` (else the goal's creation),
    never one older than the goal. A ``detailRange`` is a range target. ``target.dueDate`` is the due date;
    ``startDate`` is :attr:`GoalInfo.start`.
    """
    measure: tuple[tuple[str, str], ...] = ()
    unit = None
    target = None
    inferred = False
    for t in goal.get("target", []) or []:
        codings = tuple(
            (c["system"], c["code"])
            for c in (t.get("measure") or {}).get("coding", []) or []
            if c.get("system") and c.get("code")
        )
        if not codings:
            continue
        due = None
        if isinstance(t.get("dueDate"), str):
            due = parse_local_date(t["dueDate"], "Goal.target.dueDate")
        q, rng = t.get("detailQuantity"), t.get("detailRange")
        if isinstance(q, Mapping) and q.get("value") is not None:
            unit = q.get("code")
            value = float(q["value"])
            comparator = q.get("comparator")
            if comparator in (">=", ">"):
                target = GoalTarget.at_least(value, due, strict=comparator == ">")
            elif comparator in ("<=", "<"):
                target = GoalTarget.at_most(value, due, strict=comparator == "<")
            elif baseline_hint is not None and baseline_hint > value:
                target, inferred = GoalTarget.at_most(value, due), True
            else:
                target, inferred = GoalTarget.at_least(value, due), True
        elif isinstance(rng, Mapping):
            low, high = rng.get("low") or {}, rng.get("high") or {}
            unit = low.get("code") or high.get("code")
            if low.get("value") is not None and high.get("value") is not None:
                target = GoalTarget.between(float(low["value"]), float(high["value"]), due)
            elif low.get("value") is not None:
                target = GoalTarget.at_least(float(low["value"]), due)
            elif high.get("value") is not None:
                target = GoalTarget.at_most(float(high["value"]), due)
        if target is None:
            raise GoalError("a goal target with a measure needs detailQuantity or detailRange")
        measure = codings
        break
    coding = ((goal.get("achievementStatus") or {}).get("coding") or [{}])[0]
    start = goal.get("startDate")
    return GoalInfo(
        id=str(goal.get("id", "")),
        patient_id=ref_id(goal.get("subject"), "Patient"),
        lifecycle=str(goal.get("lifecycleStatus", "")),
        measure=measure,
        unit=unit,
        target=target,
        description=str((goal.get("description") or {}).get("text", "")),
        achievement=coding.get("code"),
        inferred_direction=inferred,
        start=_start_date(start),
    )


def _start_date(value: Any) -> date | None:
    """Goal.startDate (a FHIR date, possibly partial: ``2026`` or ``2026-03`` start on their first day)."""
    if not isinstance(value, str):
        return None
    parts = value.split("-")
    try:
        if len(parts) == 1:
            return date(int(parts[0]), 1, 1)
        if len(parts) == 2:
            return date(int(parts[0]), int(parts[1]), 1)
    except ValueError:
        return None
    try:
        return parse_local_date(value, "Goal.startDate")
    except ScheduleError:
        return None


def goal_info_target(info: GoalInfo, first_value: float) -> GoalTarget | None:
    """The target of ``info`` with a comparator-less quantity's direction taken from the first measurement."""
    t = info.target
    if t is None or not info.inferred_direction:
        return t
    value = t.low if t.low is not None else t.high
    assert value is not None
    return GoalTarget.at_most(value, t.due) if first_value > value else GoalTarget.at_least(value, t.due)


# --- habits -----------------------------------------------------------------------------------------------


#: Longest gap of an every-n-days habit (a year): Timing.repeat.period is a FHIR decimal, but a longer habit
#: is not a habit, and a huge one overflows the day arithmetic of streaks.
MAX_EVERY_DAYS = 366


def timing_repeat(
    kind: str, *, times: int | None = None, weekdays: Sequence[str] = (), every_days: int | None = None
) -> dict[str, Any]:
    """A ``Timing.repeat`` for a habit: ``daily``, ``per-week`` (``times``), ``weekdays`` or ``every-n-days``."""
    if kind == "daily":
        return {"frequency": 1, "period": 1, "periodUnit": "d"}
    if kind == "per-week":
        if times is None or not 1 <= times <= 7:
            raise ScheduleError("a per-week habit needs times between 1 and 7")
        return {"frequency": times, "period": 1, "periodUnit": "wk"}
    if kind == "weekdays":
        if not weekdays:
            raise ScheduleError("a weekday habit needs at least one day of the week")
        return {
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
            "dayOfWeek": [str(d).lower() for d in weekdays],
        }
    if kind == "every-n-days":
        if every_days is None or not 1 <= every_days <= MAX_EVERY_DAYS:
            raise ScheduleError(
                f"an every-n-days habit needs a number of days between 1 and {MAX_EVERY_DAYS}"
            )
        return {"frequency": 1, "period": every_days, "periodUnit": "d"}
    raise ScheduleError(f"unknown schedule kind {kind!r}; expected daily, per-week, weekdays or every-n-days")


@dataclass(frozen=True)
class Habit:
    """One habit of a habit plan, parsed."""

    plan_id: str
    habit_id: str
    title: str
    status: str
    status_reason: str | None
    goal_id: str | None
    schedule: Schedule
    pauses: tuple[Pause, ...]
    codings: tuple[tuple[str, str], ...]
    daily_amount: Mapping[str, Any] | None
    index: int

    @property
    def start(self) -> date:
        return self.schedule.start

    @property
    def end(self) -> date | None:
        return self.schedule.end

    @property
    def open_pause(self) -> Pause | None:
        """The pause with no end (the habit is on hold), if any."""
        return next((p for p in self.pauses if p.end is None), None)


def _ext(items: Iterable[Mapping[str, Any]] | None, url: str) -> list[Mapping[str, Any]]:
    return [e for e in items or [] if e.get("url") == url]


def _pauses(activity: Mapping[str, Any]) -> tuple[Pause, ...]:
    out = []
    for ext in _ext(activity.get("extension"), HABIT_PAUSE_URL):
        sub = {e.get("url"): e for e in ext.get("extension", []) or []}
        period = (sub.get("period") or {}).get("valuePeriod") or {}
        start = parse_local_date(period.get("start"), "habit pause start")
        end = parse_local_date(period["end"], "habit pause end") if period.get("end") else None
        reason = (sub.get("reason") or {}).get("valueCodeableConcept") or {}
        code = ((reason.get("coding") or [{}])[0]).get("code") or reason.get("text") or ""
        out.append(Pause(start, end, str(code)))
    return tuple(sorted(out, key=lambda p: p.start))


def pause_extension(pause: Pause, reason_text: str | None = None) -> dict[str, Any]:
    """The ``habit-pause`` extension (IG extension ``habit-pause``: ``period`` and ``reason``) for ``pause``."""
    period = {"start": pause.start.isoformat()}
    if pause.end is not None:
        period["end"] = pause.end.isoformat()
    sub: list[dict[str, Any]] = [{"url": "period", "valuePeriod": period}]
    if pause.reason:
        sub.append({"url": "reason", "valueCodeableConcept": _pause_reason(pause.reason, reason_text)})
    return {"url": HABIT_PAUSE_URL, "extension": sub}


def end_pause(extension: Mapping[str, Any], end: date) -> dict[str, Any]:
    """A copy of an open ``habit-pause`` extension that ends on ``end`` (inclusive)."""
    sub = []
    for e in extension.get("extension", []) or []:
        if e.get("url") == "period":
            e = {**e, "valuePeriod": {**(e.get("valuePeriod") or {}), "end": end.isoformat()}}
        sub.append(e)
    return {**extension, "extension": sub}


def pause_of_extension(extension: Mapping[str, Any]) -> Pause:
    """The :class:`Pause` a ``habit-pause`` extension records (ScheduleError when malformed)."""
    return _pauses({"extension": [extension]})[0]


def _pause_reason(code: str, text: str | None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": PAUSE_REASON_SYSTEM, "code": code}]}
    if text:
        concept["text"] = text
    return concept


def habit_from_activity(plan_id: str, activity: Mapping[str, Any], index: int) -> Habit:
    """Parse one ``CarePlan.activity`` (a habit); ScheduleError when it is not a usable habit."""
    ids = _ext(activity.get("extension"), HABIT_ID_URL)
    if not ids or not isinstance(ids[0].get("valueString"), str):
        raise ScheduleError(f"CarePlan/{plan_id} activity[{index}] has no habit-id extension")
    detail = activity.get("detail") or {}
    timing = detail.get("scheduledTiming") or {}
    repeat = timing.get("repeat") or {}
    bounds = repeat.get("boundsPeriod") or {}
    if not bounds.get("start"):
        raise ScheduleError(
            f"habit {ids[0]['valueString']!r} has no start (scheduledTiming.repeat.boundsPeriod.start)"
        )
    start = parse_local_date(str(bounds["start"])[:10], "habit start")
    end = parse_local_date(str(bounds["end"])[:10], "habit end") if bounds.get("end") else None
    goal_id = next((ref_id(g, "Goal") for g in detail.get("goal", []) or [] if ref_id(g, "Goal")), None)
    code = detail.get("code") or {}
    reason = detail.get("statusReason") or {}
    return Habit(
        plan_id=plan_id,
        habit_id=ids[0]["valueString"],
        title=str(code.get("text") or detail.get("description") or ids[0]["valueString"]),
        status=str(detail.get("status", "unknown")),
        status_reason=((reason.get("coding") or [{}])[0]).get("code") or reason.get("text"),
        goal_id=goal_id,
        schedule=schedule_from_timing(repeat, start=start, end=end),
        pauses=_pauses(activity),
        codings=tuple(
            (c["system"], c["code"])
            for c in code.get("coding", []) or []
            if c.get("system") and c.get("code")
        ),
        daily_amount=detail.get("dailyAmount"),
        index=index,
    )


def habits_of_plan(plan: Mapping[str, Any]) -> list[Habit]:
    """Every habit of a habit plan (activities that are not habits are skipped)."""
    plan_id = str(plan.get("id", ""))
    out = []
    for i, activity in enumerate(plan.get("activity", []) or []):
        if _ext(activity.get("extension"), HABIT_ID_URL):
            out.append(habit_from_activity(plan_id, activity, i))
    return out


def habit_activity(
    habit_id: str,
    title: str,
    repeat: Mapping[str, Any],
    start: date,
    *,
    description: str | None = None,
    goal_id: str | None = None,
    code: Sequence[Mapping[str, str]] = (),
    daily_amount: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new, active habit (``CarePlan.activity``) starting on ``start``."""
    if not isinstance(habit_id, str) or not _HABIT_ID_RE.match(habit_id):
        raise ScheduleError(f"habit id must be 1-64 letters, digits, '-' or '.', got {habit_id!r}")
    if not title or not str(title).strip():
        raise ScheduleError("a habit needs a title")
    repeat_json = {k: v for k, v in dict(repeat).items() if k != "boundsPeriod"}
    schedule_from_timing(repeat_json, start=start)  # refuse a schedule the ledger cannot count, now
    detail: dict[str, Any] = {
        "code": {**({"coding": [dict(c) for c in code]} if code else {}), "text": str(title)},
        "status": "in-progress",
        "scheduledTiming": {"repeat": {**repeat_json, "boundsPeriod": {"start": start.isoformat()}}},
    }
    if description:
        detail["description"] = description
    if goal_id:
        detail["goal"] = [{"reference": f"Goal/{goal_id}"}]
    if daily_amount:
        detail["dailyAmount"] = dict(daily_amount)
    return {"extension": [{"url": HABIT_ID_URL, "valueString": habit_id}], "detail": detail}


# --- check-ins --------------------------------------------------------------------------------------------


def checkin_identifier(plan_id: str, habit_id: str, day: date) -> dict[str, str]:
    """The deterministic identifier of the one check-in per habit per local day."""
    return {"system": CHECKIN_ID_SYSTEM, "value": f"{plan_id}/{habit_id}/{day.isoformat()}"}


def checkin_observation(
    habit: Habit,
    patient_id: str,
    day: date,
    status: CheckInStatus,
    *,
    quantity: Mapping[str, Any] | None = None,
    note: str | None = None,
    observation_status: str = "final",
    derived_from: str | None = None,
    performer: str | None = None,
) -> dict[str, Any]:
    """A ``mecr-habit-check-in`` Observation for ``habit`` on the local ``day``."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [CHECKIN_PROFILE]},
        "extension": [{"url": HABIT_ID_URL, "valueString": habit.habit_id}],
        "identifier": [checkin_identifier(habit.plan_id, habit.habit_id, day)],
        "basedOn": [{"reference": f"CarePlan/{habit.plan_id}"}],
        "status": observation_status,
        "code": {"coding": [{"system": MECR_CODES, "code": "habit-check-in", "display": "Habit check-in"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": day.isoformat(),
        "performer": [{"reference": performer or f"Patient/{patient_id}"}],
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": CHECKIN_RESULT_SYSTEM,
                    "code": status.value,
                    "display": _RESULT_DISPLAY[status.value],
                }
            ]
        },
    }
    if habit.goal_id:
        obs["focus"] = [{"reference": f"Goal/{habit.goal_id}"}]
    if quantity:
        obs["component"] = [
            {
                "code": {
                    "coding": [
                        {
                            "system": MECR_CODES,
                            "code": "habit-check-in-amount",
                            "display": "Habit check-in amount",
                        }
                    ]
                },
                "valueQuantity": dict(quantity),
            }
        ]
    if note:
        obs["note"] = [{"text": note}]
    if derived_from:
        obs["derivedFrom"] = [{"reference": derived_from}]
    return obs


def checkin_from_observation(obs: Mapping[str, Any]) -> tuple[str, str, CheckIn] | None:
    """``(plan id, habit id, CheckIn)`` of a check-in Observation; None for entered-in-error or malformed ones."""
    # Plain loops, no generators: the coaching summary runs this over two years of check-ins.
    if obs.get("status") == "entered-in-error":
        return None
    habit_id = None
    for ext in obs.get("extension") or ():
        if ext.get("url") == HABIT_ID_URL:
            habit_id = str(ext.get("valueString"))
            break
    plan_id = None
    for based_on in obs.get("basedOn") or ():
        plan_id = ref_id(based_on, "CarePlan")
        if plan_id:
            break
    raw_day = obs.get("effectiveDateTime")
    code = None
    for coding in (obs.get("valueCodeableConcept") or {}).get("coding") or ():
        if coding.get("system") == CHECKIN_RESULT_SYSTEM:
            code = coding.get("code")
            break
    if (
        habit_id is None
        or not plan_id
        or not isinstance(raw_day, str)
        or not _DATE_RE.match(raw_day)
        or not isinstance(code, str)
        or code not in _CHECKIN_STATUS
    ):
        return None
    qty = None
    for comp in obs.get("component") or ():
        value = (comp.get("valueQuantity") or {}).get("value")
        if isinstance(value, (int, float)):
            qty = float(value)
    return plan_id, habit_id, CheckIn(date.fromisoformat(raw_day), _CHECKIN_STATUS[code], qty)


_CHECKIN_STATUS = {s.value: s for s in CheckInStatus}


def _checkin(day: str, result: str | None) -> CheckIn | None:
    status = _CHECKIN_STATUS.get(result) if result is not None else None
    if status is None or not _DATE_RE.match(day):
        return None
    try:
        return CheckIn(date.fromisoformat(day), status)
    except ValueError:
        return None


CHECKIN_TOKENS: list[tuple[str, str | None, str | None]] = [
    ("identifier", CHECKIN_ID_SYSTEM, None),
    ("value-concept", CHECKIN_RESULT_SYSTEM, None),
    ("status", None, None),
]
"""The token values :func:`checkins_from_tokens` reads (``UnitOfWork.search_index_values``)."""


def checkins_from_tokens(
    rows: Iterable[Sequence[str | None]],
) -> tuple[dict[tuple[str, str], list[CheckIn]], list[str]]:
    """Check-ins from their search-index tokens, without reading a document: each row is ``(id, check-in
    identifier value, result code, status)`` (:data:`CHECKIN_TOKENS`).

    A check-in counts for the plan, habit and day its check-in identifier names (``{plan}/{habit}/{date}``, the
    key that makes check-ins idempotent per habit and day; the service writes it with basedOn, the habit-id
    extension and effectiveDateTime to match), with the result its valueCodeableConcept codes. Returns the
    check-ins by ``(plan id, habit id)`` and the ids of the Observations without a well-formed check-in
    identifier: read those and parse them with :func:`checkin_from_observation`. Entered-in-error check-ins and
    ones without a known result are left out, as that function leaves them out.
    """
    by_habit: dict[tuple[str, str], list[CheckIn]] = {}
    unkeyed: list[str] = []
    habits: dict[str, tuple[str, str] | None] = {}  # "plan/habit" -> (plan, habit), None when malformed
    shared: dict[tuple[str, str], CheckIn | None] = {}  # (date, result) -> one CheckIn for every habit
    for rid, key, result, status in rows:
        if status == "entered-in-error":
            continue
        prefix, _, day = key.rpartition("/") if key is not None else ("", "", "")
        habit = habits.get(prefix, ()) if prefix else None
        if habit == ():
            plan_id, slash, habit_id = prefix.partition("/")
            habit = habits[prefix] = (
                (plan_id, habit_id) if plan_id and slash and _HABIT_ID_RE.match(habit_id) else None
            )
        checkin = shared.get((day, result or ""), False)
        if checkin is False:
            checkin = shared[(day, result or "")] = _checkin(day, result)
        if habit is None or checkin is None:
            if habit is None or not _DATE_RE.match(day):
                unkeyed.append(str(rid))
            continue
        by_habit.setdefault(cast("tuple[str, str]", habit), []).append(cast(CheckIn, checkin))
    return by_habit, unkeyed


# --- PDSA -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdsaNote:
    """A PDSA change note on a habit: the day the change was made and what it was."""

    plan_id: str
    habit_id: str
    goal_id: str | None
    day: date
    title: str
    text: str


def pdsa_annotation(
    day: date,
    title: str,
    *,
    plan: str = "",
    do: str = "",
    study: str = "",
    act: str = "",
    author: str | None = None,
) -> dict[str, Any]:
    """An ``activity.progress`` Annotation recording one PDSA cycle's change, dated the day it started."""
    lines = [f"{PDSA_PREFIX} {title.strip()}"]
    lines += [
        f"{label}: {value.strip()}"
        for label, value in (("Plan", plan), ("Do", do), ("Study", study), ("Act", act))
        if value and value.strip()
    ]
    note: dict[str, Any] = {"time": day.isoformat(), "text": "\n".join(lines)}
    if author:
        note["authorReference"] = {"reference": author}
    return note


def pdsa_notes(plan: Mapping[str, Any], habits: Sequence[Habit]) -> list[PdsaNote]:
    """The PDSA notes of every habit of ``plan``, oldest first."""
    out = []
    by_index = {h.index: h for h in habits}
    for i, activity in enumerate(plan.get("activity", []) or []):
        habit = by_index.get(i)
        if habit is None:
            continue
        for note in activity.get("progress", []) or []:
            text = str(note.get("text", ""))
            if not text.startswith(PDSA_PREFIX) or not isinstance(note.get("time"), str):
                continue
            day = parse_local_date(note["time"][:10], "PDSA note time")
            title = text.splitlines()[0][len(PDSA_PREFIX) :].strip()
            out.append(PdsaNote(habit.plan_id, habit.habit_id, habit.goal_id, day, title, text))
    return sorted(out, key=lambda n: n.day)


# --- Parameters -------------------------------------------------------------------------------------------


def _param(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    if isinstance(value, float):
        return {"name": name, "valueDecimal": round(value, 4) if math.isfinite(value) else None}
    if isinstance(value, datetime):
        return {"name": name, "valueDateTime": value.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    if isinstance(value, date):
        return {"name": name, "valueDate": value.isoformat()}
    if isinstance(value, str):
        return {"name": name, "valueString": value}
    if isinstance(value, Mapping):
        keys = set(value)
        if "reference" in keys and keys <= {"reference", "display"}:
            return {"name": name, "valueReference": dict(value)}
        if {"system", "code"} <= keys and keys <= {"system", "code", "display"}:
            return {"name": name, "valueCoding": dict(value)}
        if "value" in keys and keys <= {"value", "unit", "system", "code", "comparator"}:
            return {"name": name, "valueQuantity": dict(value)}
        if value.get("resourceType"):
            return {"name": name, "resource": dict(value)}
        return {"name": name, "part": _params(value)}
    raise TypeError(f"cannot put {type(value).__name__} into Parameters")


def _params(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            p = _param(key, item)
            if p is not None:
                out.append(p)
    return out


def to_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """A ``Parameters`` resource from a nested dict: lists repeat a parameter, dicts become parts.

    References (``{"reference": …}``), codings (``{"system", "code"}``) and quantities (``{"value", "unit"}``)
    become ``valueReference`` / ``valueCoding`` / ``valueQuantity``; None values are left out.
    """
    return {"resourceType": "Parameters", "parameter": _params(values)}


def parameters_to_dict(
    parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]], repeated: Iterable[str] = ()
) -> dict[str, Any]:
    """The inverse of :func:`to_parameters`: a name seen once is a value, more often a list.

    Names in ``repeated`` are always lists (so "one goal" and "two goals" have the same shape).
    """
    items = parameters.get("parameter", []) if isinstance(parameters, Mapping) else parameters
    always = set(repeated)
    out: dict[str, Any] = {}
    multi: set[str] = set()
    for p in items:
        if "part" in p:
            value: Any = parameters_to_dict(p["part"], always)
        elif "resource" in p:
            value = p["resource"]
        else:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
        name = p["name"]
        if name in always or name in multi:
            out.setdefault(name, []).append(value)
        elif name in out:
            out[name] = [out[name], value]
            multi.add(name)
        else:
            out[name] = value
    return out


def quantity(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    """A UCUM Quantity."""
    return {"value": _num(value), "unit": unit or code, "system": "http://unitsofmeasure.org", "code": code}


def _moment(obs: Mapping[str, Any]) -> float:
    """When a reading was taken, as a POSIX instant: the instant of ``effectiveDateTime``/``effectiveInstant`` (or
    of ``effectivePeriod.end``, else ``.start``), whatever offset it is written with; a date without a time sorts
    before every timed reading (it says nothing about the hour)."""
    period: Mapping[str, Any] = (
        obs["effectivePeriod"] if isinstance(obs.get("effectivePeriod"), Mapping) else {}
    )
    raw = (
        obs.get("effectiveDateTime")
        or obs.get("effectiveInstant")
        or period.get("end")
        or period.get("start")
    )
    instant = _instant(raw) if isinstance(raw, str) and not _DATE_RE.match(raw) else None
    return instant.timestamp() if instant is not None else float("-inf")


def measurements_by_day(
    observations: Iterable[Mapping[str, Any]], tz: str, unit: str | None
) -> list[Measurement]:
    """One measurement per local day: the day's latest reading by instant (09:00-05:00 is later than
    13:30+00:00), then storage order."""
    per_day: dict[date, tuple[float, float]] = {}
    for obs in observations:
        if obs.get("status") not in ("final", "amended", "corrected"):
            continue
        day = effective_local_date(obs, tz)
        value = measurement_value(obs, unit)
        if day is None or value is None:
            continue
        when = _moment(obs)
        current = per_day.get(day)
        if current is None or when >= current[0]:
            per_day[day] = (when, value)
    return [Measurement(day, v) for day, (_, v) in sorted(per_day.items())]
