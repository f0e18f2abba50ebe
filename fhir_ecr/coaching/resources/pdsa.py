"""PDSA notes: ``activity.progress`` Annotations whose text starts with ``PDSA:``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .common import PDSA_PREFIX, parse_local_date
from .habits import Habit

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
