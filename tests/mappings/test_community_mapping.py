"""HSDS 3.0 <-> FHIR (mappings.community): golden files over the Open Referral and Gravity fixtures, both HSDS
forms (nested JSON and the tabular package), round trips both ways, categories, eligibility and errors.

Golden files live in ``golden/community/`` (``<case>.fhir.json``; ``gravity-to-hsds.fhir.json`` holds HSDS tables; regenerate only with ``MECR_REGEN_GOLDEN=1``, then review the diff);
those made from the HSDS examples are adaptations of CC BY-SA 4.0 material (see their README).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from wearable_support import check_golden

from mappings.community import (
    SDOHCC_CATEGORY,
    Directory,
    categorize,
    csv_text,
    datapackage,
    directory_from_fhir,
    directory_to_fhir,
    fhir_id,
    read_csv_text,
    read_hsds_json,
    read_tabular,
    services_json,
    write_tabular,
)
from mappings.community.to_fhir import time_of_day
from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"  # sources: tests/fixtures/SOURCES.tsv
HSDS = FIXTURES / "community" / "hsds-3.0" / "examples"
GRAVITY = FIXTURES / "fhir" / "gravity-sdoh"
JSON_CASES = [
    "service_full.json",
    "organization_full.json",
    "service_at_location_full.json",
    "service_list.json",
    "organization_list.json",
    "service_at_location_list.json",
    "location.json",
    "tabular.json",
]
MODELS = {"Organization": Organization, "Location": Location, "HealthcareService": HealthcareService}


def _validate(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        MODELS[resource["resourceType"]].model_validate(resource)


def _csv_tables() -> dict[str, list[dict[str, str]]]:
    return {
        p.stem: read_csv_text(p.read_text(encoding="utf-8")) for p in sorted((HSDS / "csv").glob("*.csv"))
    }


def _gravity() -> list[dict[str, Any]]:
    names = [
        "HealthcareService-SDOHCC-HealthcareServiceTelecomAppointmentExample.json",
        "Location-SDOHCC-LocationExample.json",
        "Organization-SDOHCC-OrganizationCoordinationPlatformExample.json",
    ]
    return [json.loads((GRAVITY / n).read_text(encoding="utf-8")) for n in names]


@pytest.mark.parametrize("case", JSON_CASES)
def test_hsds_json_examples_golden(case: str) -> None:
    log = SkipLog()
    directory = read_hsds_json(json.loads((HSDS / case).read_text(encoding="utf-8")), file=case)
    resources = directory_to_fhir(directory, source="urn:mecr:directory:examples", log=log)
    _validate(resources)
    check_golden(f"community/{case}", {"resources": resources, "ignored": dict(sorted(log.ignored.items()))})


def test_hsds_tabular_package_golden() -> None:
    orphans: list[str] = []
    log = SkipLog()
    directory = read_tabular(_csv_tables(), file="csv", orphans=orphans)
    resources = directory_to_fhir(directory, log=log)
    _validate(resources)
    # the example attribute's link_id names nothing in the package (a dangling id of the HSDS examples)
    assert orphans == ["attributes ae58cc39-8b70-4ab1-8aea-786882e5ac8e"]
    check_golden("community/csv", {"resources": resources, "ignored": dict(sorted(log.ignored.items()))})


def test_the_service_example_maps_field_by_field() -> None:
    directory = read_hsds_json(json.loads((HSDS / "service_full.json").read_text(encoding="utf-8")))
    by_type = {
        r["resourceType"] + ("-area" if r.get("mode") == "kind" else ""): r
        for r in directory_to_fhir(directory)
    }
    svc, loc, org = by_type["HealthcareService"], by_type["Location"], by_type["Organization"]
    assert svc["id"] == "hsds-ac148810-d857-441c-9679-408f346de14b"
    assert svc["providedBy"]["reference"] == "Organization/hsds-d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610"
    assert svc["location"] == [{"reference": "Location/hsds-3a19ff88-4620-4d17-9830-ac1d859eb5d5"}]
    assert svc["category"] == [
        {"coding": [{"system": SDOHCC_CATEGORY, "code": "stress", "display": "Stress"}]}
    ]
    assert svc["communication"][0]["coding"][0] == {
        "system": "urn:ietf:bcp:47",
        "code": "ur",
        "display": "Urdu",
    }
    assert svc["availableTime"] == [
        {"daysOfWeek": ["thu", "fri"], "availableStartTime": "10:00:00", "availableEndTime": "18:00:00"}
    ]
    age = svc["eligibility"][0]["extension"][0]["valueRange"]
    assert (age["low"]["value"], age["high"]["value"]) == (12, 100)
    assert svc["eligibility"][1]["code"]["coding"][0]["code"] == "residency"
    # the quotes the example stores inside the number are not part of it; the extension is kept
    assert {"system": "phone", "value": "+44 1234 234567 ext. 100"} in svc["telecom"]
    assert (
        svc["coverageArea"][0]["reference"]
        == "Location/" + by_type["Location-area"]["id"]
        == "Location/hsds-area-381c64f1-a724-4884-9c21-ac96c21cca3e"
    )
    assert (
        loc["address"]["postalCode"] == "ABC 1234" and "position" not in loc
    )  # latitude 100 is out of range
    assert org["identifier"][1] == {
        "system": "https://org-id.guide/list/GB-COH",
        "value": "1234567",
        "type": {"text": "Company number"},
    }
    assert "partOf" not in org  # its parent organization is not in the example


@pytest.mark.parametrize(
    "case", ["service_full.json", "organization_full.json", "service_at_location_full.json", "tabular.json"]
)
def test_fhir_to_hsds_to_fhir_is_a_fixed_point(case: str) -> None:
    resources = directory_to_fhir(read_hsds_json(json.loads((HSDS / case).read_text(encoding="utf-8"))))
    again = directory_to_fhir(directory_from_fhir(resources))
    assert again == resources


def _located(directory: Directory) -> Directory:
    """The example with coordinates that are on Earth (the example's 100/101 are left out by the mapping)."""
    d = copy.deepcopy(directory)
    for loc in d.locations.values():
        loc["latitude"], loc["longitude"] = 39.7817, -89.6501
    return d


def test_hsds_to_fhir_to_hsds_keeps_every_mapped_field() -> None:
    original = _located(read_hsds_json(json.loads((HSDS / "service_full.json").read_text(encoding="utf-8"))))
    back = directory_from_fhir(directory_to_fhir(original))
    assert back.services.keys() == original.services.keys()
    assert back.locations.keys() == original.locations.keys()
    assert back.organizations.keys() == original.organizations.keys()
    svc, old = next(iter(back.services.values())), next(iter(original.services.values()))
    for key in (
        "name",
        "alternate_name",
        "description",
        "url",
        "email",
        "status",
        "application_process",
        "fees_description",
        "eligibility_description",
        "minimum_age",
        "maximum_age",
        "alert",
        "organization_id",
        "last_modified",
    ):
        assert svc[key] == old[key], key
    assert [lang["code"] for lang in svc["languages"]] == ["ur"]
    assert [(s["byday"], s["opens_at"], s["closes_at"]) for s in svc["schedules"]] == [
        ("TH,FR", "10:00:00", "18:00:00")
    ]
    assert svc["service_at_locations"][0]["location_id"] == "3a19ff88-4620-4d17-9830-ac1d859eb5d5"
    assert [a["name"] for a in svc["service_areas"]] == [a["name"] for a in old["service_areas"]]
    assert svc["phones"][0]["number"] == "+44 1234 234567" and svc["phones"][0]["extension"] == 100
    loc, old_loc = next(iter(back.locations.values())), next(iter(original.locations.values()))
    for key in (
        "name",
        "alternate_name",
        "description",
        "transportation",
        "latitude",
        "longitude",
        "external_identifier",
        "external_identifier_type",
        "location_type",
        "organization_id",
    ):
        assert loc.get(key) == old_loc.get(key), key
    old_address = old_loc["addresses"][0]
    assert {k: v for k, v in loc["addresses"][0].items() if k != "id"} == {
        k: v for k, v in old_address.items() if k != "id"
    }
    org, old_org = next(iter(back.organizations.values())), next(iter(original.organizations.values()))
    for key in (
        "name",
        "alternate_name",
        "description",
        "email",
        "website",
        "tax_status",
        "year_incorporated",
        "legal_status",
        "logo",
        "uri",
    ):
        assert org[key] == old_org[key], key
    assert [p["name"] for p in org["programs"]] == ["Community Mental Health Support"]
    # categories come back as SDOH taxonomy attributes, which map forward to the same category
    assert [
        a["taxonomy_term"]["code"] for a in svc["attributes"] if a["link_type"] == "service_category"
    ] == ["stress"]


def test_nested_json_round_trip() -> None:
    for case in ("service_full.json", "organization_full.json", "service_at_location_full.json"):
        directory = read_hsds_json(json.loads((HSDS / case).read_text(encoding="utf-8")))
        again = read_hsds_json(json.loads(json.dumps(services_json(directory))))
        assert again == directory, case


def test_tabular_round_trip_through_csv_text() -> None:
    directory = read_tabular(_csv_tables())
    tables = write_tabular(directory)
    assert set(tables) == {p.stem for p in (HSDS / "csv").glob("*.csv")}
    texts = {t: csv_text(t, rows) for t, rows in tables.items()}
    again = read_tabular({t: read_csv_text(text) for t, text in texts.items()})
    assert again == directory
    assert directory_to_fhir(again) == directory_to_fhir(directory)
    package = datapackage("examples", tables)
    assert package["profile"] == "tabular-data-package"
    assert {r["path"] for r in package["resources"]} == {f"{t}.csv" for t in tables}


def test_the_csv_and_json_forms_of_the_example_give_the_same_service() -> None:
    from_csv = {r["id"]: r for r in directory_to_fhir(read_tabular(_csv_tables()))}
    from_json = {
        r["id"]: r
        for r in directory_to_fhir(
            read_hsds_json(json.loads((HSDS / "service_full.json").read_text(encoding="utf-8")))
        )
    }
    sid = "hsds-ac148810-d857-441c-9679-408f346de14b"
    for key in (
        "name",
        "comment",
        "category",
        "communication",
        "eligibility",
        "availableTime",
        "location",
        "providedBy",
        "program",
        "telecom",
    ):
        assert from_csv[sid].get(key) == from_json[sid].get(key), key


def test_gravity_examples_to_hsds_golden_and_back() -> None:
    resources = _gravity()
    directory = directory_from_fhir(resources)
    tables = write_tabular(directory)
    check_golden("community/gravity-to-hsds", {"tables": {t: rows for t, rows in tables.items() if rows}})
    svc = next(iter(directory.services.values()))
    assert svc["name"] == "Family Counseling Services"
    assert svc["service_at_locations"][0]["location_id"] == next(iter(directory.locations))
    again = directory_to_fhir(directory)
    _validate(again)
    hs = next(r for r in again if r["resourceType"] == "HealthcareService")
    original = resources[0]
    assert hs["name"] == original["name"] and hs["active"] is True
    assert sorted(t["value"] for t in hs["telecom"]) == sorted(t["value"] for t in original["telecom"])
    loc = next(r for r in again if r["resourceType"] == "Location")
    assert loc["address"]["city"] == resources[1]["address"]["city"]


@pytest.mark.parametrize(
    ("texts", "coded", "expected"),
    [
        (["Community Food Pantry"], [], ["food-insecurity"]),
        (["Eviction prevention and rental assistance"], [], ["housing-instability"]),
        (["Free rides to medical appointments"], [], ["transportation-insecurity"]),
        (["Walking group for seniors", "peer support"], [], ["social-connection"]),
        (["Foodie magazine"], [], []),  # whole words only
        (["Food pantry"], ["housing-instability"], ["housing-instability"]),  # an SDOH-coded term wins
    ],
)
def test_categories(texts: list[str], coded: list[str], expected: list[str]) -> None:
    assert categorize(texts, coded) == expected


def test_a_food_service_from_a_taxonomy_term_is_food_insecurity() -> None:
    d = Directory(
        services={
            "s1": {
                "id": "s1",
                "name": "Saturday distribution",
                "status": "active",
                "attributes": [
                    {
                        "id": "a1",
                        "taxonomy_term": {
                            "id": "t1",
                            "code": "BD-1800.2000",
                            "name": "Food Pantries",
                            "taxonomy": "AIRS",
                        },
                    }
                ],
            }
        }
    )
    svc = directory_to_fhir(d)[-1]
    assert svc["category"][0]["coding"][0]["code"] == "food-insecurity"
    assert svc["type"] == [
        {
            "coding": [
                {
                    "system": "https://mecr.dev/fhir/CodeSystem/hsds-taxonomy/AIRS",
                    "code": "BD-1800.2000",
                    "display": "Food Pantries",
                }
            ]
        }
    ]


def test_schedules_that_are_not_weekly_are_text_only() -> None:
    log = SkipLog()
    d = Directory(
        services={
            "s1": {
                "id": "s1",
                "name": "x",
                "status": "inactive",
                "schedules": [
                    {"id": "c1", "freq": "MONTHLY", "bymonthday": "1", "description": "First of the month"},
                    {"id": "c2", "freq": "WEEKLY", "byday": "MO", "opens_at": "9am", "closes_at": "5pm"},
                    {"id": "c3", "byday": "SA,SU"},
                ],
            }
        }
    )
    svc = directory_to_fhir(d, log=log)[-1]
    assert svc["active"] is False
    assert svc["availableTime"] == [{"daysOfWeek": ["sat", "sun"], "allDay": True}]
    assert svc["availabilityExceptions"] == "First of the month"
    assert sum(log.ignored.values()) == 2


def test_times_of_day() -> None:
    assert time_of_day("9:30") == "09:30:00"
    assert time_of_day("18:00:00") == "18:00:00"
    assert time_of_day("25:00") is None and time_of_day("9am") is None


def test_ids_are_stable_and_valid() -> None:
    assert fhir_id("ac148810-d857-441c-9679-408f346de14b") == "hsds-ac148810-d857-441c-9679-408f346de14b"
    odd = fhir_id("211/miami #42")
    assert odd.startswith("hsds-") and len(odd) <= 64 and odd == fhir_id("211/miami #42")
    assert len(fhir_id("x" * 80)) <= 64


def test_bad_input_is_reported() -> None:
    with pytest.raises(MalformedInputError, match="has no id"):
        read_hsds_json({"name": "no id", "status": "active"}, file="f.json")
    with pytest.raises(UnsupportedInputError, match="not an HSDS"):
        read_hsds_json([{"id": "1", "colour": "blue"}], file="f.json")
    with pytest.raises(MalformedInputError, match="latitude must be a number"):
        read_tabular({"locations": [{"id": "l1", "name": "x", "latitude": "north"}]}, file="csv")
    with pytest.raises(MalformedInputError):
        read_hsds_json("text")
