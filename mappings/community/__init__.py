"""Community resource directories: Open Referral HSDS 3.0 <-> FHIR R4 Organization / Location / HealthcareService.

Read: :func:`read_hsds_json` (the API's nested JSON: objects, ``Page`` lists, the tabular form as JSON) and
:func:`read_tabular` (the tabular data package's CSV tables) give a :class:`Directory`. Map:
:func:`directory_to_fhir` (HSDS -> FHIR, aligned with the HL7 Human Services Directory IG, categories coded
with the Gravity SDOH CC codes) and :func:`directory_from_fhir` (FHIR -> HSDS). Write: :func:`services_json`
(nested JSON) and :func:`write_tabular` + :func:`csv_text` + :func:`datapackage` (the tabular package).
Pure: no I/O, no clock, nothing from ``fhir_ecr``. docs/community.md has the field-by-field table.
"""

from mappings.community.categories import CATEGORIES, categorize, category_coding
from mappings.community.from_fhir import directory_from_fhir, hsds_id
from mappings.community.hsds import Directory, read_hsds_json, services_json
from mappings.community.systems import DIRECTORY_TAG, SDOHCC_CATEGORY
from mappings.community.tabular import (
    COLUMNS,
    csv_text,
    datapackage,
    read_csv_text,
    read_tabular,
    write_tabular,
)
from mappings.community.to_fhir import directory_to_fhir, fhir_id

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "DIRECTORY_TAG",
    "Directory",
    "SDOHCC_CATEGORY",
    "categorize",
    "category_coding",
    "csv_text",
    "datapackage",
    "directory_from_fhir",
    "directory_to_fhir",
    "fhir_id",
    "hsds_id",
    "read_csv_text",
    "read_hsds_json",
    "read_tabular",
    "services_json",
    "write_tabular",
]
