"""The rule engine: sessions in, claim lines and findings out. Pure: no I/O, no clock, no database.

Each session is matched to a service of the rule table by its Encounter.type codings, then checked against
the service as the session's payer overrides it. A session yields one line, or a :class:`Finding` that says
why not (the ``code`` values are listed in :data:`FINDING_CODES` and in docs/billing.md). Monthly services
(CHI G0019/G0022, CCM 99490/99439) add up a patient's minutes per calendar month instead, and services billed
by total daily time (``daily_total``: preventive counselling 99401-99404, 99411/99412) add up a patient's
sessions of one day into one line.

Rules enforced, with their sources (docs/billing.md: the table of rules, sources and rule-table keys, and
"Sources" with the citations in full):

- 0591T initial assessment, individual; 0592T individual follow-up "at least 30 minutes"; 0593T "group (2 or
  more individuals), at least 30 minutes", reported per participant (AMA CPT Category III, 2020).
- The coach holds a credential the service names (NBHWC NBC-HWC, NCHEC CHES/MCHES), valid on the day.
- Medicare: the coach is not enrolled, so the service is billed "incident to" the supervising practitioner,
  whose NPI is the rendering provider; no supervising practitioner, no Medicare line.
- Telehealth (the codes are on the Medicare Telehealth Services List): POS 10 at home, 02 elsewhere;
  modifier 95 for video, 93 for audio-only, each per payer; a payer may refuse audio-only, and pays each
  modality only at the places its ``telehealth.places`` names (Medicare: audio-only at home, 42 CFR
  410.78(a)(3)).
- Time: the documented duration (Encounter.length); units of ``unit_minutes`` with the midpoint rule (the
  first unit at ``unit_midpoint`` minutes, by default half a unit plus one: 16 of 30), at most
  ``max_units_per_day`` units of a code per patient and day (units over the cap are a finding).
- CPT time rule for time-based codes billed once a day: the day's sessions add their minutes into one code.
- Frequency limits per patient (lifetime, year — calendar or rolling 12 months —, day) count lines billed
  before and lines earlier in this run, across every code of a shared ``counter``.
- Required diagnoses in order (G0447/G0473: an obesity code first, the BMI Z68.3x/Z68.4x code after it; ICD-10-CM
  guideline I.C.21.c.3: BMI codes only with an associated reportable diagnosis).
- The payer ID (2010BB) comes from the rule table or a payer identifier of a system it names; none is a finding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from functools import lru_cache

from .limits import History as _History
from .model import BilledItem, Finding, Line, Provider, Session
from .rules import Payer, RuleTable, Service, icd10_in_range

__all__ = ["Evaluation", "evaluate", "line_key", "day_key", "FINDING_CODES", "units_for", "npi_valid"]

FINDING_CODES: dict[str, str] = {
    "already-billed": "the session was exported before; re-export needs the rebill flag",
    "not-finished": "the encounter is not finished",
    "no-billable-service": "no service of the rule table matches the session type",
    "service-disabled": "the payer does not pay this service",
    "no-duration": "the session has no documented duration",
    "too-short": "the session (or month) is shorter than the code's minimum",
    "group-of-one": "a group code needs at least two participants",
    "group-too-large": "more participants than the code allows",
    "not-individual": "an individual code for a session with several participants",
    "no-coach": "no coach on the session",
    "no-credential": "the coach holds none of the credentials the code requires",
    "credential-expired": "the coach's credential is not valid on the day of the session",
    "telehealth-not-covered": "the payer or the code does not allow telehealth",
    "audio-only-not-allowed": "the payer does not pay audio-only sessions",
    "telehealth-place-not-covered": "the payer does not pay this telehealth modality with the patient there",
    "missing-supervisor": "the payer needs a supervising practitioner and none is on file",
    "no-rendering-npi": "no practitioner with an NPI can be the rendering provider",
    "invalid-npi": "an NPI fails its check digit",
    "missing-diagnosis": "no ICD-10-CM diagnosis for the session",
    "required-diagnosis-missing": "the code needs a diagnosis the session does not have",
    "frequency-limit": "the patient already had this code as often as the rule allows",
    "billed-with-day": "billed on the day's line of another session of the same service (total daily time)",
    "daily-unit-limit": "units over the code's daily cap for the patient (the units that fit are billed)",
    "same-day-conflict": "another code billed the same day excludes this one",
    "no-fee": "no charge for the code in the payer's fee schedule",
    "incomplete-demographics": "the subscriber's member id, birth date, sex or address is missing",
    "no-payer-id": "no payer ID: none in the rule table and no payer identifier of a system it names",
    "replacement-incomplete": "a replacement claim would drop lines of the claim it replaces that this export "
    "did not evaluate",
    "month-incomplete": "the export range does not cover the whole calendar month of a monthly service",
}


@dataclass
class Evaluation:
    """What the engine made of the sessions: billable lines and findings, both in a stable order."""

    lines: list[Line] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def line_key(encounter_id: str) -> str:
    """The identity of a per-session line: a session bills at most one line, whatever code it gets."""
    return f"Encounter/{encounter_id}"


def _monthly_key(patient_id: str, service: str, month: str, code: str) -> str:
    return f"Patient/{patient_id}|{service}|{month}|{code}"


def day_key(patient_id: str, service: str, day: date) -> str:
    """The identity of a ``daily_total`` line: one per patient, service and day, whatever code the total gets."""
    return f"Patient/{patient_id}|{service}|{day.isoformat()}"


@lru_cache(maxsize=65536)  # a practice has few NPIs; an export checks each on every line
def npi_valid(npi: str | None) -> bool:
    """NPI check digit: Luhn over the 9 digits prefixed with 80840 (CMS, NPI check digit standard)."""
    if not npi or len(npi) != 10 or not npi.isdigit():
        return False
    digits = "80840" + npi[:9]
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # rightmost digit of the payload is doubled (the check digit is not in it)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


def units_for(
    minutes: int, unit_minutes: int | None, max_units: int | None = None, midpoint: int | None = None
) -> int:
    """Units of a timed code: one per ``unit_minutes`` with the midpoint rule — the first unit once ``midpoint``
    minutes are reached (default half a unit plus one: 16 of 30), each further unit ``unit_minutes`` later
    (30-minute units, 16-minute midpoint: 15 -> 0, 16 -> 1, 45 -> 1, 46 -> 2, 60 -> 2)."""
    if not unit_minutes:
        return 1
    first = midpoint if midpoint is not None else unit_minutes // 2 + 1
    units = 0 if minutes < first else (minutes - first) // unit_minutes + 1
    return min(units, max_units) if max_units else units


def _pick_code(service: Service, s: Session) -> tuple[str | None, str | None, str]:
    """(code, finding code, message) for the session's size and minutes."""
    p = service.participants
    if s.group_size < p.min:
        if p.min >= 2 and s.group_size == 1:
            return (
                None,
                "group-of-one",
                f"{service.codes[0]} needs at least {p.min} participants; this group had 1",
            )
        return None, "group-of-one", f"needs at least {p.min} participants, had {s.group_size}"
    if p.max is not None and s.group_size > p.max:
        if p.max == 1:
            return (
                None,
                "not-individual",
                (f"{service.codes[0]} is an individual code; the session had {s.group_size} participants"),
            )
        return None, "group-too-large", f"at most {p.max} participants, had {s.group_size}"
    if s.minutes is None:
        return None, "no-duration", "no documented duration (Encounter.length or period)"
    if s.minutes < service.min_minutes:
        return (
            None,
            "too-short",
            (f"{s.minutes} min is under the {service.min_minutes} min {'/'.join(service.codes)} needs"),
        )
    if service.code:
        return service.code, None, ""
    if service.bands:
        reached = [b for b in service.bands if s.minutes >= b.min_minutes]
        if not reached:
            low = min(b.min_minutes for b in service.bands)
            return None, "too-short", f"{s.minutes} min is under the {low} min of the lowest time band"
        return max(reached, key=lambda b: b.min_minutes).code, None, ""
    for g in service.by_group_size:
        if g.min <= s.group_size and (g.max is None or s.group_size <= g.max):
            return g.code, None, ""
    return None, "group-too-large", f"no code for a group of {s.group_size}"


def _credential_problem(service: Service, coach: Provider | None, day: date) -> tuple[str, str] | None:
    if service.credentials is None:
        return None
    if coach is None:
        return "no-coach", "no coach (participant PPRF) on the session"
    held = [c for c in coach.credentials if c.code in service.credentials]
    if not held:
        have = ", ".join(c.code for c in coach.credentials) or "none"
        return "no-credential", (
            f"coach {coach.reference} holds {have}; the code needs one of {', '.join(service.credentials)}"
        )
    if not any(c.valid_on(day) for c in held):
        return "credential-expired", f"coach {coach.reference}'s credential is not valid on {day.isoformat()}"
    return None


def _rendering(payer: Payer, s: Session) -> tuple[Provider | None, tuple[str, str] | None]:
    for role in payer.rendering:
        who = s.coach if role == "coach" else s.supervisor
        if who is not None and who.npi:
            if not npi_valid(who.npi):
                return None, ("invalid-npi", f"{who.reference}: NPI {who.npi} fails the check digit")
            return who, None
    if not payer.electronic:
        return s.coach or s.supervisor, None
    roles = " or ".join(payer.rendering)
    return None, ("no-rendering-npi", f"no {roles} with an NPI to be the rendering provider")


def _demographics_problem(s: Session) -> str | None:
    p, ins = s.patient, s.insurance
    missing = [
        name
        for name, value in (
            ("member id", ins.member_id if ins else None),
            ("birth date", p.birth_date),
            ("sex", p.gender),
            ("address", p.address_line and p.city and p.state and p.postal_code),
        )
        if not value
    ]
    return f"Patient/{p.id}: missing {', '.join(missing)}" if missing else None


_Report = Callable[[Session, str | None, str, str], None]


@dataclass
class _Bucket:
    """Sessions whose minutes add up into one line: a calendar month (monthly) or a day (daily_total)."""

    sessions: list[Session] = field(default_factory=list)
    payer: Payer | None = None


def evaluate(
    sessions: Iterable[Session],
    rules: RuleTable,
    *,
    start: date,
    end: date,
    payer: str | None = None,
    billed: Iterable[BilledItem] = (),
    rebill: bool = False,
) -> Evaluation:
    """Lines and findings for the sessions from ``start`` to ``end`` (inclusive) of ``payer`` (all if None).

    ``billed`` are lines exported before (only those with status ``billed`` count): their sessions are skipped
    (finding ``already-billed``) unless ``rebill``, and they count toward frequency limits and daily unit caps
    (when rebilling, those of the range are evaluated again instead).
    """
    billed = [b for b in billed if b.status == "billed"]
    billed_keys = {b.key for b in billed}
    history = _History(b for b in billed if not (rebill and start <= b.day <= end))
    result = Evaluation()
    months: dict[tuple[str, str, str, str], _Bucket] = defaultdict(_Bucket)
    payer_cache: dict[tuple[str, ...] | None, Payer] = {}
    service_cache: dict[tuple[str, tuple[str, ...]], str | None] = {}
    self_pay = "self-pay" if "self-pay" in rules.payer_specs else "default"

    def finding(s: Session, service: str | None, code: str, message: str) -> None:
        result.findings.append(Finding(s.encounter_id, s.patient.id, s.day, service, code, message))

    # Per-session work and daily totals, in day order (so frequency limits and daily caps see earlier days first).
    work: list[tuple[str, Service, Payer, list[Session]]] = []
    days: dict[tuple[str, str, str, date], list[Session]] = {}
    for s in sorted(sessions, key=lambda x: (x.day, x.encounter_id)):
        if not (start <= s.day <= end):
            continue
        ids = s.insurance.payer_ids if s.insurance else None
        p = payer_cache.get(ids)
        if p is None:
            p = payer_cache[ids] = rules.payer_for(ids) if ids is not None else rules.payer(self_pay)
        if payer is not None and p.key != payer:
            continue
        ck = (p.key, s.types)
        if ck not in service_cache:
            service_cache[ck] = next(
                (n for n, svc in p.services.items() if any(t in svc.match for t in s.types)), None
            )
        name = service_cache[ck]
        if name is None:
            finding(
                s, None, "no-billable-service", f"no service matches the session type {', '.join(s.types)}"
            )
            continue
        service = p.services[name]
        if not service.enabled:
            finding(s, name, "service-disabled", f"{p.name} does not pay {name}")
            continue
        if s.status != "finished":
            finding(s, name, "not-finished", f"the encounter is {s.status}")
            continue
        if service.monthly is not None:
            bucket = months[(s.patient.id, name, p.key, f"{s.day:%Y-%m}")]
            bucket.sessions.append(s)
            bucket.payer = p
            continue
        if service.daily_total:
            group = days.get((s.patient.id, name, p.key, s.day))
            if group is None:
                group = days[(s.patient.id, name, p.key, s.day)] = []
                work.append((name, service, p, group))
            group.append(s)
            continue
        work.append((name, service, p, [s]))

    for name, service, p, group in work:
        if service.daily_total:
            _day_total(group, name, service, p, history, finding, billed_keys, rebill, result)
            continue
        s = group[0]
        key = line_key(s.encounter_id)
        if key in billed_keys and not rebill:
            finding(s, name, "already-billed", f"{key} was exported before (re-export with the rebill flag)")
            continue
        code, problem, message = _pick_code(service, s)
        if code is None:
            finding(s, name, problem or "too-short", message)
            continue
        made = _line(
            s,
            name,
            service,
            code,
            p,
            history,
            finding,
            key,
            s.minutes,
            units_for(s.minutes or 0, service.unit_minutes, service.max_units, service.midpoint),
        )
        if made is not None:
            result.lines.append(made)
            history.add(s.patient.id, code, s.day, made.units)

    for (patient_id, name, payer_key, month), bucket in sorted(months.items()):
        _month(
            bucket,
            patient_id,
            name,
            payer_key,
            month,
            rules,
            history,
            finding,
            billed_keys,
            rebill,
            start,
            end,
            result,
        )
    result.lines.sort(key=lambda ln: (ln.payer, ln.patient.id, ln.day, ln.encounter_id, ln.code))
    result.findings.sort(key=lambda f: (f.day, f.encounter_id, f.code))
    return result


def _merged_modality(group: Sequence[Session]) -> tuple[str, bool]:
    """The day's modality and place when its sessions differ: in person if any part was, else video if any part
    had video, else audio-only; at home only when every part was."""
    kinds = {s.modality for s in group}
    modality = "in-person" if "in-person" in kinds else ("video" if "video" in kinds else "audio-only")
    return modality, all(s.at_home for s in group)


def _usable(group: Sequence[Session], name: str, service: Service, report: _Report) -> list[Session]:
    """The sessions of a bucket with a duration and a coach credentialed on the day (the others are findings)."""
    usable: list[Session] = []
    for s in group:
        cred = _credential_problem(service, s.coach, s.day)
        if s.minutes is None:
            report(s, name, "no-duration", "no documented duration (Encounter.length or period)")
        elif cred is not None:
            report(s, name, *cred)
        else:
            usable.append(s)
    return usable


def _day_total(
    group: list[Session],
    name: str,
    service: Service,
    p: Payer,
    history: _History,
    report: _Report,
    billed_keys: set[str],
    rebill: bool,
    result: Evaluation,
) -> None:
    """One line for a patient's sessions of one day of a service billed by total time (CPT time rule: bill the
    code for the day's total time, once, not one code per session)."""
    first = group[0]
    key = day_key(first.patient.id, name, first.day)
    if key in billed_keys and not rebill:
        for s in group:
            report(
                s,
                name,
                "already-billed",
                f"{name} of {first.day} was exported before (re-export with the rebill flag)",
            )
        return
    usable = _usable(group, name, service, report)
    if not usable:
        return
    anchor = usable[-1]
    total = sum(s.minutes or 0 for s in usable)
    dx: list[str] = []
    for s in usable:
        dx += [d for d in s.diagnoses if d not in dx]
    modality, at_home = _merged_modality(usable)
    merged = replace(
        anchor,
        minutes=total,
        modality=modality,  # type: ignore[arg-type]
        at_home=at_home,
        group_size=max(s.group_size for s in usable),
        diagnoses=tuple(dx),
    )
    code, problem, message = _pick_code(service, merged)
    if code is None:
        detail = f" (the day's {len(usable)} sessions together)" if len(usable) > 1 else ""
        for s in usable:
            report(s, name, problem or "too-short", message + detail)
        return

    def each(_: Session, service_name: str | None, finding_code: str, message: str) -> None:
        for s in usable:  # the day's line bills nothing: say so for every session of the day
            report(s, service_name, finding_code, message)

    made = _line(
        merged,
        name,
        service,
        code,
        p,
        history,
        each,
        key,
        total,
        units_for(total, service.unit_minutes, service.max_units, service.midpoint),
    )
    if made is not None:
        result.lines.append(made)
        history.add(anchor.patient.id, code, anchor.day, made.units)
        for s in usable[:-1]:
            report(
                s,
                name,
                "billed-with-day",
                f"billed on the {code} line of {anchor.day} with "
                f"Encounter/{anchor.encounter_id}: {total} min in {len(usable)} sessions (CPT time rule)",
            )


def _month(
    bucket: _Bucket,
    patient_id: str,
    name: str,
    payer_key: str,
    month: str,
    rules: RuleTable,
    history: _History,
    report: _Report,
    billed_keys: set[str],
    rebill: bool,
    start: date,
    end: date,
    result: Evaluation,
) -> None:
    p = bucket.payer or rules.payer(payer_key)
    service = p.services[name]
    assert service.monthly is not None
    m = service.monthly
    first = date(int(month[:4]), int(month[5:]), 1)
    last_day = (date(first.year + (first.month == 12), first.month % 12 + 1, 1)).toordinal() - 1
    if first < start or date.fromordinal(last_day) > end:
        for s in bucket.sessions:
            report(
                s,
                name,
                "month-incomplete",
                f"{name} counts minutes per calendar month; the range "
                f"{start}..{end} does not cover all of {month}",
            )
        return
    usable = _usable(bucket.sessions, name, service, report)
    total = sum(s.minutes or 0 for s in usable)
    if not usable:
        return
    if total < m.minutes:
        for s in usable:
            report(s, name, "too-short", f"{month}: {total} min in the month, {m.code} needs {m.minutes}")
        return
    anchor = usable[-1]
    dx: list[str] = []
    for s in usable:
        dx += [d for d in s.diagnoses if d not in dx]
    merged = Session(
        anchor.encounter_id,
        anchor.patient,
        anchor.day,
        total,
        anchor.types,
        "in-person",
        True,
        None,
        1,
        anchor.coach,
        anchor.supervisor,
        tuple(dx),
        anchor.insurance,
    )
    key = _monthly_key(patient_id, name, month, m.code)
    if key in billed_keys and not rebill:
        report(anchor, name, "already-billed", f"{name} for {month} was exported before")
        return
    base = _line(merged, name, service, m.code, p, history, report, key, total, 1, skip_frequency=True)
    if base is None:
        return
    result.lines.append(base)
    if m.addon_code and m.addon_minutes:
        units = (total - m.minutes) // m.addon_minutes
        if m.addon_max_units:
            units = min(units, m.addon_max_units)
        if units > 0:
            addon = _line(
                merged,
                name,
                service,
                m.addon_code,
                p,
                history,
                report,
                _monthly_key(patient_id, name, month, m.addon_code),
                total,
                units,
                skip_frequency=True,
            )
            if addon is not None:
                result.lines.append(addon)


def _excluded(
    p: Payer, service: Service, code: str, cache: dict[tuple[str, str], tuple[str, ...]]
) -> tuple[str, ...]:
    """Codes not billed the same day as ``code`` — symmetric: 0591T "not the same day as 0592T" also keeps
    0592T off a day that has 0591T."""
    key = (p.key, code)
    found = cache.get(key)
    if found is None:
        found = cache[key] = (
            *service.not_same_day,
            *(c for other in p.services.values() if code in other.not_same_day for c in other.codes),
        )
    return found


def _payer_id(p: Payer, s: Session) -> str | None:
    """The payer ID for 2010BB: the rule table's, else a payer identifier of a system the table names."""
    if p.payer_id:
        return p.payer_id
    if s.insurance is None:
        return None
    return next(
        (value for system, value in s.insurance.identifiers if system in p.payer_id_systems and value), None
    )


def _diagnoses(service: Service, code: str, dx: list[str]) -> tuple[list[str] | None, str]:
    """The line's diagnoses with one of each required group first, in the groups' order (G0447: obesity, then
    BMI); None and why when a group has no diagnosis."""
    if not service.required_diagnoses:
        return dx, ""
    leading: list[str] = []
    for n, group in enumerate(service.required_diagnoses):
        hit = next((d for d in dx if d not in leading and icd10_in_range(d, group)), None)
        if hit is None:
            where = (
                ""
                if len(service.required_diagnoses) == 1
                else (" listed first" if n == 0 else f" listed after {', '.join(leading)}")
            )
            return None, f"{code} needs a diagnosis in {', '.join(group)}{where}"
        leading.append(hit)
    return leading + [d for d in dx if d not in leading], ""


def _line(
    s: Session,
    name: str,
    service: Service,
    code: str,
    p: Payer,
    history: _History,
    report: _Report,
    key: str,
    minutes: int | None,
    units: int,
    *,
    skip_frequency: bool = False,
) -> Line | None:
    cred = _credential_problem(service, s.coach, s.day)
    if cred is not None:
        report(s, name, *cred)
        return None
    modifiers = list(service.modifiers)
    pos = p.pos_office
    if s.modality != "in-person":
        th = p.telehealth
        if not (th.allowed and service.telehealth):
            report(
                s,
                name,
                "telehealth-not-covered",
                f"{p.name} does not pay {code} by telehealth"
                if th.allowed
                else f"{p.name} does not pay telehealth",
            )
            return None
        if s.modality == "audio-only" and not th.audio_only:
            report(s, name, "audio-only-not-allowed", f"{p.name} does not pay audio-only {code}")
            return None
        if not th.pays_at(s.modality, s.at_home):
            where = " or ".join(
                "at home (POS 10)" if w == "home" else "away from home (POS 02)"
                for w in th.places.get(s.modality, ())
            )
            report(
                s,
                name,
                "telehealth-place-not-covered",
                f"{p.name} pays {s.modality} {code} only with the patient {where or 'nowhere'}; the patient "
                f"was {'at home' if s.at_home else 'away from home'}",
            )
            return None
        pos = th.pos_home if s.at_home else th.pos_other
        modifier = th.modifier_audio if s.modality == "audio-only" else th.modifier_video
        if modifier:
            modifiers.append(modifier)
    if p.supervisor_required and s.supervisor is None:
        report(
            s,
            name,
            "missing-supervisor",
            f"{p.name} bills {code} incident to a supervising practitioner; none is on the session",
        )
        return None
    rendering, problem = _rendering(p, s)
    if problem is not None:
        report(s, name, *problem)
        return None
    supervising = s.supervisor
    if supervising is not None and supervising.npi and p.electronic and not npi_valid(supervising.npi):
        report(
            s, name, "invalid-npi", f"{supervising.reference}: NPI {supervising.npi} fails the check digit"
        )
        return None
    dx, why = _diagnoses(service, code, list(s.diagnoses))
    if dx is None:
        report(s, name, "required-diagnosis-missing", why)
        return None
    if not dx:
        report(s, name, "missing-diagnosis", f"no ICD-10-CM diagnosis for {code}")
        return None
    if units < 1:
        report(s, name, "too-short", f"{minutes} min make no {service.unit_minutes}-minute unit of {code}")
        return None
    if not skip_frequency:
        problem_text = history.frequency_problem(p, s.patient.id, code, s.day, service)
        if problem_text:
            report(s, name, "frequency-limit", problem_text)
            return None
        excluded = _excluded(p, service, code, history.excluded)
        clash = history.same_day(s.patient.id, excluded, s.day) if excluded else None
        if clash:
            report(s, name, "same-day-conflict", f"{code} is not billed the same day as {clash}")
            return None
    cap = service.max_units_per_day
    if cap is not None:
        room = cap - history.units_on(s.patient.id, code, s.day)
        if room < units:
            over = units - max(room, 0)
            report(
                s,
                name,
                "daily-unit-limit",
                f"{code} is billed at most {cap} units per patient per day; "
                f"{over} of this session's {units} units are over it"
                + (f" ({room} billed)" if room > 0 else ""),
            )
            if room <= 0:
                return None
            units = room
    fee = p.fees.get(code)
    if fee is None:
        report(s, name, "no-fee", f"no fee for {code} in {p.name}'s fee schedule")
        return None
    payer_id = None
    if p.electronic:
        missing = _demographics_problem(s)
        if missing:
            report(s, name, "incomplete-demographics", missing)
            return None
        payer_id = _payer_id(p, s)
        if payer_id is None:
            systems = ", ".join(p.payer_id_systems) or "none"
            report(
                s,
                name,
                "no-payer-id",
                f"{p.name}: no payer_id in the rule table and no identifier of the "
                f"payer Organization in a payer-ID system the table names ({systems})",
            )
            return None
    return Line(
        key=key,
        encounter_id=s.encounter_id,
        patient=s.patient,
        day=s.day,
        service=name,
        code=code,
        description=service.description,
        modifiers=tuple(modifiers),
        units=units,
        pos=pos,
        diagnoses=tuple(dx),
        charge=(fee * units).quantize(Decimal("0.01")),
        payer=p.key,
        insurance=s.insurance,
        rendering=rendering,
        supervising=supervising,
        coach=s.coach,
        minutes=minutes,
        payer_id=payer_id,
    )
