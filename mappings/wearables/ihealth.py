"""iHealth API JSON (``*DataList`` responses) -> :class:`Reading`.

Rules (tests/fixtures/README.md, shimmer's iHealth notes): ``MDate``/``StartTime``/``EndTime`` are epoch seconds
**shifted by the record's own** ``TimeZone`` (``"-0800"``, sometimes an integer), i.e. local wall time written
as if it were UTC; the true instant is ``MDate - offset``. Units are per-response enums: ``BPUnit`` 0 mmHg /
1 kPa, ``BGUnit`` 0 mg/dL / 1 mmol/L, ``WeightUnit`` 0 kg / 1 lb / 2 stone. Sleep ``HoursSlept`` is in
**minutes**. ``DataSource`` ``Manual`` = entered by hand. Activity rows (``ARDataList``) are daily totals of
the record's local day; their ``Calories`` include basal energy and are not mapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, Final

from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError
from mappings.wearables._common import (
    convert,
    day_bounds,
    guarded,
    load_json,
    parse_offset,
    require,
    to_float,
)
from mappings.wearables.model import Component, Metric, Reading, Source

__all__ = ["read_ihealth"]

VENDOR: Final = "ihealth"
_SOURCE = Source(VENDOR, "iHealth API")
_BP_UNITS: Final = {0: "mmHg", 1: "kPa"}
_BG_UNITS: Final = {0: "mg/dL", 1: "mmol/L"}
_WEIGHT_UNITS: Final = {0: "kg", 1: "lb", 2: "st"}
_LISTS: Final = ("BPDataList", "BGDataList", "BODataList", "WeightDataList", "SRDataList", "ARDataList")


def _shifted(raw: Any, record: dict[str, Any], what: str) -> datetime:
    """Undo iHealth's shift: the epoch value is local wall time; the offset comes from ``TimeZone``."""
    tz = parse_offset(require(record, "TimeZone"))
    wall = datetime.fromtimestamp(to_float(raw, what), UTC).replace(tzinfo=None)
    return wall.replace(tzinfo=tz)


def read_ihealth(
    stream: IO[bytes] | IO[str],
    *,
    file: str = "ihealth.json",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from one iHealth API response (BP, glucose, SpO2, weight, sleep or activity list)."""
    doc = load_json(stream, file)
    if not isinstance(doc, dict):
        raise UnsupportedInputError("expected an iHealth response object", file=file)
    lists = [key for key in _LISTS if key in doc]
    if not lists:
        raise UnsupportedInputError(f"no iHealth *DataList in keys {sorted(doc)[:6]}", file=file)
    for key in lists:
        items = doc[key]
        if not isinstance(items, list):
            raise MalformedInputError(f"{key!r} is not a list", file=file)
        build = _builder(key, doc)
        yield from guarded(items, build, errors=errors, file=file, locate=_locator(key))


def _unit(doc: dict[str, Any], key: str, table: dict[int, str]) -> str:
    code = doc.get(key, 0)
    if code not in table:
        raise MalformedInputError(f"unknown {key} {code!r}")
    return table[code]


def _builder(key: str, doc: dict[str, Any]) -> Any:
    def common(record: dict[str, Any], file_key: str) -> dict[str, Any]:
        record_id = str(record.get("DataID")) if record.get("DataID") is not None else None
        return {
            "record_id": record_id,
            "location": f"{file_key} {record_id}",
            "entered_by_user": record.get("DataSource") == "Manual",
        }

    def bp(record: Any) -> Iterable[Reading]:
        unit = _unit(doc, "BPUnit", _BP_UNITS)
        at = _shifted(require(record, "MDate"), record, "MDate")
        sys = convert(Metric.SYSTOLIC_BP, to_float(require(record, "HP"), "HP"), unit)
        dia = convert(Metric.DIASTOLIC_BP, to_float(require(record, "LP"), "LP"), unit)
        out = [
            Reading(
                Metric.BLOOD_PRESSURE,
                None,
                "mm[Hg]",
                at,
                _SOURCE,
                components=(Component(Metric.SYSTOLIC_BP, *sys), Component(Metric.DIASTOLIC_BP, *dia)),
                **common(record, key),
            )
        ]
        out += _pulse(record, at, common(record, key))
        return out

    def bg(record: Any) -> Iterable[Reading]:
        unit = _unit(doc, "BGUnit", _BG_UNITS)
        at = _shifted(require(record, "MDate"), record, "MDate")
        value, canonical = convert(Metric.BLOOD_GLUCOSE, to_float(require(record, "BG"), "BG"), unit)
        label = record.get("DinnerSituation") if isinstance(record.get("DinnerSituation"), str) else None
        return [
            Reading(Metric.BLOOD_GLUCOSE, value, canonical, at, _SOURCE, label=label, **common(record, key))
        ]

    def spo2(record: Any) -> Iterable[Reading]:
        at = _shifted(require(record, "MDate"), record, "MDate")
        out = [
            Reading(
                Metric.SPO2, to_float(require(record, "BO"), "BO"), "%", at, _SOURCE, **common(record, key)
            )
        ]
        return out + _pulse(record, at, common(record, key))

    def weight(record: Any) -> Iterable[Reading]:
        unit = _unit(doc, "WeightUnit", _WEIGHT_UNITS)
        at = _shifted(require(record, "MDate"), record, "MDate")
        value, canonical = convert(
            Metric.WEIGHT, to_float(require(record, "WeightValue"), "WeightValue"), unit
        )
        out = [Reading(Metric.WEIGHT, round(value, 4), canonical, at, _SOURCE, **common(record, key))]
        if record.get("BMI"):
            out.append(
                Reading(
                    Metric.BMI,
                    round(to_float(record["BMI"], "BMI"), 2),
                    "kg/m2",
                    at,
                    _SOURCE,
                    **common(record, key),
                )
            )
        if record.get("FatValue"):  # 0 means "not measured"
            out.append(
                Reading(
                    Metric.BODY_FAT,
                    to_float(record["FatValue"], "FatValue"),
                    "%",
                    at,
                    _SOURCE,
                    **common(record, key),
                )
            )
        return out

    def sleep(record: Any) -> Iterable[Reading]:
        start = _shifted(require(record, "StartTime"), record, "StartTime")
        end = _shifted(require(record, "EndTime"), record, "EndTime")
        minutes = to_float(require(record, "HoursSlept"), "HoursSlept")  # minutes, despite the name
        return [
            Reading(Metric.SLEEP_DURATION, minutes, "min", start, _SOURCE, end=end, **common(record, key))
        ]

    def activity(record: Any) -> Iterable[Reading]:
        at = _shifted(require(record, "MDate"), record, "MDate")
        start, end = day_bounds(at.date(), at.tzinfo or UTC)
        return [
            Reading(
                Metric.STEPS,
                to_float(require(record, "Steps"), "Steps"),
                "{steps}",
                start,
                _SOURCE,
                end=end,
                local_date=at.date(),
                **common(record, key),
            )
        ]

    return {
        "BPDataList": bp,
        "BGDataList": bg,
        "BODataList": spo2,
        "WeightDataList": weight,
        "SRDataList": sleep,
        "ARDataList": activity,
    }[key]


def _pulse(record: dict[str, Any], at: datetime, common: dict[str, Any]) -> list[Reading]:
    if not record.get("HR"):
        return []
    return [Reading(Metric.HEART_RATE, to_float(record["HR"], "HR"), "/min", at, _SOURCE, **common)]


def _locator(key: str) -> Callable[[int, Any], str]:
    """Where record ``i`` of list ``key`` is, for the skip log."""

    def locate(i: int, r: Any) -> str:
        return f"{key}[{i}] DataID {r.get('DataID') if isinstance(r, dict) else '?'}"

    return locate
