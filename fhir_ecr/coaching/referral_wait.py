"""Open community referrals and how long each has been waiting on someone (the caseload's "waiting on" reason).

One function, :func:`open_referrals`, reads what is in the store; the referral workflow (issue #17) can later
answer it from its own code without the caseload changing. The rule:

- a referral is a ``ServiceRequest`` with the mECR community-referral profile
  (``profiles/input/fsh/profiles/referral.fsh``: :data:`REFERRAL_PROFILE`) whose ``status`` is ``active``;
- it is **open** while none of its Tasks (``Task.focus`` = the ServiceRequest; the mECR Referral Task tracks
  its fulfilment, as the Gravity SDOHCC Task for Referral Management does) has ended: ``completed``,
  ``rejected``, ``cancelled`` or ``failed`` (FHIR R4 task-status, https://hl7.org/fhir/R4/valueset-task-status.html);
- it has been **waiting** since its latest Task's ``lastModified`` (the last time anyone moved it), else the
  ServiceRequest's ``authoredOn``, counted in whole local days in the practice's time zone;
- it is **overdue** when it waits on the organisation's first answer (Task ``requested`` or ``received``) for
  at least the response days of its SDOH category (``MECR_REFERRAL_RESPONSE_DAYS``; docs/referrals.md).

Reads go through the caller's repository, so scopes and compartments apply and the reads are audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.store.repository import FhirRepository
from fhir_ecr.store.search import parse_search

__all__ = ["ENDED_TASK", "OpenReferral", "REFERRAL_PROFILE", "open_referrals", "response_days"]

REFERRAL_PROFILE = f"{res.CANONICAL}/StructureDefinition/mecr-community-referral"
ENDED_TASK = frozenset({"completed", "rejected", "cancelled", "failed"})
_CHUNK = 200


@dataclass(frozen=True)
class OpenReferral:
    """A community referral still waiting on someone."""

    id: str
    patient_id: str
    text: str  # the service asked for
    performer: str | None  # who it waits on, as the referral names them (display), if it does
    since: date
    waiting_days: int
    status: str = ""  # the latest Task's status ("" without one)
    category: str | None = None  # the Gravity SDOH category code
    overdue: bool = False  # no answer from the organisation within the category's response days


SDOH_SYSTEM = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
AWAITING_ANSWER = frozenset({"requested", "received"})


def response_days(setting: str) -> Callable[[str | None], int]:
    """``MECR_REFERRAL_RESPONSE_DAYS`` (``7`` or ``7,food-insecurity=3,…``) as a function of the category."""
    default, by_category = 7, {}
    for part in (p.strip() for p in str(setting or "").split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        try:
            if sep:
                by_category[key.strip()] = max(int(value), 1)
            else:
                default = max(int(key), 1)
        except ValueError:
            continue  # validated where the setting is read (fhir_ecr.config)
    return lambda category: by_category.get(category or "", default)


def _category(sr: Mapping[str, Any]) -> str | None:
    return next(
        (
            str(c.get("code"))
            for cat in sr.get("category") or ()
            for c in cat.get("coding") or ()
            if c.get("system") == SDOH_SYSTEM
        ),
        None,
    )


def _text(sr: Mapping[str, Any]) -> str:
    code = sr.get("code") or {}
    return str(
        code.get("text")
        or next((c.get("display") for c in code.get("coding", []) or [] if c.get("display")), None)
        or "Referral"
    )


def _local_day(value: Any, tz: str) -> date | None:
    if not isinstance(value, str):
        return None
    return res.effective_local_date({"effectiveDateTime": value}, tz)


def _search(repo: FhirRepository, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    query = parse_search(rtype, params, default_count=1000, max_count=1000)
    query.total = "none"
    out: list[dict[str, Any]] = []
    while True:
        result = repo.search(query)
        out += [s.content for s in result.matches if s.content is not None]
        if result.next_cursor is None:
            return out
        query.cursor = result.next_cursor


def open_referrals(
    repo: FhirRepository,
    patient_ids: Iterable[str],
    today: date,
    tz: str,
    days_for: Callable[[str | None], int] | None = None,
) -> dict[str, list[OpenReferral]]:
    """The open community referrals of each patient (see the module docstring), longest waiting first;
    ``days_for`` gives the response days of a category (default: 7 for all)."""
    days_for = days_for or response_days("7")
    ids = list(dict.fromkeys(patient_ids))
    requests: list[dict[str, Any]] = []
    for i in range(0, len(ids), _CHUNK):
        subjects = ",".join(f"Patient/{p}" for p in ids[i : i + _CHUNK])
        requests += [
            sr
            for sr in _search(repo, "ServiceRequest", [("subject", subjects), ("status", "active")])
            if REFERRAL_PROFILE in ((sr.get("meta") or {}).get("profile") or [])
        ]
    tasks: dict[str, list[dict[str, Any]]] = {}
    sr_ids = [str(sr.get("id")) for sr in requests]
    for i in range(0, len(sr_ids), _CHUNK):
        focus = ",".join(f"ServiceRequest/{s}" for s in sr_ids[i : i + _CHUNK])
        for task in _search(repo, "Task", [("focus", focus)]):
            ref = res.ref_id(task.get("focus"), "ServiceRequest")
            if ref:
                tasks.setdefault(ref, []).append(task)
    out: dict[str, list[OpenReferral]] = {}
    for sr in requests:
        sid = str(sr.get("id"))
        mine = tasks.get(sid, [])
        if any(t.get("status") in ENDED_TASK for t in mine):
            continue
        moved = [d for t in mine if (d := _local_day(t.get("lastModified"), tz)) is not None]
        since = max(moved) if moved else _local_day(sr.get("authoredOn"), tz)
        if since is None:
            since = today
        pid = res.ref_id(sr.get("subject"), "Patient")
        if pid is None:
            continue
        performer = next((p.get("display") for p in sr.get("performer", []) or [] if p.get("display")), None)
        latest = max(
            mine, key=lambda t: str(t.get("lastModified") or t.get("authoredOn") or ""), default=None
        )
        status = str((latest or {}).get("status") or "")
        if performer is None and latest is not None:
            performer = (latest.get("owner") or {}).get("display")
        waiting, category = max((today - since).days, 0), _category(sr)
        out.setdefault(pid, []).append(
            OpenReferral(
                sid,
                pid,
                _text(sr),
                performer,
                since,
                waiting,
                status,
                category,
                status in AWAITING_ANSWER and waiting >= days_for(category),
            )
        )
    for found in out.values():
        found.sort(key=lambda r: (-r.waiting_days, r.id))
    return out
