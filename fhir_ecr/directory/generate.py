"""Deterministic, made-up HSDS directories: the demo's Springfield IL directory (``examples/demo/directory``) and
the large directories of the tests and the benchmark. Every name, phone number and address is invented; the
coordinates are spread around real ZIP-code areas so that distance search has something to find.
"""

from __future__ import annotations

import random
import uuid
from typing import Any, Final

from mappings.community import Directory

__all__ = ["SPRINGFIELD_ZIPS", "generate_directory"]

#: ZIP code -> an approximate centre (latitude, longitude) of the area, Springfield, Illinois.
SPRINGFIELD_ZIPS: Final = {
    "62701": (39.8000, -89.6495),
    "62702": (39.8230, -89.6440),
    "62703": (39.7720, -89.6270),
    "62704": (39.7730, -89.6830),
    "62707": (39.7670, -89.5950),
    "62711": (39.7650, -89.7350),
    "62712": (39.7410, -89.6080),
}
_NS: Final = uuid.UUID("1b3c8a52-6f0e-5a8e-8f5e-0d6c2a1b9e77")
# (category hint, service name templates, taxonomy term name)
_KINDS: Final = [
    (
        "food",
        ["{p} Food Pantry", "{p} Community Meals", "{p} Mobile Food Bank", "Groceries for Seniors at {p}"],
        "Food Pantries",
    ),
    ("housing", ["{p} Rental Assistance", "{p} Eviction Prevention Clinic"], "Rent Payment Assistance"),
    ("homeless", ["{p} Emergency Shelter"], "Homeless Shelter"),
    ("transport", ["{p} Medical Rides", "{p} Bus Pass Program"], "Transportation"),
    (
        "social",
        ["{p} Walking Group", "{p} Diabetes Peer Support Group", "{p} Senior Center Exercise Class"],
        "Peer Support",
    ),
    ("jobs", ["{p} Job Readiness Workshop"], "Employment Preparation"),
    ("utility", ["{p} Energy Assistance Program"], "Utility Assistance"),
    ("counsel", ["{p} Counseling Center"], "Counseling Services"),
    ("insurance", ["{p} Medicaid Enrollment Help"], "Health Insurance Information"),
    ("digital", ["{p} Public Computer Lab and Internet Access"], "Internet Access"),
]
#: The order kinds come in (food, housing, rides and groups more often, as in a real directory).
_ROTATION: Final = (0, 1, 3, 4, 0, 5, 2, 6, 0, 7, 3, 8, 4, 0, 9, 1)
_PLACES: Final = [
    "Westside",
    "Eastside",
    "Northgate",
    "Lincoln Park",
    "Washington Street",
    "Capitol Area",
    "Sangamon",
    "Southtown",
    "Riverside",
    "Oak Ridge",
    "Harvard Park",
    "Enos Park",
    "Iles Park",
    "Bunn Park",
    "Lake Springfield",
    "Benedictine",
    "St. John's",
    "Grace",
    "Unity",
    "Hope House",
]
_STREETS: Final = [
    "Main St",
    "Lincoln Ave",
    "Washington St",
    "Jefferson St",
    "Monroe St",
    "Adams St",
    "Capitol Ave",
    "Grand Ave",
    "MacArthur Blvd",
    "Wabash Ave",
    "Stevenson Dr",
    "Dirksen Pkwy",
]
_LANGS: Final = [
    ("es", "Spanish"),
    ("ar", "Arabic"),
    ("zh", "Chinese"),
    ("fr", "French"),
    ("vi", "Vietnamese"),
]


def _id(*parts: Any) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def _schedules(rng: random.Random, owner: str) -> list[dict[str, Any]]:
    pattern = rng.choice(["weekdays", "weekdays", "saturday", "evenings", "mwf"])
    if pattern == "weekdays":
        rows = [("MO,TU,WE,TH,FR", "09:00", "17:00", "Monday to Friday 9am to 5pm")]
    elif pattern == "saturday":
        rows = [
            ("MO,TU,WE,TH,FR", "08:30", "16:30", "Weekdays 8:30am to 4:30pm"),
            ("SA", "10:00", "14:00", "Saturdays 10am to 2pm"),
        ]
    elif pattern == "evenings":
        rows = [("TU,TH", "18:00", "20:00", "Tuesday and Thursday evenings 6pm to 8pm")]
    else:
        rows = [("MO,WE,FR", "10:00", "15:00", "Monday, Wednesday and Friday 10am to 3pm")]
    return [
        {
            "id": _id(owner, "schedule", i),
            "freq": "WEEKLY",
            "byday": d,
            "opens_at": o,
            "closes_at": c,
            "description": text,
        }
        for i, (d, o, c, text) in enumerate(rows)
    ]


def generate_directory(
    services: int,
    *,
    seed: int = 17,
    zips: dict[str, tuple[float, float]] | None = None,
    spread_km: float = 2.0,
    region: str = "Springfield",
    state: str = "IL",
) -> Directory:
    """A directory of ``services`` services (3 per organization, at one or two sites of it), deterministic for a
    ``seed``. Locations lie within about ``spread_km`` of a centre of one of ``zips`` (default: Springfield's)
    and carry that ZIP code."""
    rng = random.Random(seed)
    areas = zips or SPRINGFIELD_ZIPS
    codes = sorted(areas)
    d = Directory()
    deg = spread_km / 111.0
    org_id = ""
    org_locations: list[Any] = []
    for n in range(services):
        if n % 3 == 0:  # an organization offers three services at its one or two sites
            place = _PLACES[(n // 3) % len(_PLACES)]
            org_id = _id(seed, "organization", n // 3)
            d.organizations[org_id] = {
                "id": org_id,
                "name": f"{place} Community Services {n // 3 + 1}",
                "description": f"A community organization serving {region} residents.",
                "email": f"info{n // 3 + 1}@example.org",
                "website": f"https://example.org/org/{n // 3 + 1}",
                "phones": [
                    {
                        "id": _id(org_id, "phone"),
                        "number": f"(217) 555-{1000 + n // 3 % 9000:04d}",
                        "type": "voice",
                    }
                ],
            }
            org_locations = []
            for k in range(1 if rng.random() < 0.7 else 2):
                zip_code = codes[rng.randrange(len(codes))]
                lat0, lon0 = areas[zip_code]
                loc_id = _id(seed, "location", n, k)
                org_locations.append(loc_id)
                d.locations[loc_id] = {
                    "id": loc_id,
                    "organization_id": org_id,
                    "location_type": "physical",
                    "name": f"{_PLACES[rng.randrange(len(_PLACES))]} Center",
                    "latitude": round(lat0 + rng.uniform(-deg, deg), 5),
                    "longitude": round(lon0 + rng.uniform(-deg, deg), 5),
                    "addresses": [
                        {
                            "id": _id(loc_id, "address"),
                            "address_1": f"{rng.randrange(100, 3000)} "
                            f"{_STREETS[rng.randrange(len(_STREETS))]}",
                            "city": region,
                            "state_province": state,
                            "postal_code": zip_code,
                            "country": "US",
                            "address_type": "physical",
                        }
                    ],
                }
        kind, names, term = _KINDS[_ROTATION[n % len(_ROTATION)]]
        place = _PLACES[rng.randrange(len(_PLACES))]
        loc_id = org_locations[rng.randrange(len(org_locations))]
        svc_id = _id(seed, "service", n)
        langs = [{"id": _id(svc_id, "language", 0), "code": "en", "name": "English"}]
        if rng.random() < 0.4:
            code, name = _LANGS[0] if rng.random() < 0.7 else _LANGS[rng.randrange(1, len(_LANGS))]
            langs.append({"id": _id(svc_id, "language", 1), "code": code, "name": name})
        svc: dict[str, Any] = {
            "id": svc_id,
            "organization_id": org_id,
            "name": names[rng.randrange(len(names))].format(p=place),
            "status": "active",
            "description": f"{term} for people in {region}.",
            "phones": [
                {"id": _id(svc_id, "phone"), "number": f"(217) 555-{2000 + n % 8000:04d}", "type": "voice"}
            ],
            "languages": langs,
            "schedules": _schedules(rng, svc_id),
            "service_at_locations": [{"id": _id(svc_id, "at", loc_id), "location_id": loc_id}],
            "attributes": [
                {
                    "id": _id(svc_id, "attribute"),
                    "link_type": "service_type",
                    "taxonomy_term": {
                        "id": _id("term", term),
                        "code": term.lower().replace(" ", "-"),
                        "name": term,
                        "taxonomy": "demo",
                    },
                }
            ],
        }
        roll = rng.random()
        if kind == "social" and "Senior" in svc["name"] or roll < 0.1:
            svc["minimum_age"] = 60
        elif roll < 0.2:
            svc["minimum_age"], svc["maximum_age"] = 12, 18
        elif roll < 0.4:
            svc["minimum_age"] = 18
        if kind in ("food", "utility", "housing") and rng.random() < 0.5:
            svc["eligibility_description"] = "Household income at or below 200% of the federal poverty level."
        elif rng.random() < 0.3:
            svc["eligibility_description"] = f"Residents of {region}."
        d.services[svc_id] = svc
    return d
