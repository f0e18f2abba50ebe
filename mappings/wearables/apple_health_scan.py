"""The Apple Health export scanner: the expat handlers, the one-line ``<Record>`` fast path, light records and
the caches behind them (:mod:`mappings.wearables.apple_health` documents the format and the rules).

Split from :mod:`.apple_health`, which keeps the public entry points (reading a file, a zip, a part of a file).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, tzinfo
from math import isfinite
from typing import IO, Any, Final
from xml.parsers import expat

from mappings.errors import MalformedInputError, MappingError, SkipLog, UnsupportedInputError
from mappings.wearables._common import convert, day_bounds, to_float, unit_factor, zone
from mappings.wearables.model import CANONICAL_UNITS, Component, Metric, Reading, Source, plausible_limits

#: ``(metric, value, source, source key, start, end)``: see the module docstring (``light=``).
LightRecord = tuple[Metric, float, Source, str, int, "int | None"]

VENDOR: Final = "apple-health"

#: HealthKit quantity type -> metric.
QUANTITY_TYPES: Final[dict[str, Metric]] = {
    "HKQuantityTypeIdentifierStepCount": Metric.STEPS,
    "HKQuantityTypeIdentifierDistanceWalkingRunning": Metric.DISTANCE,
    "HKQuantityTypeIdentifierHeartRate": Metric.HEART_RATE,
    "HKQuantityTypeIdentifierRestingHeartRate": Metric.RESTING_HEART_RATE,
    "HKQuantityTypeIdentifierActiveEnergyBurned": Metric.ACTIVE_ENERGY,
    "HKQuantityTypeIdentifierAppleExerciseTime": Metric.ACTIVE_MINUTES,
    "HKQuantityTypeIdentifierBodyMass": Metric.WEIGHT,
    "HKQuantityTypeIdentifierHeight": Metric.HEIGHT,
    "HKQuantityTypeIdentifierBodyMassIndex": Metric.BMI,
    "HKQuantityTypeIdentifierBodyFatPercentage": Metric.BODY_FAT,
    "HKQuantityTypeIdentifierBodyTemperature": Metric.BODY_TEMPERATURE,
    "HKQuantityTypeIdentifierOxygenSaturation": Metric.SPO2,
    "HKQuantityTypeIdentifierBloodGlucose": Metric.BLOOD_GLUCOSE,
}

#: HKCategoryValueSleepAnalysis* -> metric (iOS 16 stages and the deprecated ``Asleep``).
SLEEP_VALUES: Final[dict[str, Metric]] = {
    "HKCategoryValueSleepAnalysisInBed": Metric.SLEEP_IN_BED,
    "HKCategoryValueSleepAnalysisAsleep": Metric.SLEEP_ASLEEP,
    "HKCategoryValueSleepAnalysisAsleepUnspecified": Metric.SLEEP_ASLEEP,
    "HKCategoryValueSleepAnalysisAsleepCore": Metric.SLEEP_LIGHT,
    "HKCategoryValueSleepAnalysisAsleepDeep": Metric.SLEEP_DEEP,
    "HKCategoryValueSleepAnalysisAsleepREM": Metric.SLEEP_REM,
    "HKCategoryValueSleepAnalysisAwake": Metric.SLEEP_AWAKE,
}

_BP_CORRELATION = "HKCorrelationTypeIdentifierBloodPressure"
_BP_PARTS = {
    "HKQuantityTypeIdentifierBloodPressureSystolic": Metric.SYSTOLIC_BP,
    "HKQuantityTypeIdentifierBloodPressureDiastolic": Metric.DIASTOLIC_BP,
}
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})$")
_DEVICE_FIELD = re.compile(r"(name|manufacturer|model|hardware):([^,>]*)")
_CHUNK: Final = 1 << 18
_HANDLED: Final = frozenset({"ExportDate", "Record", "Correlation", "Workout", "ActivitySummary"})
# Attribute values on the fast path. The regular expression engine scans "anything but a quote" fastest: the
# type, source, unit and dates are matched so and checked where they are used (a type, unit or date is only
# taken when it is exactly a known, clean spelling; a source's attributes go through _unescape). The others
# exclude what XML forbids or normalises, and '&' (no check follows).
_CLEAN = rb'[^"<&\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f]*'
_STRICT = b'"' + _CLEAN + b'"'
#: A one-line <Record> in Apple's attribute order, empty or holding only MetadataEntry elements. Groups: type,
#: the source's attributes (sourceName, sourceVersion, device), unit, startDate, endDate, value, the children.
_FAST_RECORD = re.compile(
    rb'[ \t\r\n]*<Record type="([^"]*)"( sourceName="[^"]*"(?: sourceVersion="[^"]*")?(?: device="[^"]*")?)'
    rb'(?: unit="([^"]*)")?(?: creationDate=' + _STRICT + rb')? startDate="([^"]*)" endDate="([^"]*)"'
    rb'(?: value="(' + _CLEAN + rb')")?[ \t]*'
    rb"(?:/>|>((?:[ \t\r\n]*<MetadataEntry key=" + _STRICT + rb" value=" + _STRICT + rb"[ \t]*/>)+)"
    rb"[ \t\r\n]*</Record>)"
)
_SOURCE_SPAN = re.compile(rb' sourceName="([^"]*)"(?: sourceVersion="([^"]*)")?(?: device="([^"]*)")?')
_CANDIDATE: Final = b"<Record type="
# what may follow the last tag expat reported, for the parser to stand between two elements
_TAG_TAIL = re.compile(rb"</?[A-Za-z_:][^<>]*>[ \t\r\n]*")
_UNCLEAN = re.compile(r"[<\x00-\x1f]")  # in a value: not well-formed, or normalised by XML
_ENTITY = re.compile(r"&(lt|gt|amp|quot|apos);")
_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_FAST_DATE = re.compile(rb"(\d{4})-(\d\d)-(\d\d) (\d\d):([0-5]\d):([0-5]\d) ([+-])(\d\d)([0-5]\d)")
_CACHE_MAX: Final = 65_536
_HK_DEVICE = re.compile(r"<<HKDevice: 0x[0-9a-fA-F]+>")  # the per-record part of a device description
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"


class _LogCall:
    """A call to the skip log, queued with the readings so that it is made in file order."""

    __slots__ = ("argument", "method")

    def __init__(self, method: Any, argument: Any) -> None:
        self.method = method
        self.argument = argument

    def call(self) -> None:
        self.method(self.argument)


class _Frame:
    """An open element the reader handles: its attributes, line, direct MetadataEntry and Record children."""

    __slots__ = ("attrs", "line", "meta", "name", "nested", "records")

    def __init__(self, name: str, attrs: dict[str, str], line: int) -> None:
        self.name = name
        self.attrs = attrs
        self.line = line
        self.meta: list[dict[str, str]] = []
        self.records: list[dict[str, str]] = []
        self.nested = False


class _Scanner:
    """One pass over one ``export.xml``: expat for the structure, the fast path for one-line light records."""

    def __init__(
        self,
        file: str,
        errors: SkipLog | None,
        summary_tz: tzinfo | None,
        light: frozenset[Metric],
        counted: dict[Metric, int] | None,
        fast_path: bool,
    ) -> None:
        self.file = file
        self.errors = errors
        self.summary_tz = summary_tz
        self.counted = counted if counted is not None else {}
        self.light = light | frozenset(self.counted)
        self.fast = fast_path and bool(self.light)
        self.out: list[Reading | LightRecord | _LogCall] = []
        self.export_tz: tzinfo | None = None
        self.root: str | None = None
        self.seen = False  # a handled element was read
        self.names: list[str] = []  # open elements
        self.frames: list[_Frame | None] = []  # their frames (None: not handled)
        self.removed_lines = 0  # newlines the fast path took out of expat's input
        self.fed = 0  # bytes handed to expat
        self.last_tag = -1  # expat-input index of the last tag event
        self.between = False  # expat stands between two children of HealthData
        self.stopped = False  # run() stopped at its ``stop`` offset
        self.caches: dict[str, dict[Any, Any]] = {
            n: {} for n in ("kind", "sleep", "source", "device", "hour", "rest", "zone")
        }
        p = self.parser = expat.ParserCreate()
        p.specified_attributes = True  # as lxml: no attribute defaults from the DTD
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.XmlDeclHandler = self._xml_decl
        p.AttlistDeclHandler = self._attlist
        if hasattr(p, "SetReparseDeferralEnabled"):  # expat >= 2.6: report a complete tag when it is fed
            p.SetReparseDeferralEnabled(False)

    # -- driving ---------------------------------------------------------------------------------------------

    def run(
        self, stream: IO[bytes], *, stop: int | None = None, prologue: bytes = b""
    ) -> Iterator[Reading | LightRecord]:
        """Read the stream to its end; or, with ``stop``, to that offset when the parser stands there between
        two children of HealthData (``stopped``). ``prologue`` is parsed first (a part of a split export)."""
        try:
            if prologue:
                self._feed(prologue)
                yield from self._emit()
            rest = b""
            left = stop
            while True:
                chunk = stream.read(_CHUNK if left is None else min(_CHUNK, left))
                buf = rest + chunk if rest else chunk
                if left is not None:
                    left -= len(chunk)
                    if left == 0 or not chunk:
                        self._consume(buf, len(buf))
                        yield from self._emit()
                        rest, left = b"", None
                        if self.between and chunk:
                            self.stopped = True
                            return
                        continue
                if not chunk:
                    self._consume(buf, len(buf))
                    yield from self._emit()
                    self._parse(b"", final=True)
                    yield from self._emit()
                    break
                limit = buf.rfind(b">") + 1 or len(buf)  # keep a partial tag for the next chunk
                self._consume(buf, limit)
                rest = buf[limit:]
                yield from self._emit()
        except MappingError:
            yield from self._emit()  # what was read before the error, as the error stops the reading
            raise
        if not self.seen and self.root != "HealthData":
            raise MalformedInputError(
                f"root element is {self.root!r}, not HealthData: not an Apple Health export", file=self.file
            )

    def _emit(self) -> Iterator[Reading | LightRecord]:
        """What was read so far, in order: readings yielded, the skip log's calls made (so a caller sees a
        skipped record and the readings around it in file order)."""
        out, self.out = self.out, []
        for item in out:
            if isinstance(item, _LogCall):
                item.call()
            else:
                yield item

    def _ignore(self, reason: str) -> None:
        if self.errors is not None:
            self.out.append(_LogCall(self.errors.ignore, reason))

    def _consume(self, buf: bytes, limit: int) -> None:
        """Read ``buf[:limit]``: light records on the fast path while expat stands between HealthData's
        children, everything else through expat. The checks here are those of :meth:`_light`, inlined."""
        if not self.fast:
            if limit:
                self._feed(buf[:limit])
            return
        pos = fed_to = 0
        match = _FAST_RECORD.match
        caches = self.caches
        kinds, sleeps, sources, hours, rests = (
            caches["kind"],
            caches["sleep"],
            caches["source"],
            caches["hour"],
            caches["rest"],
        )
        counted = self.counted
        append = self.out.append
        between = self.between
        while pos < limit:
            if between and (m := match(buf, pos, limit)) is not None:
                kind, span, unit, start, end, value, children = m.groups()
                info = kinds.get(kind, 0)
                if info == 0:
                    info = self._kind(kind)
                if info is not None and (children is None or b"HKTimeZone" not in children):
                    source = sources.get(span) or self._span_source(span)
                    h, r = hours.get(start[:13]), rests.get(start[13:])
                    t0 = h + r if h is not None and r is not None else self._epoch(start)
                    h, r = hours.get(end[:13]), rests.get(end[13:])
                    t1 = h + r if h is not None and r is not None else self._epoch(end)
                    number = None
                    if source is not None and t0 is not None and t1 is not None and t1 >= t0:
                        seconds = t1 - t0
                        if info is _SLEEP:
                            info = sleeps.get(value, 0)
                            if info == 0:
                                info = self._sleep(value)
                            if info is not None:
                                number = round(seconds / 60, 4)
                        else:
                            factor = info[1].get(unit, 0)
                            if factor == 0:
                                factor = self._factor(info, unit)
                            if factor is not None and value is not None:
                                try:
                                    number = float(value)
                                except ValueError:
                                    number = None
                                if number is not None and factor != 1.0:
                                    number = round(number * factor, 6)
                            if seconds == 0:
                                t1 = None
                    if number is not None:
                        metric, _, low, high, additive, count = info
                        if additive and seconds > 86400:
                            high *= -(-seconds // 86400)
                        if low <= number <= high if high is not None else isfinite(number):  # not NaN, inf
                            if count:
                                counted[metric] += 1
                            else:
                                append((metric, number, source[0], source[1], t0, t1))  # type: ignore[arg-type,index]
                            self.seen = True
                            pos = m.end()
                            continue
                end_ = m.end()  # not light, or a check failed: the full path (through expat) decides
            else:
                nxt = buf.find(_CANDIDATE, pos + 1, limit)
                end_ = nxt if nxt >= 0 else limit
            self.removed_lines += buf.count(b"\n", fed_to, pos)
            self._feed(buf[pos:end_])
            between = self.between
            pos = fed_to = end_
        self.removed_lines += buf.count(b"\n", fed_to, limit)

    def _feed(self, segment: bytes) -> None:
        before = self.fed
        self.last_tag = -1
        self._parse(segment, final=False)
        self.fed += len(segment)
        if not self.fast or self.names != ["HealthData"]:
            self.between = False
        elif self.last_tag < 0:  # no tag in the segment: still where it was if only blanks were added
            self.between = self.between and not segment.strip()
        elif self.last_tag < before:
            self.between = False
        else:
            tail = segment[self.last_tag - before :]
            self.between = not tail.strip() or _TAG_TAIL.fullmatch(tail) is not None

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self.parser.Parse(data, final)
        except expat.ExpatError as exc:
            self.fast = self.between = False
            raise MalformedInputError(
                f"not well-formed XML ({expat.ErrorString(exc.code)})",
                file=self.file,
                line=exc.lineno + self.removed_lines,
            ) from exc

    # -- expat handlers --------------------------------------------------------------------------------------

    def _xml_decl(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            self.fast = False  # the fast path reads UTF-8 bytes

    def _attlist(self, element: str, name: str, kind: str, default: str | None, required: int) -> None:
        if element in ("Record", "MetadataEntry") and (kind != "CDATA" or default is not None):
            self.fast = False  # attribute defaults or value normalisation: leave records to expat

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        p = self.parser
        self.last_tag = p.CurrentByteIndex
        if self.root is None:
            self.root = name
        frames = self.frames
        parent = frames[-1] if frames else None
        frame = None
        if name in _HANDLED:
            frame = _Frame(name, attrs, p.CurrentLineNumber + self.removed_lines)
            if name == "Record" and parent is not None and parent.name == "Correlation":
                parent.records.append(attrs)  # read with its correlation
                frame.nested = True
        elif name == "MetadataEntry" and parent is not None:
            parent.meta.append(attrs)
        self.names.append(name)
        frames.append(frame)

    def _end(self, name: str) -> None:
        self.last_tag = self.parser.CurrentByteIndex
        self.names.pop()
        frame = self.frames.pop()
        if frame is None:
            return
        self.seen = True
        if not frame.nested:
            meta = {m.get("key", ""): m.get("value", "") for m in frame.meta}
            self._handle(frame.name, frame.attrs, meta, frame.line, frame.records)

    # -- light records ---------------------------------------------------------------------------------------

    def _light(self, attrs: dict[str, str]) -> bool:
        """Count or collect a record read by expat as a light record; False when it takes the full path.
        The same checks as the fast path's (:meth:`_consume`), on text."""
        info = self.caches["kind"].get(attrs.get("type") or "", 0)
        if info == 0:
            info = self._kind(attrs.get("type") or "")
        if info is None:
            return False
        source = self._source_of(attrs.get("sourceName"), attrs.get("sourceVersion"), attrs.get("device"))
        t0, t1 = self._epoch(attrs.get("startDate")), self._epoch(attrs.get("endDate"))
        if t0 is None or t1 is None or t1 < t0:
            return False
        seconds = t1 - t0
        value = attrs.get("value")
        if info is _SLEEP:
            info = self._sleep(value)
            if info is None:
                return False
            number = round(seconds / 60, 4)
        else:
            factor = self._factor(info, attrs.get("unit"))
            if factor is None or value is None:
                return False
            try:
                number = float(value)
            except ValueError:
                return False
            if factor != 1.0:
                number = round(number * factor, 6)
            if seconds == 0:
                t1 = None
        metric, _, low, high, additive, count = info
        if additive and seconds > 86400:
            high *= -(-seconds // 86400)
        if not (low <= number <= high if high is not None else isfinite(number)):
            return False
        if count:
            self.counted[metric] += 1
        else:
            self.out.append((metric, number, source, source.key, t0, t1))
        return True

    def _kind(self, raw: bytes | str) -> Any:
        """What a light record of this type is checked by: ``_SLEEP`` or :func:`_light_info`; None: not light."""
        text = _text(raw)
        got: Any = None
        if text == _SLEEP:
            got = _SLEEP if self.light & frozenset(SLEEP_VALUES.values()) else None
        elif text is not None:  # a metric converted otherwise than by a factor fails at the unit: full path
            metric = QUANTITY_TYPES.get(text)
            if metric in self.light:
                got = _light_info(metric, CANONICAL_UNITS[metric], metric in self.counted)
        _remember(self.caches["kind"], raw, got)
        return got

    def _sleep(self, raw: bytes | str | None) -> Any:
        cache = self.caches["sleep"]
        got = cache.get(raw, 0)
        if got == 0:
            text = None if raw is None else _text(raw)
            metric = SLEEP_VALUES.get(text or "")
            got = _light_info(metric, "min", metric in self.counted) if metric in self.light else None
            _remember(cache, raw, got)
        return got

    def _factor(self, info: tuple[Any, ...], raw: bytes | str | None) -> float | None:
        units = info[1]
        got: float | None = units.get(raw, 0)
        if got == 0:
            text = "" if raw is None else _text(raw)
            got = None if text is None else unit_factor(info[0], text)
            _remember(units, raw, got)
        return got

    def _epoch(self, raw: bytes | str | None) -> int | None:
        """Epoch seconds of an Apple date in the usual spelling, caching its "YYYY-MM-DD HH" and its
        ":MM:SS +HHMM"; None for anything else, which the full path then reads or rejects."""
        if raw is None:
            return None
        m = _FAST_DATE.fullmatch(raw.encode() if isinstance(raw, str) else raw)
        if m is None:
            return None
        year, month, day, hour, minute, second, sign, oh, om = m.groups()
        if int(hour) > 23 or int(oh) > 23:
            return None
        try:
            base = (date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL) * 86400
        except ValueError:
            return None
        rest = int(minute) * 60 + int(second) - (int(oh) * 3600 + int(om) * 60) * (-1 if sign == b"-" else 1)
        hours, rests = self.caches["hour"], self.caches["rest"]
        if len(hours) >= _CACHE_MAX or len(rests) >= _CACHE_MAX:
            hours.clear()
            rests.clear()
        base = hours[raw[:13]] = base + int(hour) * 3600
        rests[raw[13:]] = rest
        return base + rest

    def _span_source(self, span: bytes) -> tuple[Source, str] | None:
        """The source (and its key) of a fast-path record's source attributes; None when one needs expat."""
        m = _SOURCE_SPAN.fullmatch(span)
        if m is None:
            return None
        texts = [None if raw is None else _unescape(raw) for raw in m.groups()]
        if any(t is None and raw is not None for t, raw in zip(texts, m.groups(), strict=True)):
            return None
        source = self._source_of(*texts)
        cache = self.caches["source"]
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        got = cache[span] = (source, source.key)
        return got

    def _source_of(self, name: str | None, version: str | None, device: str | None) -> Source:
        # the "<<HKDevice: 0x...>" address changes per record: identity uses name/model/hardware only
        cache = self.caches["device"]
        key = (name, version, _HK_DEVICE.sub("", device) if device else device)
        got = cache.get(key)
        if got is None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            got = cache[key] = _make_source({"sourceName": name, "sourceVersion": version, "device": device})
        return got

    # -- the full path ---------------------------------------------------------------------------------------

    def _handle(
        self, tag: str, attrs: dict[str, str], meta: dict[str, str], line: int, records: list[dict[str, str]]
    ) -> None:
        out = self.out
        try:
            if tag == "Record":
                if self.light:
                    tz_name = meta.get("HKTimeZone")
                    if (not tz_name or self._zone_ok(tz_name)) and self._light(attrs):
                        return
                for r in self._record(attrs, meta, line):
                    out.append(r.checked())
            elif tag == "ExportDate":
                self.export_tz = _parse_date(attrs.get("value"), "ExportDate").tzinfo
            elif tag == "Correlation":
                for r in self._correlation(attrs, meta, line, records):
                    out.append(r.checked())
            elif tag == "Workout":
                for r in self._workout(attrs, meta, line):
                    out.append(r.checked())
            elif tag == "ActivitySummary":
                for r in _activity_summary(attrs, self._where(line), self.summary_tz or self.export_tz):
                    out.append(r.checked())
        except MappingError as exc:
            located = type(exc)(exc.reason, file=self.file, line=line, record=exc.record or tag)
            if self.errors is None:
                raise located from exc
            self.out.append(_LogCall(self.errors.add, located))  # in order with the readings

    def _zone_ok(self, name: str) -> bool:
        cache = self.caches["zone"]
        ok = cache.get(name)
        if ok is None:
            try:
                zone(name)
                ok = True
            except MappingError:
                ok = False
            cache[name] = ok
        return ok

    def _where(self, line: int) -> str:
        return f"{self.file}:{line}"

    def _record_source(self, attrs: dict[str, str]) -> Source:
        return self._source_of(attrs.get("sourceName"), attrs.get("sourceVersion"), attrs.get("device"))

    def _record(self, attrs: dict[str, str], meta: dict[str, str], line: int) -> Iterator[Reading]:
        kind = attrs.get("type") or ""
        if kind == _SLEEP:
            metric = SLEEP_VALUES.get(attrs.get("value") or "")
            if metric is None:
                raise UnsupportedInputError(
                    f"unknown sleep analysis value {attrs.get('value')!r}", record=kind
                )
            start, end, tz_name = _times(attrs, meta)
            yield Reading(
                metric,
                round((end - start).total_seconds() / 60, 4),
                "min",
                start,
                self._record_source(attrs),
                end=end,
                time_zone=tz_name,
                location=self._where(line),
                entered_by_user=meta.get("HKWasUserEntered") == "1",
            )
            return
        if kind in _BP_PARTS:
            self._ignore("blood pressure part outside its correlation")
            return
        metric = QUANTITY_TYPES.get(kind)
        if metric is None:
            self._ignore(f"unmapped type {kind}")
            return
        value, unit = convert(metric, to_float(attrs.get("value"), "value"), attrs.get("unit"))
        start, end, tz_name = _times(attrs, meta)
        yield Reading(
            metric,
            value,
            unit,
            start,
            self._record_source(attrs),
            end=None if start == end else end,
            time_zone=tz_name,
            location=self._where(line),
            entered_by_user=meta.get("HKWasUserEntered") == "1",
        )

    def _correlation(
        self, attrs: dict[str, str], meta: dict[str, str], line: int, records: list[dict[str, str]]
    ) -> Iterator[Reading]:
        if attrs.get("type") != _BP_CORRELATION:
            self._ignore(f"unmapped correlation {attrs.get('type')}")
            return
        parts: dict[Metric, Component] = {}
        for record in records:
            metric = _BP_PARTS.get(record.get("type") or "")
            if metric is not None:
                value, unit = convert(metric, to_float(record.get("value"), "value"), record.get("unit"))
                parts[metric] = Component(metric, value, unit)
        if set(parts) != {Metric.SYSTOLIC_BP, Metric.DIASTOLIC_BP}:
            raise MalformedInputError("blood pressure correlation lacks a systolic or diastolic record")
        start, end, tz_name = _times(attrs, meta)
        yield Reading(
            Metric.BLOOD_PRESSURE,
            None,
            "mm[Hg]",
            start,
            self._record_source(attrs),
            end=None if start == end else end,
            components=(parts[Metric.SYSTOLIC_BP], parts[Metric.DIASTOLIC_BP]),
            time_zone=tz_name,
            location=self._where(line),
            entered_by_user=meta.get("HKWasUserEntered") == "1",
        )

    def _workout(self, attrs: dict[str, str], meta: dict[str, str], line: int) -> Iterator[Reading]:
        start, end, tz_name = _times(attrs, meta)
        activity = (attrs.get("workoutActivityType") or "HKWorkoutActivityTypeOther").removeprefix(
            "HKWorkoutActivityType"
        )
        source = self._record_source(attrs)
        where = self._where(line)
        raw_duration = attrs.get("duration")
        if raw_duration is not None:
            minutes, _ = convert(
                Metric.EXERCISE, to_float(raw_duration, "duration"), attrs.get("durationUnit") or "min"
            )
        else:
            minutes = (end - start).total_seconds() / 60
        yield Reading(
            Metric.EXERCISE,
            round(minutes, 4),
            "min",
            start,
            source,
            end=end,
            time_zone=tz_name,
            label=activity,
            location=where,
        )
        energy = attrs.get("totalEnergyBurned")
        if energy is not None:
            value, unit = convert(
                Metric.WORKOUT_ENERGY,
                to_float(energy, "totalEnergyBurned"),
                attrs.get("totalEnergyBurnedUnit") or "kcal",
            )
            yield Reading(
                Metric.WORKOUT_ENERGY,
                value,
                unit,
                start,
                source,
                end=end,
                time_zone=tz_name,
                label=activity,
                location=where,
            )


def _light_info(
    metric: Metric, unit: str, count: bool
) -> tuple[Metric, dict[Any, Any], float, float | None, bool, bool]:
    """What a light record of ``metric`` is checked by: (metric, unit factors met so far, the plausible range over
    one day - high None: none -, whether it is additive, whether it is only counted)."""
    limits = plausible_limits(metric, unit, 1)
    if limits is None:
        return metric, {}, 0.0, None, False, count
    return metric, {}, limits[0], limits[1], plausible_limits(metric, unit, 2) != limits, count


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Cache ``value``; a cache that reached its bound starts over (memory stays constant whatever the file)."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def _text(raw: bytes | str) -> str | None:
    """A cache key's text (bytes from the fast path); None when the bytes need expat."""
    return raw if isinstance(raw, str) else _unescape(raw)


def _unescape(raw: bytes) -> str | None:
    """A fast-path attribute value as text; None when it needs expat (bad UTF-8, an unusual entity)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    if _UNCLEAN.search(text) is not None:
        return None
    if "&" not in text:
        return text
    if text.count("&") != len(_ENTITY.findall(text)):
        return None
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def _parse_date(raw: str | None, what: str) -> datetime:
    if not raw:
        raise MalformedInputError(f"missing {what}")
    text = raw.strip()
    try:
        match = _DATE.match(text)
        if match:  # fast path: fromisoformat is ~20x faster than strptime, and exports hold millions of dates
            return datetime.fromisoformat(f"{match[1]}T{match[2]}{match[3]}:{match[4]}")
        return datetime.strptime(text, _DATE_FORMAT)
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not like 2016-11-20 17:57:19 -0700") from exc


def _make_source(attrs: dict[str, str | None]) -> Source:
    device = attrs.get("device")
    model = None
    if device:
        fields = dict(_DEVICE_FIELD.findall(device))
        # the "<<HKDevice: 0x...>" address changes per record: identity uses name/model/hardware only
        parts = [fields.get("name"), fields.get("hardware") or fields.get("model")]
        model = ", ".join(p.strip() for p in parts if p and p.strip()) or None
    return Source(VENDOR, attrs.get("sourceName") or "unknown", model, attrs.get("sourceVersion"))


def _times(attrs: dict[str, str], meta: dict[str, str]) -> tuple[datetime, datetime, str | None]:
    start = _parse_date(attrs.get("startDate"), "startDate")
    end = _parse_date(attrs.get("endDate"), "endDate")
    tz_name = meta.get("HKTimeZone")
    if tz_name:
        tz = zone(tz_name)
        start, end = start.astimezone(tz), end.astimezone(tz)
    return start, end, tz_name


def _activity_summary(attrs: dict[str, str], where: str, tz: tzinfo | None) -> Iterator[Reading]:
    raw = attrs.get("dateComponents")
    try:
        day = date.fromisoformat(raw or "")
    except ValueError as exc:
        raise MalformedInputError(f"dateComponents {raw!r} is not a date") from exc
    if tz is None:
        raise MalformedInputError("ActivitySummary before ExportDate and no summary_tz given")
    start, end = day_bounds(day, tz)
    # Activity rings are computed by the Health app from all sources: name it as such.
    source = Source(VENDOR, "Activity Summary")
    energy = attrs.get("activeEnergyBurned")
    if energy is not None:
        value, unit = convert(
            Metric.ACTIVE_ENERGY,
            to_float(energy, "activeEnergyBurned"),
            attrs.get("activeEnergyBurnedUnit") or "kcal",
        )
        yield Reading(
            Metric.ACTIVE_ENERGY, value, unit, start, source, end=end, local_date=day, location=where
        )
    exercise = attrs.get("appleExerciseTime")
    if exercise is not None:
        yield Reading(
            Metric.ACTIVE_MINUTES,
            to_float(exercise, "appleExerciseTime"),
            "min",
            start,
            source,
            end=end,
            local_date=day,
            location=where,
        )
