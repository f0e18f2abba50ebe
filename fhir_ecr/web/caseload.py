"""The caseload page: who needs the coach today, and why (``/app/caseload``).

One dense row per patient: name, age, the reasons ranked by need (:mod:`fhir_ecr.coaching.triage`), the
primary goal's sparkline with its latest value, unit and target band, and 7-day adherence. The figures come
from :meth:`CoachingService.patient_glances` — the patient page's own computation and cache entries — so a
row and the patient page never disagree. What the page reads on every view is read for all patients at
once: messages, sessions and referrals in one statement per 200 patients, what this coach has seen in one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from ..auth.access import LINK_SYSTEM_PREFIX
from ..coaching import resources as res
from ..coaching.cache import ViewCache
from ..coaching.derived import kept
from ..coaching.referral_wait import open_referrals
from ..coaching.triage import Contact, SessionDates, Triage, triage
from ..outcomes import FhirError
from ..store.repository import FhirRepository, Stored
from ..store.search import parse_search
from . import catalog
from .charts import describe_series, fmt_number, sparkline
from .messaging import counts
from .pages import TEMPLATES
from .views import Data, coaching_service, human_name, patient_banner, search_all

__all__ = ["FILTERS", "Row", "Drawn", "caseload", "caseload_patients", "VIEWER_PREFIX"]

#: ``?show=`` values: the reason kinds each keeps (``attention``: any reason; ``all``: everyone).
FILTERS: dict[str, tuple[str, set[str] | None]] = {
    "all": ("Everyone", None),
    "attention": ("Needs attention", set()),
    "signals": ("New run-chart signals", {"signal", "signal-worse", "signal-better"}),
    "data": ("No data", {"no-data"}),
    "messages": ("Unanswered messages", {"message"}),
    "goals": ("Goals slipping or stale", {"goal-slipping", "goal-stale", "no-goals"}),
    "habits": ("Habits without check-ins", {"habit"}),
    "sessions": ("Sessions due", {"session-overdue", "session-today"}),
    "referrals": ("Waiting on a referral", {"referral"}),
}
_ALIASES = {"slipping": "goals"}
MESSAGE_WINDOW_DAYS = 90  # unanswered messages are counted among those of the last 90 days
MINE_SESSION_DAYS = (
    365  # "my patients": the general practitioner, or a session the coach led in the last year
)
ROW_CACHE_SIZE = 4096
#: The drawing's version, part of a kept row's stamp: change it when a row's drawing or rules change, so rows kept
#: by an older release are drawn again
ROW_FORMAT = 1
log = logging.getLogger("mecr.web")
#: what a row reads, asked of the guard before a cached row is used (in the order a fresh row reads them)
_ROW_TYPES = (
    "Patient",
    "Goal",
    "CarePlan",
    "Observation",
    "Communication",
    "Encounter",
    "ServiceRequest",
    "Task",
)
_SESSION_TYPES = ",".join(f"{res.MECR_CODES}|coaching-session-{k}" for k in ("initial", "follow-up", "group"))


@dataclass
class Row:
    """One patient of the caseload, ready to draw."""

    patient_id: str
    name: str
    age: int | None
    mrn: str | None
    triage: Triage | None
    error: str | None
    unread: int
    spark: Any
    spark_text: str
    spark_label: str
    latest: str
    band: str
    refs: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # what it was computed from (audit)
    html: Any = None  # the row drawn (the template _caseload_row.html), kept with it in the cache

    @property
    def score(self) -> int:
        return self.triage.score if self.triage else 1000  # a record that cannot be computed goes first

    def drawn(self) -> Drawn:
        t = self.triage
        return Drawn(
            self.patient_id,
            self.name,
            self.score,
            frozenset(t.kinds) if t is not None else None,
            bool(t.reasons) if t is not None else True,
            self.refs,
            Markup(self.html),
        )


@dataclass(frozen=True)
class Drawn:
    """A row as the page uses it — drawn, with its rank and what the filters ask — cached per data version and
    kept in ``kept_view`` per viewer (plain data there: :meth:`plain`)."""

    patient_id: str
    name: str
    score: int
    kinds: frozenset[str] | None  # None: the figures could not be computed
    attention: bool  # a reason fires (or the figures could not be computed)
    refs: tuple[tuple[str, str], ...]
    html: Markup

    def plain(self) -> tuple[Any, ...]:
        kinds = sorted(self.kinds) if self.kinds is not None else None
        return (self.patient_id, self.name, self.score, kinds, self.attention, self.refs, str(self.html))

    @classmethod
    def from_plain(cls, value: Any) -> Drawn | None:
        try:
            pid, name, score, kinds, attention, refs, html = value
            return cls(
                str(pid),
                str(name),
                int(score),
                frozenset(kinds) if kinds is not None else None,
                bool(attention),
                tuple((str(t), str(i)) for t, i in refs),
                Markup(html),  # drawn by this module's template when it was kept
            )
        except (TypeError, ValueError):
            return None


def caseload_patients(
    data: Data,
    principal: Any,
    scope: str,
    versions: Mapping[str, int] | None = None,
    everyone: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The patients of the caseload and the scope used: ``mine`` (linked to the coach by
    ``generalPractitioner`` or a session they led in the last year) or ``all`` (the practice); ``mine`` falls
    back to ``all`` when the coach has no linked patients yet (a developer always sees all).

    ``versions`` (every patient's data version) lets the "mine" set be kept: who a coach's patients are changes
    only with a write in some patient's compartment (a general practitioner, a session) or to the coach's roles."""
    repo = data.repo
    if everyone is None:
        everyone = search_all(repo, "Patient", [])
    if scope == "all" or principal is None or principal.kind != "practitioner" or not principal.fhir_user:
        return everyone, "all"
    refs = {principal.fhir_user}
    refs |= {
        f"PractitionerRole/{r.get('id')}"
        for r in search_all(repo, "PractitionerRole", [("practitioner", principal.fhir_user)])
    }
    joined = ",".join(sorted(refs))
    since = (datetime.now(ZoneInfo(data.default_tz)).date() - timedelta(days=MINE_SESSION_DAYS)).isoformat()
    guard = repo.guard
    cache = (
        _row_cache(repo.engine)
        if versions is not None and (guard is None or guard.confinement() is None)
        else None
    )
    key = ("caseload-mine", joined, since, tuple(sorted((versions or {}).items())))
    mine: set[str] | None = cache.get(key) if cache is not None else None
    # kept for every process (the refresh job computes it when it draws the coach's rows ahead)
    kept_as = (
        "mine:" + hashlib.sha256(joined.encode()).hexdigest()[:24],
        kept.Stamp(0, date.fromisoformat(since), "", kept.params_digest(key)),
    )
    if mine is None and cache is not None:
        with repo.engine.connect() as conn:
            found = kept.load(conn, kept_as[0], [kept.ALL_PATIENTS]).get(kept.ALL_PATIENTS)
        value = kept.decode(found[1]) if found is not None and found[0] == kept_as[1] else None
        if isinstance(value, list):
            mine = {str(v) for v in value}
            cache.put(key, mine)
    if mine is None:
        with repo.unit(write=False) as uow:  # ids and subjects only: no document is read whole
            mine = {
                str(r[0])
                for r in uow.search_index_values(
                    parse_search("Patient", [("general-practitioner", joined)], strict=True)
                )
            }
            for enc in uow.search_elements(
                parse_search("Encounter", [("participant", joined), ("date", f"ge{since}")], strict=True),
                ["subject"],
            ):
                pid = res.ref_id(enc.get("subject"), "Patient")
                if pid:
                    mine.add(pid)
        if cache is not None:
            cache.put(key, mine)
            kept.keep(repo.engine, [(kept.ALL_PATIENTS, kept_as[0], kept_as[1], sorted(mine))])
    if principal.patient_id:
        mine.add(principal.patient_id)
    if not mine:
        return everyone, "all"
    return [p for p in everyone if str(p.get("id")) in mine], "mine"


def _matches(patient: Mapping[str, Any], needle: str) -> bool:
    return needle in human_name(patient).lower() or any(
        needle in str(i.get("value", "")).lower()
        for i in patient.get("identifier", []) or []
        if not str(i.get("system", "")).startswith(LINK_SYSTEM_PREFIX)
    )


def _seen(repo: FhirRepository, viewer: str) -> dict[str, set[str]]:
    prefix = f"web:seen:{viewer}:"
    with repo.unit(write=False) as uow:
        rows = uow.states(prefix)
    out = {}
    for key, raw in rows:
        try:
            out[key[len(prefix) :]] = set(json.loads(raw))
        except ValueError:
            continue
    return out


def _sessions(
    repo: FhirRepository, ids: Sequence[str], today: date, tz: ZoneInfo
) -> tuple[dict[str, SessionDates], dict[str, list[str]]]:
    """The latest coaching session held (in the last 30+ days) and the next planned one, per patient; and the
    Encounters read, per patient."""
    since = (today - timedelta(days=40)).isoformat()
    found: dict[str, tuple[date | None, datetime | None]] = {}
    read: dict[str, list[str]] = {}
    now = datetime.now(tz)
    with repo.unit(write=False) as uow:
        for i in range(0, len(ids), 200):
            query = parse_search(
                "Encounter",
                [
                    ("subject", ",".join(f"Patient/{p}" for p in ids[i : i + 200])),
                    ("type", _SESSION_TYPES),
                    ("date", f"ge{since}"),
                ],
                strict=True,
            )
            for enc in uow.search_elements(query, ["subject", "status", "period"]):
                pid = res.ref_id(enc.get("subject"), "Patient")
                start = _instant((enc.get("period") or {}).get("start"), tz)
                if pid is None or start is None:
                    continue
                read.setdefault(pid, []).append(str(enc["id"]))
                last, nxt = found.get(pid, (None, None))
                if enc.get("status") in ("planned", "arrived") and start.date() >= today:
                    nxt = start if nxt is None or start < nxt else nxt
                elif enc.get("status") in ("finished", "in-progress") and start <= now:
                    last = start.date() if last is None or start.date() > last else last
                found[pid] = (last, nxt)
    return {pid: SessionDates(last, nxt) for pid, (last, nxt) in found.items()}, read


def _instant(value: Any, tz: ZoneInfo) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(tz)


def _age(patient: Mapping[str, Any], today: date) -> int | None:
    age = patient_banner(patient, today)["age"]
    return int(age) if age is not None else None


def _draw(
    patient: Mapping[str, Any],
    glance: Mapping[str, Any] | FhirError | None,
    t: Triage | None,
    unread: int,
    today: date,
) -> Row:
    banner = patient_banner(patient, today)
    pid = str(patient.get("id"))
    if t is None:
        why = glance.issues[0].get("diagnostics") if isinstance(glance, FhirError) else "not available"
        return Row(
            pid,
            banner["name"],
            banner["age"],
            banner["mrn"],
            None,
            f"figures unavailable: {why}",
            unread,
            None,
            "",
            "",
            "",
            "",
        )
    p = t.primary
    if p is None:
        return Row(
            pid,
            banner["name"],
            banner["age"],
            banner["mrn"],
            t,
            None,
            unread,
            None,
            "No measured goal",
            "",
            "",
            "",
        )
    label = p.description or (catalog.measure(p.measure).label if p.measure else "Goal")
    band = describe_band(p.band, p.unit)
    return Row(
        pid,
        banner["name"],
        banner["age"],
        banner["mrn"],
        t,
        None,
        unread,
        sparkline(p.points, label=label, unit=p.unit, band=p.band, width=96, height=22),
        describe_series(p.points, label=label, unit=p.unit, band=p.band),
        catalog.measure(p.measure).label if p.measure else label,
        fmt_number(p.latest, p.unit),
        band,
    )


def describe_band(band: tuple[float | None, float | None] | None, unit: str | None) -> str:
    """The target band in a few words ("≥ 8,000", "≤ 84 kg", "70–99")."""
    if band is None:
        return ""
    low, high = band
    if low is not None and high is not None:
        return f"{fmt_number(low, None)}–{fmt_number(high, unit)}"
    if low is not None:
        return f"≥ {fmt_number(low, unit)}"
    if high is not None:
        return f"≤ {fmt_number(high, unit)}"
    return ""


def _ROW_TEMPLATE() -> Any:  # noqa: N802 - a constant, looked up late (templates reload in development)
    return TEMPLATES.env.get_template("_caseload_row.html")


_row_caches: weakref.WeakKeyDictionary[Any, ViewCache] = weakref.WeakKeyDictionary()
_row_caches_lock = threading.Lock()


def _row_cache(engine: Any) -> ViewCache:
    with _row_caches_lock:
        found = _row_caches.get(engine)
        if found is None:
            found = _row_caches[engine] = ViewCache(ROW_CACHE_SIZE)
        return found


def caseload(
    data: Data,
    principal: Any,
    viewer: str,
    *,
    q: str = "",
    show: str = "all",
    scope: str = "mine",
    viewer_tz: str | None = None,
) -> dict[str, Any]:
    """The caseload page: rows ranked by need (then name), filtered by reason, searched by name or MRN."""
    repo = data.repo
    tz = ZoneInfo(viewer_tz or data.default_tz)
    now = datetime.now(tz)
    today = now.date()
    guard = repo.guard
    cache: ViewCache | None = _row_cache(repo.engine)
    if guard is not None:
        for rtype in _ROW_TYPES:
            guard.require(rtype, "s")
        if guard.confinement() is not None:
            cache = None  # a patient confined to their record never shares a coach's rows
    with repo.unit(write=False) as uow:  # versions first: a row is never older than its key's version
        ids = [str(r[0]) for r in uow.search_index_values(parse_search("Patient", [], strict=True))]
        versions = uow.patient_versions(ids)  # one statement for all
    patients, used_scope = caseload_patients(
        data, principal, scope, versions, search_all(repo, "Patient", [])
    )
    total = len(patients)
    needle = q.strip().lower()
    if needle:
        patients = [p for p in patients if _matches(p, needle)]
    seen = _seen(repo, viewer)
    keys: dict[str, Any] = {}
    stamps: dict[str, kept.Stamp] = {}
    rows: dict[str, Drawn] = {}
    for p in patients:
        pid = str(p.get("id"))
        local = now.astimezone(ZoneInfo(res.patient_time_zone(p, data.default_tz))).date()
        seen_here = frozenset(seen.get(pid, ()))
        keys[pid] = ("caseload-row", pid, versions.get(pid, -1), local, str(tz), today, seen_here)
        stamps[pid] = kept.Stamp(versions.get(pid, -1), local, str(tz), _row_params(today, seen_here, data))
        hit = cache.get(keys[pid]) if cache is not None and pid in versions else None
        if hit is not None:
            rows[pid] = hit
    missing = [p for p in patients if str(p.get("id")) not in rows]
    view = _kept_view_name(viewer)
    if missing and cache is not None:  # rows kept for this viewer by another process or the refresh job
        wanted = [str(p.get("id")) for p in missing if str(p.get("id")) in versions]
        with repo.engine.connect() as conn:
            found = kept.load(conn, view, wanted)
        for pid, (stamp, blob) in found.items():
            row = Drawn.from_plain(kept.decode(blob)) if stamp == stamps[pid] else None
            if row is not None and row.patient_id == pid:
                rows[pid] = row
                cache.put(keys[pid], row)
        missing = [p for p in missing if str(p.get("id")) not in rows]
    if guard is not None:  # the audit trail names what each cached or kept row was computed from
        for pid, row in rows.items():
            guard.after_read(
                [Stored(t, i, 0, 0, False, {"resourceType": t, "id": i}) for t, i in row.refs], pid
            )
    if missing:
        fresh = _compute_rows(data, missing, seen, tz, today)
        keep: list[tuple[str, str, kept.Stamp, Any]] = []
        for pid, full in fresh.items():
            row = rows[pid] = full.drawn()
            if cache is not None and full.triage is not None and pid in versions:
                cache.put(keys[pid], row)
                keep.append((pid, view, stamps[pid], row.plain()))
        kept.keep(repo.engine, keep)
    if cache is not None:
        _record_viewer(repo, viewer, principal, str(tz), scope, today)
    out = [rows[str(p.get("id"))] for p in patients if str(p.get("id")) in rows]
    show = _ALIASES.get(show, show)
    if show not in FILTERS:
        show = "all"
    kinds = FILTERS[show][1]
    if kinds is not None:
        out = [r for r in out if r.kinds is None or (r.attention if not kinds else r.kinds & kinds)]
    out.sort(key=lambda r: (-r.score, r.name.lower(), r.patient_id))
    noun = "patient" if total == 1 else "patients"
    return {
        "rows": out,
        "scope": used_scope,
        "q": q,
        "show": show,
        "total": total,
        "filters": FILTERS,
        "count_text": f"{len(out)} of {total} {noun}",
        "today": today,
    }


#: kv key prefix of the caseload's recent viewers: what the refresh job draws rows for (``caseload_refresh``)
VIEWER_PREFIX = "web:caseload-viewer:"


def _kept_view_name(viewer: str) -> str:
    """The ``kept_view.view`` of this viewer's rows: rows differ by viewer (what they have seen, their zone)."""
    return "row:" + hashlib.sha256(viewer.encode()).hexdigest()[:24]


def _row_params(today: date, seen: frozenset[str], data: Data) -> str:
    """What a kept row holds for besides the data version and the zones: the viewer's day, what they have seen
    of the patient's signals, the practice's settings, the drawing code's version."""
    return kept.params_digest(
        (ROW_FORMAT, today.isoformat(), sorted(seen), data.default_tz, data.referral_response)
    )


def _record_viewer(
    repo: FhirRepository, viewer: str, principal: Any, tz: str, scope: str, today: date
) -> None:
    """Remember that ``viewer`` reads the caseload (zone, scope, day), once a day, for the refresh job."""
    record = {
        "tz": tz,
        "scope": scope,
        "kind": getattr(principal, "kind", None),
        "fhirUser": getattr(principal, "fhir_user", None),
        "day": today.isoformat(),
    }
    text = json.dumps(record, sort_keys=True)
    try:
        with repo.unit(write=False) as uow:
            if uow.get_state(VIEWER_PREFIX + viewer) == text:
                return
        with repo.unit() as uow:
            uow.set_state(VIEWER_PREFIX + viewer, text)
    except Exception as exc:  # noqa: BLE001 - the page is drawn; the refresh job just will not know this viewer
        log.info("caseload viewer not recorded: %s", type(exc).__name__)


def _compute_rows(
    data: Data, patients: list[dict[str, Any]], seen: Mapping[str, set[str]], tz: ZoneInfo, today: date
) -> dict[str, Row]:
    """The rows of ``patients``, from their glances and what the page reads in batches."""
    repo = data.repo
    ids = [str(p.get("id")) for p in patients]
    glances = coaching_service(data).patient_glances(ids)
    contact = counts(repo, ids, (today - timedelta(days=MESSAGE_WINDOW_DAYS)).isoformat())
    sessions, encounters = _sessions(repo, ids, today, tz)
    waiting = open_referrals(repo, ids, today, str(tz), data.referral_days)
    out = {}
    for patient in patients:
        pid = str(patient.get("id"))
        glance = glances.get(pid)
        c = contact.get(pid)
        t = None
        refs: list[tuple[str, str]] = []
        if isinstance(glance, dict):
            local_today = glance["summary"]["today"]
            oldest = (
                res.effective_local_date({"effectiveDateTime": c.oldest_unanswered}, str(tz))
                if c and c.oldest_unanswered
                else None
            )
            t = triage(
                glance,
                today=local_today,
                seen=seen.get(pid, set()),
                contact=Contact(c.unanswered, oldest, c.unread_for_team) if c else Contact(),
                sessions=sessions.get(pid, SessionDates()),
                referrals=waiting.get(pid, []),
                label=lambda code: catalog.measure(code).label if code else None,
            )
            refs = [tuple(r) for r in glance.get("refs") or []]  # as the coaching views' own cache hits name
        row = _draw(patient, glance, t, c.unread_for_team if c else 0, today)
        row.refs = tuple(refs)
        row.html = Markup(_ROW_TEMPLATE().render(r=row, viewer_tz=str(tz)))
        out[pid] = row
    return out
