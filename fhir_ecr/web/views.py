"""What each page shows, gathered from the coaching service and the repository (no HTTP here).

The figures (progress, achievementStatus, adherence, streaks, run-chart signals) come from
:class:`~fhir_ecr.coaching.service.CoachingService`; this module only selects, orders and shapes them for
the templates. One page-level notion is defined here because only the pages use it:

- **New signal**: a run-chart signal (goal, rule) the viewer has not seen on the patient page yet. The page
  records what it showed in the store's key-value state (``web:seen:{viewer}:{patient}``).

The caseload's reasons and ranking are :mod:`fhir_ecr.coaching.triage` (drawn by :mod:`.caseload`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from ..auth.access import LINK_SYSTEM_PREFIX
from ..canonical import APP_PREFERENCES_URL
from ..coaching import resources as res
from ..coaching.referral_wait import response_days
from ..coaching.schedule import ScheduleKind
from ..coaching.service import CoachingService
from ..coaching.sessions import parse_session_note
from ..coaching.triage import signal_keys
from ..referrals.service import referrals_of as referral_list
from ..services import Services
from ..store.repository import FhirRepository
from ..store.search import parse_search
from . import catalog
from .charts import describe_series, sparkline
from .messaging import thread
from .runcharts import RunChartFigure, draw

__all__ = [
    "coaching_service",
    "Data",
    "patient_banner",
    "patient_app",
    "patient_page",
    "search_all",
]

_SESSION_TYPES = {
    "coaching-session-initial": "Initial session",
    "coaching-session-follow-up": "Follow-up",
    "coaching-session-group": "Group session",
}
_PATIENT_PREFS = APP_PREFERENCES_URL


@dataclass(frozen=True)
class Data:
    """Where the pages read from: the repository as the caller sees it (``Services.repo_for(access)``, so
    every read and write is scope- and compartment-checked and audited) and the default time zone."""

    repo: FhirRepository
    default_tz: str = "UTC"
    referral_response: str = "7"  # MECR_REFERRAL_RESPONSE_DAYS

    @classmethod
    def of(cls, services: Services, access: Any) -> Data:
        repo = services.repo_for(access) if hasattr(services, "repo_for") else services.repo
        return cls(
            repo,
            services.settings.default_time_zone,
            str(getattr(services.settings, "referral_response_days", "7")),
        )

    @property
    def referral_days(self) -> Any:
        """Response days per SDOH category (``coaching.referral_wait.response_days``)."""
        return response_days(self.referral_response)


def coaching_service(data: Data, **kwargs: Any) -> CoachingService:
    """The coaching service over the caller's repository, with the deployment's default time zone."""
    return CoachingService(data.repo, default_tz=data.default_tz, **kwargs)


def _search(
    repo: FhirRepository, rtype: str, params: list[tuple[str, str]], limit: int = 1000
) -> list[dict[str, Any]]:
    query = parse_search(rtype, params, default_count=limit, max_count=limit)
    query.total = "none"
    return [s.content for s in repo.search(query).matches if s.content is not None]


def search_all(
    repo: FhirRepository, rtype: str, params: list[tuple[str, str]], page: int = 1000
) -> list[dict[str, Any]]:
    """Every match of a search, page by page (the caseload of a large practice)."""
    query = parse_search(rtype, params, default_count=page, max_count=page)
    query.total = "none"
    out: list[dict[str, Any]] = []
    while True:
        result = repo.search(query)
        out += [s.content for s in result.matches if s.content is not None]
        if result.next_cursor is None:
            return out
        query.cursor = result.next_cursor


# -- people ---------------------------------------------------------------------------------------------------


def human_name(resource: Mapping[str, Any] | None) -> str:
    """ "Given Family" of the first name (the text if given), or a placeholder."""
    for name in (resource or {}).get("name", []) or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(p for p in parts if p).strip()
        if text:
            return text
    return "(no name)"


_MR = ("http://terminology.hl7.org/CodeSystem/v2-0203", "MR")


def medical_record_number(patient: Mapping[str, Any]) -> str | None:
    """The patient's MRN for people to read: the identifier typed MR (v2-0203), else the first business
    identifier — never mECR's link to an EHR's internal id (``urn:mecr:ehr:…``), which means nothing on a ward."""
    idents = [
        i
        for i in patient.get("identifier", []) or []
        if i.get("value") and not str(i.get("system", "")).startswith(LINK_SYSTEM_PREFIX)
    ]
    typed = next(
        (
            i
            for i in idents
            if any(
                (c.get("system"), c.get("code")) == _MR for c in (i.get("type") or {}).get("coding", []) or []
            )
        ),
        None,
    )
    chosen = typed or (idents[0] if idents else None)
    return str(chosen["value"]) if chosen else None


def patient_banner(patient: Mapping[str, Any], today: date) -> dict[str, Any]:
    """Name, age, sex, date of birth and MRN: two identifiers at least (name and date of birth, The Joint
    Commission NPSG.01.01.01) and the record number the chart shows, so no page can be about the wrong person."""
    birth = patient.get("birthDate")
    age = None
    if isinstance(birth, str) and len(birth) >= 10:
        born = date.fromisoformat(birth[:10])
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    mrn = medical_record_number(patient)
    return {
        "id": patient.get("id"),
        "name": human_name(patient),
        "birthDate": birth,
        "age": age,
        "gender": patient.get("gender"),
        "mrn": mrn,
        "identifier": f"MRN {mrn}" if mrn else None,
    }


def preferences(patient: Mapping[str, Any]) -> dict[str, Any]:
    """The patient app's settings (reminder time, hide weight/calories), kept on the Patient resource."""
    prefs = {"reminder": "", "hide_sensitive": False}
    for ext in patient.get("extension", []) or []:
        if ext.get("url") != _PATIENT_PREFS:
            continue
        for sub in ext.get("extension", []) or []:
            if sub.get("url") == "reminderTime":
                prefs["reminder"] = str(sub.get("valueTime", ""))[:5]
            elif sub.get("url") == "hideSensitive":
                prefs["hide_sensitive"] = bool(sub.get("valueBoolean"))
    return prefs


def save_preferences(
    data: Data, patient_id: str, *, time_zone: str | None, reminder: str, hide_sensitive: bool
) -> None:
    """Store the app settings: the time zone through the coaching service (it decides check-in days),
    the rest as an extension on the Patient."""
    if time_zone:
        coaching_service(data).set_time_zone(patient_id, time_zone)
    repo = data.repo
    with repo.unit() as uow:
        stored = uow.read("Patient", patient_id)
        content = dict(stored.content or {})
        sub: list[dict[str, Any]] = [{"url": "hideSensitive", "valueBoolean": hide_sensitive}]
        if reminder:
            sub.insert(0, {"url": "reminderTime", "valueTime": f"{reminder}:00"[:8]})
        exts = [e for e in content.get("extension", []) or [] if e.get("url") != _PATIENT_PREFS]
        content["extension"] = [*exts, {"url": _PATIENT_PREFS, "extension": sub}]
        uow.update("Patient", patient_id, content, expected_version=stored.version_id)


# -- series ---------------------------------------------------------------------------------------------------


def _band(info: res.GoalInfo) -> tuple[float | None, float | None] | None:
    t = info.target
    if t is None:
        return None
    return (t.low, t.high)


@dataclass
class GoalCard:
    """One goal of the small multiples."""

    id: str
    description: str
    status: str | None
    status_display: str
    rule: str | None
    unit: str | None
    latest: float | None
    latest_date: date | None
    band: tuple[float | None, float | None] | None
    due: date | None
    spark: Any
    text: str
    measure: str | None
    signal: bool = False
    new_signal: bool = False
    rules: list[str] = field(default_factory=list)
    pdsa: list[str] = field(default_factory=list)
    percent: float | None = None
    baseline_note: str | None = None  # "not enough baseline yet" before the latest PDSA change (no signal)
    referrals: list[Any] = field(
        default_factory=list
    )  # the community referrals serving it (referrals.Referral)


def _goal_cards(
    summary: Mapping[str, Any],
    goals: Sequence[Mapping[str, Any]],
    goal_series: Mapping[str, Sequence[tuple[date, float]]],
    seen: set[str],
    hide_sensitive: bool = False,
) -> list[GoalCard]:
    """One card per goal of the summary; ``goal_series`` holds each goal's daily measurements of the run-chart
    window (``CoachingService.patient_overview``)."""
    infos = {}
    for g in goals:
        try:
            infos[str(g.get("id"))] = res.goal_info(g)
        except ValueError:
            continue
    cards = []
    for item in summary.get("goal", []):
        gid = item["reference"]["reference"].split("/", 1)[1]
        info = infos.get(gid)
        code = next((c for s, c in (info.measure if info else ()) if s == catalog.LOINC), None)
        m = catalog.measure(code) if code else None
        if hide_sensitive and m is not None and m.sensitive:
            continue
        unit = item.get("unit") or (info.unit if info else None)
        points = list(goal_series.get(gid, [])) if code else []
        band = _band(info) if info else None
        status = (item.get("achievementStatus") or {}).get("code") or item.get("storedAchievementStatus")
        chart = item.get("runChart") or {}
        rules = list(chart.get("rule") or [])
        keys = {f"{gid}:{r}" for r in rules}
        label = item.get("description") or (m.label if m else "Goal")
        display = (status or "no status").replace("-", " ")
        if item.get("stale") and item.get("latestDate"):  # achieved on old evidence only (docs/coaching.md)
            display += f", stale: last reading {item['latestDate']}"
        cards.append(
            GoalCard(
                id=gid,
                description=item.get("description") or "",
                status=status,
                status_display=display,
                rule=item.get("statusRule"),
                unit=unit,
                latest=item.get("latest"),
                latest_date=item.get("latestDate"),
                band=band,
                due=info.target.due if info and info.target else None,
                spark=sparkline(points, label=label, unit=unit, band=band, width=132, height=30)
                if code
                else None,
                text=describe_series(points, label=label, unit=unit, band=band) if code else "Not measured",
                measure=code,
                signal=bool(chart.get("signal")),
                new_signal=bool(keys - seen),
                rules=rules,
                pdsa=list(chart.get("pdsa") or []),
                percent=item.get("percentOfWay"),
                baseline_note=chart.get("withheld")
                if (chart.get("baseline") or {}).get("enough") is False
                else None,
            )
        )
    return cards


def _seen_key(viewer: str, patient_id: str) -> str:
    return f"web:seen:{viewer}:{patient_id}"


def _seen(repo: FhirRepository, viewer: str, patient_id: str) -> set[str]:
    with repo.unit(write=False) as uow:
        raw = uow.get_state(_seen_key(viewer, patient_id))
    try:
        return set(json.loads(raw)) if raw else set()
    except ValueError:
        return set()


def _mark_seen(repo: FhirRepository, viewer: str, patient_id: str, keys: set[str]) -> None:
    with repo.unit() as uow:
        uow.set_state(_seen_key(viewer, patient_id), json.dumps(sorted(keys)))


def _habit_rows(summary: Mapping[str, Any], today: date) -> list[dict[str, Any]]:
    rows = []
    for h in summary.get("habit", []):
        if h.get("status") in ("stopped", "cancelled", "entered-in-error", "completed"):
            continue
        adherence = {a["days"]: a for a in h.get("adherence", [])}
        last = h.get("lastCheckIn")
        open_pause = next((p for p in h.get("pause", []) if p.get("end") is None), None)
        rows.append(
            {
                **h,
                "plan_id": h["plan"]["reference"].split("/", 1)[1],
                "paused": h.get("status") == "on-hold",
                "open_pause": open_pause,
                "rate7": (adherence.get(7) or {}).get("rate"),
                "rate30": (adherence.get(30) or {}).get("rate"),
                "rate90": (adherence.get(90) or {}).get("rate"),
                "days_since": (today - last).days if last else None,
                "never": last is None,
            }
        )
    return rows


def _sessions(repo: FhirRepository, patient_id: str, limit: int = 5) -> list[dict[str, Any]]:
    out = []
    for enc in _search(
        repo, "Encounter", [("subject", f"Patient/{patient_id}"), ("_sort", "-date")], limit + 2
    ):
        code = next(
            (c.get("code") for t in enc.get("type", []) or [] for c in t.get("coding", []) or []), None
        )
        modality = next(
            (
                e.get("valueCoding", {}).get("code")
                for e in enc.get("extension", []) or []
                if e.get("url") == res.MODALITY_URL
            ),
            None,
        )
        if code == "coaching-session-group" and not enc.get("partOf"):
            continue  # the group-level Encounter; the patient's own one (partOf it) is listed
        period = enc.get("period") or {}
        out.append(
            {
                "id": enc.get("id"),
                "type": _SESSION_TYPES.get(code or "", code or "Session"),
                "modality": modality,
                "start": str(period.get("start", "")),
                "minutes": (enc.get("length") or {}).get("value"),
            }
        )
    return out[:limit]


def _latest_note(repo: FhirRepository, patient_id: str) -> dict[str, str] | None:
    docs = _search(
        repo,
        "DocumentReference",
        [("subject", f"Patient/{patient_id}"), ("type", "http://loinc.org|11506-3"), ("_sort", "-date")],
        1,
    )
    if not docs:
        return None
    note = parse_session_note(docs[0])
    return {
        "date": str(docs[0].get("date", ""))[:10],
        "reviewed": note.reviewed,
        "barriers": note.barriers,
        "next_steps": note.next_steps,
    }


def _run_chart_view(
    data: Mapping[str, Any], code: str, label: str, events: tuple[tuple[date, str], ...] = ()
) -> dict[str, Any]:
    """The run chart of one series (``CoachingService.run_chart``'s result): one figure, from which the
    caption, both drawings (wide, and narrow for phones), their text alternative and the data table come.
    ``events``: outcomes of referrals serving the chart's goals (docs/referrals.md)."""
    fig = replace(RunChartFigure.from_service(data, label), events=events)
    return {
        "code": code,
        "label": label,
        "figure": fig,
        "sentence": fig.sentence(),
        "svg": draw(fig),
        "svg_narrow": draw(fig, width=330, height=280, css="runchart runchart-narrow"),
        "table": fig.table(),
        "changes": fig.changes,
    }


def trend_series() -> list[tuple[str, str, str | None]]:
    """The wearable trends of the patient page as ``patient_overview`` series: (system, code, display unit)."""
    return [(catalog.LOINC, m.code, m.convert_to) for m in map(catalog.measure, catalog.WEARABLE_TRENDS)]


# -- the coach's patient page -----------------------------------------------------------------------------------


def patient_page(data: Data, patient_id: str, *, series: str | None, viewer: str) -> dict[str, Any]:
    """Everything on ``/app/patients/{id}``; records the run-chart signals as seen by ``viewer``.

    The coaching figures, the goal and trend sparklines and the run charts all come from one
    :meth:`~fhir_ecr.coaching.service.CoachingService.patient_overview` (one read of the patient's data, cached
    per patient data version); the rest (sessions, notes, referrals, messages) is read here."""
    repo = data.repo
    patient = repo.read("Patient", patient_id).content or {}
    svc = coaching_service(data)
    measures = [catalog.measure(code) for code in catalog.WEARABLE_TRENDS]
    overview = svc.patient_overview(patient_id, trend_series())
    summary = overview["summary"]
    tz, today = summary["timeZone"], summary["today"]
    goals = overview["goals"]
    seen = _seen(repo, viewer, patient_id)
    cards = _goal_cards(summary, goals, overview["goalSeries"], seen)
    trends = []
    for m in measures:
        points = overview["series"].get(f"{catalog.LOINC}|{m.code}", [])
        trends.append(
            {
                "code": m.code,
                "label": m.label,
                "unit": m.unit,
                "points": points,
                "latest": points[-1][1] if points else None,
                "spark": sparkline(points, label=m.label, unit=m.unit, width=132, height=30),
                "text": describe_series(points, label=m.label, unit=m.unit),
            }
        )
    choices: list[dict[str, Any]] = []
    for card in cards:
        if card.measure and card.measure not in [c["code"] for c in choices]:
            choices.append({"code": card.measure, "label": catalog.measure(card.measure).label})
    for t in trends:
        if t["points"] and t["code"] not in [c["code"] for c in choices]:
            choices.append({"code": t["code"], "label": t["label"]})
    selected = series if series in [c["code"] for c in choices] else (choices[0]["code"] if choices else None)
    referrals = referral_list(repo, patient_id, tz=tz)
    for card in cards:  # a goal's progress shows what its referrals achieved
        card.referrals = [r for r in referrals if r.goal_id == card.id]
    chart = None
    if selected:
        chart_data = overview["runChart"].get(f"{catalog.LOINC}|{selected}") or svc.run_chart(
            patient_id, [(catalog.LOINC, selected)]
        )
        goal_ids = {c.id for c in cards if c.measure == selected}
        events = tuple(
            (date.fromisoformat(r.outcome_date), r.outcome)
            for r in referrals
            if r.goal_id in goal_ids and r.outcome and r.outcome_date
        )
        chart = _run_chart_view(chart_data, selected, catalog.measure(selected).label, events)
    keys = signal_keys(summary)
    if keys != seen:
        _mark_seen(repo, viewer, patient_id, keys)
    return {
        "patient": patient,
        "banner": patient_banner(patient, today),
        "today": today,
        "tz": tz,
        "tz_is_default": res.patient_time_zone(patient, "") == "",
        "goals": cards,
        "habits": _habit_rows(summary, today),
        "trends": trends,
        "chart": chart,
        "series_choices": choices,
        "selected_series": selected,
        "sessions": _sessions(repo, patient_id),
        "latest_note": _latest_note(repo, patient_id),
        "referrals": referrals,
        "thread": thread(repo, patient_id),
        "summary": summary,
    }


# -- the patient app --------------------------------------------------------------------------------------------


def patient_app(data: Data, patient_id: str) -> dict[str, Any]:
    """Everything on ``/app/me``: today's habits with today's check-in, goals, streaks, messages, settings."""
    repo = data.repo
    patient = repo.read("Patient", patient_id).content or {}
    prefs = preferences(patient)
    svc = coaching_service(data)
    # The coach's page's overview (trends included), so a patient's own visit warms the coach's next one.
    overview = svc.patient_overview(patient_id, trend_series())
    summary = overview["summary"]
    tz, today = summary["timeZone"], summary["today"]
    todays = {}
    for obs in _search(
        repo,
        "Observation",
        [
            ("patient", f"Patient/{patient_id}"),
            ("code", f"{res.MECR_CODES}|habit-check-in"),
            ("date", today.isoformat()),
        ],
        200,
    ):
        parsed = res.checkin_from_observation(obs)
        if parsed is not None and parsed[2].day == today:
            todays[(parsed[0], parsed[1])] = parsed[2].status.value
    plans = _search(
        repo,
        "CarePlan",
        [("patient", f"Patient/{patient_id}"), ("category", f"{res.MECR_CODES}|habit-plan")],
        50,
    )
    schedules = {}
    for plan in plans:
        try:
            for habit in res.habits_of_plan(plan):
                schedules[(habit.plan_id, habit.habit_id)] = habit
        except ValueError:
            continue
    habits = []
    for row in _habit_rows(summary, today):
        h = schedules.get((row["plan_id"], row["habitId"]))
        if h is None or row["paused"] or not h.schedule.is_active(today):
            continue
        due = h.schedule.is_due(today) or h.schedule.kind is ScheduleKind.TIMES_PER_WEEK
        habits.append(
            {
                **row,
                "due_today": due,
                "today": todays.get((row["plan_id"], row["habitId"])),
                "schedule_text": _schedule_text(h),
            }
        )
    habits.sort(key=lambda r: (not r["due_today"], r["title"].lower()))
    cards = _goal_cards(
        summary, overview["goals"], overview["goalSeries"], set(), hide_sensitive=prefs["hide_sensitive"]
    )
    return {
        "patient": patient,
        "name": human_name(patient),
        "today": today,
        "tz": tz,
        "habits": habits,
        "goals": cards,
        "thread": thread(repo, patient_id),
        "prefs": prefs,
        "paused": [r for r in _habit_rows(summary, today) if r["paused"]],
        "referrals": referral_list(repo, patient_id, tz=tz),
    }


def streak_words(h: Mapping[str, Any], *, repaired: bool = True) -> str:
    """A habit's streak in words, as the app and the coach's page say it: "12-day streak", "no check-ins yet"
    (a new habit has no streak of zero: it has none yet), "no streak now (best 9 days)"."""
    if h.get("lastCheckIn") is None:
        return "no check-ins yet"
    streak = h.get("streak") or {}
    unit, current, best = streak.get("unit", "day"), streak.get("current", 0), streak.get("best", 0)
    if not current:
        return f"no streak now (best {best} {unit}{'s' if best != 1 else ''})"
    text = f"{current}-{unit} streak" + (" (repaired)" if repaired and streak.get("repaired") else "")
    return text + (f", best {best}" if best > current else "")


def habit_streak(data: Data, patient_id: str, plan_id: str, habit_id: str) -> dict[str, Any] | None:
    """One habit's streak after a check-in, from the app's own overview (computed now, so the next visit of
    the app or of the coach's page is warm)."""
    overview = coaching_service(data).patient_overview(patient_id, trend_series())
    for h in overview["summary"].get("habit", []):
        if h["plan"]["reference"] == f"CarePlan/{plan_id}" and h.get("habitId") == habit_id:
            streak = h.get("streak") or {}
            return {
                "current": streak.get("current"),
                "best": streak.get("best"),
                "unit": streak.get("unit"),
                "text": streak_words(h),
            }
    return None


def _schedule_text(h: res.Habit) -> str:
    s = h.schedule
    if s.kind is ScheduleKind.DAILY:
        return "every day"
    if s.kind is ScheduleKind.TIMES_PER_WEEK:
        return f"{s.times_per_week}× a week"
    if s.kind is ScheduleKind.WEEKDAYS:
        return ", ".join(d.fhir_code.capitalize() for d in sorted(s.weekdays))
    return f"every {s.interval_days} days"
