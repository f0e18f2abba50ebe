"""The referral Task's state machine: which status may follow which, and who may set it.

Source: the Gravity Project's SDOH Clinical Care IG, "Gravity referral workflow" and its Task status rules
(http://hl7.org/fhir/us/sdoh-clinicalcare/ — pages ``referral_workflow.html`` and
``checking_task_status.html``), on top of the FHIR R4 Task state machine
(https://hl7.org/fhir/R4/task.html#statemachine):

- the **practice** (the requester) sets ``draft``, ``requested`` and ``cancelled``;
- the **organisation** (the Task's owner: a community organisation or a coordination platform) sets
  ``received``, ``accepted``, ``rejected``, ``in-progress``, ``on-hold``, ``failed`` and ``completed``, with a
  ``statusReason`` when it rejects, holds or fails, and the work done as ``Task.output`` (a ``Procedure``);
- ``completed``, ``rejected``, ``cancelled`` and ``failed`` end the Task: nothing follows them.

Pure: no I/O. :func:`check_transition` raises a 409 :class:`~fhir_ecr.outcomes.FhirError` naming the statuses
that may follow; the write hook (:mod:`fhir_ecr.referrals.hook`) calls it for every write of a referral Task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..canonical import REFERRAL_TASK_PROFILE as MECR_TASK_PROFILE
from ..outcomes import FhirError, VersionConflict, forbidden, invalid, issue

__all__ = [
    "END",
    "GRAVITY_TASK_PROFILE",
    "MECR_TASK_PROFILE",
    "ORGANISATION_SETS",
    "PRACTICE_SETS",
    "REASON_NEEDED",
    "Role",
    "TRANSITIONS",
    "allowed_next",
    "check_transition",
    "is_referral_task",
    "setter_of",
]

GRAVITY_TASK_PROFILE = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
)

#: Who writes: the practice (coach, care team), the patient (accepts or declines in their app: the practice's
#: side), the organisation the Task is owned by, or ``any`` (the developer principal; mECR's own loaders skip
#: the checks entirely).
Role = Literal["practice", "patient", "organisation", "any"]

PRACTICE_SETS = frozenset({"draft", "requested", "cancelled"})
ORGANISATION_SETS = frozenset(
    {"received", "accepted", "rejected", "in-progress", "on-hold", "failed", "completed"}
)
END = frozenset({"completed", "rejected", "cancelled", "failed"})
#: Statuses that need ``Task.statusReason`` (Gravity: the organisation says why it declined, holds or failed;
#: the practice why it withdrew).
REASON_NEEDED = frozenset({"rejected", "cancelled", "on-hold", "failed"})

TRANSITIONS: Mapping[str, frozenset[str]] = {
    "draft": frozenset({"requested", "cancelled"}),
    "requested": frozenset({"received", "accepted", "rejected", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"in-progress", "on-hold", "completed", "failed", "cancelled"}),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled"}),
    "on-hold": frozenset({"in-progress", "completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "rejected": frozenset(),
    "cancelled": frozenset(),
    "failed": frozenset(),
}
#: What a new referral Task may start as (the practice creates it; ``requested`` sends it at once).
INITIAL = frozenset({"draft", "requested"})
#: What the organisation may change on an update besides ``status`` (Gravity: it reports progress, reasons,
#: notes and outputs; the request itself — focus, patient, owner, requester — is the practice's).
ORGANISATION_FIELDS = frozenset(
    {
        "status",
        "statusReason",
        "businessStatus",
        "note",
        "output",
        "lastModified",
        "meta",
        "text",
        "executionPeriod",
    }
)
#: What stays as the practice created it, whoever writes (the Task follows one referral of one person).
FIXED_FIELDS = ("focus", "for", "requester", "intent", "code")


def is_referral_task(content: Mapping[str, Any] | None) -> bool:
    """A Task of the mECR referral profile or Gravity's Task for Referral Management."""
    if not content or content.get("resourceType") != "Task":
        return False
    profiles = (content.get("meta") or {}).get("profile") or ()
    return MECR_TASK_PROFILE in profiles or GRAVITY_TASK_PROFILE in profiles


def setter_of(status: str) -> Role | None:
    """Who sets ``status``: ``practice`` or ``organisation`` (None for a status the workflow does not use)."""
    if status in PRACTICE_SETS:
        return "practice"
    if status in ORGANISATION_SETS:
        return "organisation"
    return None


def _may_set(role: Role, status: str) -> bool:
    side = setter_of(status)
    return role == "any" or side == role or (role == "patient" and side == "practice")


def allowed_next(status: str | None, role: Role = "any") -> list[str]:
    """The statuses ``role`` may move a Task in ``status`` to (None: a new Task), in workflow order."""
    nxt = INITIAL if status is None else TRANSITIONS.get(status, frozenset())
    order = list(TRANSITIONS)
    return sorted((s for s in nxt if _may_set(role, s)), key=order.index)


def _refuse(old: str | None, new: str, role: Role) -> FhirError:
    may = allowed_next(old, role)
    where = f"from {old!r}" if old is not None else "for a new referral Task"
    who = "" if role == "any" else f" by the {role}"
    allowed = ", ".join(may) if may else "none (the referral has ended)" if old in END else "none"
    return VersionConflict(
        issue(
            "business-rule",
            f"status {new!r} is not allowed {where}{who}; allowed: {allowed}",
            expression="Task.status",
        ),
        409,
    )


def _same(a: Any, b: Any) -> bool:
    return (a or None) == (b or None)


def check_transition(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, role: Role) -> None:
    """Refuse a write of a referral Task that the workflow does not allow (``old`` None: a create; ``new`` None:
    a delete). 409 for an illegal status change (naming the allowed ones), 403 for a change ``role`` may not
    make, 422 for a missing reason."""
    if new is None:
        if role not in ("any",):
            raise forbidden(
                "a referral Task is not deleted: cancel it (the practice) or reject it (the organisation)"
            )
        return
    status = str(new.get("status") or "")
    before = None if old is None else str(old.get("status") or "")
    if old is None:
        if role in ("organisation", "patient"):
            raise forbidden(f"the {role} updates referral Tasks; the practice creates them")
        if status not in INITIAL or not _may_set(role, status):
            raise _refuse(None, status, role)
    else:
        for name in FIXED_FIELDS:
            if not _same(old.get(name), new.get(name)):
                raise forbidden(f"Task.{name} of a referral does not change once created")
        if role == "organisation":
            changed = sorted(
                k
                for k in set(old) | set(new)
                if k not in ORGANISATION_FIELDS | {"id", "resourceType"} and not _same(old.get(k), new.get(k))
            )
            if changed:
                raise forbidden(
                    f"the organisation may change only the status, reasons, notes and outputs of a "
                    f"referral Task, not {', '.join(changed)}"
                )
        elif before not in ("draft", None) and not _same(old.get("owner"), new.get("owner")):
            raise forbidden("the owner of a referral Task changes only while it is a draft")
        if status != before:
            if status not in TRANSITIONS.get(before or "", frozenset()) or not _may_set(role, status):
                raise _refuse(before, status, role)
        elif role == "organisation" and before in END:
            raise _refuse(before, status, role)
    if (
        status in REASON_NEEDED
        and status != before
        and not (new.get("statusReason") or {}).get("text")
        and not (new.get("statusReason") or {}).get("coding")
    ):
        raise invalid(
            issue(
                "required",
                f"a referral Task that is {status} needs a statusReason (why)",
                expression="Task.statusReason",
            ),
            422,
        )
