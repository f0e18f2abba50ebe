"""Code systems, identifier systems and extension URLs of the community-directory mapping.

Sources:

* Open Referral Human Services Data Specification 3.0 (HSDS, https://docs.openreferral.org/en/latest/hsds/,
  schema in ``openreferral/specification`` ``schema/*.json``): the tables and fields read and written here.
* HL7 FHIR Human Services Directory IG 1.0.0 (http://hl7.org/fhir/us/hsds/, its FSH ``Mapping:`` blocks map
  HSDS 2.0.1 to HSDHealthcareService / HSDOrganization / HSDLocation): ``active`` from ``status``,
  ``providedBy`` from ``organization_id``, ``location`` from ``service_at_location``, ``telecom`` from phones,
  email and url, ``coverageArea`` from ``service_area``.
* Gravity SDOH Clinical Care IG 2.3.0 (http://hl7.org/fhir/us/sdoh-clinicalcare/): the SDOH category codes
  (``SDOHCC-ValueSetSDOHCategory``) a referral's ``ServiceRequest.category`` uses, so a service found in the
  directory carries the same code as the need it meets.
* BCP-47 language tags (``urn:ietf:bcp:47``, R4 ``HealthcareService.communication`` binding ``all-languages``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGE_EXTENSION",
    "BCP47",
    "DAYS",
    "DIRECTORY_TAG",
    "ELIGIBILITY_SYSTEM",
    "HSDS_ID_SYSTEM",
    "HSDS_EXTENSION",
    "LOCATION_PHYSICAL_TYPE",
    "SDOHCC_CATEGORY",
    "SERVICE_CATEGORY_SYSTEM",
    "TAXONOMY_SYSTEM",
    "UCUM",
    "hsds_id_system",
]

#: Gravity SDOH CC temporary codes: the SDOH categories (food-insecurity, housing-instability, ...).
SDOHCC_CATEGORY: Final = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
#: HealthcareService.category's example binding (R4 valueset-service-category); not used for SDOH codes.
SERVICE_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/service-category"
BCP47: Final = "urn:ietf:bcp:47"
UCUM: Final = "http://unitsofmeasure.org"
LOCATION_PHYSICAL_TYPE: Final = "http://terminology.hl7.org/CodeSystem/location-physical-type"

#: Identifier systems of HSDS ids, one per HSDS table: ``{HSDS_ID_SYSTEM}/service`` etc.
HSDS_ID_SYSTEM: Final = "https://mecr.dev/fhir/sid/hsds"
#: A taxonomy term with no taxonomy URI of its own is coded in ``{TAXONOMY_SYSTEM}/{taxonomy name}``.
TAXONOMY_SYSTEM: Final = "https://mecr.dev/fhir/CodeSystem/hsds-taxonomy"
#: mECR's eligibility criteria codes (HealthcareService.eligibility.code): ``age``, ``income``, ``residency``,
#: ``other``. HSDS 3.0 has ``minimum_age``/``maximum_age`` and a free-text ``eligibility_description``.
ELIGIBILITY_SYSTEM: Final = "https://mecr.dev/fhir/CodeSystem/eligibility"
#: ``HealthcareService.eligibility.extension``: the age range in years (``valueRange``, UCUM ``a``).
AGE_EXTENSION: Final = "https://mecr.dev/fhir/StructureDefinition/eligibility-age-range"
#: ``{HSDS_EXTENSION}#field``: HSDS fields with no FHIR element, kept as string extensions so they round-trip.
HSDS_EXTENSION: Final = "https://mecr.dev/fhir/StructureDefinition/hsds-field"

#: The ``meta.tag`` every directory resource carries: patients may read these (docs/community.md).
DIRECTORY_TAG: Final = ("https://mecr.dev/fhir/CodeSystem/record-source", "directory")

#: RFC 5545 BYDAY codes -> FHIR days-of-week codes (R4 valueset-days-of-week), in week order.
DAYS: Final = {"MO": "mon", "TU": "tue", "WE": "wed", "TH": "thu", "FR": "fri", "SA": "sat", "SU": "sun"}


def hsds_id_system(table: str) -> str:
    """The identifier system of ids of HSDS ``table`` (``service``, ``organization``, ``location``, ...)."""
    return f"{HSDS_ID_SYSTEM}/{table}"
