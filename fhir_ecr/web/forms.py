"""The coach's forms: parse what the browser sent, check it field by field, call the coaching service.

Each ``submit_*`` returns ``FormResult``: ``ok`` with what was written, or ``errors`` keyed by form field so
the page shows each message next to its field and re-renders every value the coach typed (nothing is lost
on a failed submit). Service errors (:class:`~fhir_ecr.outcomes.FhirError`) name the offending parameter in
``issue.expression``; :data:`_FIELD_OF` maps those names to form fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..coaching import resources as res
from ..coaching.sessions import MODALITIES, SessionNote, record_session
from ..outcomes import FhirError, PreconditionFailed
from . import catalog
from .views import Data, coaching_service

__all__ = ["FormResult", "SmartCheck", "smart_check", "submit_goal", "submit_habit", "submit_session"]

Values = dict[str, Any]

_FIELD_OF = {
    "start": "start_time",
    "end": "end_time",
    "modality": "modality",
    "sessionType": "session_type",
    "coach": "coach",
    "goal": "goals",
    "subject": "group",
    "diagnosis": "goals",
    "target": "value",
    "target.measure": "measure",
    "timeZone": "time_zone",
    "habitId": "habit_id",
    "date": "date",
    "on": "date",
    "until": "until",
    "CarePlan.activity": "title",
}


@dataclass
class FormResult:
    """The outcome of a form: ``errors`` by field ('' = the form as a whole) or what was written."""

    values: Values
    errors: dict[str, str] = field(default_factory=dict)
    written: Any = None
    status: int = 200

    @property
    def ok(self) -> bool:
        return not self.errors


def _service_error(exc: FhirError, values: Values, default_field: str = "") -> FormResult:
    errors: dict[str, str] = {}
    for item in exc.issues:
        where = (item.get("expression") or [""])[0]
        name = _FIELD_OF.get(where, default_field)
        errors.setdefault(name, str(item.get("diagnostics") or item.get("code")))
    return FormResult(values, errors, status=exc.status if exc.status in (400, 409, 412, 422) else 422)


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return str(value).strip() if value is not None else ""


def _date(values: Values, errors: dict[str, str], name: str, *, required: bool = False) -> date | None:
    raw = values.get(name, "")
    if not raw:
        if required:
            errors[name] = "Enter a date."
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD."
        return None


def _number(
    values: Values, errors: dict[str, str], name: str, *, required: bool = False, positive: bool = False
) -> float | None:
    raw = str(values.get(name, "")).replace(",", "")
    if not raw:
        if required:
            errors[name] = "Enter a number."
        return None
    try:
        number = float(raw)
    except ValueError:
        errors[name] = "Enter a number."
        return None
    if positive and number <= 0:
        errors[name] = "Enter a number above zero."
        return None
    return number


# -- sessions -------------------------------------------------------------------------------------------------


def session_values(form: Mapping[str, Any], multi: Mapping[str, Sequence[str]]) -> Values:
    """The session form's fields as strings (and the goals as a list), for validation and re-rendering."""
    names = (
        "date",
        "start_time",
        "end_time",
        "duration",
        "time_zone",
        "modality",
        "session_type",
        "group",
        "coach",
        "reason",
        "reviewed",
        "barriers",
        "next_steps",
    )
    values: Values = {n: _text(form, n) for n in names}
    values["goals"] = [g for g in multi.get("goals", []) if g]
    return values


def submit_session(data: Data, patient_id: str, values: Values) -> FormResult:
    """Validate the session form and record the session (Encounter(s) and note) through the coaching service."""
    errors: dict[str, str] = {}
    day = _date(values, errors, "date", required=True)
    start_t = end_t = None
    for name in ("start_time", "end_time"):
        raw = values.get(name, "")
        if raw:
            try:
                parsed = time.fromisoformat(raw)
            except ValueError:
                errors[name] = "Enter a time as HH:MM."
                continue
            if name == "start_time":
                start_t = parsed
            else:
                end_t = parsed
    if not values.get("start_time"):
        errors["start_time"] = "Enter the time the session started."
    duration = _number(values, errors, "duration", positive=True)
    if not values.get("end_time") and duration is None and "duration" not in errors:
        errors["end_time"] = "Enter the end time or the duration in minutes."
    try:
        zone = ZoneInfo(values.get("time_zone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        errors["time_zone"] = "Enter a time zone such as America/New_York."
        zone = ZoneInfo("UTC")
    if values.get("modality") not in MODALITIES:
        errors["modality"] = "Choose in person, video or audio only."
    kind = values.get("session_type") or "follow-up"
    if kind not in ("initial", "follow-up", "group"):
        errors["session_type"] = "Choose initial, follow-up or group."
    if kind == "group" and not values.get("group"):
        errors["group"] = "Choose the group that met."
    if not values.get("coach"):
        errors["coach"] = "Choose the coach who led the session."
    start = end = None
    if day is not None and start_t is not None:
        start = datetime.combine(day, start_t, zone)
        if end_t is not None:
            end = datetime.combine(day, end_t, zone)
            if end <= start:
                errors["end_time"] = "The session must end after it starts."
        elif duration is not None:
            end = start + timedelta(minutes=duration)
    if errors:
        return FormResult(values, errors, status=422)
    assert start is not None and end is not None
    subject = f"Group/{values['group']}" if kind == "group" else f"Patient/{patient_id}"
    note = SessionNote(values.get("reviewed", ""), values.get("barriers", ""), values.get("next_steps", ""))
    try:
        result = record_session(
            coaching_service(data),
            subject,
            coach=f"PractitionerRole/{values['coach']}",
            start=start,
            end=end,
            modality=values["modality"],
            session_type="follow-up" if kind == "group" else kind,
            reasons=[values["reason"]] if values.get("reason") else [],
            goals=[f"Goal/{g}" for g in values.get("goals", [])],
            note=note if any((note.reviewed, note.barriers, note.next_steps)) else None,
        )
    except FhirError as exc:
        return _service_error(exc, values)
    return FormResult(values, written=result)


# -- goals ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmartCheck:
    """One letter of the SMART helper: does the goal pass, and if not, what would help."""

    letter: str
    name: str
    ok: bool
    hint: str


_VAGUE = re.compile(r"^\s*(be|get|feel|do|eat|live)\s+(better|healthier|more|less|well|fit|good)\b", re.I)


def smart_check(description: str, measure: str, value: str, due: str, today: date) -> list[SmartCheck]:
    """The SMART helper: is the goal Specific (says what, in more than a vague phrase), Measurable (a
    measure and a target number) and Time-bound (a due date in the future)?"""
    words = [w for w in re.split(r"\s+", description.strip()) if w]
    specific = len(words) >= 3 and not _VAGUE.match(description)
    try:
        measurable = bool(measure) and float(value.replace(",", "")) > 0
    except ValueError:
        measurable = False
    try:
        timely = date.fromisoformat(due) > today
    except ValueError:
        timely = False
    return [
        SmartCheck(
            "S",
            "Specific",
            specific,
            "Say what the person will do, e.g. “Walk 8,000 steps a day”, not “be more active”.",
        ),
        SmartCheck("M", "Measurable", measurable, "Choose a measure and a target number."),
        SmartCheck("T", "Time-bound", timely, "Set a due date in the future."),
    ]


def goal_values(form: Mapping[str, Any]) -> Values:
    """The goal form's fields as strings."""
    names = ("description", "category", "measure", "direction", "value", "value_high", "due", "priority")
    return {n: _text(form, n) for n in names}


def goal_form_values(goal: Mapping[str, Any]) -> Values:
    """A stored Goal as goal-form values (for editing)."""
    info = res.goal_info(goal)
    values: Values = {
        "description": info.description,
        "measure": "",
        "direction": "at_least",
        "value": "",
        "value_high": "",
        "due": "",
        "priority": "",
    }
    values["category"] = next(
        (c.get("code") for cat in goal.get("category", []) or [] for c in cat.get("coding", []) or []), ""
    )
    values["priority"] = next(
        (c.get("code") for c in (goal.get("priority") or {}).get("coding", []) or []), ""
    )
    values["measure"] = next((c for s, c in info.measure if s == catalog.LOINC), "")
    t = info.target
    if t is not None:
        if t.low is not None and t.high is not None:
            values.update(direction="between", value=_num(t.low), value_high=_num(t.high))
        elif t.low is not None:
            values.update(direction="at_least", value=_num(t.low))
        elif t.high is not None:
            values.update(direction="at_most", value=_num(t.high))
        values["due"] = t.due.isoformat() if t.due else ""
    return values


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def submit_goal(data: Data, patient_id: str, values: Values, *, goal_id: str | None = None) -> FormResult:
    """Validate the goal form and create (or rewrite) the SMART goal through the coaching service."""
    errors: dict[str, str] = {}
    if len(values.get("description", "")) < 3:
        errors["description"] = "Describe the goal in a few words."
    if values.get("category") not in {c for c, _ in catalog.goal_categories()}:
        errors["category"] = "Choose a category."
    if values.get("priority") and values["priority"] not in (
        "high-priority",
        "medium-priority",
        "low-priority",
    ):
        errors["priority"] = "Choose high, medium or low."
    due = _date(values, errors, "due")
    code = values.get("measure", "")
    kwargs: dict[str, Any] = {}
    if code:
        if code not in {m.code for m in catalog.target_measures()}:
            errors["measure"] = "Choose a measure from the list."
        low = _number(values, errors, "value", required=True)
        direction = values.get("direction") or "at_least"
        if direction == "between":
            high = _number(values, errors, "value_high", required=True)
            if low is not None and high is not None:
                if high <= low:
                    errors["value_high"] = "The upper value must be above the lower one."
                kwargs["between"] = (low, high)
        elif direction == "at_most":
            kwargs["at_most"] = low
        elif direction == "at_least":
            kwargs["at_least"] = low
        else:
            errors["direction"] = "Choose at least, at most or between."
        kwargs["measure"] = {"system": catalog.LOINC, "code": code}
        kwargs["unit"] = catalog.measure(code).unit or "1"
    elif values.get("value"):
        errors["measure"] = "Choose what the target number measures."
    if errors:
        return FormResult(values, errors, status=422)
    try:
        stored = coaching_service(data).create_goal(
            patient_id,
            description=values["description"],
            category=values["category"],
            due=due,
            priority=values.get("priority") or None,
            goal_id=goal_id,
            **kwargs,
        )
    except FhirError as exc:
        return _service_error(exc, values, "description")
    return FormResult(values, written=stored)


# -- habits ---------------------------------------------------------------------------------------------------


def habit_values(form: Mapping[str, Any], multi: Mapping[str, Sequence[str]]) -> Values:
    """The habit forms' fields as strings (weekdays as a list)."""
    names = (
        "action",
        "plan",
        "version",
        "habit_id",
        "title",
        "schedule",
        "times_per_week",
        "every_days",
        "start",
        "goal",
        "daily_amount",
        "reason",
        "reason_text",
        "until",
        "date",
    )
    values: Values = {n: _text(form, n) for n in names}
    values["weekdays"] = [d for d in multi.get("weekdays", []) if d]
    return values


def _slug(title: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "habit"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def submit_habit(
    data: Data, patient_id: str, values: Values, *, plan: Mapping[str, Any] | None, coach: str | None = None
) -> FormResult:
    """Add, change, pause, resume or stop a habit through the coaching service (``values['action']``)."""
    svc = coaching_service(data)
    errors: dict[str, str] = {}
    action = values.get("action")
    version = values.get("version", "")
    expected = int(version) if version.isascii() and version.isdigit() and len(version) < 10 else None
    plan_id = str(plan.get("id")) if plan else None
    try:
        if action == "add":
            if not values.get("title"):
                errors["title"] = "Name the habit."
            start = _date(values, errors, "start") or svc.today(
                res.patient_time_zone(data.repo.read("Patient", patient_id).content, svc.default_tz)
            )
            kind = values.get("schedule") or "daily"
            times = every = None
            if kind == "per-week":
                n = _number(values, errors, "times_per_week", required=True, positive=True)
                times = int(n) if n is not None else None
                if times is not None and not 1 <= times <= 7:
                    errors["times_per_week"] = "Between 1 and 7 times a week."
            elif kind == "every-n-days":
                n = _number(values, errors, "every_days", required=True, positive=True)
                every = int(n) if n is not None else None
            elif kind == "weekdays" and not values.get("weekdays"):
                errors["weekdays"] = "Choose at least one day."
            elif kind not in ("daily", "weekdays", "per-week", "every-n-days"):
                errors["schedule"] = "Choose a schedule."
            amount = _number(values, errors, "daily_amount", positive=True)
            if errors:
                return FormResult(values, errors, status=422)
            goal_id = values.get("goal") or None
            code: list[dict[str, str]] = []
            daily = None
            if goal_id and amount is not None:
                goal = data.repo.read("Goal", goal_id).content or {}
                info = res.goal_info(goal)
                code = [{"system": s, "code": c} for s, c in info.measure]
                daily = res.quantity(amount, info.unit or "1")
            elif amount is not None:
                errors["daily_amount"] = "A daily amount counts toward a measured goal: choose the goal."
                return FormResult(values, errors, status=422)
            taken = {h.habit_id for h in res.habits_of_plan(plan)} if plan else set()
            habit_id = values.get("habit_id") or _slug(values["title"], taken)
            try:
                activity = res.habit_activity(
                    habit_id,
                    values["title"],
                    res.timing_repeat(kind, times=times, weekdays=values["weekdays"], every_days=every),
                    start,
                    goal_id=goal_id,
                    code=code,
                    daily_amount=daily,
                )
            except ValueError as exc:
                return FormResult(values, {"schedule": str(exc)}, status=422)
            if plan_id is None:
                written = svc.create_plan(patient_id, "Habits", [activity], author=coach)
            else:
                written = svc.add_habit(plan_id, activity, expected_version=expected)
        else:
            if plan_id is None or not values.get("habit_id"):
                return FormResult(values, {"": "Choose a habit of this patient's plan."}, status=422)
            hid = values["habit_id"]
            if action == "pause":
                if values.get("reason") not in {c for c, _ in catalog.pause_reasons()}:
                    errors["reason"] = "Choose why the habit is paused."
                until = _date(values, errors, "until")
                pause_from = _date(values, errors, "start")
                if errors:
                    return FormResult(values, errors, status=422)
                written = svc.pause_habit(
                    plan_id,
                    hid,
                    values["reason"],
                    start=pause_from,
                    until=until,
                    reason_text=values.get("reason_text") or None,
                    expected_version=expected,
                )
            elif action == "resume":
                on = _date(values, errors, "date")
                if errors:
                    return FormResult(values, errors, status=422)
                written = svc.resume_habit(plan_id, hid, on=on, expected_version=expected)
            elif action == "stop":
                on = _date(values, errors, "date")
                if errors:
                    return FormResult(values, errors, status=422)
                written = svc.stop_habit(plan_id, hid, on=on, expected_version=expected)
            elif action == "change":
                if not values.get("title"):
                    return FormResult(values, {"title": "Name the habit."}, status=422)
                written = svc.change_habit(
                    plan_id,
                    hid,
                    title=values["title"],
                    goal_id=values.get("goal") or None,
                    expected_version=expected,
                )
            else:
                return FormResult(values, {"": "Unknown action."}, status=400)
    except PreconditionFailed:
        return FormResult(
            values,
            {
                "": "Someone changed this plan since you opened the page. Your change was "
                "not saved: reload and try again."
            },
            status=412,
        )
    except FhirError as exc:
        return _service_error(exc, values, "title" if action == "add" else "")
    return FormResult(values, written=written)
