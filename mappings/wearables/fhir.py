""":class:`Reading` -> FHIR R4 ``Observation`` (+ a ``Device`` per source), as plain dicts.

Rules enforced (codes in :mod:`mappings.systems`):

* Vital signs (R4 core profile http://hl7.org/fhir/R4/observation-vitalsigns.html): category
  ``vital-signs``, LOINC code, UCUM ``valueQuantity``; blood pressure as panel ``85354-9`` with systolic and
  diastolic ``component`` and no top-level value; SpO2 coded ``2708-6`` and ``59408-5``.
* Physical activity (HL7 PA IG 1.0.0, ``pa-observation-base``): categories ``activity`` **and**
  ``PhysicalActivity``; daily steps ``41950-7`` in ``/d`` when the source aggregated a whole local day,
  ``55423-8`` ``{steps}`` for any other interval.
* ``effectiveDateTime`` for instants, ``effectivePeriod`` for intervals, written with the reading's own UTC
  offset (the source's local time where it is known).
* ``identifier`` = ``MECR_IDENTIFIER_SYSTEM`` + a SHA-256 of patient, metric, period, source (and label), so
  re-importing the same data yields the same identifier and imports can be made idempotent
  (conditional create on ``identifier``).
* ``device`` references a deterministic ``Device`` id; ``meta.source`` names the reader and source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from mappings import systems as s
from mappings.errors import UnsupportedInputError
from mappings.wearables.model import Metric, Reading, Source

__all__ = [
    "METRIC_CODES",
    "MetricCoding",
    "device_id",
    "observation_identifier",
    "reading_to_observation",
    "readings_to_resources",
    "source_to_device",
]

_PA: Final = (s.CATEGORY_ACTIVITY, s.CATEGORY_PHYSICAL_ACTIVITY)
_VITAL: Final = (s.CATEGORY_VITAL_SIGNS,)
_SLEEP: Final = (s.CATEGORY_ACTIVITY,)


@dataclass(frozen=True, slots=True)
class MetricCoding:
    """How one metric is coded in FHIR: codes (first is primary), categories and the UCUM unit."""

    codes: tuple[s.Code, ...]
    categories: tuple[s.Code, ...]
    unit: str


def _local(code: str, display: str) -> s.Code:
    return s.Code(s.MECR_METRIC_SYSTEM, code, display)


#: Metric -> FHIR coding of an individual reading (day aggregates of steps use :data:`DAILY_STEPS_CODING`).
METRIC_CODES: Final[dict[Metric, MetricCoding]] = {
    Metric.STEPS: MetricCoding((s.STEPS_INTERVAL,), _PA, "{steps}"),
    Metric.DISTANCE: MetricCoding((_local("distance", "Distance walked or run"),), _PA, "m"),
    Metric.HEART_RATE: MetricCoding((s.HEART_RATE,), _VITAL, "/min"),
    Metric.RESTING_HEART_RATE: MetricCoding((s.RESTING_HEART_RATE,), _PA, "/min"),
    Metric.AVG_HEART_RATE: MetricCoding((s.AVG_HEART_RATE_ACTIVITY,), _PA, "/min"),
    Metric.ACTIVE_ENERGY: MetricCoding((s.ACTIVE_ENERGY,), _PA, "kcal"),
    Metric.WORKOUT_ENERGY: MetricCoding((s.CALORIES_ACTIVITY,), _PA, "kcal"),
    Metric.ACTIVE_MINUTES: MetricCoding(
        (_local("active-minutes", "Moderate-or-vigorous active minutes"),), _PA, "min"
    ),
    Metric.EXERCISE: MetricCoding((s.EXERCISE_DURATION,), _PA, "min"),
    Metric.SLEEP_DURATION: MetricCoding((s.SLEEP_DURATION,), _SLEEP, "min"),
    Metric.SLEEP_ASLEEP: MetricCoding((s.SLEEP_DURATION,), _SLEEP, "min"),
    Metric.SLEEP_LIGHT: MetricCoding((s.SLEEP_LIGHT,), _SLEEP, "min"),
    Metric.SLEEP_DEEP: MetricCoding((s.SLEEP_DEEP,), _SLEEP, "min"),
    Metric.SLEEP_REM: MetricCoding((s.SLEEP_REM,), _SLEEP, "min"),
    Metric.SLEEP_AWAKE: MetricCoding((_local("sleep-awake", "Time awake during sleep"),), _SLEEP, "min"),
    Metric.SLEEP_IN_BED: MetricCoding((_local("sleep-in-bed", "Time in bed"),), _SLEEP, "min"),
    Metric.WEIGHT: MetricCoding((s.BODY_WEIGHT,), _VITAL, "kg"),
    Metric.HEIGHT: MetricCoding((s.BODY_HEIGHT,), _VITAL, "cm"),
    Metric.BMI: MetricCoding((s.BMI,), _VITAL, "kg/m2"),
    Metric.BODY_FAT: MetricCoding((s.BODY_FAT,), _VITAL, "%"),
    Metric.BODY_TEMPERATURE: MetricCoding((s.BODY_TEMPERATURE,), _VITAL, "Cel"),
    Metric.BLOOD_PRESSURE: MetricCoding((s.BLOOD_PRESSURE_PANEL,), _VITAL, "mm[Hg]"),
    Metric.SYSTOLIC_BP: MetricCoding((s.SYSTOLIC_BP,), _VITAL, "mm[Hg]"),
    Metric.DIASTOLIC_BP: MetricCoding((s.DIASTOLIC_BP,), _VITAL, "mm[Hg]"),
    Metric.SPO2: MetricCoding((s.SPO2_ARTERIAL, s.SPO2_PULSE_OXIMETRY), _VITAL, "%"),
    Metric.BLOOD_GLUCOSE: MetricCoding((s.BLOOD_GLUCOSE_MASS,), (s.CATEGORY_VITAL_SIGNS,), "mg/dL"),
}
DAILY_STEPS_CODING: Final = MetricCoding((s.DAILY_STEPS,), _PA, "/d")
_GLUCOSE_MMOL: Final = MetricCoding((s.BLOOD_GLUCOSE_MOLES,), (s.CATEGORY_VITAL_SIGNS,), "mmol/L")


def coding_for(reading: Reading) -> MetricCoding:
    """The FHIR coding of a reading (daily steps and mmol/L glucose have their own codes)."""
    if reading.metric is Metric.STEPS and reading.local_date is not None:
        return DAILY_STEPS_CODING
    if reading.metric is Metric.BLOOD_GLUCOSE and reading.unit == "mmol/L":
        return _GLUCOSE_MMOL
    coding = METRIC_CODES.get(reading.metric)
    if coding is None:
        raise UnsupportedInputError(
            f"no FHIR coding for metric {reading.metric.value}", record=reading.location
        )
    return coding


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def iso(moment: datetime) -> str:
    """FHIR ``dateTime``/``instant`` text: seconds precision unless sub-second, offset kept, ``Z`` for UTC."""
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z") if moment.utcoffset() == UTC.utcoffset(None) else text


def device_id(source: Source) -> str:
    """Deterministic FHIR id of the ``Device`` standing for a source."""
    return f"wearable-{_hash(source.key)[:40]}"


def observation_identifier(reading: Reading, subject: str) -> dict[str, str]:
    """The deterministic identifier: patient + metric + period (UTC) + source (+ label)."""
    end = _utc(reading.end) if reading.end is not None else ""
    value = _hash(
        subject, reading.metric.value, _utc(reading.start), end, reading.source.key, reading.label or ""
    )
    return {"system": s.MECR_IDENTIFIER_SYSTEM, "value": value}


def meta_source(source: Source) -> str:
    """``meta.source`` URI naming the reader and the source."""
    return f"urn:mecr:wearable:{source.vendor}:{quote(source.name, safe='')}"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    number: float | int = int(value) if float(value).is_integer() else round(value, 6)
    return {"value": number, "unit": s.UNIT_DISPLAY.get(unit, unit), "system": s.UCUM, "code": unit}


def source_to_device(source: Source) -> dict[str, Any]:
    """A ``Device`` for a source: identifier from the source key, names and version where known."""
    names = [{"name": source.name, "type": "user-friendly-name"}]
    if source.device and source.device != source.name:
        names.append({"name": source.device, "type": "model-name"})
    device: dict[str, Any] = {
        "resourceType": "Device",
        "id": device_id(source),
        "identifier": [{"system": s.MECR_DEVICE_SYSTEM, "value": source.key}],
        "status": "active",
        "deviceName": names,
    }
    if source.app:
        device["version"] = [{"value": source.app}]
    return device


def reading_to_observation(reading: Reading, subject: str) -> dict[str, Any]:
    """One ``Observation`` dict for a reading; ``subject`` is a reference such as ``Patient/123``."""
    coding = coding_for(reading)
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"source": meta_source(reading.source)},
        "identifier": [observation_identifier(reading, subject)],
        "status": "final",
        "category": [{"coding": [c.coding()]} for c in coding.categories],
        "code": {"coding": [c.coding() for c in coding.codes], "text": coding.codes[0].display},
        "subject": {"reference": subject},
    }
    tags = []
    if reading.implausible:
        tags.append(
            {"system": s.MECR_DATA_QUALITY_SYSTEM, "code": "implausible", "display": reading.implausible}
        )
    if reading.entered_by_user:
        tags.append(
            {"system": s.MECR_DATA_QUALITY_SYSTEM, "code": "self-reported", "display": "Entered by the user"}
        )
    if tags:
        obs["meta"]["tag"] = tags
    if reading.is_instant:
        obs["effectiveDateTime"] = iso(reading.start)
    else:
        assert reading.end is not None
        obs["effectivePeriod"] = {"start": iso(reading.start), "end": iso(reading.end)}
    obs["device"] = {"reference": f"Device/{device_id(reading.source)}", "display": reading.source.display}
    if reading.components:
        obs["component"] = [
            {
                "code": {"coding": [c.coding() for c in METRIC_CODES[comp.metric].codes]},
                "valueQuantity": _quantity(comp.value, comp.unit),
            }
            for comp in reading.components
        ]
    else:
        assert reading.value is not None
        value, unit = reading.value, coding.unit
        if coding is DAILY_STEPS_CODING:
            unit = "/d"
        obs["valueQuantity"] = _quantity(value, unit)
    if reading.label:
        obs["note"] = [{"text": f"{reading.label}"}]
    return obs


def readings_to_resources(readings: Iterable[Reading], subject: str) -> list[dict[str, Any]]:
    """Devices (one per source, first-seen order) followed by one Observation per reading."""
    devices: dict[str, dict[str, Any]] = {}
    observations = []
    for reading in readings:
        devices.setdefault(reading.source.key, source_to_device(reading.source))
        observations.append(reading_to_observation(reading, subject))
    return [*devices.values(), *observations]
