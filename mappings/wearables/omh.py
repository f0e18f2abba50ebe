"""Open mHealth / IEEE 1752.1 data points <-> :class:`Reading` and FHIR ``Observation``.

In: data points (``{header, body}``, one object, a list, or one per line) or bare bodies with a schema name,
for step-count (1.0/2.0 bare number, 3.0 ``{value, unit: steps}``), heart-rate, sleep-duration,
physical-activity, body-weight, blood-pressure, blood-glucose and oxygen-saturation. Time frames are
``date_time`` or ``time_interval`` (start+end, start+duration, end+duration); ``date`` + ``part_of_day``
intervals have no exact bounds and are rejected. OmH units (``beats/min``, ``mmHg``, ``lb``) are converted
to UCUM.

Out: :func:`observation_to_omh` turns an Observation made by :mod:`mappings.wearables.fhir` back into a
data point (header 1.2 + the newest body version that validates offline: step-count 3.0, heart-rate 2.0,
sleep-duration 2.0, physical-activity 1.2, body-weight 2.0, blood-pressure 3.1, blood-glucose 3.0,
oxygen-saturation 2.0; body-weight 3.0, blood-pressure 4.0 and blood-glucose 4.0 ``$ref`` IEEE schemas
that are not available offline). Header mapping follows the OmH-on-FHIR notes in reference §1.4:
identifier -> ``header.id``, device -> ``acquisition_provenance.source_name``, subject -> ``user_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final

from mappings import systems as s
from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError
from mappings.wearables._common import convert, guarded, require, to_float
from mappings.wearables.model import Component, Metric, Reading, Source

__all__ = ["OUT_SCHEMAS", "observation_to_omh", "read_omh", "read_omh_body"]

VENDOR: Final = "omh"

_DURATION_UNITS: Final = {
    "ps": 1e-12,
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "sec": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "wk": 604800.0,
}
_OMH_UNITS: Final = {"beats/min": "/min", "mmHg": "mmHg", "steps": "count", "kg/m2": "kg/m2"}


def _parse_dt(raw: Any, what: str) -> datetime:
    if not isinstance(raw, str):
        raise MalformedInputError(f"missing {what}")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise MalformedInputError(f"{what} {raw!r} has no UTC offset")
    return parsed


def _time_frame(body: dict[str, Any]) -> tuple[datetime, datetime | None]:
    frame = require(body, "effective_time_frame")
    if "date_time" in frame:
        return _parse_dt(frame["date_time"], "date_time"), None
    interval = require(frame, "time_interval")
    start = interval.get("start_date_time")
    end = interval.get("end_date_time")
    if start is not None and end is not None:
        return _parse_dt(start, "start_date_time"), _parse_dt(end, "end_date_time")
    duration = interval.get("duration")
    if duration is not None and (start is not None or end is not None):
        unit = require(duration, "unit")
        if unit not in _DURATION_UNITS:
            raise UnsupportedInputError(f"duration unit {unit!r} has no fixed length")
        length = timedelta(seconds=to_float(require(duration, "value"), "duration") * _DURATION_UNITS[unit])
        if start is not None:
            begin = _parse_dt(start, "start_date_time")
            return begin, begin + length
        finish = _parse_dt(end, "end_date_time")
        return finish - length, finish
    raise UnsupportedInputError("time interval without exact bounds (date and part_of_day) cannot be placed")


def _unit_value(body: dict[str, Any], key: str) -> tuple[float, str]:
    item = require(body, key)
    if not isinstance(item, dict):
        raise MalformedInputError(f"{key} is not a {{value, unit}} object")
    return to_float(require(item, "value"), f"{key}.value"), str(require(item, "unit"))


def read_omh_body(
    body: Any,
    schema: str,
    source: Source,
    *,
    record_id: str | None = None,
    location: str | None = None,
    modality: str | None = None,
) -> list[Reading]:
    """Readings for one OmH body of schema ``schema`` (``step-count``, ``heart-rate``, ...)."""
    if not isinstance(body, dict):
        raise MalformedInputError("body is not an object")
    start, end = _time_frame(body)
    common: dict[str, Any] = {
        "end": end,
        "record_id": record_id,
        "location": location,
        "entered_by_user": modality == "self-reported",
    }
    if schema == "step-count":
        raw = require(body, "step_count")
        value = (
            to_float(raw, "step_count") if not isinstance(raw, dict) else _unit_value(body, "step_count")[0]
        )
        if end is None:
            raise MalformedInputError("step count needs a time interval")
        return [Reading(Metric.STEPS, value, "{steps}", start, source, **common)]
    if schema == "heart-rate":
        raw = require(body, "heart_rate")
        value, unit = (
            _unit_value(body, "heart_rate")
            if isinstance(raw, dict)
            else (to_float(raw, "heart_rate"), "beats/min")
        )
        metric = Metric.HEART_RATE
        if body.get("temporal_relationship_to_physical_activity") == "at rest":
            metric = Metric.RESTING_HEART_RATE
        converted = convert(metric, value, _OMH_UNITS.get(unit, unit))
        return [Reading(metric, converted[0], converted[1], start, source, **common)]
    if schema == "sleep-duration":
        value, unit = _unit_value(body, "sleep_duration")
        minutes = convert(Metric.SLEEP_DURATION, value, unit)[0]
        return [Reading(Metric.SLEEP_DURATION, minutes, "min", start, source, **common)]
    if schema == "physical-activity":
        name = str(require(body, "activity_name"))
        if end is None:
            raise UnsupportedInputError("physical activity without a time interval has no duration")
        out = [
            Reading(
                Metric.EXERCISE,
                round((end - start).total_seconds() / 60, 4),
                "min",
                start,
                source,
                label=name,
                **common,
            )
        ]
        if isinstance(body.get("kcal_burned"), dict):
            kcal, unit = _unit_value(body, "kcal_burned")
            out.append(
                Reading(
                    Metric.WORKOUT_ENERGY,
                    convert(Metric.WORKOUT_ENERGY, kcal, unit)[0],
                    "kcal",
                    start,
                    source,
                    label=name,
                    **common,
                )
            )
        if isinstance(body.get("distance"), dict):
            dist, unit = _unit_value(body, "distance")
            out.append(
                Reading(
                    Metric.DISTANCE,
                    convert(Metric.DISTANCE, dist, unit)[0],
                    "m",
                    start,
                    source,
                    label=name,
                    **common,
                )
            )
        return out
    if schema == "body-weight":
        value, unit = _unit_value(body, "body_weight")
        converted = convert(Metric.WEIGHT, value, unit)
        return [Reading(Metric.WEIGHT, converted[0], converted[1], start, source, **common)]
    if schema == "blood-pressure":
        sys_value, sys_unit = _unit_value(body, "systolic_blood_pressure")
        dia_value, dia_unit = _unit_value(body, "diastolic_blood_pressure")
        sys = convert(Metric.SYSTOLIC_BP, sys_value, sys_unit)
        dia = convert(Metric.DIASTOLIC_BP, dia_value, dia_unit)
        return [
            Reading(
                Metric.BLOOD_PRESSURE,
                None,
                "mm[Hg]",
                start,
                source,
                components=(Component(Metric.SYSTOLIC_BP, *sys), Component(Metric.DIASTOLIC_BP, *dia)),
                **common,
            )
        ]
    if schema == "blood-glucose":
        value, unit = _unit_value(body, "blood_glucose")
        converted = convert(Metric.BLOOD_GLUCOSE, value, unit)
        return [Reading(Metric.BLOOD_GLUCOSE, converted[0], converted[1], start, source, **common)]
    if schema == "oxygen-saturation":
        value, unit = _unit_value(body, "oxygen_saturation")
        converted = convert(Metric.SPO2, value, unit)
        return [Reading(Metric.SPO2, converted[0], converted[1], start, source, **common)]
    raise UnsupportedInputError(f"Open mHealth schema {schema!r} is not mapped")


def read_omh(
    stream: IO[bytes] | IO[str],
    *,
    file: str = "omh.json",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from OmH data points: one JSON object, a JSON array, or one object per line."""
    raw = stream.read()
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if not text.strip():
        raise MalformedInputError("the file is empty", file=file)
    try:
        doc = json.loads(text)
        points: list[Any] = doc if isinstance(doc, list) else [doc]
        lines = None
    except json.JSONDecodeError:
        points, lines = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    points.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise MalformedInputError(
                        f"not JSON or JSON lines ({exc.msg})", file=file, line=number
                    ) from exc
                lines.append(number)

    if not points or not isinstance(points[0], dict) or "header" not in points[0] or "body" not in points[0]:
        raise UnsupportedInputError("not Open mHealth data points (no header and body)", file=file)

    def build(point: Any) -> Iterable[Reading]:
        header = require(point, "header")
        schema_id = require(header, "schema_id")
        name = str(require(schema_id, "name"))
        provenance = header.get("acquisition_provenance") or {}
        source = Source(VENDOR, str(provenance.get("source_name") or "Open mHealth"))
        record_id = str(header.get("id") or header.get("uuid") or "") or None
        return read_omh_body(
            require(point, "body"),
            name,
            source,
            record_id=record_id,
            location=f"{file}:{record_id}",
            modality=provenance.get("modality"),
        )

    yield from guarded(
        points,
        build,
        errors=errors,
        file=file,
        locate=lambda i, _p: f"line {lines[i]}" if lines else f"[{i}]",
    )


# --- FHIR Observation -> OmH ------------------------------------------------------------------------------

#: LOINC code -> (schema name, version) written by :func:`observation_to_omh`.
OUT_SCHEMAS: Final[dict[str, tuple[str, str]]] = {
    s.DAILY_STEPS.code: ("step-count", "3.0"),
    s.STEPS_INTERVAL.code: ("step-count", "3.0"),
    s.HEART_RATE.code: ("heart-rate", "2.0"),
    s.RESTING_HEART_RATE.code: ("heart-rate", "2.0"),
    s.AVG_HEART_RATE_ACTIVITY.code: ("heart-rate", "2.0"),
    s.SLEEP_DURATION.code: ("sleep-duration", "2.0"),
    s.EXERCISE_DURATION.code: ("physical-activity", "1.2"),
    s.BODY_WEIGHT.code: ("body-weight", "2.0"),
    s.BLOOD_PRESSURE_PANEL.code: ("blood-pressure", "3.1"),
    s.BLOOD_GLUCOSE_MASS.code: ("blood-glucose", "3.0"),
    s.BLOOD_GLUCOSE_MOLES.code: ("blood-glucose", "3.0"),
    s.SPO2_ARTERIAL.code: ("oxygen-saturation", "2.0"),
    s.SPO2_PULSE_OXIMETRY.code: ("oxygen-saturation", "2.0"),
}
_MASS_OUT: Final = {"kg": "kg", "g": "g", "[lb_av]": "lb", "[oz_av]": "oz"}


def _loinc(obs: dict[str, Any]) -> str:
    for coding in obs.get("code", {}).get("coding", []):
        if coding.get("system") == s.LOINC and coding.get("code") in OUT_SCHEMAS:
            return str(coding["code"])
    raise UnsupportedInputError(
        "the Observation has no LOINC code with an Open mHealth schema", record=str(obs.get("id") or "")
    )


def _frame(obs: dict[str, Any], interval_only: bool) -> dict[str, Any]:
    if "effectivePeriod" in obs:
        period = obs["effectivePeriod"]
        return {"time_interval": {"start_date_time": period["start"], "end_date_time": period["end"]}}
    if "effectiveDateTime" in obs and not interval_only:
        return {"date_time": obs["effectiveDateTime"]}
    raise UnsupportedInputError("this Open mHealth schema needs an effectivePeriod")


def _value(obs: dict[str, Any]) -> tuple[float, str]:
    quantity = obs.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        raise MalformedInputError("the Observation has no valueQuantity")
    return quantity["value"], str(quantity.get("code") or quantity.get("unit") or "")


def _component(obs: dict[str, Any], code: str) -> float:
    for comp in obs.get("component", []):
        if any(c.get("code") == code for c in comp.get("code", {}).get("coding", [])):
            return float(comp["valueQuantity"]["value"])
    raise MalformedInputError(f"blood pressure Observation lacks component {code}")


def observation_to_omh(obs: dict[str, Any], *, creation_date_time: datetime) -> dict[str, Any]:
    """An OmH data point (header 1.2 + body) for an Observation; the caller passes the creation time."""
    code = _loinc(obs)
    name, version = OUT_SCHEMAS[code]
    body: dict[str, Any]
    if name == "step-count":
        value, _ = _value(obs)
        body = {"step_count": {"value": value, "unit": "steps"}, "effective_time_frame": _frame(obs, True)}
    elif name == "heart-rate":
        value, _ = _value(obs)
        body = {
            "heart_rate": {"value": value, "unit": "beats/min"},
            "effective_time_frame": _frame(obs, False),
        }
        if code == s.RESTING_HEART_RATE.code:
            body["temporal_relationship_to_physical_activity"] = "at rest"
        elif code == s.AVG_HEART_RATE_ACTIVITY.code:
            body["descriptive_statistic"] = "average"
            body["temporal_relationship_to_physical_activity"] = "during exercise"
    elif name == "sleep-duration":
        value, unit = _value(obs)
        body = {
            "sleep_duration": {"value": value, "unit": {"min": "min", "h": "h", "s": "sec"}.get(unit, "min")},
            "effective_time_frame": _frame(obs, True),
        }
    elif name == "physical-activity":
        notes = obs.get("note") or [{}]
        body = {
            "activity_name": str(notes[0].get("text") or "unspecified"),
            "effective_time_frame": _frame(obs, True),
        }
    elif name == "body-weight":
        value, unit = _value(obs)
        if unit not in _MASS_OUT:
            raise UnsupportedInputError(f"body weight unit {unit!r} has no Open mHealth counterpart")
        body = {
            "body_weight": {"value": value, "unit": _MASS_OUT[unit]},
            "effective_time_frame": _frame(obs, False),
        }
    elif name == "blood-pressure":
        body = {
            "systolic_blood_pressure": {"value": _component(obs, s.SYSTOLIC_BP.code), "unit": "mmHg"},
            "diastolic_blood_pressure": {"value": _component(obs, s.DIASTOLIC_BP.code), "unit": "mmHg"},
            "effective_time_frame": _frame(obs, False),
        }
    elif name == "blood-glucose":
        value, unit = _value(obs)
        body = {
            "blood_glucose": {"value": value, "unit": "mmol/L" if unit == "mmol/L" else "mg/dL"},
            "effective_time_frame": _frame(obs, False),
        }
    else:  # oxygen-saturation
        value, _ = _value(obs)
        body = {
            "oxygen_saturation": {"value": value, "unit": "%"},
            "effective_time_frame": _frame(obs, False),
        }
        if any(c.get("code") == s.SPO2_PULSE_OXIMETRY.code for c in obs["code"]["coding"]):
            body["measurement_method"] = "pulse oximetry"
    identifiers = obs.get("identifier") or []
    header: dict[str, Any] = {
        "id": str(identifiers[0]["value"] if identifiers else obs.get("id") or ""),
        "creation_date_time": creation_date_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "schema_id": {"namespace": "omh", "name": name, "version": version},
        "acquisition_provenance": {
            "source_name": str(
                obs.get("device", {}).get("display") or obs.get("meta", {}).get("source") or "mECR"
            ),
            "modality": "self-reported"
            if any(t.get("code") == "self-reported" for t in obs.get("meta", {}).get("tag", []))
            else "sensed",
        },
    }
    if not header["id"]:
        raise MalformedInputError("the Observation has neither an identifier nor an id")
    subject = obs.get("subject", {}).get("reference")
    if subject:
        header["user_id"] = str(subject)
    return {"header": header, "body": body}
