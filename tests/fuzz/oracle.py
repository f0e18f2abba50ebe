"""What a fuzzed response must never be: a 5xx, an error that is not an OperationOutcome, or (for patient A)
anything that shows patient B's data.

B's data is recognised by the typed markers of :mod:`tests.fuzz.seed` and by the ids of B's resources that the
request did not itself name (an id the caller sent and the server echoes, e.g. "Patient/fuzz-b is not known",
tells the caller nothing).
"""

from __future__ import annotations

from typing import Any

from .seed import B_MARKER, B, Seeded, marker
from .strategies import Req

__all__ = ["KNOWN_LEAKS", "check_response", "leaked"]

_API = ("/fhir", "/api", "/auth")

#: Compartment leaks that another branch is closing (issue #12), with the reason. Each has a strict xfail test in
#: ``test_known_leaks.py``, and :func:`_excused` keeps the fuzzer from failing on exactly that leak (and nothing
#: more). Once the fix is merged, remove the entry here, its branch in :func:`_excused` and the xfail mark.
KNOWN_LEAKS: dict[str, str] = {
    "device": "#12.6 shared resources: a patient can search and read Devices that their own data does not "
              "reference (patient B's Device, its name)",
    "group-members": "#12.6 shared resources: a Group in a patient's compartment shows the other members' "
                     "Patient references",
    "patch-test": "#12.1 JSON Patch test as an oracle: a PATCH of another patient's resource is applied before "
                  "access is checked, and the 422 quotes the stored value",
    "audit": "#12.5 AuditEvents leak the caseload: the event of a coach's search is placed in each patient's "
             "record and names every patient (and resource) the search returned",
}


def _excused(req: Req, status: int, found: dict[str, list[str]], body: str) -> set[str]:
    """The leaked types that a known leak explains (see :data:`KNOWN_LEAKS`)."""
    excused = set()
    if status == 422 and (req.method == "PATCH" or b'"PATCH"' in (req.body or b"")):
        excused.update(found)
    if '"resourceType":"AuditEvent"' in body and any(k in req.path for k in ("AuditEvent", "$everything",
                                                                             "_history")):
        excused.update(found)
    if "Device" in found:
        excused.add("Device")
    if found.get("Patient") == [B] and ('"resourceType":"Group"' in body or '"resourceType":"Device"' in body):
        excused.add("Patient")  # B's Patient reference, inside the shared Group or B's Device
    return excused


def leaked(req: Req, body: str, world: Seeded, told: set[str] = frozenset()) -> dict[str, list[str]]:
    """B's resource types seen in a response ``body`` to A, each with the evidence (markers, ids); what A sent
    in this request or before (``told``) does not count."""
    sent = req.text().lower()
    text = body.lower()
    found: dict[str, list[str]] = {}
    for rtype, ids in world.b_ids.items():
        evidence = [e for e in [marker(B_MARKER, rtype), *ids] if e not in told]
        seen = [e for e in evidence if e.lower() in text and e.lower() not in sent]
        if seen:
            found[rtype] = seen
    if not found and B_MARKER.lower() in text and B_MARKER.lower() not in sent:
        found["?"] = [B_MARKER]
    return found


def check_response(who: str, req: Req, resp: Any, world: Seeded, told: set[str] = frozenset()) -> None:
    """Assert the oracle on one response (the assertion message carries the request to reproduce it)."""
    status = resp.status_code
    assert status < 500, f"{status} for {req!r}: {resp.text[:300]}"
    ctype = resp.headers.get("content-type", "")
    if status >= 400 and req.path.startswith(_API) and ctype.startswith("application/fhir+json"):
        body = resp.json()
        assert body.get("resourceType") == "OperationOutcome", f"{status} without an OperationOutcome for {req!r}"
    if who == "patient":
        found = leaked(req, resp.text, world, told)
        found = {t: e for t, e in found.items() if t not in _excused(req, status, found, resp.text)}
        assert not found, f"patient A saw {found} of patient B ({status}) for {req!r}: {resp.text[:300]}"
