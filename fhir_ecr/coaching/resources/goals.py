"""Goals: a ``mecr-coaching-goal`` Goal read into :class:`GoalInfo` (measure, target, baseline, start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_ecr.coaching.errors import GoalError, ScheduleError
from fhir_ecr.coaching.progress import GoalTarget

from .common import parse_local_date, ref_id

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
