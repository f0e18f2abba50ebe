"""What each page shows, gathered from the coaching service and the repository (no HTTP here).

The figures (progress, achievementStatus, adherence, streaks, run-chart signals) come from
:class:`~fhir_ecr.coaching.service.CoachingService`; this module only selects, orders and shapes them for
the templates. Two page-level notions are defined here because only the pages use them:

- **New signal**: a run-chart signal (goal, rule) the viewer has not seen on the patient page yet. The page
  records what it showed in the store's key-value state (``web:seen:{viewer}:{patient}``).
- **Attention score** (caseload order): new signals first, then unanswered messages, goals slipping
  (achievementStatus worsening / no-progress / not-achieving), habits without a check-in for
  ``STALE_DAYS`` days, then older signals. Weights in :data:`ATTENTION_WEIGHTS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ..coaching import fhir_io as io
from ..coaching.schedule import ScheduleKind
from ..coaching.service import CoachingService
from ..coaching.sessions import parse_session_note
from ..services import Services
from ..store.repository import FhirRepository
from ..store.search import parse_search
from . import catalog
from .charts import Annotation, PhaseLine, RunPoint, describe_series, run_chart, sparkline
from .messaging import Thread, thread

__all__ = [
    "ATTENTION_WEIGHTS",
    "CaseloadRow",
    "STALE_DAYS",
    "caseload",
    "coaching_service",
    "Data",
    "patient_banner",
    "patient_app",
    "patient_page",
]

STALE_DAYS = 3
SLIPPING = {"worsening", "no-progress", "not-achieved", "not-attainable"}
ATTENTION_WEIGHTS = {"new_signal": 100, "unanswered": 40, "slipping": 25, "stale_habit": 10, "signal": 5}
_SESSION_TYPES = {"coaching-session-initial": "Initial session", "coaching-session-follow-up": "Follow-up",
                  "coaching-session-group": "Group session"}
_PATIENT_PREFS = "https://mecr.dev/fhir/StructureDefinition/app-preferences"


@dataclass(frozen=True)
class Data:
    """Where the pages read from: the repository as the caller sees it (``Services.repo_for(access)``, so
    every read and write is scope- and compartment-checked and audited) and the default time zone."""

    repo: FhirRepository
    default_tz: str = "UTC"

    @classmethod
    def of(cls, services: Services, access: Any) -> Data:
        repo = services.repo_for(access) if hasattr(services, "repo_for") else services.repo
        return cls(repo, services.settings.default_time_zone)


def coaching_service(data: Data, **kwargs: Any) -> CoachingService:
    """The coaching service over the caller's repository, with the deployment's default time zone."""
    return CoachingService(data.repo, default_tz=data.default_tz, **kwargs)


def _search(repo: FhirRepository, rtype: str, params: list[tuple[str, str]], limit: int = 1000
            ) -> list[dict[str, Any]]:
    query = parse_search(rtype, params, default_count=limit, max_count=limit)
    query.total = "none"
    return [s.content for s in repo.search(query).matches if s.content is not None]


# -- people ---------------------------------------------------------------------------------------------------


def human_name(resource: Mapping[str, Any] | None) -> str:
    """"Given Family" of the first name (the text if given), or a placeholder."""
    for name in (resource or {}).get("name", []) or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(p for p in parts if p).strip()
        if text:
            return text
    return "(no name)"


def patient_banner(patient: Mapping[str, Any], today: date) -> dict[str, Any]:
    """Name, age, sex and an identifier: what a banner needs to tell the coach whose record this is."""
    birth = patient.get("birthDate")
    age = None
    if isinstance(birth, str) and len(birth) >= 10:
        born = date.fromisoformat(birth[:10])
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    ident = next((i for i in patient.get("identifier", []) or [] if i.get("value")), None)
    return {"id": patient.get("id"), "name": human_name(patient), "birthDate": birth, "age": age,
            "gender": patient.get("gender"),
            "identifier": (f"{(ident.get('type') or {}).get('text') or 'ID'} {ident['value']}") if ident else None}


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


def save_preferences(data: Data, patient_id: str, *, time_zone: str | None, reminder: str,
                     hide_sensitive: bool) -> None:
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


def _band(info: io.GoalInfo) -> tuple[float | None, float | None] | None:
    t = info.target
    if t is None:
        return None
    return (t.low, t.high)


def _readings(repo: FhirRepository, patient_id: str, codes: Iterable[str], since: date) -> dict[str, list[dict[str, Any]]]:
    codes = sorted(set(codes))
    if not codes:
        return {}
    found = _search(repo, "Observation", [("patient", f"Patient/{patient_id}"),
                                          ("code", ",".join(f"{catalog.LOINC}|{c}" for c in codes)),
                                          ("date", f"ge{since.isoformat()}")], limit=5000)
    by_code: dict[str, list[dict[str, Any]]] = {c: [] for c in codes}
    for obs in found:
        for c in (obs.get("code") or {}).get("coding", []) or []:
            if c.get("system") == catalog.LOINC and c.get("code") in by_code:
                by_code[c["code"]].append(obs)
                break
    return by_code


def _series(observations: Sequence[Mapping[str, Any]], tz: str, unit: str | None) -> list[tuple[date, float]]:
    return [(m.when, m.value) for m in io.measurements_by_day(observations, tz, unit)]


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


def _goal_cards(summary: Mapping[str, Any], goals: Sequence[Mapping[str, Any]],
                goal_series: Mapping[str, Sequence[tuple[date, float]]], seen: set[str],
                hide_sensitive: bool = False) -> list[GoalCard]:
    """One card per goal of the summary; ``goal_series`` holds each goal's daily measurements of the run-chart
    window (``CoachingService.patient_overview``)."""
    infos = {}
    for g in goals:
        try:
            infos[str(g.get("id"))] = io.goal_info(g)
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
        cards.append(GoalCard(
            id=gid, description=item.get("description") or "", status=status,
            status_display=display, rule=item.get("statusRule"), unit=unit,
            latest=item.get("latest"), latest_date=item.get("latestDate"), band=band,
            due=info.target.due if info and info.target else None,
            spark=sparkline(points, label=label, unit=unit, band=band, width=132, height=30) if code else None,
            text=describe_series(points, label=label, unit=unit, band=band) if code else "Not measured",
            measure=code, signal=bool(chart.get("signal")), new_signal=bool(keys - seen), rules=rules,
            pdsa=list(chart.get("pdsa") or []), percent=item.get("percentOfWay"),
            baseline_note=chart.get("withheld") if (chart.get("baseline") or {}).get("enough") is False else None))
    return cards


def _signal_keys(summary: Mapping[str, Any]) -> set[str]:
    out = set()
    for item in summary.get("goal", []):
        chart = item.get("runChart") or {}
        if chart.get("signal"):
            gid = item["reference"]["reference"].split("/", 1)[1]
            out |= {f"{gid}:{r}" for r in chart.get("rule") or []}
    return out


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
        rows.append({
            **h,
            "plan_id": h["plan"]["reference"].split("/", 1)[1],
            "paused": h.get("status") == "on-hold",
            "open_pause": open_pause,
            "rate7": (adherence.get(7) or {}).get("rate"),
            "rate30": (adherence.get(30) or {}).get("rate"),
            "rate90": (adherence.get(90) or {}).get("rate"),
            "days_since": (today - last).days if last else None,
        })
    return rows


def _sessions(repo: FhirRepository, patient_id: str, limit: int = 5) -> list[dict[str, Any]]:
    out = []
    for enc in _search(repo, "Encounter", [("subject", f"Patient/{patient_id}"), ("_sort", "-date")], limit + 2):
        code = next((c.get("code") for t in enc.get("type", []) or [] for c in t.get("coding", []) or []), None)
        modality = next((e.get("valueCoding", {}).get("code") for e in enc.get("extension", []) or []
                         if e.get("url") == io.MODALITY_URL), None)
        if code == "coaching-session-group" and not enc.get("partOf"):
            continue  # the group-level Encounter; the patient's own one (partOf it) is listed
        period = enc.get("period") or {}
        out.append({"id": enc.get("id"), "type": _SESSION_TYPES.get(code or "", code or "Session"),
                    "modality": modality, "start": str(period.get("start", ""))[:16].replace("T", " "),
                    "minutes": (enc.get("length") or {}).get("value")})
    return out[:limit]


def _latest_note(repo: FhirRepository, patient_id: str) -> dict[str, str] | None:
    docs = _search(repo, "DocumentReference", [("subject", f"Patient/{patient_id}"),
                                               ("type", "http://loinc.org|11506-3"), ("_sort", "-date")], 1)
    if not docs:
        return None
    note = parse_session_note(docs[0])
    return {"date": str(docs[0].get("date", ""))[:10], "reviewed": note.reviewed, "barriers": note.barriers,
            "next_steps": note.next_steps}


def _referrals(repo: FhirRepository, patient_id: str) -> list[dict[str, Any]]:
    out = []
    for sr in _search(repo, "ServiceRequest", [("subject", f"Patient/{patient_id}"), ("status", "active")], 20):
        out.append({"id": sr.get("id"), "text": (sr.get("code") or {}).get("text")
                    or next((c.get("display") for c in (sr.get("code") or {}).get("coding", []) or []), None)
                    or "Referral", "date": str(sr.get("authoredOn", ""))[:10]})
    return out


def _run_chart_view(data: Mapping[str, Any], code: str, label: str) -> dict[str, Any]:
    """The run chart of one series (``CoachingService.run_chart``'s result) drawn for the page."""
    unit = data.get("unit")
    points = [RunPoint(p["date"], float(p["value"]), bool(p["shift"] or p["astronomical"]))
              for p in data.get("point", [])]
    phases = [PhaseLine(p["from"], p["to"], float(p["median"]), p.get("label") or "")
              for p in data.get("phase", []) if p.get("median") is not None] if len(data.get("phase", [])) > 1 else []
    notes = [Annotation(a["date"], a["title"]) for a in data.get("annotation", [])]
    analysis = data.get("analysis") or {}
    return {
        "code": code, "label": label, "unit": unit, "points": points,
        "svg": run_chart(points, label=label, unit=unit, median=data.get("median"), phases=phases, annotations=notes),
        "median": data.get("median"), "signal": analysis.get("signal", False), "rules": analysis.get("rule", []),
        "longest_run": analysis.get("longestRun"), "longest_run_limit": analysis.get("longestRunLimit"),
        "crossings": analysis.get("crossings"), "crossings_limit": analysis.get("crossingsLimit"),
        "annotations": notes, "from": data.get("from"), "to": data.get("to"),
        "withheld": analysis.get("withheld"), "baseline": data.get("baseline"),
    }


def _trend_series() -> list[tuple[str, str, str | None]]:
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
    overview = svc.patient_overview(patient_id, _trend_series())
    summary = overview["summary"]
    tz, today = summary["timeZone"], summary["today"]
    goals = overview["goals"]
    seen = _seen(repo, viewer, patient_id)
    cards = _goal_cards(summary, goals, overview["goalSeries"], seen)
    trends = []
    for m in measures:
        points = overview["series"].get(f"{catalog.LOINC}|{m.code}", [])
        trends.append({"code": m.code, "label": m.label, "unit": m.unit, "points": points,
                       "latest": points[-1][1] if points else None,
                       "spark": sparkline(points, label=m.label, unit=m.unit, width=132, height=30),
                       "text": describe_series(points, label=m.label, unit=m.unit)})
    choices = []
    for card in cards:
        if card.measure and card.measure not in [c["code"] for c in choices]:
            choices.append({"code": card.measure, "label": catalog.measure(card.measure).label})
    for t in trends:
        if t["points"] and t["code"] not in [c["code"] for c in choices]:
            choices.append({"code": t["code"], "label": t["label"]})
    selected = series if series in [c["code"] for c in choices] else (choices[0]["code"] if choices else None)
    chart = None
    if selected:
        chart_data = overview["runChart"].get(f"{catalog.LOINC}|{selected}") \
            or svc.run_chart(patient_id, [(catalog.LOINC, selected)])
        chart = _run_chart_view(chart_data, selected, catalog.measure(selected).label)
    keys = _signal_keys(summary)
    if keys != seen:
        _mark_seen(repo, viewer, patient_id, keys)
    return {
        "patient": patient, "banner": patient_banner(patient, today), "today": today, "tz": tz,
        "tz_is_default": io.patient_time_zone(patient, "") == "",
        "goals": cards, "habits": _habit_rows(summary, today), "trends": trends, "chart": chart,
        "series_choices": choices, "selected_series": selected, "sessions": _sessions(repo, patient_id),
        "latest_note": _latest_note(repo, patient_id), "referrals": _referrals(repo, patient_id),
        "thread": thread(repo, patient_id), "summary": summary,
    }


# -- the caseload -----------------------------------------------------------------------------------------------


@dataclass
class CaseloadRow:
    """One patient of the caseload, with why they need attention."""

    patient_id: str
    name: str
    score: int
    reasons: list[str]
    new_signals: int
    signals: int
    slipping: int
    stale_habits: int
    unanswered: int
    unread: int
    spark: Any
    spark_text: str
    last_message: str | None


def caseload_patients(data: Data, principal: Any, scope: str) -> tuple[list[dict[str, Any]], str]:
    """The patients of the caseload and the scope used: ``mine`` (linked to the coach by
    ``generalPractitioner`` or a session they led) or ``all`` (the practice); ``mine`` falls back to ``all``
    when the coach has no linked patients yet (a developer always sees all)."""
    repo = data.repo
    everyone = _search(repo, "Patient", [], limit=500)
    if scope == "all" or principal is None or principal.kind != "practitioner" or not principal.fhir_user:
        return everyone, "all"
    refs = {principal.fhir_user}
    refs |= {f"PractitionerRole/{r.get('id')}" for r in _search(
        repo, "PractitionerRole", [("practitioner", principal.fhir_user)], 50)}
    mine: set[str] = set()
    for ref in refs:
        for p in _search(repo, "Patient", [("general-practitioner", ref)], 500):
            mine.add(str(p.get("id")))
        for enc in _search(repo, "Encounter", [("participant", ref)], 1000):
            pid = io.ref_id(enc.get("subject"), "Patient")
            if pid:
                mine.add(pid)
    if principal.patient_id:
        mine.add(principal.patient_id)
    if not mine:
        return everyone, "all"
    return [p for p in everyone if str(p.get("id")) in mine], "mine"


def caseload_row(data: Data, patient: Mapping[str, Any], viewer: str) -> CaseloadRow:
    """The attention summary of one patient (a shorter history than the patient page: 90 days)."""
    repo = data.repo
    pid = str(patient.get("id"))
    svc = coaching_service(data, history_days=90)
    summary = svc.coaching_summary(pid)
    tz, today = summary["timeZone"], summary["today"]
    keys = _signal_keys(summary)
    new = keys - _seen(repo, viewer, pid)
    slipping = [g for g in summary.get("goal", [])
                if ((g.get("achievementStatus") or {}).get("code") or g.get("storedAchievementStatus")) in SLIPPING]
    stale = []
    for h in _habit_rows(summary, today):
        if h["paused"] or h["start"] > today - timedelta(days=STALE_DAYS):
            continue
        if h["days_since"] is None or h["days_since"] >= STALE_DAYS:
            stale.append(h)
    msgs: Thread = thread(repo, pid, limit=20)
    reasons = []
    if new:
        n = len({k.split(":")[0] for k in new})
        reasons.append(f"new run-chart signal{'s on ' + str(n) + ' goals' if n > 1 else ''}")
    if msgs.unanswered:
        reasons.append(f"{msgs.unanswered} unanswered message{'s' * (msgs.unanswered > 1)}")
    if slipping:
        reasons.append(f"{len(slipping)} goal{'s' * (len(slipping) > 1)} slipping")
    if stale:
        reasons.append(f"{len(stale)} habit{'s' * (len(stale) > 1)} not checked in for {STALE_DAYS}+ days")
    w = ATTENTION_WEIGHTS
    score = (w["new_signal"] * len(new) + w["unanswered"] * min(msgs.unanswered, 3) + w["slipping"] * len(slipping)
             + w["stale_habit"] * len(stale) + w["signal"] * len(keys - new))
    first = next((g for g in summary.get("goal", []) if g.get("unit")), None)
    spark, text = None, "No measured goal"
    if first is not None:
        goal = repo.read("Goal", first["reference"]["reference"].split("/", 1)[1]).content or {}
        info = io.goal_info(goal)
        code = next((c for s, c in info.measure if s == catalog.LOINC), None)
        if code:
            obs = _readings(repo, pid, [code], today - timedelta(days=27)).get(code, [])
            points = _series(obs, tz, info.unit)
            label = first.get("description") or catalog.measure(code).label
            spark = sparkline(points, label=label, unit=info.unit, band=_band(info), width=96, height=22)
            text = describe_series(points, label=label, unit=info.unit, band=_band(info))
    return CaseloadRow(pid, human_name(patient), score, reasons, len(new), len(keys), len(slipping), len(stale),
                       msgs.unanswered, msgs.unread_for_team, spark, text,
                       msgs.last.text[:80] if msgs.last and msgs.last.from_patient else None)


def caseload(data: Data, principal: Any, viewer: str, *, q: str = "", show: str = "all",
             scope: str = "mine") -> dict[str, Any]:
    """The caseload page: rows ranked by attention score (then name), filtered and searched."""
    patients, used_scope = caseload_patients(data, principal, scope)
    needle = q.strip().lower()
    if needle:
        patients = [p for p in patients if needle in human_name(p).lower()
                    or any(needle in str(i.get("value", "")).lower() for i in p.get("identifier", []) or [])]
    rows = [caseload_row(data, p, viewer) for p in patients]
    filters = {
        "attention": lambda r: r.score > 0,
        "signals": lambda r: r.signals > 0,
        "messages": lambda r: r.unanswered > 0 or r.unread > 0,
        "slipping": lambda r: r.slipping > 0,
        "all": lambda r: True,
    }
    keep = filters.get(show, filters["all"])
    rows = sorted((r for r in rows if keep(r)), key=lambda r: (-r.score, r.name.lower(), r.patient_id))
    return {"rows": rows, "scope": used_scope, "q": q, "show": show, "total": len(patients)}


# -- the patient app --------------------------------------------------------------------------------------------


def patient_app(data: Data, patient_id: str) -> dict[str, Any]:
    """Everything on ``/app/me``: today's habits with today's check-in, goals, streaks, messages, settings."""
    repo = data.repo
    patient = repo.read("Patient", patient_id).content or {}
    prefs = preferences(patient)
    svc = coaching_service(data)
    # The coach's page's overview (trends included), so a patient's own visit warms the coach's next one.
    overview = svc.patient_overview(patient_id, _trend_series())
    summary = overview["summary"]
    tz, today = summary["timeZone"], summary["today"]
    todays = {}
    for obs in _search(repo, "Observation", [("patient", f"Patient/{patient_id}"),
                                             ("code", f"{io.MECR_CODES}|habit-check-in"),
                                             ("date", today.isoformat())], 200):
        parsed = io.checkin_from_observation(obs)
        if parsed is not None and parsed[2].day == today:
            todays[(parsed[0], parsed[1])] = parsed[2].status.value
    plans = _search(repo, "CarePlan", [("patient", f"Patient/{patient_id}"),
                                       ("category", f"{io.MECR_CODES}|habit-plan")], 50)
    schedules = {}
    for plan in plans:
        try:
            for h in io.habits_of_plan(plan):
                schedules[(h.plan_id, h.habit_id)] = h
        except ValueError:
            continue
    habits = []
    for row in _habit_rows(summary, today):
        h = schedules.get((row["plan_id"], row["habitId"]))
        if h is None or row["paused"] or not h.schedule.is_active(today):
            continue
        due = h.schedule.is_due(today) or h.schedule.kind is ScheduleKind.TIMES_PER_WEEK
        habits.append({**row, "due_today": due, "today": todays.get((row["plan_id"], row["habitId"])),
                       "schedule_text": _schedule_text(h)})
    habits.sort(key=lambda r: (not r["due_today"], r["title"].lower()))
    cards = _goal_cards(summary, overview["goals"], overview["goalSeries"], set(),
                        hide_sensitive=prefs["hide_sensitive"])
    return {"patient": patient, "name": human_name(patient), "today": today, "tz": tz, "habits": habits,
            "goals": cards, "thread": thread(repo, patient_id), "prefs": prefs,
            "paused": [r for r in _habit_rows(summary, today) if r["paused"]]}


def _schedule_text(h: io.Habit) -> str:
    s = h.schedule
    if s.kind is ScheduleKind.DAILY:
        return "every day"
    if s.kind is ScheduleKind.TIMES_PER_WEEK:
        return f"{s.times_per_week}× a week"
    if s.kind is ScheduleKind.WEEKDAYS:
        return ", ".join(d.fhir_code.capitalize() for d in sorted(s.weekdays))
    return f"every {s.interval_days} days"
