"""Read coaching sessions from the store (through the repository) into the rule engine's :class:`Session`.

Shapes follow the mECR IG (profiles/README.md): a coaching session is an ``Encounter`` (mecr-coaching-session)
whose ``type`` says initial, follow-up or group, whose ``coaching-session-modality`` extension says in person,
video or audio only, and whose ``participant`` of type PPRF is the coach ``PractitionerRole`` (mecr-coach,
credentials in its ``coach-credential`` extension, NPI in ``identifier``). A group participant's own session
points at the group session with ``partOf``.

Billing reads, beyond the IG:

- **Duration**: ``Encounter.length`` in minutes (the documented duration); a participant without one takes its
  group session's; failing both, the minutes between ``period.start`` and ``period.end`` (its own, else the
  group session's).
- **Group size**: the distinct patients of a group session whose own Encounter is ``finished`` — its
  participants' sessions (``partOf``) plus the group session's own Patient subject. A member who was planned,
  arrived, left early (``in-progress``) or did not come (``cancelled``) does not count and is not billed
  (0593T/G0473 are reported per participant who received the service). Each patient is billed once: the group
  session itself is billed only when its subject has no participant session of their own.
- **Supervising practitioner**: a ``participant`` of type ATND (v3 ParticipationType "attender": the
  practitioner responsible for overseeing the patient's care during the encounter), else the group session's,
  else the practice file's ``default_supervisor``.
- **Day of service**: the local date of ``period.start`` in the patient's time zone (``timezone`` extension),
  else the practice's (``MECR_DEFAULT_TIME_ZONE``), so that a session written as a UTC instant is billed on the
  day it happened where it happened; without a zone (library callers), the date as written.
- **Place**: ``Encounter.location.physicalType`` "ho" (home) or none -> home (POS 10); another -> POS 02.
- **Payer**: the patient's active ``Coverage`` whose period covers the day (lowest ``order`` first); its first
  ``payor`` Organization's identifiers and reference select the payer of the rule table. A Coverage paid by the
  patient, or none, is self-pay. The Organization's identifiers go along with their systems: the payer ID on a
  claim is taken only from a system the rule table names (``payer_id_systems``).
- **Diagnoses** (ICD-10-CM only, system http://hl7.org/fhir/sid/icd-10-cm): ``Encounter.reasonCode``, then the
  Conditions of ``reasonReference`` and ``diagnosis``, then the patient's active Conditions with onset on or
  before the day and no abatement before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..canonical import BILLING_LINE_SYSTEM, CREDENTIAL_SYSTEM, CREDENTIAL_URL, MODALITY_URL
from ..coaching.resources import patient_time_zone
from ..store.repository import SearchResult
from ..store.search import SearchQuery, parse_search
from .model import BilledItem, Credential, Insurance, Modality, Person, Provider, Session
from .rules import RuleTable

__all__ = [
    "Reader",
    "load_sessions",
    "load_billed",
    "service_day",
    "search_all",
    "read_many",
    "ICD10CM",
    "NPI_SYSTEM",
    "CREDENTIAL_URL",
    "MODALITY_URL",
    "BILLING_LINE_SYSTEM",
    "TAXONOMY_SYSTEM",
]

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
TAXONOMY_SYSTEM = "http://nucc.org/provider-taxonomy"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_CHUNK = 200
_INACTIVE = {"cancelled", "entered-in-error"}


class Reader(Protocol):
    """What billing needs of the store: a search (a UnitOfWork or the FhirRepository both have one)."""

    def search(self, query: SearchQuery) -> SearchResult: ...


def search_all(reader: Reader, rtype: str, params: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """Every match of a search, page by page (cursor paging, 1,000 a page)."""
    query = parse_search(rtype, params, strict=True, default_count=1000, max_count=1000)
    query.count, query.total = 1000, "none"
    while True:
        result = reader.search(query)
        for stored in result.matches:
            if stored.content is not None:
                yield stored.content
        if result.next_cursor is None:
            return
        query.cursor = result.next_cursor


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(values))
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def read_many(reader: Reader, rtype: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Resources of one type by id (missing ones are left out), in few queries."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for r in search_all(reader, rtype, [("_id", ",".join(chunk))]):
            out[r["id"]] = r
    return out


def _ref(value: Any) -> tuple[str, str] | None:
    ref = (value or {}).get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or "/" not in ref:
        return None
    parts = ref.split("/")
    return parts[-2], parts[-1]


def _codes(concepts: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c.get("system", ""), c.get("code", "")) for cc in concepts for c in (cc or {}).get("coding", [])]


def _day(value: str | None) -> date | None:
    if not value:
        return None
    return date.fromisoformat(value[:10]) if len(value) >= 10 else None


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _participant(enc: dict[str, Any], code: str) -> tuple[str, str] | None:
    for p in enc.get("participant", []) or []:
        if any(s == PARTICIPATION and c == code for s, c in _codes(p.get("type", []) or [])):
            ref = _ref(p.get("individual"))
            if ref:
                return ref
    return None


def _length(enc: dict[str, Any]) -> int | None:
    length = enc.get("length") or {}
    if isinstance(length.get("value"), (int, float)) and length.get("code", "min") == "min":
        return int(length["value"])
    return None


def _minutes(enc: dict[str, Any]) -> int | None:
    if (documented := _length(enc)) is not None:
        return documented
    period = enc.get("period") or {}
    if period.get("start") and period.get("end") and len(period["start"]) > 10 and len(period["end"]) > 10:
        return int((_instant(period["end"]) - _instant(period["start"])).total_seconds() // 60)
    return None


def _modality(enc: dict[str, Any]) -> Modality:
    for ext in enc.get("extension", []) or []:
        if ext.get("url") == MODALITY_URL:
            code = (ext.get("valueCoding") or {}).get("code")
            if code in ("in-person", "video", "audio-only"):
                return code  # type: ignore[no-any-return]
    cls = (enc.get("class") or {}).get("code")
    return "video" if cls == "VR" else "in-person"


def _at_home(enc: dict[str, Any]) -> bool:
    kinds = [c for loc in enc.get("location", []) or [] for _, c in _codes([loc.get("physicalType") or {}])]
    return not kinds or "ho" in kinds


def _npi(resource: dict[str, Any] | None) -> str | None:
    for ident in (resource or {}).get("identifier", []) or []:
        if ident.get("system") == NPI_SYSTEM and ident.get("value"):
            return str(ident["value"])
    return None


def _name(resource: dict[str, Any] | None) -> tuple[str, str]:
    names = (resource or {}).get("name") or []
    if isinstance(names, list) and names:
        name = next((n for n in names if n.get("use") == "official"), names[0])
        return name.get("family", "") or name.get("text", ""), " ".join(name.get("given", []) or [])
    return "", ""


def _credentials(role: dict[str, Any] | None, person: dict[str, Any] | None) -> tuple[Credential, ...]:
    creds: list[Credential] = []
    for ext in (role or {}).get("extension", []) or []:
        if ext.get("url") != CREDENTIAL_URL:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", []) or []}
        code = next(
            (
                c
                for s, c in _codes([(parts.get("code") or {}).get("valueCodeableConcept") or {}])
                if s == CREDENTIAL_SYSTEM
            ),
            None,
        )
        if code:
            period = (parts.get("period") or {}).get("valuePeriod") or {}
            creds.append(Credential(code, _day(period.get("start")), _day(period.get("end"))))
    for q in (person or {}).get("qualification", []) or []:
        for s, c in _codes([q.get("code") or {}]):
            if s == CREDENTIAL_SYSTEM:
                period = q.get("period") or {}
                creds.append(Credential(c, _day(period.get("start")), _day(period.get("end"))))
    return tuple(creds)


class _Providers:
    """Practitioners and PractitionerRoles, read once per export."""

    def __init__(self, reader: Reader, refs: Iterable[tuple[str, str]]) -> None:
        refs = set(refs)
        self.roles = read_many(reader, "PractitionerRole", [i for t, i in refs if t == "PractitionerRole"])
        people = {i for t, i in refs if t == "Practitioner"}
        people |= {r[1] for role in self.roles.values() if (r := _ref(role.get("practitioner")))}
        self.people = read_many(reader, "Practitioner", people)

    def get(self, ref: tuple[str, str] | None) -> Provider | None:
        if ref is None:
            return None
        rtype, rid = ref
        role = self.roles.get(rid) if rtype == "PractitionerRole" else None
        if rtype == "PractitionerRole" and role is None:
            return None
        person_ref = _ref(role.get("practitioner")) if role else ref
        person = self.people.get(person_ref[1]) if person_ref else None
        if role is None and person is None:
            return None
        family, given = _name(person)
        taxonomy = next(
            (
                c
                for s, c in _codes([*(role or {}).get("code", []), *(role or {}).get("specialty", [])])
                if s == TAXONOMY_SYSTEM
            ),
            None,
        )
        return Provider(
            f"{rtype}/{rid}", family, given, _npi(role) or _npi(person), taxonomy, _credentials(role, person)
        )


def _person(patient: dict[str, Any]) -> Person:
    family, given = _name(patient)
    addr = (patient.get("address") or [{}])[0]
    return Person(
        patient["id"],
        family,
        given,
        _day(patient.get("birthDate")),
        patient.get("gender"),
        ((addr.get("line") or [None])[0]),
        addr.get("city"),
        addr.get("state"),
        addr.get("postalCode"),
    )


def _active_condition(cond: dict[str, Any], day: date) -> bool:
    status = [c for _, c in _codes([cond.get("clinicalStatus") or {}])]
    if status and not set(status) & {"active", "recurrence", "relapse"}:
        return False
    if any(c == "entered-in-error" for _, c in _codes([cond.get("verificationStatus") or {}])):
        return False
    onset = _day(
        cond.get("onsetDateTime") or (cond.get("onsetPeriod") or {}).get("start") or cond.get("recordedDate")
    )
    abated = _day(cond.get("abatementDateTime") or (cond.get("abatementPeriod") or {}).get("end"))
    return (onset is None or onset <= day) and (abated is None or abated >= day)


def _icd(concepts: Iterable[dict[str, Any]]) -> list[str]:
    return [c for s, c in _codes(concepts) if s == ICD10CM and c]


def service_day(enc: dict[str, Any], patients: dict[str, dict[str, Any]], tz: str | None) -> date | None:
    """The date of service: the local date of ``period.start`` in the patient's zone (else ``tz``, the
    practice's), or the date as written when ``tz`` is None or the start has no time."""
    value = (enc.get("period") or {}).get("start")
    if tz is None or not isinstance(value, str) or len(value) <= 10:
        return _day(value)
    try:
        instant = _instant(value)
    except ValueError:
        return _day(value)
    if instant.tzinfo is None:
        return instant.date()
    subject = _ref(enc.get("subject"))
    zone = patient_time_zone(patients.get(subject[1]) if subject else None, tz)
    return instant.astimezone(ZoneInfo(zone)).date()


def load_sessions(
    reader: Reader, rules: RuleTable, start: date, end: date, *, tz: str | None = None
) -> list[Session]:
    """The sessions of every Encounter whose type a rule-table service matches, with a day in start..end.

    With ``tz`` (the practice's zone, ``MECR_DEFAULT_TIME_ZONE``) the day of a session is the local date of its
    start in the patient's time zone (Patient ``timezone`` extension), else in ``tz``: a session at 21:30 in New
    York written as ``02:30Z`` the next day is billed on the day it happened.
    """
    matches = sorted(
        {m for key in rules.payer_keys for svc in rules.payer(key).services.values() for m in svc.match}
    )
    if not matches:
        return []
    pad = timedelta(days=1 if tz is not None else 0)  # instants in UTC may fall a day off the local date
    params = [
        ("date", f"ge{(start - pad).isoformat()}"),
        ("date", f"le{(end + pad).isoformat()}"),
        ("type", ",".join(matches)),
    ]
    found = list(search_all(reader, "Encounter", params))
    patients = read_many(reader, "Patient", {r[1] for e in found if (r := _ref(e.get("subject")))})
    days = {
        e["id"]: d for e in found if (d := service_day(e, patients, tz)) is not None and start <= d <= end
    }
    encounters = {e["id"]: e for e in found if e["id"] in days}
    if not encounters:
        return []
    # group sessions: parents of participants, and the participants of every parent
    parent_ids = {r[1] for e in encounters.values() if (r := _ref(e.get("partOf")))}
    parents = {i: encounters[i] for i in parent_ids if i in encounters}
    parents |= read_many(reader, "Encounter", parent_ids - set(parents))
    group_types = {
        m
        for key in rules.payer_keys
        for svc in rules.payer(key).services.values()
        if svc.participants.min >= 2 or svc.by_group_size
        for m in svc.match
    }
    possible_parents = set(parents) | {
        i
        for i, e in encounters.items()
        if not e.get("partOf") and any(f"{s}|{c}" in group_types for s, c in _codes(e.get("type", [])))
    }
    children: dict[str, list[dict[str, Any]]] = {i: [] for i in possible_parents}
    for chunk in _chunks(possible_parents):
        for child in search_all(
            reader, "Encounter", [("part-of", ",".join(f"Encounter/{i}" for i in chunk))]
        ):
            ref = _ref(child.get("partOf"))
            if ref and child.get("status") not in _INACTIVE:
                children.setdefault(ref[1], []).append(child)
    all_parents = {**parents, **{i: encounters[i] for i in possible_parents if i in encounters}}

    def members(parent_id: str) -> set[str]:
        """The patients who received the group session: those whose own Encounter is finished."""
        subjects = {
            r[1]
            for c in children.get(parent_id, [])
            if c.get("status") == "finished" and (r := _ref(c.get("subject")))
        }
        parent = all_parents.get(parent_id) or {}
        own = _ref(parent.get("subject"))
        own_counts = own is not None and own[0] == "Patient" and parent.get("status") == "finished"
        return subjects | ({own[1]} if own_counts and own is not None else set())

    # everything the sessions refer to, read in bulk
    patient_ids = {r[1] for e in encounters.values() if (r := _ref(e.get("subject")))}
    provider_refs: set[tuple[str, str]] = set()
    for e in [*encounters.values(), *all_parents.values()]:
        for code in ("PPRF", "ATND"):
            if (r := _participant(e, code)) is not None:
                provider_refs.add(r)
    default_sup = None
    if rules.practice and rules.practice.default_supervisor:
        t, _, i = rules.practice.default_supervisor.partition("/")
        default_sup = (t, i)
        provider_refs.add(default_sup)
    providers = _Providers(reader, provider_refs)
    coverages: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(patient_ids):
        for cov in search_all(reader, "Coverage", [("beneficiary", ",".join(f"Patient/{i}" for i in chunk))]):
            if cov.get("status") == "active" and (r := _ref(cov.get("beneficiary"))):
                coverages.setdefault(r[1], []).append(cov)
    payor_ids = {
        r[1]
        for covs in coverages.values()
        for c in covs
        for p in (c.get("payor") or [])[:1]
        if (r := _ref(p)) and r[0] == "Organization"
    }
    payors = read_many(reader, "Organization", payor_ids)
    conditions: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(patient_ids):
        for cond in search_all(reader, "Condition", [("patient", ",".join(f"Patient/{i}" for i in chunk))]):
            if r := _ref(cond.get("subject")):
                conditions.setdefault(r[1], []).append(cond)
    by_id = {c["id"]: c for conds in conditions.values() for c in conds}

    sessions: list[Session] = []
    for enc in sorted(encounters.values(), key=lambda x: x["id"]):
        subject = _ref(enc.get("subject"))
        if subject is None or subject[1] not in patients:
            continue
        pid = subject[1]
        day = days[enc["id"]]
        parent_ref = _ref(enc.get("partOf"))
        parent = all_parents.get(parent_ref[1]) if parent_ref else None
        group_id, size = None, 1
        if parent is not None:
            group_id, size = parent["id"], len(members(parent["id"]))
        elif enc["id"] in all_parents:
            child_subjects = {r[1] for c in children.get(enc["id"], []) if (r := _ref(c.get("subject")))}
            if pid in child_subjects:
                continue  # billed through the participant's own session
            group_id, size = enc["id"], len(members(enc["id"]))
        minutes = _length(enc)
        if minutes is None and parent is not None:
            minutes = _length(parent)
        if minutes is None:
            minutes = _minutes(enc) if parent is None or _minutes(enc) is not None else _minutes(parent)
        coach = providers.get(_participant(enc, "PPRF") or (_participant(parent, "PPRF") if parent else None))
        sup_ref = (
            _participant(enc, "ATND") or (_participant(parent, "ATND") if parent else None) or default_sup
        )
        supervisor = providers.get(sup_ref)
        sessions.append(
            Session(
                encounter_id=enc["id"],
                patient=_person(patients[pid]),
                day=day,
                minutes=minutes,
                types=tuple(f"{s}|{c}" for s, c in _codes(enc.get("type", []) or [])),
                modality=_modality(enc),
                at_home=_at_home(enc),
                group_id=group_id,
                group_size=size,
                coach=coach,
                supervisor=supervisor,
                diagnoses=_diagnoses(enc, conditions.get(pid, []), by_id, day),
                insurance=_insurance(coverages.get(pid, []), payors, day),
                status=enc.get("status", "unknown"),
            )
        )
    return sessions


def _diagnoses(
    enc: dict[str, Any], patient_conditions: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], day: date
) -> tuple[str, ...]:
    out = list(_icd(enc.get("reasonCode", []) or []))
    refs = [
        *(enc.get("reasonReference") or []),
        *((d or {}).get("condition") for d in enc.get("diagnosis") or []),
    ]
    for ref in refs:
        r = _ref(ref)
        if r and r[0] == "Condition" and r[1] in by_id:
            out += _icd([by_id[r[1]].get("code") or {}])
    for cond in sorted(patient_conditions, key=lambda c: (c.get("recordedDate") or "", c["id"])):
        if _active_condition(cond, day):
            out += _icd([cond.get("code") or {}])
    return tuple(dict.fromkeys(out))


def _insurance(covs: list[dict[str, Any]], payors: dict[str, dict[str, Any]], day: date) -> Insurance | None:
    def in_force(c: dict[str, Any]) -> bool:
        period = c.get("period") or {}
        s, e = _day(period.get("start")), _day(period.get("end"))
        return (s is None or s <= day) and (e is None or day <= e)

    for cov in sorted((c for c in covs if in_force(c)), key=lambda c: (c.get("order") or 99, c["id"])):
        payor = _ref((cov.get("payor") or [None])[0])
        if payor is None or payor[0] != "Organization":
            return None  # paid by the patient or a relative: self-pay
        org = payors.get(payor[1]) or {}
        pairs = [
            (str(i.get("system") or ""), str(i["value"]))
            for i in org.get("identifier", []) or []
            if i.get("value")
        ]
        member = cov.get("subscriberId") or next(
            (i.get("value") for i in cov.get("identifier", []) or [] if i.get("value")), ""
        )
        return Insurance(
            coverage_id=cov["id"],
            payer_ids=(*(v for _, v in pairs), f"Organization/{payor[1]}"),
            payer_name=org.get("name", ""),
            member_id=str(member),
            identifiers=tuple(pairs),
        )
    return None


def load_billed(reader: Reader, patient_ids: Iterable[str]) -> list[BilledItem]:
    """Lines exported before (ChargeItems an export wrote) of these patients, with their status, units and the
    Claim that carried them (``supportingInformation``). Only status ``billed`` counts as billed."""
    out: list[BilledItem] = []
    for chunk in _chunks(patient_ids):
        for item in search_all(reader, "ChargeItem", [("patient", ",".join(f"Patient/{i}" for i in chunk))]):
            status = item.get("status")
            if status == "entered-in-error":
                continue
            key = next(
                (i["value"] for i in item.get("identifier", []) if i.get("system") == BILLING_LINE_SYSTEM),
                None,
            )
            subject = _ref(item.get("subject"))
            code = next((c for _, c in _codes([item.get("code") or {}])), None)
            day = _day(item.get("occurrenceDateTime"))
            quantity = (item.get("quantity") or {}).get("value")
            claim = next(
                (
                    r[1]
                    for ref in item.get("supportingInformation") or []
                    if (r := _ref(ref)) and r[0] == "Claim"
                ),
                None,
            )
            if key and subject and code and day:
                out.append(
                    BilledItem(
                        key,
                        subject[1],
                        code,
                        day,
                        str(status),
                        claim,
                        int(quantity) if isinstance(quantity, (int, float)) and quantity >= 1 else 1,
                    )
                )
    return out
