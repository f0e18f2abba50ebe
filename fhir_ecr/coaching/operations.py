"""The coaching service as FHIR operations (https://hl7.org/fhir/R4/operations.html), registered as data.

=========================================  ======  ======================================================
operation                                  method  why an operation (and not plain REST)
=========================================  ======  ======================================================
``Patient/{id}/$coaching-summary``         GET     a computed view (progress, adherence, streaks,
                                                   signals) that is stored nowhere
``CarePlan/{id}/$check-in``                POST    one check-in per habit per local day: the server
                                                   derives the day (patient time zone), the identifier,
                                                   ``amended`` status and the goal's new status
``CarePlan/{id}/$habit``                   POST    add / change / pause / resume / stop a habit with the
                                                   plan's ``If-Match`` version (412 when stale)
``Observation/$run-chart``                 GET     series + median + Anhøj signals as data, with PDSA
                                                   changes as phases
``Patient/{id}/$coaching-session``,        POST    one call writes the session Encounter(s) (one per
``Group/{id}/$coaching-session``                   group member, ``partOf`` the group one) and notes
``Goal/{id}/$pdsa``                        POST    a PDSA change note on the habit serving the goal
=========================================  ======  ======================================================

Outputs are ``Parameters`` (or a Bundle for sessions). Bad input is an OperationOutcome: 400 for malformed
parameters, 404 for an unknown target resource, 412 for a stale ``If-Match``, 422 for business rules.

Dates given to an operation lie in :data:`FIRST_DAY` .. :data:`LAST_DAY` (1900-2199) and a run chart spans at
most ``MAX_CHART_DAYS`` (:mod:`~fhir_ecr.coaching.service`) days; anything else is a 400. The day arithmetic (padding a range by a day, weeks,
streaks) then stays inside the calendar, and no computation walks millions of days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.coaching.sessions import record_session, session_from_parameters
from fhir_ecr.fhir.http import parse_etag
from fhir_ecr.fhir.operations import Operation, OperationCall, OperationRegistry
from fhir_ecr.outcomes import FhirError, bad_request, issue

__all__ = ["register_coaching_operations"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: The days a coaching operation accepts (check-ins, habit starts and pauses, PDSA notes, run-chart ranges).
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)


def _in_range(day: date, name: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise bad_request(f"parameter {name} must lie between {FIRST_DAY} and {LAST_DAY}", name)
    return day


def _one(call: OperationCall, name: str, *, required: bool = False) -> Any:
    values = call.get_all(name)
    if len(values) > 1:
        raise bad_request(f"parameter {name} is given more than once", name)
    if not values or values[0] in (None, ""):
        if required:
            raise FhirError(issue("required", f"parameter {name} is required", expression=name), 400)
        return None
    return values[0]


def _text(call: OperationCall, name: str, *, required: bool = False) -> str | None:
    value = _one(call, name, required=required)
    if value is None:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
        return str(value["reference"])
    if not isinstance(value, str):
        raise bad_request(f"parameter {name} must be a string", name)
    return value


def _date(call: OperationCall, name: str) -> date | None:
    raw = _text(call, name)
    if raw is None:
        return None
    if not _DATE.match(raw):
        raise bad_request(f"parameter {name} must be a date (YYYY-MM-DD), not {raw!r}", name)
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"parameter {name} is not a calendar date: {raw!r}", name) from None
    return _in_range(day, name)


def _day_or_instant(call: OperationCall, name: str) -> tuple[date | None, datetime | None]:
    raw = _text(call, name)
    if raw is None:
        return None, None
    if _DATE.match(raw):
        return _date(call, name), None
    try:
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise bad_request(
            f"parameter {name} must be a date or a dateTime with a time zone, not {raw!r}", name
        )
    _in_range(instant.date(), name)
    return None, instant


def _quantity(call: OperationCall, name: str) -> dict[str, Any] | None:
    value = _one(call, name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return res.quantity(float(value), "1")
        except ValueError:
            raise bad_request(
                f"parameter {name} must be a Quantity or a number, not {value!r}", name
            ) from None
    if (
        not isinstance(value, Mapping)
        or isinstance(value.get("value"), bool)
        or not isinstance(value.get("value"), (int, float))
    ):
        raise bad_request(f"parameter {name} must be a Quantity with a numeric value", name)
    if value["value"] < 0:
        raise bad_request(f"parameter {name} cannot be negative", name)
    return dict(value)


def _expected_version(call: OperationCall) -> int | None:
    return parse_etag(call.request.headers.get("if-match"))


class _Ops:
    """The handlers, bound to the service settings given at registration."""

    def __init__(self, **service_kwargs: Any) -> None:
        self.service_kwargs = service_kwargs

    def service(self, call: OperationCall) -> CoachingService:
        return CoachingService(call.repo, **self.service_kwargs)

    def summary(self, call: OperationCall) -> dict[str, Any]:
        return res.to_parameters(self.service(call).coaching_summary(str(call.resource_id)))

    def check_in(self, call: OperationCall) -> dict[str, Any]:
        habit_id = _text(call, "habitId", required=True)
        status = _text(call, "status", required=True)
        day, at = _day_or_instant(call, "date")
        patient = _text(call, "patient")
        patient_id = None
        if patient is not None:
            patient_id = res.ref_id(patient, "Patient") or (patient if "/" not in patient else None)
            if patient_id is None:
                raise bad_request(f"patient must reference a Patient, not {patient!r}", "patient")
        result = self.service(call).check_in(
            str(call.resource_id),
            str(habit_id),
            str(status),
            day=day,
            at=at,
            quantity=_quantity(call, "quantity"),
            note=_text(call, "note"),
            patient_id=patient_id,
        )
        return res.to_parameters(
            {
                "return": result.stored.content,
                "created": result.created,
                "changed": result.changed,
                "localDate": result.day,
                "version": result.stored.version_id,
                "goalAchievementStatus": result.goal_status,
            }
        )

    def habit(self, call: OperationCall) -> dict[str, Any]:
        svc = self.service(call)
        plan_id = str(call.resource_id)
        action = _text(call, "action", required=True)
        expected = _expected_version(call)
        if action == "add":
            kind = _text(call, "schedule", required=True)
            times = _text(call, "timesPerWeek")
            weekdays = [str(v) for v in call.get_all("dayOfWeek")]
            every = _text(call, "everyDays")
            for label, raw in (("timesPerWeek", times), ("everyDays", every)):
                if raw is not None and not (raw.isascii() and raw.isdigit()):
                    raise bad_request(f"parameter {label} must be a whole number", label)
            start = _date(call, "start")
            goal = _text(call, "goal")
            amount = _quantity(call, "dailyAmount")
            codes = [v for v in call.get_all("code") if isinstance(v, Mapping)]
            try:
                repeat = res.timing_repeat(
                    str(kind),
                    times=int(times) if times else None,
                    weekdays=weekdays,
                    every_days=int(every) if every else None,
                )
                # The habit starts today in the patient's zone unless a start is given.
                with svc.repo.unit(write=False) as uow:
                    plan = uow.read("CarePlan", plan_id).content or {}
                    pid = res.ref_id(plan.get("subject"), "Patient") or ""
                    tz = res.patient_time_zone(uow.read("Patient", pid).content, svc.default_tz)
                activity = res.habit_activity(
                    str(_text(call, "habitId", required=True)),
                    str(_text(call, "title", required=True)),
                    repeat,
                    start or svc.today(tz),
                    description=_text(call, "description"),
                    goal_id=res.ref_id(goal, "Goal") or goal if goal else None,
                    code=codes,
                    daily_amount=amount,
                )
            except ValueError as exc:
                raise bad_request(str(exc)) from exc
            stored = svc.add_habit(plan_id, activity, expected_version=expected)
        else:
            habit_id = str(_text(call, "habitId", required=True))
            if action == "pause":
                stored = svc.pause_habit(
                    plan_id,
                    habit_id,
                    str(_text(call, "reason", required=True)),
                    start=_date(call, "start"),
                    until=_date(call, "until"),
                    reason_text=_text(call, "reasonText"),
                    expected_version=expected,
                )
            elif action == "resume":
                stored = svc.resume_habit(
                    plan_id, habit_id, on=_date(call, "date"), expected_version=expected
                )
            elif action == "stop":
                stored = svc.stop_habit(plan_id, habit_id, on=_date(call, "date"), expected_version=expected)
            elif action == "change":
                goal = _text(call, "goal")
                stored = svc.change_habit(
                    plan_id,
                    habit_id,
                    title=_text(call, "title"),
                    description=_text(call, "description"),
                    goal_id=(res.ref_id(goal, "Goal") or goal) if goal else None,
                    daily_amount=_quantity(call, "dailyAmount"),
                    expected_version=expected,
                )
            else:
                raise FhirError(
                    issue(
                        "value",
                        f"action must be add, change, pause, resume or stop, not {action!r}",
                        expression="action",
                    ),
                    400,
                )
        return res.to_parameters({"return": stored.content, "version": stored.version_id})

    def run_chart(self, call: OperationCall) -> dict[str, Any]:
        patient = _text(call, "patient", required=True)
        pid = res.ref_id(patient, "Patient") or (patient if patient and "/" not in patient else None)
        if pid is None:
            raise bad_request(f"patient must reference a Patient, not {patient!r}", "patient")
        codings = []
        for raw in call.get_all("code"):
            for token in str(raw).split(","):
                system, bar, code = token.partition("|")
                if not bar or not system or not code:
                    raise bad_request(f"code must be system|code, not {token!r}", "code")
                codings.append((system, code))
        if not codings:
            raise FhirError(issue("required", "parameter code is required", expression="code"), 400)
        svc = self.service(call)
        return res.to_parameters(svc.run_chart(pid, codings, _date(call, "from"), _date(call, "to")))

    def session(self, call: OperationCall) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in call.params:
            if name in values:
                values[name] = [*(values[name] if isinstance(values[name], list) else [values[name]]), value]
            else:
                values[name] = value
        kwargs = session_from_parameters(values)
        result = record_session(self.service(call), f"{call.resource_type}/{call.resource_id}", **kwargs)
        return result.bundle(call.services.fhir_base)

    def pdsa(self, call: OperationCall) -> dict[str, Any]:
        stored = self.service(call).add_pdsa(
            str(call.resource_id),
            title=str(_text(call, "title", required=True)),
            day=_date(call, "date"),
            habit_id=_text(call, "habitId"),
            plan=_text(call, "plan") or "",
            do=_text(call, "do") or "",
            study=_text(call, "study") or "",
            act=_text(call, "act") or "",
            author=_text(call, "author"),
            expected_version=_expected_version(call),
        )
        return res.to_parameters({"return": stored.content, "version": stored.version_id})


def _p(name: str, type_: str, *, use: str = "in", min_: int = 0, max_: str = "1") -> dict[str, Any]:
    return {"name": name, "use": use, "min": min_, "max": max_, "type": type_}


def register_coaching_operations(registry: OperationRegistry, **service_kwargs: Any) -> None:
    """Add the coaching operations to ``registry``; ``service_kwargs`` go to :class:`CoachingService`
    (e.g. ``default_tz="America/New_York"``)."""
    ops = _Ops(**service_kwargs)
    registry.register(
        Operation(
            name="coaching-summary",
            title="Coaching summary",
            description="Goals with progress (achievementStatus by the goal-progress rule) and recent run-chart "
            "signals; habits with adherence over 7/30/90 days and current/best streaks.",
            handler=ops.summary,
            resource_types=("Patient",),
            instance=True,
            parameters=[_p("return", "Parameters", use="out", min_=1)],
        )
    )
    registry.register(
        Operation(
            name="check-in",
            title="Habit check-in",
            description="Record done / partly / not-done for one habit of this habit plan on one patient-local "
            "day; idempotent per habit and day (the latest wins, earlier ones stay in history).",
            handler=ops.check_in,
            resource_types=("CarePlan",),
            instance=True,
            affects_state=True,
            parameters=[
                _p("habitId", "string", min_=1),
                _p("status", "code", min_=1),
                _p("date", "string"),
                _p("quantity", "Quantity"),
                _p("note", "string"),
                _p("patient", "Reference"),
                _p("return", "Observation", use="out", min_=1),
            ],
        )
    )
    registry.register(
        Operation(
            name="habit",
            title="Change a habit",
            description="Add, change, pause (on-hold with a reason), resume or stop a habit of this habit plan; "
            "If-Match carries the plan version the change was made against.",
            handler=ops.habit,
            resource_types=("CarePlan",),
            instance=True,
            affects_state=True,
            parameters=[
                _p("action", "code", min_=1),
                _p("habitId", "string", min_=1),
                _p("title", "string"),
                _p("description", "string"),
                _p("schedule", "code"),
                _p("timesPerWeek", "integer"),
                _p("dayOfWeek", "code", max_="*"),
                _p("everyDays", "integer"),
                _p("start", "date"),
                _p("goal", "Reference"),
                _p("dailyAmount", "Quantity"),
                _p("code", "Coding", max_="*"),
                _p("reason", "code"),
                _p("reasonText", "string"),
                _p("until", "date"),
                _p("date", "date"),
                _p("return", "CarePlan", use="out", min_=1),
            ],
        )
    )
    registry.register(
        Operation(
            name="run-chart",
            title="Run chart",
            description="A patient's daily series of one measure between two local dates, its median and the "
            "Anhøj shift/crossings and astronomical signals, with PDSA changes as phases.",
            handler=ops.run_chart,
            resource_types=("Observation",),
            type=True,
            parameters=[
                _p("patient", "string", min_=1),
                _p("code", "token", min_=1, max_="*"),
                _p("from", "date"),
                _p("to", "date"),
                _p("return", "Parameters", use="out", min_=1),
            ],
        )
    )
    registry.register(
        Operation(
            name="coaching-session",
            title="Record a coaching session",
            description="Write a finished coaching session: an Encounter for the patient, or for a Group one "
            "group-level Encounter and one per member partOf it; plus the structured note.",
            handler=ops.session,
            resource_types=("Patient", "Group"),
            instance=True,
            affects_state=True,
            parameters=[
                _p("coach", "Reference", min_=1),
                _p("start", "dateTime", min_=1),
                _p("end", "dateTime", min_=1),
                _p("modality", "code", min_=1),
                _p("sessionType", "code"),
                _p("reason", "string", max_="*"),
                _p("goal", "Reference", max_="*"),
                _p("diagnosis", "Reference", max_="*"),
                _p("reviewed", "string"),
                _p("barriers", "string"),
                _p("nextSteps", "string"),
                _p("return", "Bundle", use="out", min_=1),
            ],
        )
    )
    registry.register(
        Operation(
            name="pdsa",
            title="Record a PDSA change",
            description="Note a PDSA cycle's change on the habit serving this goal (CarePlan.activity.progress); "
            "run charts of the goal's measure start a new phase on that date.",
            handler=ops.pdsa,
            resource_types=("Goal",),
            instance=True,
            affects_state=True,
            parameters=[
                _p("title", "string", min_=1),
                _p("date", "date"),
                _p("habitId", "string"),
                _p("plan", "string"),
                _p("do", "string"),
                _p("study", "string"),
                _p("act", "string"),
                _p("author", "Reference"),
                _p("return", "CarePlan", use="out", min_=1),
            ],
        )
    )
