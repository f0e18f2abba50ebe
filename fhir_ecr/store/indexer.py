"""Search-index rows for a resource, computed at write time from the compiled SearchParameters.

Each index table holds one kind of value (https://hl7.org/fhir/R4/search.html#ptypes):

==========  ==========================================================================================
token       (system, code, text) from code, Coding, CodeableConcept, Identifier, ContactPoint, boolean, id
string      (normalised, exact) from string, HumanName parts and Address parts
date        [low, high] in µs since the epoch (UTC) from date, dateTime, instant, Period, Timing
reference   (target type, target id, url) from Reference (relative or our own absolute URL) and canonical
number      value
quantity    (value, system, code, unit) from Quantity (and its profiles Age, Duration, …)
uri         value
==========  ==========================================================================================

Dates and datetimes without a time zone are read as UTC (the spec leaves the zone to the server). Numbers and
quantities are indexed as doubles whatever type they were parsed as (``int``, ``float``, the exact-text
:class:`~.jsonexact.ExactFloat`/:class:`~.jsonexact.ExactInt`, or ``Decimal``); the resource keeps their text.
"""

from __future__ import annotations

import calendar
import math
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from .references import LocalReference, parse_reference, reference_walk
from .searchparams import SearchParam, candidate_params

__all__ = [
    "IndexRows",
    "IndexTemplate",
    "extract_index_rows",
    "index_resource",
    "normalize_string",
    "date_range",
    "parse_reference",
    "MIN_US",
    "MAX_US",
    "TABLE_FOR_TYPE",
    "OTHER_REFERENCES",
    "other_references",
]

MIN_US = -(2**62)
MAX_US = 2**62
TABLE_FOR_TYPE = {
    "token": "idx_token",
    "string": "idx_string",
    "date": "idx_date",
    "reference": "idx_reference",
    "number": "idx_number",
    "quantity": "idx_quantity",
    "uri": "idx_uri",
}
# Answered from the resource table's own columns, so not indexed.
_SKIP = {"_id", "_lastUpdated"}
_CONTACT_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}

IndexRows = dict[str, list[tuple[Any, ...]]]


def _number(value: Any) -> float | None:
    """A JSON number's value as a finite double for the number and quantity indexes; None for anything else."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def normalize_string(value: str) -> str:
    """Case- and accent-insensitive form used by string search (R4 search.html#string)."""
    if value.isascii():  # NFKD leaves ASCII as it is and it has no combining marks
        return value.casefold().strip()
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


# --- dates ----------------------------------------------------------------------------------------------------

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


_US = 1_000_000
_US_PER_DAY = 86_400 * _US
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_OFFSET_MINUTES = 14 * 60  # FHIR time zones run from -12:00 to +14:00 (R4 datatypes.html#dateTime)


def _day_us(ordinal: int) -> int:
    """µs since the epoch at 00:00 UTC of the proleptic Gregorian day ``ordinal`` (``date.toordinal()``)."""
    return (ordinal - _EPOCH_ORDINAL) * _US_PER_DAY


def date_range(text: str) -> tuple[int, int]:
    """The [low, high] (inclusive, µs since the epoch, UTC) that a FHIR date/dateTime/instant stands for.

    A partial date stands for its whole period: ``2024`` is the year, ``2024-03-05`` the day,
    ``2024-03-05T10:00`` the minute (R4 search.html#date). Raises ValueError on a malformed value, never
    OverflowError: the arithmetic is on integers, so ``9999-12-31T23:59:59-12:00`` (which is in year 10000 in
    UTC) and ``0001-01-01T00:00:00+14:00`` (in year 0) have ranges like any other instant. A leap second
    (``23:59:60``, allowed by FHIR's time pattern) stands for the last microsecond of its minute.
    """
    m = _DATE_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a FHIR date/dateTime: {text!r}")
    g = m.groupdict()
    year = int(g["y"])
    if g["m"] is None:
        first = date(year, 1, 1).toordinal()
        return _day_us(first), _day_us(date(year, 12, 31).toordinal() + 1) - 1
    month = int(g["m"])
    if g["d"] is None:
        first = date(year, month, 1).toordinal()
        return _day_us(first), _day_us(
            date(year, month, calendar.monthrange(year, month)[1]).toordinal() + 1
        ) - 1
    day = date(year, month, int(g["d"])).toordinal()
    if g["H"] is None:
        return _day_us(day), _day_us(day + 1) - 1
    hour, minute = int(g["H"]), int(g["M"])
    if hour > 23 or minute > 59:
        raise ValueError(f"not a time of day: {text!r}")
    offset = 0
    if g["tz"] and g["tz"] != "Z":
        tz_hours, tz_minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        if tz_minutes > 59 or tz_hours * 60 + tz_minutes > _MAX_OFFSET_MINUTES:
            raise ValueError(f"not a time zone offset: {text!r}")
        offset = (1 if g["tz"][0] == "+" else -1) * (tz_hours * 3600 + tz_minutes * 60) * _US
    minute_start = _day_us(day) + (hour * 3600 + minute * 60) * _US - offset
    if g["S"] is None:
        return minute_start, minute_start + 60 * _US - 1
    second = int(g["S"])
    if second > 60:
        raise ValueError(f"not a time of day: {text!r}")
    if second == 60:  # a leap second: the last instant of the minute
        last = minute_start + 60 * _US - 1
        return last, last
    frac = g["f"]
    low = minute_start + second * _US + (int((frac + "000000")[:6]) if frac else 0)
    width = 10 ** max(0, 6 - len(frac)) if frac else _US
    return low, low + width - 1


def _dates(value: Any) -> Iterable[tuple[int, int]]:
    if isinstance(value, tuple):  # a range computed by a mECR parameter's extractor (mecr_params)
        yield value
    elif isinstance(value, str):
        yield date_range(value)
    elif isinstance(value, dict):
        if "start" in value or "end" in value:  # Period
            low = date_range(value["start"])[0] if value.get("start") else MIN_US
            high = date_range(value["end"])[1] if value.get("end") else MAX_US
            yield low, high
        elif "event" in value or "repeat" in value:  # Timing
            for event in value.get("event", []):
                yield date_range(event)
            bounds = value.get("repeat", {}).get("boundsPeriod")
            if bounds:
                yield from _dates(bounds)


# --- extraction -----------------------------------------------------------------------------------------------


def _tokens(value: Any) -> Iterable[tuple[str | None, str | None, str | None]]:
    if isinstance(value, bool):
        yield None, "true" if value else "false", None
    elif isinstance(value, str):
        yield None, value, None
    elif isinstance(value, (int, float, Decimal)):
        yield None, str(value), None
    elif isinstance(value, dict):
        if "coding" in value or ("text" in value and "code" not in value and "value" not in value):
            text = value.get("text")
            codings = value.get("coding") or []
            for coding in codings:
                yield coding.get("system"), coding.get("code"), text or coding.get("display")
            if not codings and text:
                yield None, None, text
        elif "value" in value and ("system" in value or "use" in value or "type" in value or len(value) == 1):
            system = value.get("system")
            if system in _CONTACT_SYSTEMS:  # ContactPoint: token search matches the value
                yield None, value["value"], system
            else:  # Identifier
                yield system, value["value"], (value.get("type") or {}).get("text")
        elif "code" in value or "system" in value:  # Coding
            yield value.get("system"), value.get("code"), value.get("display")


_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        parts = _NAME_PARTS if ("family" in value or "given" in value) else _ADDRESS_PARTS
        for key in parts:
            v = value.get(key)
            if isinstance(v, list):
                yield from (x for x in v if isinstance(x, str))
            elif isinstance(v, str):
                yield v


def extract_index_rows(resource: dict[str, Any], base_url: str | None = None) -> IndexRows:
    """Index rows of ``resource`` per table, without the resource key (the repository adds it).

    Each row starts with the parameter code. Raises ValueError when an indexed value is malformed (the
    validator normally catches it first).
    """
    return index_resource(resource, base_url)[0]


def index_resource(
    resource: dict[str, Any], base_url: str | None = None
) -> tuple[IndexRows, list[LocalReference]]:
    """The index rows of ``resource`` (:func:`extract_index_rows`) and its local references outside contained
    resources (:func:`~fhir_ecr.store.references.local_references`), from one walk of it for references: a write
    needs both, and the walk was a fifth of indexing an Observation when each took its own."""
    rows = _evaluate(resource, _plan(resource), base_url)
    local, contained = reference_walk(resource, base_url)
    if local or contained:
        rows["idx_reference"] += _other_rows(rows["idx_reference"], local, contained)
    return rows, local


def _evaluate(resource: dict[str, Any], steps: list[_Step], base_url: str | None) -> IndexRows:
    """The rows of the parameters ``steps`` (a plan, or part of one) for ``resource``, per table."""
    token: list[tuple[Any, ...]] = []
    string: list[tuple[Any, ...]] = []
    date: list[tuple[Any, ...]] = []
    ref: list[tuple[Any, ...]] = []
    number: list[tuple[Any, ...]] = []
    quantity: list[tuple[Any, ...]] = []
    uri: list[tuple[Any, ...]] = []
    for param, code, ptype, extract in steps:
        values = extract(resource)
        if not values:
            continue
        if ptype == "token":
            if len(values) == 1 and isinstance(values[0], dict) and "coding" in values[0]:
                _concept_rows(code, values[0], token)
            else:
                seen = set()
                for system, tcode, text in (t for v in values for t in _tokens(v)):
                    key = (system, tcode, text)
                    if key not in seen:
                        seen.add(key)
                        token.append((code, system, tcode, text))
        elif ptype == "reference":
            _references(param, values, base_url, ref)
        elif ptype == "date":
            for v in values:
                for low, high in _dates(v):
                    date.append((code, low, high))
        elif ptype == "string":
            seen_s = set()
            for s in (s for v in values for s in _strings(v)):
                if s not in seen_s:
                    seen_s.add(s)
                    string.append((code, normalize_string(s)[:255], s[:255]))
        elif ptype == "quantity":
            for v in values:
                value = _number(v.get("value")) if isinstance(v, dict) else None
                if value is not None:
                    quantity.append((code, value, v.get("system"), v.get("code"), v.get("unit")))
        elif ptype == "number":
            for v in values:
                value = _number(v)
                if value is not None:
                    number.append((code, value))
        elif ptype == "uri":
            for v in values:
                if isinstance(v, str):
                    uri.append((code, v))
    return {
        "idx_token": token,
        "idx_string": string,
        "idx_date": date,
        "idx_reference": ref,
        "idx_number": number,
        "idx_quantity": quantity,
        "idx_uri": uri,
    }


def _concept_rows(code: str, concept: dict[str, Any], out: list[tuple[Any, ...]]) -> None:
    """The token rows of one CodeableConcept (the usual token value: ``code``, ``category``): what
    :func:`_tokens` yields for it, without the generator."""
    codings = concept["coding"] or []
    text = concept.get("text")
    if not codings:
        if text:
            out.append((code, None, None, text))
        return
    seen = set()
    for coding in codings:
        key = (coding.get("system"), coding.get("code"), text or coding.get("display"))
        if key not in seen:
            seen.add(key)
            out.append((code, *key))


_Step = tuple[SearchParam, str, str, Any]
_PLANS: dict[tuple[Any, ...], list[_Step]] = {}


def _plan(resource: dict[str, Any]) -> list[_Step]:
    """What to evaluate for a resource of this shape (its type, its top-level keys and those of its ``meta``):
    the candidate parameters (:func:`~fhir_ecr.store.searchparams.candidate_params`) less those answered from
    the resource table and the ``meta`` ones whose element is absent. Resources come in few shapes."""
    meta = resource.get("meta")
    shape = _shape(resource)
    found = _PLANS.get(shape)
    if found is None:
        meta_keys = set(meta) if isinstance(meta, dict) else set()
        found = [
            (p, p.code, p.type, p.extract)
            for p in candidate_params(resource)
            if p.code not in _SKIP and _meta_present(p, meta_keys)
        ]
        if len(_PLANS) > 4096:  # bound the cache all the same
            _PLANS.clear()
        _PLANS[shape] = found
    return found


def _meta_present(param: SearchParam, meta_keys: set[str]) -> bool:
    """False for a parameter that reads only ``meta.X`` (``_profile``, ``_tag``, …) when the resource's meta has no X."""
    if param.roots != {"meta"} or not param.fast:
        return True
    keys = {part.split(".")[2] if part.count(".") >= 2 else "" for part in param.parts}
    return bool(keys & meta_keys) or "" in keys


class IndexTemplate:
    """The index rows and local references of resources that differ only in a few top-level elements
    (``varying``), as :func:`index_resource` makes them, with what reads only the other elements done once.

    The audit trail writes one AuditEvent per patient a request touched (500 for a transaction of 500 patients'
    readings), each the request's event with its own ``entity``, ``action``, ``id`` and ``meta``: its type,
    subtype, agent, source, outcome and date need evaluating once per request, not once per event. A resource
    whose shape or shared elements differ from the template's becomes the new template, so the result is always
    :func:`index_resource`'s: the same rows per table (the shared parameters' first) and the same references in
    the same order.
    """

    def __init__(self, varying: Iterable[str], base_url: str | None = None) -> None:
        self.varying = frozenset(varying)
        self.base_url = base_url
        self._template: dict[str, Any] = {}
        self._shape: tuple[Any, ...] = ()
        self._steps: list[_Step] = []  # the parameters that read a varying element
        self._rows: IndexRows = {}  # the others' rows
        self._walks: dict[str, tuple[list[LocalReference], list[tuple[str, str]]]] = {}  # shared key -> walk

    def index(self, resource: dict[str, Any]) -> tuple[IndexRows, list[LocalReference]]:
        """:func:`index_resource` of ``resource``."""
        if not self._fits(resource):
            self._start(resource)
        rows = _evaluate(resource, self._steps, self.base_url)
        for table, shared in self._rows.items():
            if shared:
                rows[table][:0] = shared
        local: list[LocalReference] = []
        contained: list[tuple[str, str]] = []
        walks = self._walks
        for key, value in resource.items():
            walk = walks.get(key)
            if walk is None:
                if not isinstance(value, (dict, list)):
                    continue  # no reference in a primitive (``id``, ``action``)
                walk = self._walk(resource, key)
            local += walk[0]
            contained += walk[1]
        if local or contained:
            rows["idx_reference"] += _other_rows(rows["idx_reference"], local, contained)
        return rows, local

    def _fits(self, resource: dict[str, Any]) -> bool:
        if _shape(resource) != self._shape:
            return False
        template = self._template
        return all(resource[k] == template[k] for k in self._walks)

    def _start(self, resource: dict[str, Any]) -> None:
        self._template, self._shape = resource, _shape(resource)
        rtype = resource.get("resourceType", "")
        reading = {p.code for p in candidate_params({"resourceType": rtype, **dict.fromkeys(self.varying)})}
        plan = _plan(resource)
        self._steps = [s for s in plan if s[1] in reading]
        self._rows = _evaluate(resource, [s for s in plan if s[1] not in reading], self.base_url)
        self._walks = {k: self._walk(resource, k) for k in resource if k not in self.varying}

    def _walk(self, resource: dict[str, Any], key: str) -> tuple[list[LocalReference], list[tuple[str, str]]]:
        """:func:`reference_walk` of one top-level element: the walk goes key by key, in document order."""
        return reference_walk(
            {"resourceType": resource.get("resourceType"), key: resource[key]}, self.base_url
        )


def _shape(resource: dict[str, Any]) -> tuple[Any, ...]:
    meta = resource.get("meta")
    return (resource.get("resourceType", ""), tuple(resource), tuple(meta) if isinstance(meta, dict) else ())


#: The index parameter under which references no search parameter covers are kept (``CarePlan.author``,
#: ``Observation.hasMember`` targets already have theirs): not searchable, but what a patient's record references
#: decides which shared resources (a Device, their coach's PractitionerRole) the patient may read
#: (``fhir_ecr.store.visibility``), and ``$everything`` follows them.
OTHER_REFERENCES = "_reference"


def other_references(
    resource: dict[str, Any], known: list[tuple[Any, ...]], base_url: str | None = None
) -> list[tuple[Any, ...]]:
    """``(OTHER_REFERENCES, type, id, None)`` for each local reference in ``resource`` (anywhere, contained
    resources included) whose target is not in the reference rows ``known`` already."""
    return _other_rows(known, *reference_walk(resource, base_url))


def _other_rows(
    known: list[tuple[Any, ...]], local: list[LocalReference], contained: list[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    have = {(r[1], r[2]) for r in known}
    out: list[tuple[Any, ...]] = []
    for target in [(t, i) for _, t, i in local] + contained:
        if target not in have:
            have.add(target)
            out.append((OTHER_REFERENCES, *target, None))
    return out


def _references(
    param: SearchParam, values: list[Any], base_url: str | None, out: list[tuple[Any, ...]]
) -> None:
    code, allowed = param.code, param.target_filter
    for v in values:
        text = v.get("reference") if isinstance(v, dict) else v if isinstance(v, str) else None
        if not text or text.startswith("#"):
            continue
        ttype, tid, url = parse_reference(text, base_url)
        if allowed is not None and ttype not in allowed:
            continue
        out.append((code, ttype, tid, url))
