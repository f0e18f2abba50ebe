"""Wearable data -> normalised :class:`Reading` -> FHIR R4 Observation, daily summaries, and back to Open mHealth.

Readers (one per source, all streaming from a file-like object, none doing other I/O or reading the clock):
:func:`read_apple_health`, :func:`read_fitbit`, :func:`read_fitbit_export`, :func:`read_garmin_fit`,
:func:`read_withings`, :func:`read_google_fit`, :func:`read_ihealth`, :func:`read_omh`, :func:`read_csv`.
Mapping: :func:`reading_to_observation`, :func:`readings_to_resources`. Summaries: :func:`daily_summaries`.
Back out: :func:`observation_to_omh`. Errors: :mod:`mappings.errors`.
"""

from mappings.errors import MalformedInputError, MappingError, SkipLog, SkippedRecord, UnsupportedInputError
from mappings.wearables.apple_health import read_apple_health
from mappings.wearables.csv_generic import CsvColumn, CsvMapping, read_csv
from mappings.wearables.fhir import (
    device_id,
    observation_identifier,
    reading_to_observation,
    readings_to_resources,
    source_to_device,
)
from mappings.wearables.fitbit import read_fitbit, read_fitbit_export
from mappings.wearables.garmin_fit import read_garmin_fit
from mappings.wearables.googlefit import read_google_fit
from mappings.wearables.ihealth import read_ihealth
from mappings.wearables.model import CANONICAL_UNITS, PLAUSIBLE_RANGES, Component, Metric, Reading, Source
from mappings.wearables.omh import observation_to_omh, read_omh, read_omh_body
from mappings.wearables.summaries import (
    DEFAULT_RULE,
    DailySummary,
    DedupRule,
    daily_summaries,
    summaries_to_resources,
    summary_to_observation,
    weekly_active_minutes,
)
from mappings.wearables.withings import read_withings

__all__ = [
    "CANONICAL_UNITS",
    "DEFAULT_RULE",
    "PLAUSIBLE_RANGES",
    "Component",
    "CsvColumn",
    "CsvMapping",
    "DailySummary",
    "DedupRule",
    "MalformedInputError",
    "MappingError",
    "Metric",
    "Reading",
    "SkipLog",
    "SkippedRecord",
    "Source",
    "UnsupportedInputError",
    "daily_summaries",
    "device_id",
    "observation_identifier",
    "observation_to_omh",
    "read_apple_health",
    "read_csv",
    "read_fitbit",
    "read_fitbit_export",
    "read_garmin_fit",
    "read_google_fit",
    "read_ihealth",
    "read_omh",
    "read_omh_body",
    "read_withings",
    "reading_to_observation",
    "readings_to_resources",
    "source_to_device",
    "summaries_to_resources",
    "summary_to_observation",
    "weekly_active_minutes",
]
