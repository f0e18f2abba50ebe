"""A generic CSV reader driven by a column mapping -> :class:`Reading`.

For exports that have no dedicated reader (Samsung Health, Withings Health Mate CSV, an app's own CSV): the
caller says which column holds the start (and optionally end) time, how times are written, which columns
hold which metric and in which unit, and the locale's decimal separator.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import IO, cast

from mappings.errors import MalformedInputError, MappingError, SkipLog
from mappings.wearables._common import convert
from mappings.wearables.model import Metric, Reading, Source

__all__ = ["CsvColumn", "CsvMapping", "read_csv"]


@dataclass(frozen=True, slots=True)
class CsvColumn:
    """One value column: the metric it holds and its unit (as written, converted to canonical units).

    ``unit_column`` names a column holding the unit per row instead (Apple's CSV has ``unit``).
    """

    metric: Metric
    column: str
    unit: str | None = None
    unit_column: str | None = None


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """How to read one CSV layout.

    ``time_format`` is a ``strptime`` format, or ``"iso"`` for ISO 8601. Times without an offset are placed
    in ``tz`` (required then). ``decimal`` is ``","`` for locales that write ``72,5``; ``skip_lines`` skips
    leading lines before the header (Samsung Health writes a metadata line first).
    """

    start: str
    values: tuple[CsvColumn, ...]
    source_name: str
    end: str | None = None
    time_format: str = "iso"
    tz: tzinfo | None = None
    delimiter: str = ","
    decimal: str = "."
    source_column: str | None = None
    id_column: str | None = None
    skip_lines: int = 0
    skip_empty_values: bool = True
    vendor: str = "csv"
    extra_columns: tuple[str, ...] = field(default=())


def read_csv(
    stream: IO[str] | IO[bytes],
    mapping: CsvMapping,
    *,
    file: str = "data.csv",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from a CSV stream laid out as ``mapping`` says; rows are numbered as file lines."""
    text: IO[str] = (
        io.TextIOWrapper(cast(IO[bytes], stream), encoding="utf-8-sig", newline="")
        if _is_binary(stream)
        else cast(IO[str], stream)
    )
    for _ in range(mapping.skip_lines):
        text.readline()
    reader = csv.DictReader(text, delimiter=mapping.delimiter)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise MalformedInputError(f"not valid CSV ({exc})", file=file) from exc
    if not header:
        raise MalformedInputError("the file is empty: no header row", file=file)
    needed = {mapping.start, *(c.column for c in mapping.values)}
    needed |= {c.unit_column for c in mapping.values if c.unit_column}
    if mapping.end:
        needed.add(mapping.end)
    missing = sorted(needed - set(header))
    if missing:
        raise MalformedInputError(
            f"missing columns {missing} (header has {header})", file=file, line=1 + mapping.skip_lines
        )
    try:
        for row in reader:
            line = reader.line_num + mapping.skip_lines
            try:
                yield from (r.checked() for r in _row(row, mapping, file, line))
            except MappingError as exc:
                located = type(exc)(exc.reason, file=file, line=line, record=exc.record)
                if errors is None:
                    raise located from exc
                errors.add(located)
    except csv.Error as exc:
        raise MalformedInputError(f"not valid CSV ({exc})", file=file, line=reader.line_num) from exc


def _is_binary(stream: IO[str] | IO[bytes]) -> bool:
    return isinstance(stream, io.RawIOBase | io.BufferedIOBase) or "b" in getattr(stream, "mode", "")


def _time(raw: str | None, mapping: CsvMapping, what: str) -> datetime:
    if raw is None or not raw.strip():
        raise MalformedInputError(f"empty {what}")
    try:
        parsed = (
            datetime.fromisoformat(raw.strip())
            if mapping.time_format == "iso"
            else datetime.strptime(raw.strip(), mapping.time_format)
        )
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} does not match {mapping.time_format!r}") from exc
    if parsed.tzinfo is None:
        if mapping.tz is None:
            raise MalformedInputError(f"{what} {raw!r} has no UTC offset and the mapping gives no tz")
        parsed = parsed.replace(tzinfo=mapping.tz)
    return parsed


def _number(raw: str, decimal: str, what: str) -> float:
    text = raw.strip().replace("\u00a0", "").replace(" ", "")
    # 1.234,5 -> 1234.5 where the decimal separator is a comma; 1,234.5 -> 1234.5 otherwise
    text = text.replace(".", "").replace(decimal, ".") if decimal != "." else text.replace(",", "")
    try:
        return float(text)
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not a number") from exc


def _row(row: dict[str, str | None], mapping: CsvMapping, file: str, line: int) -> Iterator[Reading]:
    if None in row:
        raise MalformedInputError("row has more cells than the header")
    start = _time(row.get(mapping.start), mapping, mapping.start)
    end = _time(row.get(mapping.end), mapping, mapping.end) if mapping.end else None
    name = (row.get(mapping.source_column) or "").strip() if mapping.source_column else ""
    source = Source(mapping.vendor, name or mapping.source_name)
    record_id = (row.get(mapping.id_column) or None) if mapping.id_column else None
    for column in mapping.values:
        raw = row.get(column.column)
        if raw is None or not raw.strip():
            if mapping.skip_empty_values:
                continue
            raise MalformedInputError(f"empty {column.column}")
        unit = (row.get(column.unit_column) or "") if column.unit_column else column.unit
        value, canonical = convert(column.metric, _number(raw, mapping.decimal, column.column), unit)
        yield Reading(
            column.metric,
            value,
            canonical,
            start,
            source,
            end=None if end == start else end,
            record_id=record_id,
            location=f"{file}:{line}",
        )
