"""Coaching sessions as ``mecr-coaching-session`` Encounters, individual or group, with a structured note.

What billing will need later is carried, without any billing logic:

=================  ===================================================================================
who                ``Encounter.subject`` (the person) and ``participant`` type PPRF -> the coach's
                   PractitionerRole (``mecr-coach``; it carries the NPI); ``serviceProvider`` = its
                   organization
when / how long    ``period.start`` / ``period.end``; ``length`` = whole minutes between them (UCUM min)
how                ``class`` AMB (in person) or VR (virtual) + the ``coaching-session-modality``
                   extension (in-person / video / audio-only), as invariant mecr-enc-3 pairs them
individual/group   ``type``: coaching-session-initial / -follow-up / -group (CPT 0591T / 0592T / 0593T)
diagnoses          ``diagnosis.condition`` (the person's Conditions the session addresses)
reason             ``reasonCode`` (text) / ``reasonReference``
=================  ===================================================================================

A **group session** (``Group`` of at least two patients) is one group-level Encounter whose ``subject`` is the
``Group`` (IG invariant mecr-enc-5) plus one Encounter per participant, subject that Patient, with ``partOf`` ->
the group-level one (mecr-enc-6); billing counts the participant Encounters only (those with ``partOf``).

The structured note (reviewed, barriers, next steps, goals discussed) is a ``DocumentReference`` per
participant Encounter (R4 Encounter has no note element; DocumentReference is what an EMR files as a note):
type LOINC 11506-3 "Progress note", ``context.encounter`` -> the Encounter, ``context.related`` -> the goals
discussed, ``author`` the coach, and one ``text/markdown`` attachment with the sections ``## Reviewed``,
``## Barriers`` and ``## Next steps`` (:func:`session_note_document` / :func:`parse_session_note`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.service import CoachingService, business_rule, unknown_reference
from fhir_ecr.outcomes import FhirError, bad_request, issue
from fhir_ecr.store.repository import Stored, UnitOfWork

__all__ = [
    "MODALITIES",
    "SESSION_TYPES",
    "SessionNote",
    "SessionResult",
    "parse_session_note",
    "record_session",
    "session_from_parameters",
    "session_note_document",
]

MODALITIES = {"in-person": "AMB", "video": "VR", "audio-only": "VR"}
SESSION_TYPES = {
    "initial": "coaching-session-initial",
    "follow-up": "coaching-session-follow-up",
    "group": "coaching-session-group",
}
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CLASS_DISPLAY = {"AMB": "ambulatory", "VR": "virtual"}
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


@dataclass(frozen=True)
class SessionNote:
    """The coach's structured note of a session."""

    reviewed: str = ""
    barriers: str = ""
    next_steps: str = ""


@dataclass
class SessionResult:
    """The Encounters written: the group-level one (group sessions only), one per participant, and notes."""

    group: Stored | None
    encounters: list[Stored] = field(default_factory=list)
    notes: list[Stored] = field(default_factory=list)

    def bundle(self, fhir_base: str) -> dict[str, Any]:
        """A ``collection`` Bundle of everything written."""
        items = [*([self.group] if self.group else []), *self.encounters, *self.notes]
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": f"{fhir_base}/{s.resource_type}/{s.id}", "resource": s.content} for s in items
            ],
        }


_SECTIONS = (("Reviewed", "reviewed"), ("Barriers", "barriers"), ("Next steps", "next_steps"))


def session_note_document(
    patient_id: str,
    encounter_id: str,
    coach_ref: str,
    start: datetime,
    end: datetime,
    note: SessionNote,
    goals: Sequence[str],
) -> dict[str, Any]:
    """The DocumentReference holding one participant's structured session note."""
    text = "\n\n".join(
        f"## {title}\n{getattr(note, attr).strip()}"
        for title, attr in _SECTIONS
        if getattr(note, attr).strip()
    )
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {
            "coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}],
            "text": "Coaching session note",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": _iso(end),
        "author": [{"reference": coach_ref}],
        "description": "Coaching session note",
        "content": [
            {
                "attachment": {
                    "contentType": "text/markdown; charset=utf-8",
                    "data": base64.b64encode(text.encode()).decode(),
                    "title": "Coaching session note",
                }
            }
        ],
        "context": {
            "encounter": [{"reference": f"Encounter/{encounter_id}"}],
            "period": {"start": _iso(start), "end": _iso(end)},
        },
    }
    if goals:
        doc["context"]["related"] = [{"reference": g} for g in goals]
    return doc


def parse_session_note(document: Mapping[str, Any]) -> SessionNote:
    """The :class:`SessionNote` of a session-note DocumentReference."""
    data = ((document.get("content") or [{}])[0].get("attachment") or {}).get("data", "")
    text = base64.b64decode(data).decode() if data else ""
    found = {attr: "" for _, attr in _SECTIONS}
    titles = {title: attr for title, attr in _SECTIONS}
    for block in text.split("## ")[1:]:
        title, _, body = block.partition("\n")
        if title.strip() in titles:
            found[titles[title.strip()]] = body.strip()
    return SessionNote(**found)


def _instant(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise bad_request(f"{what} must be a dateTime with a time zone offset", what)
    return value


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _coach(uow: UnitOfWork, coach: str) -> dict[str, Any]:
    cid = res.ref_id(coach, "PractitionerRole") or (coach if "/" not in coach else None)
    if cid is None:
        raise bad_request(f"coach must reference a PractitionerRole, not {coach!r}", "coach")
    try:
        role = uow.read("PractitionerRole", cid).content or {}
    except FhirError:
        raise unknown_reference(f"PractitionerRole/{cid} does not exist", "coach") from None
    is_coach = any(
        c.get("system") == res.MECR_CODES and c.get("code") == "health-and-wellness-coach"
        for cc in role.get("code", []) or []
        for c in cc.get("coding", []) or []
    )
    if not is_coach:
        raise business_rule(
            f"PractitionerRole/{cid} is not a health and wellness coach (mecr-coach)", "coach"
        )
    return role


def _owned(uow: UnitOfWork, rtype: str, refs: Sequence[str], patients: set[str], what: str) -> dict[str, str]:
    """``{reference: patient id}`` for each reference, checking it exists and belongs to a participant."""
    out = {}
    for raw in refs:
        rid = res.ref_id(raw, rtype) or (raw if "/" not in raw else None)
        if rid is None:
            raise bad_request(f"{what} must reference a {rtype}, not {raw!r}", what)
        try:
            content = uow.read(rtype, rid).content or {}
        except FhirError:
            raise unknown_reference(f"{rtype}/{rid} does not exist", what) from None
        owner = res.ref_id(content.get("subject") or content.get("patient"), "Patient")
        if owner not in patients:
            raise business_rule(f"{rtype}/{rid} is not about a participant of this session", what)
        out[f"{rtype}/{rid}"] = owner
    return out


def record_session(
    service: CoachingService,
    subject: str,
    *,
    coach: str,
    start: datetime,
    end: datetime,
    modality: str,
    session_type: str = "follow-up",
    reasons: Sequence[str] = (),
    goals: Sequence[str] = (),
    diagnoses: Sequence[str] = (),
    note: SessionNote | None = None,
) -> SessionResult:
    """Record a finished coaching session for ``Patient/{id}`` or, for a group session, ``Group/{id}``."""
    _instant(start, "start")
    _instant(end, "end")
    if end <= start:
        raise bad_request("a session ends after it starts (mecr-enc-1)", "end")
    if end > service.now():
        raise business_rule("a finished session cannot end in the future", "end")
    if modality not in MODALITIES:
        raise FhirError(
            issue(
                "value",
                f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}",
                expression="modality",
            ),
            400,
        )
    group_id = res.ref_id(subject, "Group")
    if group_id is None and session_type not in ("initial", "follow-up"):
        raise FhirError(
            issue(
                "value",
                f"sessionType must be initial or follow-up, not {session_type!r}",
                expression="sessionType",
            ),
            400,
        )
    with service.repo.unit() as uow:
        role = _coach(uow, coach)
        coach_ref = f"PractitionerRole/{res.ref_id(coach, 'PractitionerRole') or coach}"
        if group_id is not None:
            group = uow.read("Group", group_id).content or {}
            members = [
                res.ref_id(m.get("entity"), "Patient")
                for m in group.get("member", []) or []
                if not m.get("inactive")
            ]
            patients = [m for m in members if m]
            if len(patients) < 2:
                raise business_rule(
                    f"Group/{group_id} needs at least two active patient members for a group session",
                    "subject",
                )
            kind = "group"
        else:
            pid = res.ref_id(subject, "Patient")
            if pid is None:
                raise bad_request(f"a session is for a Patient or a Group, not {subject!r}", "subject")
            uow.read("Patient", pid)
            patients, kind = [pid], session_type
        participants = set(patients)
        goal_owner = _owned(uow, "Goal", goals, participants, "goal")
        diagnosis_owner = _owned(uow, "Condition", diagnoses, participants, "diagnosis")
        minutes = int((end - start).total_seconds() // 60)

        def encounter(pid: str | None, part_of: str | None) -> dict[str, Any]:
            # pid None: the group-level Encounter, whose subject is the Group (IG invariant mecr-enc-5).
            cls = MODALITIES[modality]
            enc: dict[str, Any] = {
                "resourceType": "Encounter",
                "meta": {"profile": [res.SESSION_PROFILE]},
                "extension": [
                    {
                        "url": res.MODALITY_URL,
                        "valueCoding": {"system": res.MODALITY_SYSTEM, "code": modality},
                    }
                ],
                "status": "finished",
                "class": {"system": _ACT_CODE, "code": cls, "display": _CLASS_DISPLAY[cls]},
                "type": [{"coding": [{"system": res.MECR_CODES, "code": SESSION_TYPES[kind]}]}],
                "subject": {"reference": f"Patient/{pid}" if pid is not None else f"Group/{group_id}"},
                "participant": [
                    {
                        "type": [{"coding": [{"system": _PARTICIPATION, "code": "PPRF"}]}],
                        "individual": {"reference": coach_ref},
                    }
                ],
                "period": {"start": _iso(start), "end": _iso(end)},
                "length": {
                    "value": minutes,
                    "unit": "min",
                    "system": "http://unitsofmeasure.org",
                    "code": "min",
                },
            }
            if reasons:
                enc["reasonCode"] = [{"text": r} for r in reasons]
            dx = [ref for ref, owner in diagnosis_owner.items() if owner == pid]
            if dx and (group_id is None or part_of is not None):  # bill the participant, not the container
                enc["diagnosis"] = [
                    {"condition": {"reference": ref}, "rank": i + 1} for i, ref in enumerate(dx)
                ]
            if role.get("organization"):
                enc["serviceProvider"] = role["organization"]
            if part_of:
                enc["partOf"] = {"reference": part_of}
            return enc

        result = SessionResult(group=None)
        parent = None
        if group_id is not None:
            result.group = uow.create(encounter(None, None)).stored
            parent = f"Encounter/{result.group.id}"
        for pid in patients:
            stored = uow.create(encounter(pid, parent)).stored
            result.encounters.append(stored)
            own_goals = [ref for ref, owner in goal_owner.items() if owner == pid]
            if note is None and not own_goals:
                continue
            result.notes.append(
                uow.create(
                    session_note_document(
                        pid, stored.id, coach_ref, start, end, note or SessionNote(), own_goals
                    )
                ).stored
            )
        uow.flush()
        return result


def session_from_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :func:`record_session` from operation parameters (strings parsed, 400 if bad)."""

    def text(name: str, required: bool = False) -> str | None:
        value = values.get(name)
        if isinstance(value, list):
            raise bad_request(f"{name} is given more than once", name)
        if value is None:
            if required:
                raise FhirError(issue("required", f"parameter {name} is required", expression=name), 400)
            return None
        if isinstance(value, Mapping) and "reference" in value:
            return str(value["reference"])
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string", name)
        return value

    def many(name: str) -> list[str]:
        raw = values.get(name)
        items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        out = []
        for item in items:
            if isinstance(item, Mapping) and "reference" in item:
                out.append(str(item["reference"]))
            elif isinstance(item, str):
                out.append(item)
            else:
                raise bad_request(f"{name} must be a string or Reference", name)
        return out

    def when(name: str) -> datetime:
        raw = text(name, required=True)
        try:
            parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{name} must be a dateTime, not {raw!r}", name) from None
        return _instant(parsed, name)

    note = SessionNote(text("reviewed") or "", text("barriers") or "", text("nextSteps") or "")
    return {
        "coach": text("coach", required=True),
        "start": when("start"),
        "end": when("end"),
        "modality": text("modality", required=True),
        "session_type": text("sessionType") or "follow-up",
        "reasons": many("reason"),
        "goals": many("goal"),
        "diagnoses": many("diagnosis"),
        "note": note if any((note.reviewed, note.barriers, note.next_steps)) else None,
    }
