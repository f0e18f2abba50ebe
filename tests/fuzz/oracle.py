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

__all__ = ["ALLOWED_REFERENCES", "check_response", "leaked"]

_API = ("/fhir", "/api", "/auth")

#: What A may legitimately see of B (docs/security.md, "Known limits"): a resource in A's record may *reference*
#: B — the shared walking group lists both members — so B's Patient id inside a Group A belongs to is allowed; B's
#: data never is.
ALLOWED_REFERENCES = "a Group in A's record lists B among its members (a reference, not B's data)"


def _excused(req: Req, status: int, found: dict[str, list[str]], body: str) -> set[str]:
    """The leaked types that :data:`ALLOWED_REFERENCES` explains."""
    if (
        found.get("Patient") == [B]
        and '"resourceType":"Group"' in body
        and B_MARKER.lower() not in body.lower()
    ):
        return {"Patient"}
    return set()


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
        assert body.get("resourceType") == "OperationOutcome", (
            f"{status} without an OperationOutcome for {req!r}"
        )
    if who == "patient":
        found = leaked(req, resp.text, world, told)
        found = {t: e for t, e in found.items() if t not in _excused(req, status, found, resp.text)}
        assert not found, f"patient A saw {found} of patient B ({status}) for {req!r}: {resp.text[:300]}"
