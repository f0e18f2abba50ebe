"""Apple Health ``export.zip`` / ``export.xml`` -> :class:`Reading`, streamed in constant memory.

Format (Apple HealthKit type identifiers, https://developer.apple.com/documentation/healthkit, as written by
the Health app's "Export All Health Data"; the samples in tests/fixtures/README.md): ``<HealthData>`` holding ``<Record>`` (quantity and category
samples), ``<Correlation>`` (blood pressure), ``<Workout>`` and ``<ActivitySummary>`` elements; dates are
``2016-11-20 17:57:19 -0700``. Rules enforced here:

* The XML is parsed with the C expat parser (:mod:`xml.parsers.expat`) fed in chunks, with handlers for start
  and end tags only: no tree is built, and only the open elements' attributes are held, so memory does not grow
  with the file (exports reach gigabytes). An inline DTD (older exports, "HealthKit Export Version: 3") is
  tolerated; external entities and the network are never loaded.
* **Fast path.** Most of an export is one-line ``<Record .../>`` elements with Apple's attribute order. When
  the parser stands between two elements of ``<HealthData>`` (checked after every stretch handed to expat: the
  last tag it reported ends the stretch, and only ``HealthData`` is open), such a line is matched by one strict
  regular expression instead (an empty element, attribute values without ``<``, control characters or
  entities other than the five predefined ones: it is well-formed by construction) and never handed to expat.
  Anything else - a record with children, another attribute order, a character reference, a comment - goes
  through expat. Both paths produce the same readings (tests compare them on every fixture); line numbers
  stay those of the file.
* Dates carry the phone's offset *at export time*, not at recording (tests/fixtures/README.md). When a record has an
  ``HKTimeZone`` metadata entry the instant is re-expressed in that zone, so the offset and the local day are
  right; otherwise the offset is kept as written.
* Records nested in a ``<Correlation>`` also appear top-level (the DTD says so): blood pressure is read once,
  from the correlation, and the loose systolic/diastolic records are ignored.
* Sleep (iOS 16+): ``AsleepCore``/``AsleepDeep``/``AsleepREM``/``AsleepUnspecified``/``Asleep``,
  ``InBed`` and ``Awake`` become separate metrics; time asleep is the sum of the asleep stages, never InBed.
* Units follow the locale (``lb``, ``mi``, ``degF``, ``count/min``, ``kcal``, ``kJ``); values are converted
  to canonical units. ``%`` quantities are fractions (0.97) and are scaled to percent.
* **Light records** (``light=``): a caller that only adds samples up per day or counts them (the importer
  without ``--samples``) names those metrics, and gets each such record that passes every check of the full
  path (a number, a known unit and zone, end not before start, a plausible value) as a tuple
  ``(metric, value, source, source key, start, end)`` - start and end in epoch seconds, end ``None`` for an
  instant quantity - instead of a :class:`Reading` with two datetimes. A record that fails a check comes as
  the full path makes it (a flagged Reading, or an error), so problems are reported the same way.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import IO, Any, cast
from xml.parsers import expat

from mappings.errors import MalformedInputError, SkipLog
from mappings.wearables.apple_health_scan import (
    _TAG_TAIL,
    QUANTITY_TYPES,
    SLEEP_VALUES,
    LightRecord,
    _Scanner,
)
from mappings.wearables.model import Metric, Reading

__all__ = ["QUANTITY_TYPES", "SLEEP_VALUES", "ExportPart", "LightRecord", "read_apple_health", "split_export"]


def read_apple_health(
    stream: IO[bytes],
    *,
    file: str = "export.xml",
    errors: SkipLog | None = None,
    summary_tz: tzinfo | None = None,
    light: Collection[Metric] = (),
    counted: dict[Metric, int] | None = None,
    fast_path: bool = True,
    part: ExportPart | None = None,
) -> Iterator[Reading | LightRecord]:
    """Yield readings from an Apple Health ``export.zip`` or ``export.xml`` byte stream.

    A zip is recognised by its signature and must be seekable; its ``*/export.xml`` is read (``__MACOSX``
    and ``.DS_Store`` entries are ignored). ``ActivitySummary`` rows are local calendar days without a zone:
    they are placed in ``summary_tz`` or, when not given, in the fixed offset of ``ExportDate``.

    ``light`` names metrics whose records may come as :data:`LightRecord` tuples (module docstring);
    records of a metric that is a key of ``counted`` and that pass every check are only counted there (its
    value is incremented), not yielded. ``fast_path=False`` hands every element to expat (tests compare).
    ``part`` reads one part of a plain ``export.xml`` (:func:`split_export`).
    """
    options = (errors, summary_tz, frozenset(light), counted, fast_path)
    if part is not None:
        yield from _read_part(stream, file, options, part)
        return
    head = stream.read(4)
    if not head:
        raise MalformedInputError("the file is empty", file=file)
    if stream.seekable():
        stream.seek(0)
    if head.startswith(b"PK"):
        yield from _read_zip(stream if stream.seekable() else io.BytesIO(head + stream.read()), file, options)
        return
    body: IO[bytes] = stream if stream.seekable() else cast(IO[bytes], _Prefixed(head, stream))
    yield from _Scanner(file, *options).run(body)


@dataclass
class ExportPart:
    """One of the two parts of a plain ``export.xml`` that :func:`split_export` cut, to be read on its own (in
    two processes): the first from byte 0 to ``stop``, the second from ``start`` to the end, after ``prologue``
    (the file's bytes up to and including the ``<HealthData>`` start tag) and numbering lines as in the file.

    The cut is only a proposal: the first part's reader stops at ``stop`` when the parser stands there between
    two children of ``HealthData`` (then reading both parts is reading the file: same readings, same errors),
    sets ``complete`` and ``lines`` (the newlines before ``stop``); otherwise it reads on to the end of the
    file, ``complete`` stays False and the second part must be discarded. The second part needs
    ``summary_tz`` (it does not see ``ExportDate``) and numbers its lines from its start plus ``line_offset``:
    give it the first part's ``lines`` for file line numbers, or shift them afterwards (it can run first).
    """

    start: int
    stop: int | None
    prologue: bytes = b""
    line_offset: int = 0
    complete: bool = False
    lines: int = 0


def split_export(stream: IO[bytes], size: int) -> tuple[ExportPart, ExportPart] | None:
    """Cut a seekable plain ``export.xml`` of ``size`` bytes in two near its middle, before a top-level
    one-line ``<Record``; None when there is no such place (a zip, no ``HealthData``, an unusual layout)."""
    stream.seek(0)
    head = stream.read(1 << 20)
    stream.seek(0)
    if head.startswith(b"PK"):
        return None
    prologue = _prologue(head)
    if prologue is None:
        return None
    middle = max(size // 2, len(prologue))
    stream.seek(middle)
    window = stream.read(1 << 20)
    stream.seek(0)
    at = window.find(b"\n <Record type=")
    if at < 0:
        return None
    cut = middle + at
    return ExportPart(0, cut), ExportPart(cut, None, prologue)


def _prologue(head: bytes) -> bytes | None:
    """``head`` up to the end of the ``<HealthData ...>`` start tag, when expat reads it as the root element."""
    found: list[int] = []
    parser = expat.ParserCreate()

    def start(name: str, _attrs: dict[str, str]) -> None:
        if not found:
            found.append(parser.CurrentByteIndex if name == "HealthData" else -1)
            raise StopIteration

    parser.StartElementHandler = start
    try:
        parser.Parse(head, False)
    except StopIteration:
        pass
    except expat.ExpatError:
        return None
    if not found or found[0] < 0:
        return None
    end = head.find(b">", found[0])
    if end < 0 or _TAG_TAIL.fullmatch(head, found[0], end + 1) is None or head[end - 1 : end] == b"/":
        return None
    return head[: end + 1]


def _read_part(
    stream: IO[bytes], file: str, options: tuple[Any, ...], part: ExportPart
) -> Iterator[Reading | LightRecord]:
    scanner = _Scanner(file, *options)
    if part.start == 0:
        stream.seek(0)
        yield from scanner.run(stream, stop=part.stop)
        part.complete = scanner.stopped
        if scanner.stopped:  # expat's line is 1 + the newlines it was fed; the fast path's are removed_lines
            part.lines = scanner.parser.CurrentLineNumber - 1 + scanner.removed_lines
        return
    if options[1] is None:
        raise ValueError("the second part of a split export needs summary_tz")
    stream.seek(part.start)
    scanner.removed_lines = part.line_offset - part.prologue.count(b"\n")
    yield from scanner.run(stream, prologue=part.prologue)
    part.complete = True


def _read_zip(stream: IO[bytes], file: str, options: tuple[Any, ...]) -> Iterator[Reading | LightRecord]:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MalformedInputError(f"not a readable zip archive ({exc})", file=file) from exc
    with archive:
        names = [
            n
            for n in archive.namelist()
            if n.rsplit("/", 1)[-1] == "export.xml" and not n.startswith("__MACOSX/")
        ]
        if not names:
            raise MalformedInputError("the zip holds no export.xml", file=file)
        member = min(names, key=len)  # apple_health_export/export.xml, not a nested copy
        label = f"{file}!{member}"
        try:
            with archive.open(member) as xml:
                yield from _Scanner(label, *options).run(xml)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise MalformedInputError(f"the zip archive is truncated or corrupt ({exc})", file=label) from exc


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with its already-read first bytes put back."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
