"""Which wearable format a file is, and the reader (from :mod:`mappings.wearables`) that streams it.

Detection looks at the bytes, not only the name: a zip holding ``export.xml`` is Apple Health, a zip of
``steps-2020-01-01.json``-style files is the Fitbit account export, ``.FIT`` at byte 8 is a Garmin FIT file,
``<HealthData`` is an Apple Health ``export.xml``, and a JSON document is told apart by its top-level keys
(Withings ``body``, Google Fit ``point``, iHealth ``*DataList``, Open mHealth ``header``+``body``, Fitbit
``activities-*``/``sleep``/``weight``). A CSV needs a column mapping (:func:`csv_mapping_from_dict`).

Errors: a file that cannot be recognised or opened raises :class:`~mappings.errors.MappingError` (the one
hierarchy of :mod:`mappings`), naming the file. Zip archives are opened here, not by the readers, and read under
:class:`~fhir_ecr.wearables.ziplimits.ZipLimits` (a zip bomb raises
:class:`~fhir_ecr.wearables.ziplimits.ArchiveTooLarge`).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import IO, Any, Final

from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError
from mappings.wearables import (
    CsvColumn,
    CsvMapping,
    Metric,
    Reading,
    read_apple_health,
    read_csv,
    read_fitbit,
    read_fitbit_export,
    read_garmin_fit,
    read_google_fit,
    read_ihealth,
    read_omh,
    read_withings,
)
from mappings.wearables._common import zone
from mappings.wearables.apple_health import LightRecord

from .ziplimits import ZipLimits, check_members, open_archive, open_member

__all__ = ["FORMATS", "ReaderOptions", "csv_mapping_from_dict", "detect_format", "open_readings"]

#: Format names accepted by ``--format`` and the upload's ``format`` field.
FORMATS: Final = (
    "apple-health",
    "fitbit",
    "fitbit-export",
    "garmin-fit",
    "withings",
    "google-fit",
    "ihealth",
    "omh",
    "csv",
)

_FITBIT_EXPORT_NAME = re.compile(r"(^|/)([a-z_]+)-\d{4}-\d{2}-\d{2}\.json$")
_SNIFF = 64 * 1024


@dataclass(frozen=True)
class ReaderOptions:
    """What a reader needs besides the stream: the patient's zone and format-specific settings."""

    tz: tzinfo
    csv_mapping: CsvMapping | None = None
    weight_unit: str | None = None  # Fitbit: the account's display unit (kg for the API, lb for the export)
    # Apple Health: metrics whose records may come as light tuples, and metrics only counted (into the dict)
    light: frozenset[Metric] = frozenset()
    counted: dict[Metric, int] | None = None
    zip_limits: ZipLimits = ZipLimits()


def detect_format(stream: IO[bytes], name: str) -> str:
    """The format of ``stream`` (seekable; left at offset 0), from its first bytes and its ``name``."""
    head = stream.read(_SNIFF)
    stream.seek(0)
    if not head.strip():
        raise MalformedInputError("the file is empty", file=name)
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return _zip_format(stream, name)
    if len(head) >= 12 and head[8:12] == b".FIT":
        return "garmin-fit"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        if b"<HealthData" in head or name.lower().endswith(".xml"):
            return "apple-health"
        raise UnsupportedInputError(
            "an XML file that is not an Apple Health export (no <HealthData>)", file=name
        )
    if text[:1] in (b"{", b"["):
        return _json_format(stream, name)
    if name.lower().endswith((".csv", ".tsv", ".txt")):
        return "csv"
    raise UnsupportedInputError(
        "unrecognised file: not a zip, FIT, Apple Health XML, JSON or CSV file (give --format)", file=name
    )


def _zip_format(stream: IO[bytes], name: str) -> str:
    try:
        with zipfile.ZipFile(stream) as archive:
            names = [n for n in archive.namelist() if not n.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MalformedInputError(f"not a readable zip archive ({exc})", file=name) from exc
    finally:
        stream.seek(0)
    if any(n.rsplit("/", 1)[-1] == "export.xml" for n in names):
        return "apple-health"
    if any(_FITBIT_EXPORT_NAME.search(n) for n in names):
        return "fitbit-export"
    raise UnsupportedInputError(
        "a zip that holds neither an Apple Health export.xml nor Fitbit export files", file=name
    )


def _json_format(stream: IO[bytes], name: str) -> str:
    if _FITBIT_EXPORT_NAME.search(name.lower()):
        return "fitbit-export"
    try:
        doc = json.loads(stream.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        try:  # JSON lines: one Open mHealth data point per line
            stream.seek(0)
            first = next(line for line in stream if line.strip())
            doc = json.loads(first)
        except (json.JSONDecodeError, UnicodeDecodeError, StopIteration) as exc:
            raise MalformedInputError(f"not valid JSON ({exc})", file=name) from exc
    finally:
        stream.seek(0)
    item = doc[0] if isinstance(doc, list) and doc else doc
    if isinstance(item, dict):
        if "header" in item and "body" in item:
            return "omh"
        if isinstance(item.get("body"), dict) and "status" in item:
            return "withings"
        if "point" in item or "dataSourceId" in item:
            return "google-fit"
        if any(k.endswith("DataList") for k in item):
            return "ihealth"
        if any(k.startswith("activities") for k in item) or {"sleep", "weight", "summary"} & set(item):
            return "fitbit"
    raise UnsupportedInputError("a JSON document of no known wearable layout (give --format)", file=name)


def csv_mapping_from_dict(spec: Mapping[str, Any]) -> CsvMapping:
    """A :class:`~mappings.wearables.CsvMapping` from JSON, e.g.
    ``{"start": "date", "values": [{"metric": "steps", "column": "steps", "unit": "count"}],
    "source_name": "Pedometer", "tz": "Europe/Paris"}``.
    """
    if not isinstance(spec, Mapping):
        raise MalformedInputError("the CSV mapping must be a JSON object")
    try:
        values = tuple(
            CsvColumn(Metric(v["metric"]), v["column"], v.get("unit"), v.get("unit_column"))
            for v in spec.get("values") or []
        )
        if not values:
            raise MalformedInputError("the CSV mapping names no value columns ('values')")
        options = {
            k: spec[k]
            for k in (
                "end",
                "time_format",
                "delimiter",
                "decimal",
                "source_column",
                "id_column",
                "skip_lines",
                "skip_empty_values",
                "vendor",
            )
            if k in spec
        }
        tz = zone(str(spec["tz"])) if spec.get("tz") else None
        return CsvMapping(
            start=str(spec["start"]),
            values=values,
            source_name=str(spec.get("source_name", "CSV")),
            tz=tz,
            **options,
        )
    except KeyError as exc:
        raise MalformedInputError(f"the CSV mapping lacks {exc.args[0]!r}") from exc
    except (ValueError, TypeError) as exc:
        if isinstance(exc, MalformedInputError):
            raise
        raise MalformedInputError(f"the CSV mapping is not valid ({exc})") from exc


def open_readings(
    fmt: str, stream: IO[bytes], name: str, options: ReaderOptions, errors: SkipLog
) -> Iterator[Reading | LightRecord]:
    """Readings of ``stream`` in format ``fmt``; record-level problems go to ``errors``. Only the Apple Health
    reader honours ``options.light`` and ``options.counted`` (the others always yield readings)."""
    reader = _READERS.get(fmt)
    if reader is None:
        raise UnsupportedInputError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", file=name)
    return reader(stream, name, options, errors)


def _apple(
    stream: IO[bytes], name: str, o: ReaderOptions, errors: SkipLog
) -> Iterator[Reading | LightRecord]:
    # ActivitySummary rows are local days without a zone: they are the patient's days.
    head = stream.read(4)
    stream.seek(0)
    if not head.startswith(b"PK"):
        yield from read_apple_health(
            stream, file=name, errors=errors, summary_tz=o.tz, light=o.light, counted=o.counted
        )
        return
    archive, counted = open_archive(stream, name)
    with archive:
        exports = [
            i
            for i in archive.infolist()
            if i.filename.rsplit("/", 1)[-1] == "export.xml" and not i.filename.startswith("__MACOSX/")
        ]
        if not exports:
            raise MalformedInputError("the zip holds no export.xml", file=name)
        member = min(
            exports, key=lambda i: len(i.filename)
        )  # apple_health_export/export.xml, not a nested copy
        check_members([member], name, o.zip_limits)
        label = f"{name}!{member.filename}"
        with open_member(archive, counted, member, label, o.zip_limits) as xml:
            yield from read_apple_health(
                xml, file=label, errors=errors, summary_tz=o.tz, light=o.light, counted=o.counted
            )


def _fitbit(stream: IO[bytes], name: str, o: ReaderOptions, errors: SkipLog) -> Iterator[Reading]:
    extra: dict[str, Any] = {"weight_unit": o.weight_unit} if o.weight_unit else {}
    return read_fitbit(stream, tz=o.tz, file=name, errors=errors, **extra)


def _fitbit_export(stream: IO[bytes], name: str, o: ReaderOptions, errors: SkipLog) -> Iterator[Reading]:
    extra: dict[str, Any] = {"weight_unit": o.weight_unit} if o.weight_unit else {}
    head = stream.read(4)
    stream.seek(0)
    if not head.startswith(b"PK"):
        yield from read_fitbit_export(stream, name=name, tz=o.tz, errors=errors, **extra)
        return
    archive, counted = open_archive(stream, name)
    with archive:
        members = sorted(
            (
                i
                for i in archive.infolist()
                if not i.filename.startswith("__MACOSX/") and _FITBIT_EXPORT_NAME.search(i.filename)
            ),
            key=lambda i: i.filename,
        )
        check_members(members, name, o.zip_limits)
        for member in members:
            match = _FITBIT_EXPORT_NAME.search(member.filename)
            assert match is not None
            label = f"{name}!{member.filename}"
            try:
                with open_member(archive, counted, member, label, o.zip_limits) as part:
                    yield from read_fitbit_export(part, name=label, tz=o.tz, errors=errors, **extra)
            except UnsupportedInputError as exc:  # a file kind the export mapping does not read
                errors.ignore(f"unsupported Fitbit export file {match.group(2)}")
                del exc


def _simple(reader: Callable[..., Iterator[Reading]], with_tz: bool) -> Callable[..., Iterator[Reading]]:
    def run(stream: IO[bytes], name: str, o: ReaderOptions, errors: SkipLog) -> Iterator[Reading]:
        return reader(stream, file=name, errors=errors, **({"tz": o.tz} if with_tz else {}))

    return run


def _csv(stream: IO[bytes], name: str, o: ReaderOptions, errors: SkipLog) -> Iterator[Reading]:
    if o.csv_mapping is None:
        raise UnsupportedInputError("a CSV file needs a column mapping (--csv-mapping FILE.json)", file=name)
    mapping = o.csv_mapping if o.csv_mapping.tz is not None else _with_tz(o.csv_mapping, o.tz)
    return read_csv(
        io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""), mapping, file=name, errors=errors
    )


def _with_tz(mapping: CsvMapping, tz: tzinfo) -> CsvMapping:
    from dataclasses import replace

    return replace(mapping, tz=tz)


_READERS: Final[dict[str, Callable[[IO[bytes], str, ReaderOptions, SkipLog], Iterator[Any]]]] = {
    "apple-health": _apple,
    "fitbit": _fitbit,
    "fitbit-export": _fitbit_export,
    "garmin-fit": _simple(read_garmin_fit, with_tz=False),
    "withings": _simple(read_withings, with_tz=True),
    "google-fit": _simple(read_google_fit, with_tz=True),
    "ihealth": _simple(read_ihealth, with_tz=False),
    "omh": _simple(read_omh, with_tz=False),
    "csv": _csv,
}
