"""Wearable exports into the FHIR store: the import service, format detection, the upload route and the CLI.

The readers and mappers are :mod:`mappings.wearables` (pure); this package stores what they return
(``docs/wearables.md``).
"""

from .formats import FORMATS, csv_mapping_from_dict, detect_format
from .importer import (
    ImportOptions,
    ImportSummary,
    WearableImporter,
    WearableImportError,
    parse_source_priority,
)
from .routes import router

__all__ = [
    "FORMATS",
    "ImportOptions",
    "ImportSummary",
    "WearableImportError",
    "WearableImporter",
    "csv_mapping_from_dict",
    "detect_format",
    "parse_source_priority",
    "router",
]
