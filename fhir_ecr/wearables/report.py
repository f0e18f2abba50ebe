"""What an import is asked and what it answers: options, the summary, the one error, the source priority.

The readers' skipped records go into the summary as they stream by (:class:`Problems`), bounded: every one is
counted, the first 100 are kept with their location (``docs/wearables.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mappings.errors import MappingError, SkipLog, SkippedRecord
from mappings.wearables import DEFAULT_RULE, CsvMapping, DedupRule, Metric

from .ziplimits import ZipLimits

__all__ = [
    "ImportOptions",
    "ImportSummary",
    "Problems",
    "WearableImportError",
    "located",
    "parse_source_priority",
]

_MAX_PROBLEMS: Final = 100  # located bad records kept for the report (all are counted)
_MAX_REASONS: Final = 200


class WearableImportError(Exception):
    """A file that cannot be imported at all (empty, truncated, not the format it claims). Names the file.
    ``too_large``: a zip archive past the limits (:mod:`~fhir_ecr.wearables.ziplimits`)."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, too_large: bool = False
    ) -> None:
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
    # per unit of work; with the import's smaller page cache (upsert.IMPORT_CACHE_KIB) the peak RSS stays < 250 MB
    batch_readings: int = 4000
    batch_days: int = 366
    skip_verified: bool = (
        True  # a file imported before (same SHA-256) whose resources are unchanged: no parse
    )
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
        for name in (
            "bytes",
            "read",
            "mapped",
            "summarised",
            "skipped",
            "created",
            "updated",
            "unchanged",
            "days",
            "checkins",
            "resumed",
            "already_imported",
            "seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.files += other.files
        self.formats += other.formats
        self.skipped_reasons.update(other.skipped_reasons)
        self.problems += other.problems[: max(0, _MAX_PROBLEMS - len(self.problems))]

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (CLI ``--json`` and the upload endpoint)."""
        return {
            "files": self.files,
            "formats": self.formats,
            "bytes": self.bytes,
            "read": self.read,
            "mapped": self.mapped,
            "summarised": self.summarised,
            "skipped": self.skipped,
            "skippedReasons": dict(self.skipped_reasons.most_common()),
            "problems": [
                {
                    k: v
                    for k, v in (
                        ("file", p.file),
                        ("line", p.line),
                        ("record", p.record),
                        ("reason", p.reason),
                    )
                    if v is not None
                }
                for p in self.problems
            ],
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "days": self.days,
            "checkins": self.checkins,
            "resumed": self.resumed,
            "alreadyImported": self.already_imported,
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
            lines.append(
                f"{self.already_imported} file(s) imported before with the same content (SHA-256): their "
                "stored resources are unchanged, nothing to do"
            )
        for reason, n in self.skipped_reasons.most_common(10):
            lines.append(f"  skipped {n:,}: {reason}")
        for p in self.problems[:10]:
            where = ", ".join(str(x) for x in (p.file, f"line {p.line}" if p.line else None, p.record) if x)
            lines.append(f"  {where}: {p.reason}")
        if len(self.problems) > 10:
            lines.append(
                f"  … {len(self.problems) - 10} more located problems with --json (the first 100 are kept)"
            )
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


class Problems(SkipLog):
    """The readers' skip log, reporting into the import summary as it goes (bounded memory)."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__()
        self.summary = summary

    def add(self, error: MappingError) -> None:
        self.summary.read += 1
        self.summary.skip(
            error.reason[:160], problem=SkippedRecord(error.file, error.line, error.record, error.reason)
        )

    def ignore(self, reason: str) -> None:
        self.summary.read += 1
        self.summary.skip(f"not imported: {reason}")


def located(name: str, location: str | None, reason: str) -> SkippedRecord:
    """A problem for the report; ``location`` is the reader's ``file:line`` or a record locator."""
    head, _, tail = (location or "").rpartition(":")
    if head and tail.isdigit():
        return SkippedRecord(name, int(tail), None, reason)
    return SkippedRecord(name, None, location, reason)
