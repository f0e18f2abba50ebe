"""Habits: ``CarePlan.activity`` of a ``mecr-habit-plan`` <-> :class:`Habit` (schedule, pauses, daily target)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_ecr.coaching.errors import ScheduleError
from fhir_ecr.coaching.schedule import Pause, Schedule, schedule_from_timing

from .common import _HABIT_ID_RE, HABIT_ID_URL, HABIT_PAUSE_URL, PAUSE_REASON_SYSTEM, parse_local_date, ref_id

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
        sub.append({"url": "reason", "valueCodeableConcept": pause_reason(pause.reason, reason_text)})
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


def pause_reason(code: str, text: str | None) -> dict[str, Any]:
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
