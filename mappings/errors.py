"""The one error hierarchy of :mod:`mappings`.

::

    MappingError(ValueError)            a record or file cannot be mapped; carries file/line/record/reason
     +-- MalformedInputError            the input is not what the reader expects: truncated zip, not XML,
     |                                  not JSON, a FIT CRC error, a missing required field, a bad number
     +-- UnsupportedInputError          well-formed input that this mapping does not handle (an unknown JSON
                                        layout, an Open mHealth schema or FHIR code with no counterpart)

Foreign exceptions (``zipfile.BadZipFile``, ``xml.parsers.expat.ExpatError``, ``json.JSONDecodeError``,
``fitparse.FitParseError``, ``ValueError`` from number parsing) are translated once, where they are raised,
and chained with ``from exc``.

Readers raise on the first bad record unless the caller hands in a :class:`SkipLog`; then record-level
errors are counted there with their reasons and reading goes on. File-level errors (the container cannot be
opened or parsed at all) are always raised: there is nothing left to read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["MalformedInputError", "MappingError", "SkipLog", "SkippedRecord", "UnsupportedInputError"]


class MappingError(ValueError):
    """A record or file that cannot be mapped.

    ``file`` names the input (a file name or a caller-chosen label), ``line`` the 1-based line where the
    format has lines, ``record`` a short locator (a record id, a JSON path, a FIT message index) and
    ``reason`` says what is wrong, in words a user can act on.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        record: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.record = record
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record:
            where.append(self.record)
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class MalformedInputError(MappingError):
    """The input is not what the reader expects (truncated, wrong syntax, missing or bad fields)."""


class UnsupportedInputError(MappingError):
    """Well-formed input that this mapping does not handle."""


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """One record that a reader skipped, with where and why."""

    file: str | None
    line: int | None
    record: str | None
    reason: str


@dataclass(slots=True)
class SkipLog:
    """Collects skipped bad records; pass one to a reader to skip instead of raising.

    ``ignored`` counts well-formed records that the mapping deliberately leaves out (a Withings goal, an
    Apple Health type with no mapping, a duplicate copy of a correlated record), by reason, so an import
    report can say what was not imported and why.
    """

    skipped: list[SkippedRecord] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)

    def add(self, error: MappingError) -> None:
        """Record a skipped bad record."""
        self.skipped.append(SkippedRecord(error.file, error.line, error.record, error.reason))

    def ignore(self, reason: str) -> None:
        """Count a well-formed record that is deliberately not mapped."""
        self.ignored[reason] += 1

    @property
    def count(self) -> int:
        """How many bad records were skipped."""
        return len(self.skipped)

    def reasons(self) -> Counter[str]:
        """Skipped-record counts by reason."""
        return Counter(s.reason for s in self.skipped)
