"""Import wearable exports into the FHIR store: streamed, de-duplicated, idempotent, atomic per batch, resumable.

One file is read once, as a stream (:mod:`mappings.wearables` readers, constant memory). Each reading goes one
of two ways:

* **Daily-summary inputs** (steps, active minutes, sleep, resting heart rate) are added into per
  (metric, patient-local day, source) partial sums; when the whole file has been read, the sums become the
  day's summaries through :func:`mappings.wearables.daily_summaries` (its de-duplication rule: per metric the
  highest-priority source with data, never the sum of sources). Intraday samples are not stored (unless
  ``samples=True``): the store holds the summaries and the spot readings (docs/wearables.md).
* **Spot readings and sessions** (weight, blood pressure, SpO2, glucose, temperature, BMI, workouts, a
  source's own day totals of other metrics) become Observations (+ a Device per source) as they stream by.

Speed (Apple Health, ``docs/wearables.md``): without ``samples`` the reader hands summary inputs over as light
tuples and only counts intraday samples (both after every check of a full reading), and a large plain
``export.xml`` has its second half parsed by a forked process (:class:`~.parallel.SplitExport`), replayed here
in file order.

Writes (``docs/wearables.md``):

* **Deterministic ids.** Each Observation's id is its identifier value (SHA-256 of patient + metric + period +
  source for readings, patient + metric + local day for summaries), so a batch finds what is already stored
  with key lookups and then creates what is absent, updates what changed and leaves the rest alone.
  Re-importing a file, or a newer export that overlaps an older one, creates no duplicates and writes nothing
  that did not change. Devices are created once and never rewritten by an import.
* **Atomic batches.** A batch is one unit of work: ``batch_readings`` whole readings, or ``batch_days`` whole
  local days of summaries (a day's summaries are never split). Its COMMIT runs on a thread of its own while the
  next batch is read and mapped (:meth:`.upsert.BatchWriter.committing_aside`); nothing touches the store before
  it has ended. Summaries are written only after the whole
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

The seams: :mod:`.report` (options, summary, the error), :mod:`.parallel` (reading the file, two processes),
:class:`mappings.wearables.day_totals.DayTotals` (summary inputs in constant memory), :mod:`.resume` (the
state), :mod:`.upsert` (writing batches), :mod:`.habits` (the habit bridge); this module runs one import.

Bad records (wrong schema, unknown units, absurd values such as 200,000 steps a day or a 20 kg adult) are
reported with file, line/record and reason, and not stored. A file that cannot be read at all raises
:class:`WearableImportError` naming the file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, cast
from zoneinfo import ZoneInfo

from mappings.errors import MappingError
from mappings.wearables import (
    DailySummary,
    Metric,
    Reading,
    reading_to_observation,
    source_to_device,
    summary_to_observation,
)
from mappings.wearables.day_totals import INTRADAY, SUMMARY_INPUTS, DayTotals

from ..coaching import resources as coaching_res
from ..heap import bulk_collector_aside
from ..outcomes import Gone, NotFound, not_found
from ..store.repository import FhirRepository, UnitOfWork
from .formats import ReaderOptions, detect_format, open_readings
from .habits import HabitWindow, connect, habit_window
from .parallel import Counting, SplitExport, file_sha256
from .report import (
    ImportOptions,
    ImportSummary,
    Problems,
    WearableImportError,
    located,
    parse_source_priority,
)
from .resume import MAX_MANIFEST, Progress, load_progress, unchanged_since
from .upsert import Batch, BatchWriter
from .ziplimits import ArchiveTooLarge

if TYPE_CHECKING:
    from ..coaching.service import CoachingService

__all__ = [
    "BatchWriter",
    "ImportOptions",
    "ImportSummary",
    "WearableImportError",
    "WearableImporter",
    "parse_source_priority",
]

_SUPERSEDED: Final = "daily summary: a higher-priority source is already stored for the day"


class WearableImporter:
    """Imports wearable files for one patient at a time into a :class:`FhirRepository`.

    ``coaching`` (a :class:`~fhir_ecr.coaching.service.CoachingService`) connects daily summaries to habits;
    without it, nothing is checked in. ``writer`` writes the batches (default: a :class:`BatchWriter` over
    ``repo``).
    """

    def __init__(
        self,
        repo: FhirRepository,
        *,
        coaching: CoachingService | None = None,
        default_tz: str = "UTC",
        options: ImportOptions | None = None,
        writer: BatchWriter | None = None,
    ) -> None:
        self.repo = repo
        self.coaching = coaching
        self.default_tz = default_tz
        self.options = options or ImportOptions()
        self.writer = writer or BatchWriter(repo, self.options.rule)

    # -- public --------------------------------------------------------------------------------------------

    def import_path(
        self,
        patient_id: str,
        path: Path | str,
        *,
        name: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportSummary:
        """Import one file from disk (``name`` labels it in messages; default: the file name)."""
        path = Path(path)
        label = name or path.name
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise WearableImportError(f"cannot read the file: {exc.strerror}", file=label) from None
        with handle:
            return self.import_stream(patient_id, handle, label, progress=progress)

    def import_stream(
        self, patient_id: str, stream: IO[bytes], name: str, *, progress: Callable[[int], None] | None = None
    ) -> ImportSummary:
        """Import one seekable byte stream named ``name``."""
        with bulk_collector_aside(), self.writer.committing_aside():
            return self._import_stream(patient_id, stream, name, progress)

    def _import_stream(
        self, patient_id: str, stream: IO[bytes], name: str, progress: Callable[[int], None] | None
    ) -> ImportSummary:
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
        reader_options = ReaderOptions(
            tz, opts.csv_mapping, opts.weight_unit, light, counted, opts.zip_limits
        )
        digest = file_sha256(stream)
        progress_state = load_progress(self.repo, opts, patient_id, digest, fmt, tz_name)
        if opts.skip_verified and progress_state.manifest:
            verified = unchanged_since(self.writer, progress_state)
            if verified is not None:
                summary.already_imported = 1
                summary.unchanged = len(verified)
                habits = habit_window(self.repo, patient_id) if self.coaching is not None else None
                if habits is not None and self.coaching is not None:
                    connect(self.coaching, [s.content for s in verified if s.content], habits, summary)
                summary.bytes = stream.seek(0, os.SEEK_END)
                summary.seconds = time.perf_counter() - started
                return summary
            progress_state = Progress(progress_state.key)
        # a large export.xml: its second half is parsed by a second process (after the same-file check above,
        # so that a verified re-import starts none)
        split = SplitExport.plan(stream, fmt, name, reader_options) if opts.parallel and not samples else None
        resume_readings = progress_state.readings
        resume_through = progress_state.through
        counting = cast(IO[bytes], Counting(stream, progress))
        totals = DayTotals(tz)
        problems = Problems(summary)
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
                    summary.skip(
                        f"implausible {reading.metric.value} value",
                        problem=located(name, reading.location, reading.implausible),
                    )
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
            raise WearableImportError(
                exc.reason, file=exc.file or name, line=exc.line, too_large=isinstance(exc, ArchiveTooLarge)
            ) from exc
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
        self.writer.settle()
        habits = habit_window(self.repo, patient_id) if self.coaching is not None else None
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
        self.writer.settle()
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
        return coaching_res.patient_time_zone(patient.content, self.default_tz)

    # -- writing -------------------------------------------------------------------------------------------

    def _write_readings(
        self, readings: list[Reading], subject: str, summary: ImportSummary, state: Progress, upto: int
    ) -> None:
        devices: dict[str, dict[str, Any]] = {}
        observations = []
        for reading in readings:
            if reading.source.key not in devices:
                devices[reading.source.key] = source_to_device(reading.source)
            obs = reading_to_observation(reading, subject)
            obs["id"] = obs["identifier"][0]["value"]
            observations.append(obs)
        writer = self.writer

        def write(uow: UnitOfWork, retry: bool) -> Batch:
            batch = Batch()
            writer.write_devices(uow, list(devices.values()))
            writer.upsert(uow, observations, batch, retry)
            state.readings = upto
            uow.set_state(state.key, state.dump())
            return batch

        self._count(summary, state, writer.run(write))

    def _write_summaries(
        self,
        items: list[DailySummary],
        subject: str,
        summary: ImportSummary,
        state: Progress,
        habits: HabitWindow | None,
    ) -> None:
        devices = {x.source.key: source_to_device(x.source) for x in items}
        new = []
        for item in items:
            obs = summary_to_observation(item, subject)
            obs["id"] = obs["identifier"][0]["value"]
            new.append((item, obs))
        writer = self.writer
        written: list[dict[str, Any]] = []

        def write(uow: UnitOfWork, retry: bool) -> Batch:
            batch = Batch()
            written.clear()
            writer.write_devices(uow, list(devices.values()))
            existing = writer.existing(uow, "Observation", [o["id"] for _, o in new])
            keep = []
            for item, obs in new:
                old = existing.get(obs["id"])
                if old is not None and not old.deleted and writer.stored_wins(uow, old, item):
                    batch.counts[_SUPERSEDED] += 1
                    batch.versions[old.id] = old.version_id
                    written.append(old.content or obs)
                    continue
                keep.append(obs)
            written.extend(writer.upsert(uow, keep, batch, retry, existing))
            state.through = items[-1].day.isoformat()
            uow.set_state(state.key, state.dump())
            return batch

        self._count(summary, state, writer.run(write))
        if habits is not None and self.coaching is not None:
            writer.settle()
            connect(self.coaching, written, habits, summary)

    @staticmethod
    def _count(summary: ImportSummary, state: Progress, batch: Batch) -> None:
        counts = batch.counts
        if len(state.versions) <= MAX_MANIFEST:
            state.versions.update(batch.versions)
        summary.created += counts["created"]
        summary.updated += counts["updated"]
        summary.unchanged += counts["unchanged"]
        if counts[_SUPERSEDED]:
            summary.skip(_SUPERSEDED, counts[_SUPERSEDED])

    # -- habits --------------------------------------------------------------------------------------------
