"""Import wearable exports into the FHIR store: streamed, de-duplicated, idempotent, atomic per batch, resumable.

One file is read once, as a stream (:mod:`mappings.wearables` readers, constant memory). Each reading goes one
of two ways:

* **Daily-summary inputs** (steps, active minutes, sleep, resting heart rate) are added into per
  (metric, patient-local day, source) partial sums; when the whole file has been read, the sums become the
  day's summaries through :func:`mappings.wearables.daily_summaries` (its de-duplication rule: per metric the
  highest-priority source with data, never the sum of sources). Intraday samples are not stored (unless
  ``samples=True``): the store holds the summaries and the spot readings (issue 7).
* **Spot readings and sessions** (weight, blood pressure, SpO2, glucose, temperature, BMI, workouts, a
  source's own day totals of other metrics) become Observations (+ a Device per source) as they stream by.

Speed (Apple Health, ``docs/wearables.md``): without ``samples`` the reader hands summary inputs over as light
tuples and only counts intraday samples (both after every check of a full reading), and a large plain
``export.xml`` has its second half parsed by a forked process (:class:`_Split`), replayed here in file order.

Writes (``docs/wearables.md``):

* **Deterministic ids.** Each Observation's id is its identifier value (SHA-256 of patient + metric + period +
  source for readings, patient + metric + local day for summaries), so a batch finds what already exists with
  one ``_id`` search per resource type and then creates what is absent, updates what changed and leaves the
  rest alone. Re-importing a file, or a newer export that overlaps an older one, creates no duplicates and
  writes nothing that did not change. Devices are created once and never rewritten by an import.
* **Atomic batches.** A batch is one unit of work: ``batch_readings`` whole readings, or ``batch_days`` whole
  local days of summaries (a day's summaries are never split). Summaries are written only after the whole
  file was read, so a truncated file or a crash never leaves half a day.
* **Resumable.** Each batch records its progress in the store's kv state (``wearable-import:…``, keyed by
  patient, the file's SHA-256 and the options) in the same transaction; importing the same file again after a
  crash skips what is committed. A finished import marks the state complete, and the next import of the same
  file runs in full (and, being idempotent, writes nothing).
* **A day summary is not overwritten by a lower-priority source.** A summary already stored for a day is
  replaced when the new one comes from the same source (a newer export) or from a source that ranks at least
  as high in the de-duplication rule (ties: the larger value), so importing Apple Health after Fitbit does
  not undo the Fitbit day the rule prefers.
* **Habits connect.** After each summary batch, summaries whose code is that of an active habit (on or after
  the habit's start) go through :meth:`CoachingService.apply_wearable_observation`: a day at or above the
  target becomes a ``done`` check-in (idempotent per habit and day).

Bad records (wrong schema, unknown units, absurd values such as 200,000 steps a day or a 20 kg adult) are
reported with file, line/record and reason, and not stored. A file that cannot be read at all raises
:class:`WearableImportError` naming the file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import pickle
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import IO, Any, Final, cast
from zoneinfo import ZoneInfo

from mappings.errors import MalformedInputError, MappingError, SkipLog, SkippedRecord, UnsupportedInputError
from mappings.wearables import (
    DEFAULT_RULE,
    CsvMapping,
    DailySummary,
    DedupRule,
    Metric,
    Reading,
    Source,
    daily_summaries,
    device_id,
    reading_to_observation,
    source_to_device,
    summary_to_observation,
)
from mappings.wearables.apple_health import ExportPart, read_apple_health, split_export
from mappings.wearables.summaries import _days_of  # the same day-splitting rule as the summaries

from ..coaching import fhir_io as coaching_io
from ..outcomes import Conflict, Gone, NotFound, not_found
from ..store.repository import FhirRepository, Stored, UnitOfWork
from ..store.search import parse_search
from .formats import ReaderOptions, detect_format, open_readings
from .ziplimits import ArchiveTooLarge, ZipLimits

__all__ = [
    "ImportOptions",
    "ImportSummary",
    "WearableImportError",
    "WearableImporter",
    "parse_source_priority",
]

log = logging.getLogger("mecr.wearables")

#: Readings that feed the daily summaries (stored themselves only with ``samples=True``).
SUMMARY_INPUTS: Final = frozenset({Metric.STEPS, Metric.ACTIVE_MINUTES, Metric.SLEEP_DURATION, Metric.SLEEP_ASLEEP,
                                   Metric.SLEEP_LIGHT, Metric.SLEEP_DEEP, Metric.SLEEP_REM,
                                   Metric.RESTING_HEART_RATE})
#: Intraday samples of other metrics: not stored unless asked (a source's own day totals are stored).
INTRADAY: Final = frozenset({Metric.DISTANCE, Metric.HEART_RATE, Metric.ACTIVE_ENERGY, Metric.SLEEP_AWAKE,
                             Metric.SLEEP_IN_BED})
_ASLEEP: Final = frozenset({Metric.SLEEP_ASLEEP, Metric.SLEEP_LIGHT, Metric.SLEEP_DEEP, Metric.SLEEP_REM})
#: summary input -> (the summary it adds to, whether it is additive): as _DayTotals.add decides
_TARGETS: Final = {m: ((m, True) if m in (Metric.STEPS, Metric.ACTIVE_MINUTES) else
                       (m, False) if m is Metric.RESTING_HEART_RATE else (Metric.SLEEP_DURATION, False))
                   for m in SUMMARY_INPUTS}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_SUMMARY_UNITS: Final = {Metric.STEPS: "{steps}", Metric.RESTING_HEART_RATE: "/min"}
_STATE_PREFIX: Final = "wearable-import:"
_MAX_PROBLEMS: Final = 100  # located bad records kept for the report (all are counted)
_MAX_REASONS: Final = 200
_MAX_MANIFEST: Final = 200_000  # resources; beyond (e.g. with samples), a re-import always runs in full
_OK_STATUSES: Final = ("final", "amended", "corrected")
_SUPERSEDED: Final = "daily summary: a higher-priority source is already stored for the day"


class WearableImportError(Exception):
    """A file that cannot be imported at all (empty, truncated, not the format it claims). Names the file.
    ``too_large``: a zip archive past the limits (:mod:`~fhir_ecr.wearables.ziplimits`)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 too_large: bool = False) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.too_large = too_large


@dataclass(frozen=True)
class ImportOptions:
    """How to import: format (None = detect), de-duplication rule, batch sizes, whether to keep samples."""

    format: str | None = None
    rule: DedupRule = DEFAULT_RULE
    samples: bool = False
    csv_mapping: CsvMapping | None = None
    weight_unit: str | None = None
    batch_readings: int = 1000
    batch_days: int = 92
    skip_verified: bool = True  # a file imported before (same SHA-256) whose resources are unchanged: no parse
    parallel: bool = True  # a large Apple Health export.xml: its second half is parsed in a second process
    zip_limits: ZipLimits = ZipLimits()  # uncompressed size and ratio of zip archives (zip bombs)


@dataclass
class ImportSummary:
    """What an import did. ``read`` counts records (readings, bad and ignored records); ``mapped`` the readings
    that were stored or went into a daily summary; ``skipped`` the rest, by reason."""

    files: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    bytes: int = 0
    read: int = 0
    mapped: int = 0
    summarised: int = 0
    skipped: int = 0
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    problems: list[SkippedRecord] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    days: int = 0
    checkins: int = 0
    resumed: int = 0
    already_imported: int = 0  # files skipped: imported before and every resource they wrote is unchanged
    seconds: float = 0.0

    def skip(self, reason: str, n: int = 1, problem: SkippedRecord | None = None) -> None:
        self.skipped += n
        if reason in self.skipped_reasons or len(self.skipped_reasons) < _MAX_REASONS:
            self.skipped_reasons[reason] += n
        else:
            self.skipped_reasons["other reasons"] += n
        if problem is not None and len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)

    def merge(self, other: ImportSummary) -> None:
        """Add another file's figures to these."""
        for name in ("bytes", "read", "mapped", "summarised", "skipped", "created", "updated", "unchanged", "days",
                     "checkins", "resumed", "already_imported", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.files += other.files
        self.formats += other.formats
        self.skipped_reasons.update(other.skipped_reasons)
        self.problems += other.problems[: max(0, _MAX_PROBLEMS - len(self.problems))]

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (CLI ``--json`` and the upload endpoint)."""
        return {
            "files": self.files, "formats": self.formats, "bytes": self.bytes, "read": self.read,
            "mapped": self.mapped, "summarised": self.summarised, "skipped": self.skipped,
            "skippedReasons": dict(self.skipped_reasons.most_common()),
            "problems": [{k: v for k, v in (("file", p.file), ("line", p.line), ("record", p.record),
                                            ("reason", p.reason)) if v is not None} for p in self.problems],
            "created": self.created, "updated": self.updated, "unchanged": self.unchanged, "days": self.days,
            "checkins": self.checkins, "resumed": self.resumed, "alreadyImported": self.already_imported,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        """A few human-readable lines (the CLI's summary)."""
        lines = [
            f"read {self.read:,} records from {len(self.files)} file(s) ({self.bytes / 1e6:,.1f} MB) "
            f"in {self.seconds:,.1f} s",
            f"mapped {self.mapped:,} ({self.summarised:,} into {self.days:,} daily summaries); "
            f"skipped {self.skipped:,}",
            f"created {self.created:,}, updated {self.updated:,}, unchanged {self.unchanged:,}"
            + (f"; habit check-ins {self.checkins:,}" if self.checkins else "")
            + (f"; {self.resumed:,} already imported by an interrupted run" if self.resumed else ""),
        ]
        if self.already_imported:
            lines.append(f"{self.already_imported} file(s) imported before with the same content (SHA-256): their "
                         "stored resources are unchanged, nothing to do")
        for reason, n in self.skipped_reasons.most_common(10):
            lines.append(f"  skipped {n:,}: {reason}")
        for p in self.problems[:10]:
            where = ", ".join(str(x) for x in (p.file, f"line {p.line}" if p.line else None, p.record) if x)
            lines.append(f"  {where}: {p.reason}")
        if len(self.problems) > 10:
            lines.append(f"  … {len(self.problems) - 10} more located problems with --json (the first 100 are kept)")
        return "\n".join(lines)


def parse_source_priority(specs: Sequence[str]) -> DedupRule:
    """``["garmin,fitbit", "steps=apple watch,iphone"]`` -> a rule: a default order, and orders per metric."""
    default = DEFAULT_RULE.default
    per_metric: dict[Metric, tuple[str, ...]] = {}
    for spec in specs:
        head, sep, rest = spec.partition("=")
        patterns = tuple(p.strip() for p in (rest if sep else head).split(",") if p.strip())
        if not patterns:
            raise ValueError(f"source priority {spec!r} names no source")
        if sep:
            try:
                per_metric[Metric(head.strip())] = patterns
            except ValueError:
                raise ValueError(f"unknown metric {head.strip()!r} in source priority {spec!r}") from None
        else:
            default = patterns
    return DedupRule(default=default, per_metric=per_metric)


# --- reading the file ------------------------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """A read-only file wrapper that reports bytes read (the progress bar) and passes seeks through."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Problems(SkipLog):
    """The readers' skip log, reporting into the import summary as it goes (bounded memory)."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__()
        self.summary = summary

    def add(self, error: MappingError) -> None:
        self.summary.read += 1
        self.summary.skip(error.reason[:160], problem=SkippedRecord(error.file, error.line, error.record,
                                                                     error.reason))

    def ignore(self, reason: str) -> None:
        self.summary.read += 1
        self.summary.skip(f"not imported: {reason}")


def _located(name: str, location: str | None, reason: str) -> SkippedRecord:
    """A problem for the report; ``location`` is the reader's ``file:line`` or a record locator."""
    head, _, tail = (location or "").rpartition(":")
    if head and tail.isdigit():
        return SkippedRecord(name, int(tail), None, reason)
    return SkippedRecord(name, None, location, reason)


def file_sha256(stream: IO[bytes]) -> str:
    """SHA-256 of a seekable stream (left at offset 0)."""
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


# --- a large export.xml in two processes ------------------------------------------------------------------------

_PARALLEL_MIN: Final = 48 * 1024 * 1024  # bytes: below, a second process costs more than it saves


class _Split:
    """An Apple Health ``export.xml`` read in two processes (``docs/wearables.md``).

    :func:`~mappings.wearables.apple_health.split_export` cuts the file near its middle. A forked process reads
    the second part and writes what it yields (readings, light records, the reader's skipped records, in order)
    to an anonymous temporary file, while this process reads the first part as usual. Then the second part's
    items are replayed here, in file order, through the same loop: de-duplication, daily totals, batches,
    resume and error reporting see exactly the sequence of a one-process read. When the first part's reader
    does not stop cleanly at the cut, it reads the whole file and the second process's work is discarded.

    Used only where forking is safe and useful: a plain file on disk (not a zip, not an upload stream) of at
    least 48 MB, without ``--samples``, in a process with a single thread (the CLI, the benchmark).
    """

    def __init__(self, path: str, name: str, options: ReaderOptions, first: ExportPart, second: ExportPart,
                 size: int) -> None:
        import multiprocessing
        import tempfile

        self.name = name
        self.options = options
        self.first = first
        self.second = second
        self.size = size
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), after the import loop
        context = multiprocessing.get_context("fork")
        self.process = context.Process(target=_read_second_part,
                                       args=(path, name, options, second, self.out.fileno()), daemon=True)
        self.process.start()

    @classmethod
    def plan(cls, stream: IO[bytes], fmt: str, name: str, options: ReaderOptions) -> _Split | None:
        path = getattr(stream, "name", None)
        if fmt != "apple-health" or not isinstance(path, str) or not os.path.isfile(path):
            return None
        if not _can_fork():
            return None
        size = os.path.getsize(path)
        if size < _PARALLEL_MIN:
            return None
        parts = split_export(stream, size)
        stream.seek(0)
        return None if parts is None else cls(path, name, options, *parts, size)

    def readings(self, stream: IO[bytes], problems: SkipLog,
                 progress: Callable[[int], None] | None) -> Iterator[Any]:
        """The first part's items as they are read, then the second part's."""
        o = self.options
        yield from read_apple_health(stream, file=self.name, errors=problems, summary_tz=o.tz, light=o.light,
                                     counted=o.counted, part=self.first)
        if not self.first.complete:  # read to the end: the second part is in already
            return
        shift = self.first.lines  # the second process numbered its lines from the cut
        self.process.join()
        self.out.seek(0)
        reader = io.BufferedReader(io.FileIO(os.dup(self.out.fileno()), "rb"), 1 << 20)
        with reader:
            while True:
                try:
                    message = pickle.load(reader)
                except EOFError:
                    raise RuntimeError(f"the second process reading {self.name} ended without a result "
                                       f"(exit code {self.process.exitcode})") from None
                if isinstance(message, list):
                    for item in message:
                        if item.__class__ is _Skipped:
                            item.replay(problems, shift)
                        elif item.__class__ is not tuple and item.location:
                            head, _, line = item.location.rpartition(":")
                            yield replace(item, location=f"{head}:{int(line) + shift}")
                        else:
                            yield item
                    continue
                kind, *rest = message
                if kind == "end":
                    for metric, n in rest[0].items():
                        o.counted[metric] += n  # type: ignore[index]
                    if progress is not None:
                        progress(self.size - self.second.start)
                    return
                if kind == "error":
                    raise (MalformedInputError if rest[0] == "malformed" else UnsupportedInputError)(
                        rest[1], file=rest[2], line=None if rest[3] is None else rest[3] + shift, record=rest[4])
                raise RuntimeError(f"the second process reading {self.name} failed: {rest[0]}")

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.out.close()


def _can_fork() -> bool:
    """Forking is safe here: the platform has it and this process runs one thread (a forked child would not
    hold the other threads' locks)."""
    import multiprocessing
    import threading

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


@dataclass(frozen=True)
class _Skipped:
    """A record the second part's reader skipped (its SkipLog call), replayed in order into the import's."""

    kind: str  # "add" or "ignore"
    reason: str
    malformed: bool = True
    file: str | None = None
    line: int | None = None
    record: str | None = None

    def replay(self, log: SkipLog, shift: int) -> None:
        if self.kind == "ignore":
            log.ignore(self.reason)
            return
        error = (MalformedInputError if self.malformed else UnsupportedInputError)(
            self.reason, file=self.file, line=None if self.line is None else self.line + shift, record=self.record)
        log.add(error)


class _Recording(SkipLog):
    """The second process's skip log: each call becomes a :class:`_Skipped` item in the output, in order."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__()
        self.items = items

    def add(self, error: MappingError) -> None:
        self.items.append(_Skipped("add", error.reason, not isinstance(error, UnsupportedInputError), error.file,
                                   error.line, error.record))

    def ignore(self, reason: str) -> None:
        self.items.append(_Skipped("ignore", reason))


def _read_second_part(path: str, name: str, options: ReaderOptions, part: ExportPart, fd: int) -> None:
    """The second process: read ``part`` and pickle its items in batches to ``fd``, then a closing message."""
    out = io.BufferedWriter(io.FileIO(os.dup(fd), "wb"), 1 << 20)
    counted = dict.fromkeys(options.counted or {}, 0)
    items: list[Any] = []
    try:
        with open(path, "rb") as stream:
            for item in read_apple_health(stream, file=name, errors=_Recording(items), summary_tz=options.tz,
                                          light=options.light, counted=counted, part=part):
                items.append(item)
                if len(items) >= 2000:
                    pickle.dump(items, out, pickle.HIGHEST_PROTOCOL)
                    items.clear()
        pickle.dump(items, out, pickle.HIGHEST_PROTOCOL)
        pickle.dump(("end", counted), out, pickle.HIGHEST_PROTOCOL)
    except MappingError as exc:
        pickle.dump(items, out, pickle.HIGHEST_PROTOCOL)
        kind = "unsupported" if isinstance(exc, UnsupportedInputError) else "malformed"
        pickle.dump(("error", kind, exc.reason, exc.file, exc.line, exc.record), out, pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        pickle.dump(("crash", f"{type(exc).__name__}: {exc}"), out, pickle.HIGHEST_PROTOCOL)
    finally:
        out.close()


# --- daily summaries in constant memory --------------------------------------------------------------------------


class _DayTotals:
    """Per (summary metric, local day, source) partial sums, kept as the stream goes by.

    :func:`daily_summaries` holds every reading of its input (its exact-duplicate set), which a multi-GB export
    cannot afford. This keeps only the sums that function would form — same day-splitting (``_days_of``),
    same kinds (a source's day totals, else its sleep sessions, else its intervals), mean for resting heart
    rate — and hands it one day-total reading per bucket, so the cross-source choice and rounding stay there.
    Exact duplicates (same metric, source, period and label) are dropped within a source's current UTC day,
    which catches every duplicate of a time-ordered stream (Apple Health writes each type and source in time
    order) in memory bounded by one day of one stream.
    """

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # (metric, day, source key) -> [day sum, day n, session sum, session n, interval sum, interval n]
        self.buckets: dict[tuple[Metric, date, str], list[float]] = {}
        self.sources: dict[str, Source] = {}
        self._recent: dict[tuple[Metric, str], tuple[int, set[tuple[Any, ...]]]] = {}
        self._offsets: dict[int, int | bool] = {}  # UTC day -> the zone's offset all that day (False: it changes)
        self._dates: dict[int, date] = {}

    def add(self, reading: Reading) -> bool:
        """Count the reading; False when it is an exact duplicate of one already counted."""
        metric = reading.metric
        source = reading.source
        key = source.key
        start, end = reading.start, reading.end
        t0 = start.timestamp()
        stream = (metric, key)
        marker = int(t0 // 86400)
        recent = self._recent.get(stream)
        if recent is None or recent[0] != marker:
            recent = (marker, set())
            self._recent[stream] = recent
        ident = (t0, end.timestamp() if end is not None else None, reading.label, reading.local_date)
        if ident in recent[1]:
            return False
        recent[1].add(ident)
        if key not in self.sources:
            self.sources[key] = source
        target: Metric
        parts: tuple[tuple[date, float], ...]
        if metric is Metric.STEPS or metric is Metric.ACTIVE_MINUTES:
            target, additive = metric, True
        elif metric is Metric.RESTING_HEART_RATE:
            target, additive = metric, False
        else:
            target, additive = Metric.SLEEP_DURATION, False
        if reading.local_date is not None:
            slot, parts = 0, ((reading.local_date, 1.0),)
        else:
            slot = 2 if metric is Metric.SLEEP_DURATION else 4
            tz = self.tz
            if end is None or end == start or not additive:
                anchor = end if (end is not None and not additive) else start
                parts = ((anchor.astimezone(tz).date(), 1.0),)
            else:
                first = start.astimezone(tz).date()
                parts = ((first, 1.0),) if end.astimezone(tz).date() == first else tuple(_days_of(reading, tz, True))
        value = reading.value
        assert value is not None
        self._accumulate(target, key, slot, value, parts)
        return True

    def add_light(self, metric: Metric, value: float, source: Source, key: str, t0: int, t1: int | None) -> bool:
        """:meth:`add` for a light record of the Apple Health reader (epoch seconds, no label, no local day):
        the same buckets and duplicate rule, without a Reading and its datetimes."""
        stream = (metric, key)
        marker = t0 // 86400
        recent = self._recent.get(stream)
        if recent is None or recent[0] != marker:
            recent = (marker, set())
            self._recent[stream] = recent
        ident = (t0, t1, None, None)  # equal (and hashing equal) to add()'s float timestamps
        seen = recent[1]
        if ident in seen:
            return False
        seen.add(ident)
        if key not in self.sources:
            self.sources[key] = source
        target, additive = _TARGETS[metric]
        slot = 2 if metric is Metric.SLEEP_DURATION else 4
        day = self._day
        if t1 is None or not additive:
            parts: Iterable[tuple[date, float]] = ((day(t1 if (t1 is not None and not additive) else t0), 1.0),)
        else:
            first = day(t0)
            if day(t1) == first:
                parts = ((first, 1.0),)
            else:  # across local midnight: the summaries' own split
                reading = Reading(metric, value, "", datetime.fromtimestamp(t0, UTC), source,
                                  end=datetime.fromtimestamp(t1, UTC))
                parts = _days_of(reading, self.tz, True)
        self._accumulate(target, key, slot, value, parts)
        return True

    def _accumulate(self, target: Any, key: str, slot: int, value: float,
                    parts: Iterable[tuple[date, float]]) -> None:
        """Add ``value`` (split over local days by ``parts``) to the day buckets at ``slot`` (sum, count)."""
        buckets = self.buckets
        for d, share in parts:
            bucket = buckets.get((target, d, key))
            if bucket is None:
                bucket = buckets[(target, d, key)] = [0.0, 0, 0.0, 0, 0.0, 0]
            bucket[slot] += value * share
            bucket[slot + 1] += 1

    def _day(self, t: int) -> date:
        """The patient-local date of epoch second ``t``: the zone's offset is looked up once per UTC day, and
        exactly (per instant) on a day whose offset changes (DST)."""
        utc_day = t // 86400
        offset = self._offsets.get(utc_day)
        if offset is None:
            first = datetime.fromtimestamp(utc_day * 86400, self.tz).utcoffset()
            last = datetime.fromtimestamp(utc_day * 86400 + 86399, self.tz).utcoffset()
            offset = self._offsets[utc_day] = int(first.total_seconds()) if first == last and first is not None \
                else False
        if offset is False:
            return datetime.fromtimestamp(t, self.tz).date()
        n = (t + offset) // 86400
        found = self._dates.get(n)
        if found is None:
            found = self._dates[n] = date.fromordinal(n + _EPOCH_ORDINAL)
        return found

    def summaries(self, rule: DedupRule) -> list[DailySummary]:
        from mappings.wearables._common import day_bounds

        totals = []
        for (metric, day, key), b in self.buckets.items():
            slot = 0 if b[1] else (2 if b[3] else 4)
            value = b[slot] / b[slot + 1] if metric is Metric.RESTING_HEART_RATE else b[slot]
            start, end = day_bounds(day, self.tz)
            totals.append(Reading(metric, value, _SUMMARY_UNITS.get(metric, "min"), start, self.sources[key],
                                  end=end, local_date=day))
        return daily_summaries(totals, tz=self.tz, rule=rule)


# --- the importer ----------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    """What one batch did: counts by outcome, and the version of every resource it stored or found."""

    counts: Counter[str] = field(default_factory=Counter)
    versions: dict[str, int] = field(default_factory=dict)


@dataclass
class _Progress:
    key: str
    readings: int = 0
    through: str | None = None  # last local day whose summaries are committed
    complete: bool = False
    manifest: str | None = None  # of a complete import: what it stored, as "id version" lines (zlib, base64)
    versions: dict[str, int] = field(default_factory=dict)  # this run's resources and their versions

    def dump(self) -> str:
        state: dict[str, Any] = {"readings": self.readings, "through": self.through, "complete": self.complete}
        if self.complete and self.manifest:
            state["manifest"] = self.manifest
        return json.dumps(state)

    def seal(self, resumed: bool) -> None:
        """Mark the import complete, with a manifest of its resources unless it was a resumed run (partial)."""
        self.complete = True
        if not resumed and len(self.versions) <= _MAX_MANIFEST:
            text = "\n".join(f"{k} {v}" for k, v in sorted(self.versions.items()))
            self.manifest = base64.b64encode(zlib.compress(text.encode(), 6)).decode()

    def entries(self) -> dict[str, int]:
        if not self.manifest:
            return {}
        text = zlib.decompress(base64.b64decode(self.manifest)).decode()
        return {k: int(v) for k, v in (line.split(" ") for line in text.splitlines() if line)}


def _shape(resource: dict[str, Any]) -> Any:
    """The structure of a mapped resource: its elements two levels deep, list lengths, and its codes."""
    parts: list[Any] = []
    for key, value in resource.items():
        if isinstance(value, dict):
            parts.append((key, tuple((k, type(v), len(v) if isinstance(v, (list, dict)) else 0)
                                     for k, v in value.items())))
        elif isinstance(value, list):
            parts.append((key, len(value), tuple(tuple(v) if isinstance(v, dict) else type(v) for v in value)))
        else:
            parts.append((key, type(value)))
    codes = tuple((c.get("system"), c.get("code")) for c in (resource.get("code") or {}).get("coding", []))
    return tuple(parts), codes


def _same(stored: Stored, new: Mapping[str, Any]) -> bool:
    old = stored.content or {}
    for key in set(old) | set(new):
        if key == "meta":
            a = {k: v for k, v in (old.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
            b = {k: v for k, v in (new.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
            if a != b:
                return False
        elif key != "id" and old.get(key) != new.get(key):
            return False
    return True


class WearableImporter:
    """Imports wearable files for one patient at a time into a :class:`FhirRepository`.

    ``coaching`` (a :class:`~fhir_ecr.coaching.service.CoachingService`) connects daily summaries to habits;
    without it, nothing is checked in. ``fail_after_batches`` is for tests: raise after that many batches,
    as a crash would.
    """

    def __init__(self, repo: FhirRepository, *, coaching: Any = None, default_tz: str = "UTC",
                 options: ImportOptions | None = None) -> None:
        self.repo = repo
        self.coaching = coaching
        self.default_tz = default_tz
        self.options = options or ImportOptions()
        self.fail_after_batches: int | None = None
        self._batches = 0
        self._validated: set[Any] = set()

    # -- public --------------------------------------------------------------------------------------------

    def import_paths(self, patient_id: str, paths: Iterable[Path | str],
                     progress: Callable[[int], None] | None = None) -> ImportSummary:
        """Import several files in turn; the summary adds them up. Stops at the first unreadable file."""
        total = ImportSummary()
        for path in paths:
            total.merge(self.import_path(patient_id, path, progress=progress))
        return total

    def import_path(self, patient_id: str, path: Path | str, *, name: str | None = None,
                    progress: Callable[[int], None] | None = None) -> ImportSummary:
        """Import one file from disk (``name`` labels it in messages; default: the file name)."""
        path = Path(path)
        label = name or path.name
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise WearableImportError(f"cannot read the file: {exc.strerror}", file=label) from None
        with handle:
            return self.import_stream(patient_id, handle, label, progress=progress)

    def import_stream(self, patient_id: str, stream: IO[bytes], name: str, *,
                      progress: Callable[[int], None] | None = None) -> ImportSummary:
        """Import one seekable byte stream named ``name``."""
        started = time.perf_counter()
        summary = ImportSummary(files=[name])
        subject = f"Patient/{patient_id}"
        tz_name = self._patient_tz(patient_id)
        tz = ZoneInfo(tz_name)
        opts = self.options
        try:
            fmt = opts.format or detect_format(stream, name)
            summary.formats.append(fmt)
        except MappingError as exc:
            raise WearableImportError(exc.reason, file=exc.file or name, line=exc.line) from exc
        samples = opts.samples
        # Without samples, summary inputs come as light tuples and intraday samples are only counted (Apple Health)
        light = frozenset() if samples else SUMMARY_INPUTS
        counted: dict[Metric, int] = {} if samples else dict.fromkeys(INTRADAY, 0)
        reader_options = ReaderOptions(tz, opts.csv_mapping, opts.weight_unit, light, counted, opts.zip_limits)
        digest = file_sha256(stream)
        progress_state = self._load_progress(patient_id, digest, fmt, tz_name)
        if opts.skip_verified and progress_state.manifest:
            verified = self._unchanged_since(progress_state)
            if verified is not None:
                summary.already_imported = 1
                summary.unchanged = len(verified)
                habits = self._habit_window(patient_id) if self.coaching is not None else None
                if habits is not None:
                    self._connect([s.content for s in verified if s.content], habits, summary)
                summary.bytes = stream.seek(0, os.SEEK_END)
                summary.seconds = time.perf_counter() - started
                return summary
            progress_state = _Progress(progress_state.key)
        # a large export.xml: its second half is parsed by a second process (after the same-file check above,
        # so that a verified re-import starts none)
        split = _Split.plan(stream, fmt, name, reader_options) if opts.parallel and not samples else None
        resume_readings = progress_state.readings
        resume_through = progress_state.through
        counting = cast(IO[bytes], _Counting(stream, progress))
        totals = _DayTotals(tz)
        problems = _Problems(summary)
        pending: list[Reading] = []
        stored_index = 0
        rule = opts.rule
        light_read = light_duplicates = 0
        add_light = totals.add_light
        try:
            if split is not None:
                readings = split.readings(counting, problems, progress)
            else:
                readings = open_readings(fmt, counting, name, reader_options, problems)
            for reading in readings:
                if reading.__class__ is tuple:  # a light record: plausible, a summary input, not kept
                    light_read += 1
                    if not add_light(*reading):
                        light_duplicates += 1
                    continue
                summary.read += 1
                if reading.implausible:
                    summary.skip(f"implausible {reading.metric.value} value",
                                 problem=_located(name, reading.location, reading.implausible))
                    continue
                metric = reading.metric
                store = True
                if metric in SUMMARY_INPUTS and reading.value is not None:
                    if not totals.add(reading):
                        summary.skip("duplicate reading (same source, metric and period)")
                        continue
                    summary.summarised += 1
                    store = samples
                elif metric in INTRADAY and reading.local_date is None:
                    store = samples
                    if not store:
                        summary.skip(f"intraday {metric.value} sample (kept only with --samples)")
                        continue
                summary.mapped += 1
                if not store:
                    continue
                stored_index += 1
                if stored_index <= resume_readings:
                    summary.resumed += 1
                    continue
                pending.append(reading)
                if len(pending) >= opts.batch_readings:
                    self._write_readings(pending, subject, summary, progress_state, stored_index)
                    pending = []
        except MappingError as exc:
            raise WearableImportError(exc.reason, file=exc.file or name, line=exc.line,
                                      too_large=isinstance(exc, ArchiveTooLarge)) from exc
        finally:
            if split is not None:
                split.close()
        summary.read += light_read
        summary.summarised += light_read - light_duplicates
        summary.mapped += light_read - light_duplicates
        if light_duplicates:
            summary.skip("duplicate reading (same source, metric and period)", light_duplicates)
        for metric, n in counted.items():
            if n:
                summary.read += n
                summary.skip(f"intraday {metric.value} sample (kept only with --samples)", n)
        if pending:
            self._write_readings(pending, subject, summary, progress_state, stored_index)
        days = totals.summaries(rule)
        summary.days = len({d.day for d in days})
        habits = self._habit_window(patient_id) if self.coaching is not None else None
        batch: list[DailySummary] = []
        batch_days: set[date] = set()
        for item in days:  # sorted by day
            if resume_through is not None and item.day.isoformat() <= resume_through:
                summary.resumed += 1
                continue
            if item.day not in batch_days and len(batch_days) >= opts.batch_days:
                self._write_summaries(batch, subject, summary, progress_state, habits)
                batch, batch_days = [], set()
            batch.append(item)
            batch_days.add(item.day)
        if batch:
            self._write_summaries(batch, subject, summary, progress_state, habits)
        progress_state.seal(resumed=summary.resumed > 0)
        with self.repo.unit() as uow:
            uow.set_state(progress_state.key, progress_state.dump())
        summary.bytes = stream.seek(0, os.SEEK_END)
        summary.seconds = time.perf_counter() - started
        return summary

    # -- state ---------------------------------------------------------------------------------------------

    def _patient_tz(self, patient_id: str) -> str:
        try:
            patient = self.repo.read("Patient", patient_id)
        except (NotFound, Gone):
            raise not_found("Patient", patient_id) from None
        return coaching_io.patient_time_zone(patient.content, self.default_tz)

    def _load_progress(self, patient_id: str, digest: str, fmt: str, tz_name: str) -> _Progress:
        o = self.options
        # everything the mapped resources depend on: the same key means the same resources
        fingerprint = "\x1f".join([patient_id, digest, fmt, tz_name, str(int(o.samples)), repr(o.rule),
                                   repr(o.csv_mapping), str(o.weight_unit)])
        key = _STATE_PREFIX + hashlib.sha256(fingerprint.encode()).hexdigest()
        with self.repo.unit(write=False) as uow:
            raw = uow.get_state(key)
        state = json.loads(raw) if raw else {}
        if not state:
            return _Progress(key)
        if state.get("complete"):
            return _Progress(key, manifest=state.get("manifest"))
        return _Progress(key, int(state.get("readings") or 0), state.get("through"))

    def _unchanged_since(self, state: _Progress) -> list[Stored] | None:
        """The resources a complete earlier import of this file stored, when all are still at the versions it
        left them at (nobody edited or deleted one since); else None."""
        entries = state.entries()
        if not entries:
            return None
        with self.repo.unit(write=False) as uow:
            found = self._existing(uow, "Observation", list(entries))
        if len(found) != len(entries) or any(s.version_id != entries[i] for i, s in found.items()):
            return None
        return list(found.values())

    def _tick(self) -> None:
        self._batches += 1
        if self.fail_after_batches is not None and self._batches > self.fail_after_batches:
            raise RuntimeError("simulated crash")  # tests only

    # -- writing -------------------------------------------------------------------------------------------

    def _write_readings(self, readings: list[Reading], subject: str, summary: ImportSummary, state: _Progress,
                        upto: int) -> None:
        devices: dict[str, dict[str, Any]] = {}
        observations = []
        for reading in readings:
            if reading.source.key not in devices:
                devices[reading.source.key] = source_to_device(reading.source)
            obs = reading_to_observation(reading, subject)
            obs["id"] = obs["identifier"][0]["value"]
            observations.append(obs)
        self._tick()

        def write(uow: UnitOfWork, retry: bool) -> _Batch:
            batch = _Batch()
            self._write_devices(uow, list(devices.values()))
            self._upsert(uow, observations, batch, retry)
            state.readings = upto
            uow.set_state(state.key, state.dump())
            return batch

        self._count(summary, state, self._in_unit(write))

    def _write_summaries(self, items: list[DailySummary], subject: str, summary: ImportSummary, state: _Progress,
                         habits: _HabitWindow | None) -> None:
        devices = {x.source.key: source_to_device(x.source) for x in items}
        new = []
        for item in items:
            obs = summary_to_observation(item, subject)
            obs["id"] = obs["identifier"][0]["value"]
            new.append((item, obs))
        self._tick()
        written: list[dict[str, Any]] = []

        def write(uow: UnitOfWork, retry: bool) -> _Batch:
            batch = _Batch()
            written.clear()
            self._write_devices(uow, list(devices.values()))
            existing = self._existing(uow, "Observation", [o["id"] for _, o in new])
            keep = []
            for item, obs in new:
                old = existing.get(obs["id"])
                if old is not None and self._stored_wins(uow, old, item):
                    batch.counts[_SUPERSEDED] += 1
                    batch.versions[old.id] = old.version_id
                    written.append(old.content or obs)
                    continue
                keep.append(obs)
            written.extend(self._upsert(uow, keep, batch, retry, existing))
            state.through = items[-1].day.isoformat()
            uow.set_state(state.key, state.dump())
            return batch

        self._count(summary, state, self._in_unit(write))
        if habits is not None:
            self._connect(written, habits, summary)

    @staticmethod
    def _count(summary: ImportSummary, state: _Progress, batch: _Batch) -> None:
        counts = batch.counts
        if len(state.versions) <= _MAX_MANIFEST:
            state.versions.update(batch.versions)
        summary.created += counts["created"]
        summary.updated += counts["updated"]
        summary.unchanged += counts["unchanged"]
        if counts[_SUPERSEDED]:
            summary.skip(_SUPERSEDED, counts[_SUPERSEDED])

    def _in_unit(self, write: Callable[[UnitOfWork, bool], _Batch]) -> _Batch:
        """Run a batch in one unit of work; after a 409 (a concurrent import, or a reading deleted from the
        store whose id is still taken) run it once more, writing absent resources with update semantics."""
        try:
            with self.repo.unit() as uow:
                return write(uow, False)
        except Conflict:
            with self.repo.unit() as uow:
                return write(uow, True)

    def _existing(self, uow: UnitOfWork, rtype: str, ids: Sequence[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i: i + 500]
            query = parse_search(rtype, [("_id", ",".join(chunk))], default_count=len(chunk),
                                 max_count=len(chunk))
            query.total = "none"
            for stored in uow.search(query).matches:
                found[stored.id] = stored
        return found

    def _write_devices(self, uow: UnitOfWork, devices: list[dict[str, Any]]) -> None:
        existing = self._existing(uow, "Device", [d["id"] for d in devices])
        for device in devices:
            if device["id"] not in existing:
                uow.update("Device", device["id"], device)

    def _upsert(self, uow: UnitOfWork, resources: list[dict[str, Any]], batch: _Batch, retry: bool,
                existing: dict[str, Stored] | None = None) -> list[dict[str, Any]]:
        counts, versions = batch.counts, batch.versions
        if existing is None:
            existing = self._existing(uow, "Observation", [r["id"] for r in resources])
        out = []
        seen: set[str] = set()
        for resource in resources:
            rid = resource["id"]
            if rid in seen:  # the same reading twice in one batch (an exact duplicate record)
                continue
            seen.add(rid)
            old = existing.get(rid)
            if old is None:
                self._validate(resource)
                if retry:
                    result = uow.update("Observation", rid, resource, validated=True)
                else:
                    result = uow.create(resource, resource_id=rid, method="PUT", validated=True)
                counts["created"] += 1
                versions[rid] = result.stored.version_id
                out.append(result.stored.content or resource)
            elif _same(old, resource):
                counts["unchanged"] += 1
                versions[rid] = old.version_id
                out.append(resource)
            else:
                self._validate(resource)
                result = uow.update("Observation", rid, resource, validated=True)
                counts["updated"] += 1
                versions[rid] = result.stored.version_id
                out.append(result.stored.content or resource)
        return out

    def _validate(self, resource: dict[str, Any]) -> None:
        """The repository's validator, run once per shape of resource per importer.

        The mapper writes every Observation of one shape (the same elements two levels deep, the same list
        lengths, the same codes) from the same code path: codes and units are constants, dates come from one
        formatter and values passed the plausibility limits. Validating one resource per shape keeps every
        shape checked while making structural validation (about 1 ms a resource) a fixed cost, not one that
        grows with the export.
        """
        shape = _shape(resource)
        if shape not in self._validated:
            self.repo.validator(resource)
            self._validated.add(shape)

    def _stored_wins(self, uow: UnitOfWork, old: Stored, new: DailySummary) -> bool:
        """True when the stored summary comes from a source the rule prefers to the new one's."""
        content = old.content or {}
        ref = str((content.get("device") or {}).get("reference") or "")
        old_device = ref.removeprefix("Device/")
        if not old_device or old_device == device_id(new.source):
            return False
        found = self._existing(uow, "Device", [old_device]).get(old_device)
        ident = next((i.get("value") for i in ((found.content or {}).get("identifier") or [])
                      if isinstance(i, dict)), None) if found else None
        if not isinstance(ident, str) or ident.count("|") != 2:
            return False
        vendor, name, device = ident.split("|")
        old_source = Source(vendor, name, device or None)
        rule = self.options.rule
        old_rank, new_rank = rule.rank(new.metric, old_source), rule.rank(new.metric, new.source)
        old_value = (content.get("valueQuantity") or {}).get("value")
        if old_rank != new_rank:
            return old_rank < new_rank
        return isinstance(old_value, (int, float)) and old_value > new.value

    # -- habits --------------------------------------------------------------------------------------------

    def _habit_window(self, patient_id: str) -> _HabitWindow | None:
        plans = self.repo.search_params("CarePlan", [("patient", f"Patient/{patient_id}"),
                                                     ("category", f"{coaching_io.MECR_CODES}|habit-plan"),
                                                     ("status", "active")], default_count=1000)
        codings: set[tuple[str, str]] = set()
        start: date | None = None
        for stored in plans.matches:
            try:
                habits = coaching_io.habits_of_plan(stored.content or {})
            except ValueError:
                continue
            for habit in habits:
                if habit.daily_amount and habit.codings:
                    codings.update(habit.codings)
                    start = habit.start if start is None else min(start, habit.start)
        return _HabitWindow(frozenset(codings), start) if codings and start else None

    def _connect(self, observations: list[dict[str, Any]], habits: _HabitWindow, summary: ImportSummary) -> None:
        tz_start = habits.start.isoformat()
        for obs in observations:
            if obs.get("status") not in _OK_STATUSES:
                continue
            codes = {(c.get("system"), c.get("code")) for c in (obs.get("code") or {}).get("coding", [])}
            if not codes & habits.codings:
                continue
            # effectivePeriod.start is the local midnight written with its offset: its date is the local day
            if str((obs.get("effectivePeriod") or {}).get("start", ""))[:10] < tz_start:
                continue
            result = self.coaching.apply_wearable_observation(obs)
            summary.checkins += sum(1 for c in result.checkins if c.created or c.changed)


@dataclass(frozen=True)
class _HabitWindow:
    """Codings of the patient's active habits with a daily target, and the earliest habit start."""

    codings: frozenset[tuple[str, str]]
    start: date
