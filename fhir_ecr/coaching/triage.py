"""Who needs the coach today, and why: the caseload's reasons, ranked by need (pure: no I/O, no clock).

Input is what the coaching service already computed for the patient page (:meth:`CoachingService.patient_glance`:
the summary, the Goals, each goal's daily series of the run-chart window and the day of the latest data), plus
what the page reads every time (messages, sessions, referrals, which signals this coach has seen). Nothing is
computed twice: the figures a row shows are the patient page's.

Reasons and their weights (:data:`WEIGHTS`; a row's score is the sum, rows are ranked by score then name):

=====================  ======  =================================================================================
reason                 weight  fires when
=====================  ======  =================================================================================
``signal-worse``       100     a run-chart signal this coach has not seen yet, moving away from the goal
``signal``              90     a new signal without a direction (too few crossings only)
``signal-better``       60     a new signal moving toward the goal (worth a word of praise)
``no-data``           35/70    no Observation at all (wearable reading or check-in) for :data:`NO_DATA_DAYS`
                               (3) days or more; 70 from :data:`LONG_SILENCE_DAYS` (7)
``message``           40 each  patient messages after the care team's latest (at most 3 counted), +20 when the
                               oldest is 2 days old or more
``goal-slipping``      25      achievementStatus worsening, no-progress, not-achieved or not-attainable
``goal-stale``         15      a measured goal with no reading for :data:`EVIDENCE_DAYS` (28) days, or achieved
                               on a reading that old (docs/coaching.md, "Stale evidence")
``habit``             10 each  an active, unpaused habit started 3+ days ago without a check-in for
                               :data:`STALE_DAYS` (3) days (left out when ``no-data`` fires: it says it already)
``session-overdue``    20      no coaching session in the last :data:`SESSION_DUE_DAYS` (30) days and none planned
``session-today``      15      a session planned for today
``referral``          10/20    an open community referral waiting on someone (20 from 14 days)
``no-goals``           12      no active goal
=====================  ======  =================================================================================

"On track" only when no reason fires **and** at least one active goal has recent evidence (a reading of a
measured goal, or a check-in of a habit serving an unmeasured one, in the last :data:`EVIDENCE_DAYS` days);
otherwise the row says what is missing.

Sources for the thresholds: silence in self-tracking data is the earliest sign of the drop-off that
dominates digital health programmes (Eysenbach 2005, "The law of attrition", https://doi.org/10.2196/jmir.7.1.e11);
three days is the habit rule the caseload already used. Monthly contact is the maintenance cadence of the
CDC's Diabetes Prevention Recognition Program (at least one session a month in months 7–12, DPRP Standards
2024, https://www.cdc.gov/diabetes-prevention/media/pdfs/legacy/dprp-standards.pdf). 28 days is the coaching
service's stale-evidence window (ProgressPolicy.stale_after_days).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.progress import Comparator
from fhir_ecr.coaching.referral_wait import OpenReferral

__all__ = [
    "Contact",
    "EVIDENCE_DAYS",
    "LONG_SILENCE_DAYS",
    "NO_DATA_DAYS",
    "PrimaryGoal",
    "Reason",
    "SESSION_DUE_DAYS",
    "SLIPPING",
    "STALE_DAYS",
    "SessionDates",
    "Triage",
    "WEIGHTS",
    "signal_keys",
    "triage",
]

STALE_DAYS = 3
NO_DATA_DAYS = 3
LONG_SILENCE_DAYS = 7
EVIDENCE_DAYS = 28
SESSION_DUE_DAYS = 30
REFERRAL_LONG_DAYS = 14
SLIPPING = frozenset({"worsening", "no-progress", "not-achieved", "not-attainable"})
WEIGHTS = {
    "signal-worse": 100,
    "signal": 90,
    "signal-better": 60,
    "no-data": 35,
    "no-data-long": 70,
    "message": 40,
    "message-old": 20,
    "goal-slipping": 25,
    "goal-stale": 15,
    "habit": 10,
    "session-overdue": 20,
    "session-today": 15,
    "referral": 10,
    "referral-long": 20,
    "no-goals": 12,
}
_PRIORITY = {"high-priority": 0, "medium-priority": 1, "low-priority": 2}
_INACTIVE_HABITS = {"stopped", "cancelled", "entered-in-error", "completed"}


@dataclass(frozen=True)
class Reason:
    """One chip of a caseload row: what fires, in words, and how much it weighs."""

    kind: str
    text: str
    weight: int

    @property
    def alert(self) -> bool:
        """Drawn as an alert (a new signal away from the goal, a long silence, an old unanswered message)."""
        return self.weight >= 60 and self.kind != "signal-better"


@dataclass(frozen=True)
class Contact:
    """The patient's messages as the caseload needs them."""

    unanswered: int = 0
    oldest_unanswered: date | None = None
    unread: int = 0


@dataclass(frozen=True)
class SessionDates:
    """The patient's coaching sessions around today: the latest held, the next planned (local times)."""

    last: date | None = None
    next: datetime | None = None


@dataclass(frozen=True)
class PrimaryGoal:
    """The goal the row's sparkline shows: its daily series of the run-chart window (the patient page's)."""

    goal_id: str
    description: str
    measure: str | None
    unit: str | None
    band: tuple[float | None, float | None] | None
    points: list[tuple[date, float]]
    latest: float | None
    latest_date: date | None


@dataclass
class Triage:
    """A patient's caseload row, before it is drawn."""

    reasons: list[Reason]
    on_track: bool
    missing: str | None
    primary: PrimaryGoal | None
    adherence7: float | None
    new_signals: int
    last_data: date | None
    next_session: datetime | None = None
    kinds: set[str] = field(default_factory=set)

    @property
    def score(self) -> int:
        """The row's rank: the sum of its reasons' weights."""
        return sum(r.weight for r in self.reasons)


def signal_keys(summary: Mapping[str, Any]) -> set[str]:
    """``{goal id}:{rule}`` of every run-chart signal in the summary (what "seen" is recorded against)."""
    out = set()
    for item in summary.get("goal", []):
        chart = item.get("runChart") or {}
        if chart.get("signal"):
            gid = item["reference"]["reference"].split("/", 1)[1]
            out |= {f"{gid}:{r}" for r in chart.get("rule") or []}
    return out


def _status(item: Mapping[str, Any]) -> str | None:
    return (item.get("achievementStatus") or {}).get("code") or item.get("storedAchievementStatus")


def _meaning(direction: str | None, info: res.GoalInfo | None, median: float | None) -> str | None:
    """Is a shift in ``direction`` toward the goal ("better") or away from it ("worse")?"""
    if direction is None or info is None or info.target is None:
        return None
    up = direction == "up"
    t = info.target
    if t.comparator is Comparator.AT_LEAST:
        return "better" if up else "worse"
    if t.comparator is Comparator.AT_MOST:
        return "worse" if up else "better"
    if median is not None and t.low is not None and median < t.low:
        return "better" if up else "worse"
    if median is not None and t.high is not None and median > t.high:
        return "worse" if up else "better"
    return None


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def triage(
    glance: Mapping[str, Any],
    *,
    today: date,
    seen: Collection[str],
    contact: Contact,
    sessions: SessionDates,
    referrals: Sequence[OpenReferral] = (),
    label: Callable[[str | None], str | None] = lambda code: None,
) -> Triage:
    """The reasons a patient needs the coach today, ranked, and the row's figures (see the module docstring).

    ``label`` names a LOINC measure for people ("Steps"); goals fall back to their description."""
    summary = glance["summary"]
    infos: dict[str, res.GoalInfo] = {}
    priority: dict[str, int] = {}
    starts: dict[str, date | None] = {}
    for g in glance.get("goals") or []:
        try:
            info = res.goal_info(g)
        except ValueError:
            continue
        infos[info.id] = info
        starts[info.id] = info.start
        code = next((c.get("code") for c in (g.get("priority") or {}).get("coding", []) or []), None)
        priority[info.id] = _PRIORITY.get(code or "", 3)
    reasons: list[Reason] = []
    items = list(summary.get("goal", []))

    def name(gid: str, item: Mapping[str, Any]) -> str:
        info = infos.get(gid)
        code = next((c for s, c in info.measure if s == "http://loinc.org"), None) if info else None
        return label(code) or _short(str(item.get("description") or "Goal"))

    # new run-chart signals, labelled with the measure and read against the goal's direction
    keys = signal_keys(summary)
    new_keys = keys - set(seen)
    new_goals = {k.split(":", 1)[0] for k in new_keys}
    for item in items:
        gid = item["reference"]["reference"].split("/", 1)[1]
        if gid not in new_goals:
            continue
        chart = item.get("runChart") or {}
        meaning = _meaning(chart.get("direction"), infos.get(gid), chart.get("median"))
        kind = {"worse": "signal-worse", "better": "signal-better"}.get(meaning or "", "signal")
        words = {
            "signal-worse": "new signal, moving away from the goal",
            "signal-better": "new signal, moving toward the goal",
        }.get(
            kind,
            "new signal, " + ("too few crossings" if "crossings" in (chart.get("rule") or []) else "a shift"),
        )
        reasons.append(Reason(kind, f"{name(gid, item)}: {words}", WEIGHTS[kind]))
    # silence
    last = glance.get("lastData")
    habits = [h for h in summary.get("habit", []) if h.get("status") not in _INACTIVE_HABITS]
    measured = [i for i in items if i.get("unit")]
    silent = False
    if last is None:
        if habits or measured:
            reasons.append(Reason("no-data", "no data yet", WEIGHTS["no-data"]))
            silent = True
    elif (today - last).days >= NO_DATA_DAYS:
        n = (today - last).days
        reasons.append(
            Reason(
                "no-data",
                f"no data for {_days(n)} (since {last:%b %-d})",
                WEIGHTS["no-data-long" if n >= LONG_SILENCE_DAYS else "no-data"],
            )
        )
        silent = True
    # messages
    if contact.unanswered:
        n = contact.unanswered
        age = (today - contact.oldest_unanswered).days if contact.oldest_unanswered else 0
        when = "today" if age <= 0 else f"{_days(age)} old" if n == 1 else f"oldest {_days(age)}"
        weight = WEIGHTS["message"] * min(n, 3) + (WEIGHTS["message-old"] if age >= 2 else 0)
        reasons.append(Reason("message", f"{n} unanswered message{'s' if n > 1 else ''} ({when})", weight))
    # goals slipping or stale
    for item in items:
        gid = item["reference"]["reference"].split("/", 1)[1]
        status = _status(item)
        if status in SLIPPING:
            reasons.append(
                Reason(
                    "goal-slipping",
                    f"{name(gid, item)} goal: {status.replace('-', ' ')}",
                    WEIGHTS["goal-slipping"],
                )
            )
            continue
        if not item.get("unit"):
            continue
        latest = item.get("latestDate")
        begun = starts.get(gid)
        if item.get("stale") and latest:
            reasons.append(
                Reason(
                    "goal-stale",
                    f"{name(gid, item)} goal: met on old evidence ({latest:%b %-d})",
                    WEIGHTS["goal-stale"],
                )
            )
        elif latest is None and begun is not None and (today - begun).days >= EVIDENCE_DAYS:
            reasons.append(
                Reason("goal-stale", f"{name(gid, item)} goal: no readings", WEIGHTS["goal-stale"])
            )
        elif latest is not None and (today - latest).days > EVIDENCE_DAYS:
            reasons.append(
                Reason(
                    "goal-stale",
                    f"{name(gid, item)} goal: last reading {latest:%b %-d}",
                    WEIGHTS["goal-stale"],
                )
            )
    # habits without check-ins (the silence reason says it already when everything is silent)
    stale = []
    for h in habits:
        if h.get("status") == "on-hold" or h.get("start") is None or (today - h["start"]).days < STALE_DAYS:
            continue
        last_ci = h.get("lastCheckIn")
        if last_ci is None or (today - last_ci).days >= STALE_DAYS:
            stale.append((h, (today - last_ci).days if last_ci else None))
    if stale and not silent:
        if len(stale) == 1:
            h, days = stale[0]
            text = f"{_short(h['title'])}: " + (
                f"no check-in for {_days(days)}" if days else "no check-ins yet"
            )
        else:
            text = f"{len(stale)} habits without a check-in for {STALE_DAYS}+ days"
        reasons.append(Reason("habit", text, WEIGHTS["habit"] * len(stale)))
    # sessions
    if sessions.next is not None and sessions.next.date() == today:
        reasons.append(
            Reason("session-today", f"session today {sessions.next:%H:%M}", WEIGHTS["session-today"])
        )
    elif sessions.next is None and (sessions.last is None or (today - sessions.last).days > SESSION_DUE_DAYS):
        reasons.append(
            Reason("session-overdue", f"no session in {SESSION_DUE_DAYS} days", WEIGHTS["session-overdue"])
        )
    # referrals waiting on someone
    for r in referrals:
        long_wait = r.waiting_days >= REFERRAL_LONG_DAYS or r.overdue
        who = f" on {r.performer}" if r.performer else ""
        if r.overdue:  # closing the loop on time: the organisation has not answered (docs/referrals.md)
            text = (
                f"no answer{' from ' + r.performer if r.performer else ''} in {_days(r.waiting_days)}: "
                f"{_short(r.text, 32)}"
            )
        elif r.status == "draft":
            text = f"referral waiting on the patient's consent {_days(r.waiting_days)}: {_short(r.text, 32)}"
        else:
            text = f"referral waiting{who} {_days(r.waiting_days)}: {_short(r.text, 32)}"
        reasons.append(Reason("referral", text, WEIGHTS["referral-long" if long_wait else "referral"]))
    active_goals = [i for i in items if i.get("lifecycleStatus") not in ("proposed", "on-hold")]
    if not active_goals:
        reasons.append(Reason("no-goals", "no goals yet", WEIGHTS["no-goals"]))
    reasons.sort(key=lambda r: -r.weight)

    # evidence: a recent reading of a measured goal, or a recent check-in of a habit serving an unmeasured one
    evidence = False
    for item in active_goals:
        gid = item["reference"]["reference"].split("/", 1)[1]
        latest = item.get("latestDate")
        if item.get("unit"):
            evidence |= latest is not None and (today - latest).days <= EVIDENCE_DAYS
        else:
            evidence |= any(
                (h.get("servesGoal") or {}).get("reference") == f"Goal/{gid}"
                and h.get("lastCheckIn")
                and (today - h["lastCheckIn"]).days <= EVIDENCE_DAYS
                for h in habits
            )
    missing = None
    if not reasons and not evidence:
        missing = f"no reading or check-in for the goals in {EVIDENCE_DAYS} days" if last else "no data yet"

    primary = None
    series = glance.get("goalSeries") or {}
    ranked = sorted(
        (i for i in active_goals if i.get("unit")),
        key=lambda i: priority.get(i["reference"]["reference"].split("/", 1)[1], 3),
    )
    if ranked:
        item = ranked[0]
        gid = item["reference"]["reference"].split("/", 1)[1]
        goal_info = infos.get(gid)
        code = next((c for s, c in goal_info.measure if s == "http://loinc.org"), None) if goal_info else None
        band = (goal_info.target.low, goal_info.target.high) if goal_info and goal_info.target else None
        primary = PrimaryGoal(
            gid,
            str(item.get("description") or ""),
            code,
            item.get("unit"),
            band,
            list(series.get(gid, [])),
            item.get("latest"),
            item.get("latestDate"),
        )
    scheduled = earned = 0.0
    for h in habits:
        if h.get("status") == "on-hold":
            continue
        week = next((a for a in h.get("adherence", []) if a.get("days") == 7), None)
        if week:
            scheduled += week.get("scheduled") or 0
            earned += week.get("earned") or 0
    return Triage(
        reasons=reasons,
        on_track=not reasons and evidence,
        missing=missing,
        primary=primary,
        adherence7=earned / scheduled if scheduled else None,
        new_signals=len(new_goals),
        last_data=last,
        next_session=sessions.next,
        kinds={r.kind for r in reasons},
    )
