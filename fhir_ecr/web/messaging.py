"""Messages between a coach and a patient as FHIR R4 ``Communication`` resources, through the repository.

Mapping (https://hl7.org/fhir/R4/communication.html):

==================  ==========================================================================
the conversation    ``subject`` = the patient (every message of one patient is one thread)
who wrote it        ``sender`` = ``Patient/{id}`` for the patient; the coach's ``Practitioner``
                    (``fhirUser``) for the care team (absent when a developer writes)
to whom             ``recipient``
when                ``sent``
read                ``received`` — set when the recipient opens the thread ("when received":
                    a message in an app is received when its reader sees it)
text                ``payload.contentString``
==================  ==========================================================================

A message is *unread* for the patient when the care team sent it and it has no ``received``; unread for the
care team when the patient sent it and it has no ``received``. A patient's message is *unanswered* while no
care-team message follows it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..coaching import resources as res
from ..outcomes import bad_request
from ..store.repository import FhirRepository
from ..store.search import parse_search

__all__ = [
    "Counts",
    "Message",
    "MAX_MESSAGE_CHARS",
    "Thread",
    "counts",
    "mark_read",
    "send_message",
    "thread",
]

MAX_MESSAGE_CHARS = 4000


@dataclass(frozen=True)
class Message:
    """One message, as the pages show it."""

    id: str
    text: str
    sent: str
    from_patient: bool
    sender: str | None
    read: bool
    stored_at: str = ""  # meta.lastUpdated: orders messages sent within the same second


@dataclass(frozen=True)
class Thread:
    """A patient's messages, oldest first, with the counts the badges show."""

    messages: list[Message]
    unread_for_patient: int
    unread_for_team: int
    unanswered: int  # patient messages after the care team's latest message

    @property
    def last(self) -> Message | None:
        return self.messages[-1] if self.messages else None


def _now(repo: FhirRepository) -> str:
    # Milliseconds, so two messages of one minute keep their order.
    return (
        datetime.fromtimestamp(repo.clock() / 1_000_000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def send_message(
    repo: FhirRepository, patient_id: str, text: str, *, from_patient: bool, sender: str | None = None
) -> dict[str, Any]:
    """Store one message of the patient's thread and return the Communication."""
    body = (text or "").strip()
    if not body:
        raise bad_request("a message needs some text", "payload")
    if len(body) > MAX_MESSAGE_CHARS:
        raise bad_request(f"a message is at most {MAX_MESSAGE_CHARS} characters", "payload")
    patient = f"Patient/{patient_id}"
    comm: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "category": [{"text": "Coaching message"}],
        "subject": {"reference": patient},
        "sent": _now(repo),
        "payload": [{"contentString": body}],
    }
    if from_patient:
        comm["sender"] = {"reference": patient}
    elif sender:
        comm["sender"] = {"reference": sender}
        comm["recipient"] = [{"reference": patient}]
    else:
        comm["recipient"] = [{"reference": patient}]
    return repo.create(comm).stored.content or comm


def _message(content: dict[str, Any], patient: str) -> Message:
    sender = (content.get("sender") or {}).get("reference")
    text = " ".join(
        str(p.get("contentString", "")) for p in content.get("payload") or [] if "contentString" in p
    )
    return Message(
        id=str(content.get("id")),
        text=text,
        sent=str(content.get("sent") or ""),
        from_patient=sender == patient
        or (sender is not None and res.ref_id(sender, "Patient") == patient.split("/", 1)[1]),
        sender=sender,
        read=bool(content.get("received")),
        stored_at=str((content.get("meta") or {}).get("lastUpdated", "")),
    )


def thread(repo: FhirRepository, patient_id: str, limit: int = 50) -> Thread:
    """The patient's latest ``limit`` messages, oldest first, with unread and unanswered counts."""
    query = parse_search(
        "Communication",
        [("subject", f"Patient/{patient_id}"), ("_sort", "-sent")],
        default_count=limit,
        max_count=limit,
    )
    query.total = "none"
    found = [s.content for s in repo.search(query).matches if s.content is not None]
    patient = f"Patient/{patient_id}"
    messages = sorted((_message(c, patient) for c in found), key=lambda m: (m.sent, m.stored_at, m.id))
    unanswered = 0
    for m in reversed(messages):
        if not m.from_patient:
            break
        unanswered += 1
    return Thread(
        messages=messages,
        unread_for_patient=sum(1 for m in messages if not m.from_patient and not m.read),
        unread_for_team=sum(1 for m in messages if m.from_patient and not m.read),
        unanswered=unanswered,
    )


@dataclass(frozen=True)
class Counts:
    """What a caseload row needs of a thread: unanswered patient messages (and when the oldest was sent) and
    messages the care team has not opened."""

    unanswered: int = 0
    oldest_unanswered: str | None = None  # its ``sent``
    unread_for_team: int = 0
    ids: tuple[str, ...] = ()  # the messages counted


def counts(repo: FhirRepository, patient_ids: list[str], since: str, chunk: int = 200) -> dict[str, Counts]:
    """:class:`Counts` of many patients' threads from the messages sent since ``since`` (a date), in one
    statement per ``chunk`` patients (the caseload), reading only the elements the counts need."""
    rows: dict[str, list[Message]] = {}
    with repo.unit(write=False) as uow:
        for i in range(0, len(patient_ids), chunk):
            subjects = ",".join(f"Patient/{p}" for p in patient_ids[i : i + chunk])
            query = parse_search(
                "Communication", [("subject", subjects), ("sent", f"ge{since}")], strict=True
            )
            for content in uow.search_elements(query, ["subject", "sender", "sent", "received", "meta"]):
                pid = res.ref_id(content.get("subject"), "Patient")
                if pid is not None:
                    rows.setdefault(pid, []).append(_message(content, f"Patient/{pid}"))
    out = {}
    for pid, messages in rows.items():
        messages.sort(key=lambda m: (m.sent, m.stored_at, m.id))
        tail = []
        for m in reversed(messages):
            if not m.from_patient:
                break
            tail.append(m)
        out[pid] = Counts(
            len(tail),
            tail[-1].sent if tail else None,
            sum(1 for m in messages if m.from_patient and not m.read),
            tuple(m.id for m in messages),
        )
    return out


def mark_read(repo: FhirRepository, patient_id: str, *, reader_is_patient: bool) -> int:
    """Set ``received`` on the messages the reader has not seen yet; returns how many."""
    patient = f"Patient/{patient_id}"
    query = parse_search("Communication", [("subject", patient)], default_count=500, max_count=500)
    query.total = "none"
    changed = 0
    now = _now(repo)
    with repo.unit() as uow:
        for stored in uow.search(query).matches:
            content = stored.content or {}
            if content.get("received"):
                continue
            if _message(content, patient).from_patient == reader_is_patient:
                continue  # one's own messages are not "unread"
            updated = copy.deepcopy(content)
            updated["received"] = now
            uow.update("Communication", stored.id, updated, expected_version=stored.version_id)
            changed += 1
    return changed
