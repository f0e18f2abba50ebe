"""Finding community resources for a patient: the search behind the coach's directory page (docs/community.md).

It only composes FHIR searches (``HealthcareService`` with the mECR parameters of ``store/mecr_params.py``) through
the caller's repository, so the same scope and visibility rules apply as on the API, and shapes the matches for
the page: each service with its organization, its nearest site and the distance to the search centre.

- **Needs**: the Gravity SDOH categories of the patient's active Conditions and Goals
  (``category``/``code`` codings in ``SDOHCC-CodeSystemTemporaryCodes``).
- **Where**: a ZIP code (the centroid of the directory's Locations with that postal code; no geocoding
  service), or the patient's address's postal code.
- **Open now**: the current minute of the week in the practice's time zone (``open-at``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mappings.community import CATEGORIES, SDOHCC_CATEGORY

from ..store.mecr_params import DAYS, distance_km
from ..store.repository import FhirRepository
from ..store.search import parse_search

__all__ = ["DirectoryQuery", "Found", "find_services", "patient_needs", "zip_centroid", "LANGUAGES"]

#: Languages offered in the page's filter (BCP-47 code -> name); any other code works through the API.
LANGUAGES = {
    "en": "English",
    "es": "Spanish",
    "ar": "Arabic",
    "zh": "Chinese",
    "fr": "French",
    "vi": "Vietnamese",
}


@dataclass
class DirectoryQuery:
    """What the coach asked for (empty fields do not filter)."""

    category: str = ""
    keyword: str = ""
    postal_code: str = ""
    radius_km: float = 10.0
    open_now: bool = False
    day: str = ""
    language: str = ""
    age: int | None = None
    limit: int = 30


@dataclass
class Found:
    """The page's answer: the services shown, the centre used, and what could not be done."""

    services: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    center: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)


def _all(
    repo: FhirRepository, rtype: str, params: list[tuple[str, str]], limit: int = 1000
) -> list[dict[str, Any]]:
    query = parse_search(rtype, params, default_count=limit, max_count=limit)
    query.total = "none"
    return [s.content for s in repo.search(query).matches if s.content is not None]


def zip_centroid(repo: FhirRepository, postal_code: str) -> tuple[float, float] | None:
    """The mean position of the directory's Locations with ``postal_code`` (None when there is none)."""
    points = [
        (loc["position"]["latitude"], loc["position"]["longitude"])
        for loc in _all(repo, "Location", [("address-postalcode", postal_code)])
        if isinstance(loc.get("position"), dict) and "latitude" in loc["position"]
    ]
    if not points:
        return None
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def _codes(concepts: Any) -> list[str]:
    return [
        str(c.get("code"))
        for cc in concepts or ()
        for c in (cc.get("coding") or ())
        if c.get("system") == SDOHCC_CATEGORY and c.get("code") in CATEGORIES
    ]


def patient_needs(repo: FhirRepository, patient_id: str) -> tuple[list[str], str]:
    """(SDOH category codes of the patient's active Conditions and Goals, the postal code of their address)."""
    needs: list[str] = []
    for cond in _all(repo, "Condition", [("patient", f"Patient/{patient_id}")], 200):
        status = [c.get("code") for c in (cond.get("clinicalStatus") or {}).get("coding") or ()]
        if not status or "active" in status:
            needs += _codes(cond.get("category")) + _codes([cond.get("code") or {}])
    for goal in _all(repo, "Goal", [("patient", f"Patient/{patient_id}")], 200):
        if goal.get("lifecycleStatus") in ("proposed", "planned", "accepted", "active", "on-hold"):
            needs += _codes(goal.get("category"))
    patient = repo.read("Patient", patient_id).content or {}
    postal = next((a.get("postalCode") for a in patient.get("address") or () if a.get("postalCode")), "")
    return list(dict.fromkeys(needs)), str(postal or "")


def _now_minute(now: datetime, tz: str) -> str:
    local = now.astimezone(ZoneInfo(tz))
    return f"{DAYS[local.weekday()]}-{local.hour:02d}:{local.minute:02d}"


def _hours(svc: dict[str, Any]) -> list[str]:
    out = []
    for t in svc.get("availableTime") or ():
        days = ", ".join(d.capitalize() for d in t.get("daysOfWeek") or ())
        if t.get("allDay"):
            out.append(f"{days}: all day")
        elif t.get("availableStartTime"):
            out.append(f"{days}: {t['availableStartTime'][:5]}-{str(t.get('availableEndTime', ''))[:5]}")
    return out


def _address(loc: dict[str, Any] | None) -> str:
    a = (loc or {}).get("address") or {}
    parts = [
        ", ".join(a.get("line") or ()),
        a.get("city"),
        " ".join(p for p in (a.get("state"), a.get("postalCode")) if p),
    ]
    return ", ".join(p for p in parts if p)


def _card(
    svc: dict[str, Any], included: dict[str, dict[str, Any]], center: tuple[float, float] | None
) -> dict[str, Any]:
    found = [included.get(str(ref.get("reference"))) for ref in svc.get("location") or ()]
    sites = [s for s in found if s is not None]
    distance = None
    nearest = sites[0] if sites else None
    if center is not None:
        located = [
            (distance_km(*center, s["position"]["latitude"], s["position"]["longitude"]), s)
            for s in sites
            if isinstance(s.get("position"), dict)
        ]
        if located:
            distance, nearest = min(located, key=lambda x: x[0])
    org = included.get(str((svc.get("providedBy") or {}).get("reference")))
    phone = next((t.get("value") for t in svc.get("telecom") or () if t.get("system") == "phone"), None)
    return {
        "id": svc["id"],
        "name": svc.get("name") or svc["id"],
        "organization": (org or {}).get("name") or (svc.get("providedBy") or {}).get("display") or "",
        "categories": [CATEGORIES[c] for c in _codes(svc.get("category"))],
        "description": svc.get("comment") or "",
        "address": _address(nearest),
        "distance_km": distance,
        "phone": phone,
        "hours": _hours(svc),
        "languages": [
            lang.get("text") or next((c.get("code") for c in lang.get("coding") or ()), "")
            for lang in svc.get("communication") or ()
        ],
        "eligibility": [e.get("comment") for e in svc.get("eligibility") or () if e.get("comment")],
    }


def find_services(repo: FhirRepository, q: DirectoryQuery, *, now: datetime, tz: str) -> Found:
    """The services matching ``q`` (nearest first when a place is given), at most ``q.limit``."""
    found = Found()
    params: list[tuple[str, str]] = [("active", "true")]
    if q.category:
        params.append(("category", f"{SDOHCC_CATEGORY}|{q.category}"))
    for word in q.keyword.split()[:5]:
        params.append(("keyword", word))
    if q.postal_code:
        found.center = zip_centroid(repo, q.postal_code)
        if found.center is None:
            found.notes.append(f"No directory location has the ZIP code {q.postal_code}: distance not used.")
        else:
            lat, lon = found.center
            params.append(("location.near", f"{lat:.5f}|{lon:.5f}|{q.radius_km:g}|km"))
    if q.open_now:
        params.append(("open-at", _now_minute(now, tz)))
    if q.day:
        params.append(("available-day", q.day))
    if q.language:
        params.append(("communication", q.language))
    if q.age is not None:
        params.append(("age", str(q.age)))
    # Enough matches to sort by distance, then the page shows the nearest ``limit``.
    query = parse_search(
        "HealthcareService",
        params + [("_include", "HealthcareService:location"), ("_include", "HealthcareService:organization")],
        default_count=200,
        max_count=200,
    )
    result = repo.search(query)
    included = {f"{s.resource_type}/{s.id}": s.content for s in result.included if s.content is not None}
    cards = [_card(s.content, included, found.center) for s in result.matches if s.content is not None]
    if found.center is not None:
        cards.sort(key=lambda c: (c["distance_km"] is None, c["distance_km"] or 0.0, c["name"]))
    found.total = result.total if result.total is not None else len(cards)
    found.services = cards[: q.limit]
    return found
