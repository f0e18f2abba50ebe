"""Referral actions as the pages and the CLI need them — every read and write through the caller's guarded
repository, so the guard and the write hook (:mod:`.hook`) decide what is allowed.

- :func:`create_referral`: the coach's one flow — the ServiceRequest (the need, the service, the goal it serves),
  the patient's Consent when given, and the Task (``requested`` with consent, else ``draft``), in one unit;
- :func:`organisation_view` / :func:`organisation_act`: what the organisation sees and does (accept, reject with a
  reason, add a note, start, complete with what was provided as a ``Procedure``);
- :func:`referrals_of`: a patient's referrals with their current status, for the pages.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from ..canonical import REFERRAL_PROFILE as SR_PROFILE
from ..coaching.resources import effective_local_date, ref_id
from ..outcomes import bad_request, invalid, issue
from ..store.repository import FhirRepository
from .consent import build_consent
from .workflow import END, MECR_TASK_PROFILE

__all__ = [
    "ACTIONS",
    "Referral",
    "SDOH_SYSTEM",
    "create_referral",
    "organisation_act",
    "organisation_view",
    "referrals_of",
    "need_text",
]

SDOH_SYSTEM = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"
RESULTING_ACTIVITY = {"system": SDOH_SYSTEM, "code": "resulting-activity", "display": "Resulting Activity"}
ACTIONS = ("accept", "reject", "start", "note", "complete")
_ACTION_STATUS = {"accept": "accepted", "reject": "rejected", "start": "in-progress", "complete": "completed"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def need_text(sr: dict[str, Any]) -> str:
    """The need as words: the ServiceRequest's code text or display."""
    code = sr.get("code") or {}
    return str(
        code.get("text")
        or next((c.get("display") for c in code.get("coding") or () if c.get("display")), None)
        or "Referral"
    )


def _category(sr: dict[str, Any]) -> str | None:
    for cat in sr.get("category") or ():
        for c in cat.get("coding") or ():
            if c.get("system") == SDOH_SYSTEM:
                return str(c.get("code"))
    return None


@dataclass
class Referral:
    """One referral as the pages show it."""

    task_id: str
    sr_id: str
    patient_id: str
    status: str
    need: str
    category: str | None
    organization: str | None
    organization_name: str
    goal_id: str | None
    authored: str
    last_modified: str
    reason: str | None = None
    notes: list[dict[str, str]] = field(default_factory=list)
    outcome: str | None = None  # what was provided (the output Procedure's words)
    outcome_date: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in END


def create_referral(
    repo: FhirRepository,
    *,
    patient_id: str,
    organization_id: str,
    organization_name: str,
    need: str,
    category: str,
    requester: str,
    service_id: str | None = None,
    goal_id: str | None = None,
    note: str | None = None,
    consent: bool = False,
    custodian: str | None = None,
) -> tuple[str, str]:
    """Create the referral (see the module docstring); returns (ServiceRequest id, Task id)."""
    if not need.strip():
        raise invalid(
            issue("required", "say what the person needs", expression="ServiceRequest.code.text"), 422
        )
    now = _now()
    with repo.unit() as uow:
        consent_ref: str | None = None
        if consent:
            made = uow.create(
                build_consent(
                    patient_id,
                    organization_id,
                    organization_name,
                    today=now[:10],
                    custodian=custodian,
                    purpose=f"my need ({need.strip()})",
                )
            )
            consent_ref = f"Consent/{made.stored.id}"
        sr: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "meta": {"profile": [SR_PROFILE]},
            "status": "active",
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "410606002",
                            "display": "Social service procedure",
                        }
                    ]
                },
                {"coding": [{"system": SDOH_SYSTEM, "code": category}]},
            ],
            "code": {"text": need.strip()[:500]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "authoredOn": now,
            "requester": {"reference": requester},
            "performer": [
                {"reference": f"HealthcareService/{service_id}"}
                if service_id
                else {"reference": f"Organization/{organization_id}"}
            ],
        }
        if goal_id:
            sr["extension"] = [{"url": PERTAINS_TO_GOAL, "valueReference": {"reference": f"Goal/{goal_id}"}}]
        if note and note.strip():
            sr["note"] = [{"text": note.strip()[:2000], "time": now}]
        if consent_ref:
            sr["supportingInfo"] = [
                {"reference": consent_ref, "display": "Consent to share with the organisation"}
            ]
        sr_id = uow.create(sr).stored.id
        task = {
            "resourceType": "Task",
            "meta": {"profile": [MECR_TASK_PROFILE]},
            "status": "requested" if consent else "draft",
            "intent": "order",
            "code": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/CodeSystem/task-code",
                        "code": "fulfill",
                        "display": "Fulfill the focal request",
                    }
                ]
            },
            "focus": {"reference": f"ServiceRequest/{sr_id}"},
            "for": {"reference": f"Patient/{patient_id}"},
            "authoredOn": now,
            "lastModified": now,
            "requester": {"reference": requester},
            "owner": {"reference": f"Organization/{organization_id}", "display": organization_name},
        }
        task_id = uow.create(task).stored.id
    return sr_id, task_id


def outcome_day(value: str, tz: str | None) -> str | None:
    """The day of a referral's outcome from its FHIR ``date`` or ``dateTime``: a time of day with an offset is the
    day it fell on in ``tz`` (the patient's time zone, whose days the charts and pages count) when one is given;
    otherwise the day the value is written with. A Procedure performed at 21:30 in New York is written
    ``…T02:30:00Z`` the next day by a server in UTC, and is the patient's day before."""
    if tz:
        try:  # the coaching views' own rule for an Observation's day (a date is a day; an instant moves)
            day = effective_local_date({"effectiveDateTime": value}, tz)
        except (ValueError, ZoneInfoNotFoundError):  # an unknown zone, a malformed date
            day = None
        if day is not None:
            return day.isoformat()
    return value[:10] or None


def _referral(
    task: dict[str, Any],
    sr: dict[str, Any] | None,
    org_name: str | None,
    outputs: dict[str, dict[str, Any]],
    tz: str | None = None,
) -> Referral:
    sr = sr or {}
    goal = next(
        (
            ref_id(e.get("valueReference"), "Goal")
            for e in sr.get("extension") or ()
            if e.get("url") == PERTAINS_TO_GOAL
        ),
        None,
    )
    outcome = outcome_date = None
    for out in task.get("output") or ():
        pid = ref_id(out.get("valueReference"), "Procedure")
        proc = outputs.get(pid or "")
        if proc:
            outcome = str((proc.get("code") or {}).get("text") or need_text(proc))
            outcome_date = outcome_day(
                str(
                    proc.get("performedDateTime")
                    or (proc.get("performedPeriod") or {}).get("start")
                    or task.get("lastModified")
                    or ""
                ),
                tz,
            )
    owner = task.get("owner") or {}
    return Referral(
        task_id=str(task["id"]),
        sr_id=str(ref_id(task.get("focus"), "ServiceRequest") or ""),
        patient_id=str(ref_id(task.get("for"), "Patient") or ""),
        status=str(task.get("status")),
        need=need_text(sr) if sr else "Referral",
        category=_category(sr),
        organization=ref_id(owner, "Organization"),
        organization_name=org_name or str(owner.get("display") or ref_id(owner, "Organization") or "—"),
        goal_id=goal,
        authored=str(task.get("authoredOn") or "")[:10],
        last_modified=str(task.get("lastModified") or task.get("authoredOn") or "")[:19],
        reason=(task.get("statusReason") or {}).get("text"),
        notes=[
            {
                "text": str(n.get("text") or ""),
                "who": str(n.get("authorString") or ""),
                "time": str(n.get("time") or "")[:10],
            }
            for n in task.get("note") or ()
        ],
        outcome=outcome,
        outcome_date=outcome_date,
    )


def referrals_of(repo: FhirRepository, patient_id: str, *, tz: str | None = None) -> list[Referral]:
    """The patient's referral Tasks (newest first), with their ServiceRequests, owners and outcomes; each outcome's
    day in ``tz``, the patient's time zone, when given (:func:`outcome_day`)."""
    tasks = [
        s.content
        for s in repo.search_params("Task", [("patient", f"Patient/{patient_id}"), ("_count", "200")]).matches
        if s.content and MECR_TASK_PROFILE in ((s.content.get("meta") or {}).get("profile") or ())
    ]
    return _resolve(repo, tasks, tz)


def _resolve(repo: FhirRepository, tasks: list[dict[str, Any]], tz: str | None = None) -> list[Referral]:
    if not tasks:
        return []
    srs = _by_id(repo, "ServiceRequest", {ref_id(t.get("focus"), "ServiceRequest") for t in tasks})
    orgs = _by_id(repo, "Organization", {ref_id(t.get("owner"), "Organization") for t in tasks})
    procs = _by_id(
        repo,
        "Procedure",
        {ref_id(o.get("valueReference"), "Procedure") for t in tasks for o in t.get("output") or ()},
    )
    out = [
        _referral(
            t,
            srs.get(ref_id(t.get("focus"), "ServiceRequest") or ""),
            (orgs.get(ref_id(t.get("owner"), "Organization") or "") or {}).get("name"),
            procs,
            tz,
        )
        for t in tasks
    ]
    out.sort(key=lambda r: (r.authored, r.task_id), reverse=True)
    return out


def _by_id(repo: FhirRepository, rtype: str, ids: set[str | None]) -> dict[str, dict[str, Any]]:
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    found = repo.search_params(rtype, [("_id", ",".join(wanted)), ("_count", str(len(wanted)))])
    return {s.id: s.content for s in found.matches if s.content}


def organisation_view(repo: FhirRepository, task_id: str) -> tuple[Referral, dict[str, Any]]:
    """The referral and the person (minimum necessary: the guard cuts the Patient down) as the organisation
    sees them; 404 when it may not."""
    task = repo.read("Task", task_id).content or {}
    ref = _resolve(repo, [task])[0]
    person = repo.read("Patient", ref.patient_id).content or {}
    return ref, person


def organisation_act(
    repo: FhirRepository,
    task_id: str,
    action: str,
    *,
    organization: str,
    org_name: str,
    reason: str = "",
    note: str = "",
    provided: str = "",
) -> str:
    """Do ``action`` (one of :data:`ACTIONS`) on the referral as the organisation; returns the new status.
    The write hook enforces the workflow (409 naming what is allowed)."""
    if action not in ACTIONS:
        raise bad_request(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    now = _now()
    with repo.unit() as uow:
        stored = uow.read("Task", task_id)
        task = copy.deepcopy(stored.content or {})
        if action == "reject" and not reason.strip():
            raise invalid(
                issue("required", "say why the referral is declined", expression="Task.statusReason"), 422
            )
        if action == "complete" and not provided.strip():
            raise invalid(issue("required", "say what was provided", expression="Procedure.code.text"), 422)
        if action == "note" and not note.strip():
            raise invalid(issue("required", "the note is empty", expression="Task.note"), 422)
        if action in _ACTION_STATUS:
            task["status"] = _ACTION_STATUS[action]
        if action == "reject":
            task["statusReason"] = {"text": reason.strip()[:500]}
        if note.strip():
            task["note"] = [
                *task.get("note", []),
                {"authorString": org_name, "time": now, "text": note.strip()[:2000]},
            ]
        if action == "complete":
            sr = uow.read("ServiceRequest", str(ref_id(task.get("focus"), "ServiceRequest"))).content or {}
            proc: dict[str, Any] = {
                "resourceType": "Procedure",
                "status": "completed",
                "basedOn": [{"reference": f"ServiceRequest/{sr.get('id')}"}],
                "category": {
                    "coding": [
                        c
                        for cat in sr.get("category") or ()
                        for c in cat.get("coding") or ()
                        if c.get("system") == SDOH_SYSTEM
                    ][:1]
                    or [{"system": "http://snomed.info/sct", "code": "410606002"}]
                },
                "code": {
                    "coding": (sr.get("code") or {}).get("coding") or [],
                    "text": provided.strip()[:500],
                },
                "subject": task["for"],
                "performedDateTime": now,
                "performer": [{"actor": {"reference": f"Organization/{organization}", "display": org_name}}],
            }
            if not proc["code"]["coding"]:
                del proc["code"]["coding"]
            pid = uow.create(proc).stored.id
            task["output"] = [
                *task.get("output", []),
                {
                    "type": {"coding": [RESULTING_ACTIVITY]},
                    "valueReference": {"reference": f"Procedure/{pid}"},
                },
            ]
        task["lastModified"] = now
        uow.update("Task", task_id, task, expected_version=int(stored.version_id))
    return str(task["status"])
