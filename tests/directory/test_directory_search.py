"""Directory search over the FHIR API: category, keyword, distance (near, near a ZIP code, chained from the
service), opening hours, language, eligibility; bad values are 400 OperationOutcomes; the parameters are in
the CapabilityStatement. Both backends."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.directory.importer import DirectoryImporter
from fhir_ecr.store.mecr_params import distance_km
from mappings.community import SDOHCC_CATEGORY, Directory
from tests.helpers import assert_outcome

# Springfield IL: the Capitol (62701) and three services around it; one in Chicago, 300 km away.
CAPITOL = (39.7983, -89.6544)


def _loc(lid: str, lat: float, lon: float, zip_code: str) -> dict[str, Any]:
    return {
        "id": lid,
        "name": f"Site {lid}",
        "location_type": "physical",
        "latitude": lat,
        "longitude": lon,
        "addresses": [
            {
                "id": f"a-{lid}",
                "address_1": "1 Main St",
                "city": "Springfield",
                "state_province": "IL",
                "postal_code": zip_code,
                "country": "US",
                "address_type": "physical",
            }
        ],
    }


def _directory() -> Directory:
    d = Directory()
    d.organizations["o1"] = {"id": "o1", "name": "Helping Hands"}
    d.locations["near"] = _loc("near", 39.8000, -89.6500, "62701")  # ~0.4 km from the Capitol
    d.locations["mid"] = _loc("mid", 39.7700, -89.6800, "62704")  # ~3.8 km
    d.locations["far"] = _loc("far", 41.8781, -87.6298, "60601")  # Chicago
    d.locations["zip2"] = _loc("zip2", 39.8020, -89.6480, "62701")
    week = {"id": "s", "freq": "WEEKLY", "byday": "MO,TU,WE,TH,FR", "opens_at": "09:00", "closes_at": "17:00"}
    d.services["pantry"] = {
        "id": "pantry",
        "organization_id": "o1",
        "name": "Westside Food Pantry",
        "status": "active",
        "description": "Free groceries every week.",
        "service_at_locations": [{"id": "sl1", "location_id": "near"}],
        "languages": [
            {"id": "l1", "code": "en", "name": "English"},
            {"id": "l2", "code": "es", "name": "Spanish"},
        ],
        "schedules": [
            week,
            {"id": "s2", "freq": "WEEKLY", "byday": "SA", "opens_at": "10:00", "closes_at": "14:00"},
        ],
        "eligibility_description": "Household income at or below 200% of the federal poverty level.",
    }
    d.services["meals"] = {
        "id": "meals",
        "organization_id": "o1",
        "name": "Senior Community Meals",
        "status": "active",
        "service_at_locations": [{"id": "sl2", "location_id": "mid"}],
        "minimum_age": 60,
        "languages": [{"id": "l3", "code": "en", "name": "English"}],
        "schedules": [
            {"id": "s3", "freq": "WEEKLY", "byday": "TU,TH", "opens_at": "18:00", "closes_at": "20:00"}
        ],
    }
    d.services["chicago"] = {
        "id": "chicago",
        "organization_id": "o1",
        "name": "Chicago Food Bank",
        "status": "active",
        "service_at_locations": [{"id": "sl3", "location_id": "far"}],
    }
    d.services["rides"] = {
        "id": "rides",
        "organization_id": "o1",
        "name": "Medical Rides",
        "status": "active",
        "description": "Transportation to appointments.",
        "minimum_age": 12,
        "maximum_age": 18,
        "service_at_locations": [{"id": "sl4", "location_id": "zip2"}],
        "schedules": [
            {"id": "s4", "freq": "WEEKLY", "byday": "FR", "opens_at": "22:00", "closes_at": "02:00"}
        ],
    }
    return d


@pytest.fixture
def loaded(services: Any) -> Any:
    DirectoryImporter(services.repo).import_directory(_directory(), name="test")
    return services


def _ids(client: Any, path: str) -> list[str]:
    resp = client.get(f"/fhir/{path}")
    assert resp.status_code == 200, resp.text[:400]
    return sorted(
        e["resource"]["id"].removeprefix("hsds-")
        for e in resp.json().get("entry", [])
        if e.get("search", {}).get("mode", "match") == "match"
    )


def test_by_category(loaded: Any, client: Any) -> None:
    assert _ids(client, "HealthcareService?category=food-insecurity") == ["chicago", "meals", "pantry"]
    assert _ids(
        client, f"HealthcareService?service-category={SDOHCC_CATEGORY}|transportation-insecurity"
    ) == ["rides"]
    assert _ids(client, "HealthcareService?category=housing-instability") == []


def test_by_keyword(loaded: Any, client: Any) -> None:
    assert _ids(client, "HealthcareService?keyword=pantry") == ["pantry"]
    assert _ids(client, "HealthcareService?keyword=grocery") == ["pantry"]  # "groceries" in its description
    assert _ids(client, "HealthcareService?keyword=pantries") == ["pantry"]  # singular or plural
    assert _ids(client, "HealthcareService?keyword=pant") == []  # whole words
    assert _ids(client, "HealthcareService?keyword=food&keyword=bank") == ["chicago"]
    # "meals" is found by its category's name (Food Insecurity)
    assert _ids(client, "HealthcareService?keyword=FOOD") == ["chicago", "meals", "pantry"]
    assert _ids(client, "HealthcareService?keyword=the") == []  # function words are not indexed


def test_near_a_point(loaded: Any, client: Any) -> None:
    lat, lon = CAPITOL
    assert _ids(client, f"Location?near={lat}|{lon}|1|km") == ["near", "zip2"]
    assert _ids(client, f"Location?near={lat}|{lon}|5|km") == ["mid", "near", "zip2"]
    assert _ids(client, f"Location?near={lat}|{lon}|3|mi") == ["mid", "near", "zip2"]  # 4.8 km
    assert _ids(client, f"Location?near={lat}|{lon}|400|km") == ["far", "mid", "near", "zip2"]
    assert _ids(client, f"Location?near={lat}|{lon}") == ["mid", "near", "zip2"]  # 25 km by default
    assert 3.5 < distance_km(*CAPITOL, 39.77, -89.68) < 4.2


def test_services_near_a_point_or_a_zip_code(loaded: Any, client: Any) -> None:
    lat, lon = CAPITOL
    assert _ids(client, f"HealthcareService?category=food-insecurity&location.near={lat}|{lon}|10|km") == [
        "meals",
        "pantry",
    ]
    # 62701's centroid is the mean of its two locations; 62704's site is 3.8 km away
    assert _ids(client, "HealthcareService?location.near-postalcode=62701|1|km") == ["pantry", "rides"]
    assert _ids(client, "HealthcareService?category=food-insecurity&location.near-postalcode=62701|5|km") == [
        "meals",
        "pantry",
    ]
    assert (
        _ids(client, "Location?near-postalcode=99999|50|km") == []
    )  # a ZIP code the directory does not know


def test_open_at_and_on_a_day(loaded: Any, client: Any) -> None:
    assert _ids(client, "HealthcareService?open-at=mon-10:30") == ["pantry"]
    assert _ids(client, "HealthcareService?open-at=sat-13:59") == ["pantry"]
    assert _ids(client, "HealthcareService?open-at=sat-14:00") == []  # closes at 14:00
    assert _ids(client, "HealthcareService?open-at=tue-19:00") == ["meals"]
    assert _ids(client, "HealthcareService?open-at=sat-01:00") == ["rides"]  # Friday 22:00 to 02:00
    assert _ids(client, "HealthcareService?available-day=thu") == ["meals", "pantry"]
    assert _ids(client, "HealthcareService?available-day=sun") == []


def test_language_and_eligibility(loaded: Any, client: Any) -> None:
    assert _ids(client, "HealthcareService?communication=es") == ["pantry"]
    assert _ids(client, "HealthcareService?communication=urn:ietf:bcp:47|en") == ["meals", "pantry"]
    assert _ids(client, "HealthcareService?age=30") == ["chicago", "pantry"]
    assert _ids(client, "HealthcareService?age=70") == ["chicago", "meals", "pantry"]
    assert _ids(client, "HealthcareService?age=15") == ["chicago", "pantry", "rides"]
    assert _ids(client, "HealthcareService?eligibility=income") == ["pantry"]
    assert _ids(client, "HealthcareService?eligibility:not=income&category=food-insecurity") == [
        "chicago",
        "meals",
    ]
    assert _ids(client, "HealthcareService?min-age=ge50") == ["meals"]


@pytest.mark.parametrize(
    "query",
    [
        "Location?near=north|south",
        "Location?near=95|0|1|km",
        "Location?near=39|-89|1|furlongs",
        "Location?near=39|-89|far|km",
        "Location?near:missing=true",
        "HealthcareService?open-at=someday",
        "HealthcareService?open-at=mon-25:00",
        "HealthcareService?available-day=mon-10:00",
        "HealthcareService?age=old",
        "Location?near-postalcode=|5|km",
        "HealthcareService?location.near=1|2|-5|km",
        "HealthcareService?keyword=food bank",
    ],
)
def test_bad_values_are_400(loaded: Any, client: Any, query: str) -> None:
    assert_outcome(client.get(f"/fhir/{query}", headers={"Prefer": "handling=strict"}), 400)


def test_internal_index_parameters_are_not_searchable(loaded: Any, client: Any) -> None:
    assert_outcome(
        client.get("/fhir/Location?position-latitude=39.8", headers={"Prefer": "handling=strict"}), 400
    )


def test_the_capability_statement_lists_the_directory_parameters(client: Any) -> None:
    cap = client.get("/fhir/metadata").json()
    by_type = {
        r["type"]: {p["name"]: p for p in r.get("searchParam", [])} for r in cap["rest"][0]["resource"]
    }
    hs = by_type["HealthcareService"]
    for name in ("category", "keyword", "communication", "eligibility", "age", "open-at", "available-day"):
        assert hs[name]["definition"] == f"https://mecr.dev/fhir/SearchParameter/HealthcareService-{name}", (
            name
        )
    assert hs["age"]["type"] == "special" and hs["keyword"]["type"] == "special" and "keyword-word" not in hs
    assert by_type["Location"]["near"]["type"] == "special"
    assert "near-postalcode" in by_type["Location"] and "position-latitude" not in by_type["Location"]
    assert "available-window" not in hs
