"""Check-ins: ``mecr-habit-check-in`` Observations <-> :class:`~fhir_ecr.coaching.schedule.CheckIn`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, cast

from fhir_ecr.coaching.schedule import CheckIn, CheckInStatus

from .common import (
    _DATE_RE,
    _HABIT_ID_RE,
    _RESULT_DISPLAY,
    CHECKIN_ID_SYSTEM,
    CHECKIN_PROFILE,
    CHECKIN_RESULT_SYSTEM,
    HABIT_ID_URL,
    MECR_CODES,
    ref_id,
)
from .habits import Habit

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
