"""FHIR search: parse a query (name/value pairs) into a :class:`SearchQuery` (its SQL: :mod:`.search_sql`).

Semantics follow https://hl7.org/fhir/R4/search.html:

- repeated parameters are ANDed, comma-separated values ORed (``\\,`` escapes a comma);
- prefixes ``eq ne gt lt ge le sa eb`` on number, date and quantity (``ap`` is refused: its tolerance is
  server-defined and easy to misread);
- modifiers ``:missing`` (all types), ``:exact`` and ``:contains`` (string), ``:not`` and ``:text`` (token),
  ``:[type]`` (reference), ``:below`` / ``:above`` (uri); any other modifier is refused with 400, because
  ignoring a modifier silently changes what the search means;
- chains through reference parameters (``subject:Patient.name=…``, ``patient.identifier=…``) and reverse chains
  (``_has:Observation:patient:code=…``), at most :data:`MAX_CHAIN_DEPTH` hops (``_has`` levels count) and
  :data:`MAX_CHAIN_TYPES` (type, hop) pairs (more is refused with 400: each is a nested subquery);
- ``_id``, ``_lastUpdated``, ``_count``, ``_sort``, ``_include``, ``_revinclude`` (with ``:iterate``),
  ``_summary``, ``_elements``, ``_total``; paging is by an opaque cursor on the default order and by offset on
  a custom ``_sort`` order, and every order ends with the resource key so pages never overlap.

Unknown parameters are reported as warnings, or refused under ``Prefer: handling=strict``. A NUL character in
a parameter name or value is refused with 400 (PostgreSQL cannot store or compare text holding one), and so are
``_offset`` and ``_cursor`` values past what the database's integers hold.

Confinement: the SQL builders take ``vis``, a function giving the condition on a resource-table alias for the rows
of a type the caller may see (``fhir_ecr.store.visibility``); every hop of a chain or ``_has`` is narrowed by it, so
a search tells a confined caller nothing about resources they may not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..outcomes import bad_request, informational, not_supported
from .searchparams import SearchParam, search_param, search_params

__all__ = [
    "Criterion",
    "Include",
    "SearchQuery",
    "parse_search",
    "RESULT_PARAMETERS",
    "MAX_CHAIN_DEPTH",
    "MAX_CHAIN_TYPES",
    "MAX_OFFSET",
    "check_text",
]

RESULT_PARAMETERS = {
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_cursor",
    "_offset",
    "_contained",
    "_containedType",
}
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_MODIFIERS = {
    "string": {"missing", "exact", "contains"},
    "token": {"missing", "not", "text"},
    "reference": {"missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"missing", "below", "above"},
}
_SPECIAL = {"_id": "token", "_lastUpdated": "date"}
#: Most hops in one chained parameter (``subject:Patient.link:Patient.link…``); ``_has`` levels count too.
MAX_CHAIN_DEPTH = 4
#: Most (resource type, hop) pairs one chained parameter may expand to: ``subject.name`` is 4 (Patient, Group,
#: Device, Location), ``entity.entity.name`` on AuditEvent would be 34 x 34.
MAX_CHAIN_TYPES = 64
#: Largest ``_offset`` accepted (a signed 32-bit integer: past any real result set, inside every database's).
MAX_OFFSET = 2**31 - 1
_MAX_CURSOR = 2**63 - 1  # resource keys are 64-bit integers
_CURSOR = re.compile(r"^[0-9A-Za-z]{1,13}$")


def check_text(text: str, expression: str | None = None) -> None:
    """Refuse (400) a NUL character: no FHIR string may hold one (R4 datatypes.html#string), and PostgreSQL
    refuses it in text and JSONB (a 500 otherwise); SQLite would store it silently."""
    if "\x00" in text:
        raise bad_request("a NUL character (U+0000) is not allowed here", expression=expression)


@dataclass
class Criterion:
    """One search parameter occurrence: ``values`` are ORed; ``chain`` searches the referenced resources."""

    name: str
    type: str
    param: SearchParam | None  # None for _id / _lastUpdated
    modifier: str | None
    values: list[str]
    chain: Criterion | None = None
    chain_types: tuple[str, ...] = ()
    has: tuple[str, SearchParam] | None = (
        None  # _has: (source type, its reference parameter); ``chain`` on it
    )


@dataclass
class Include:
    """``_include`` / ``_revinclude``: ``source_type:param[:target_type]``."""

    source_type: str
    param: str
    target_type: str | None
    iterate: bool = False


@dataclass
class SearchQuery:
    """A parsed search."""

    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    count: int = 20
    offset: int = 0
    cursor: int | None = None
    total: str = "accurate"
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _split_values(raw: str) -> list[str]:
    parts = re.split(r"(?<!\\),", raw)
    return [p.replace("\\,", ",") for p in parts]


def _resolve_param(resource_type: str, name: str) -> SearchParam | None:
    return search_param(resource_type, name)


def _parse_has(resource_type: str, key: str, value: str, budget: list[int]) -> Criterion:
    """``_has:Type:param:rest`` (R4 search.html#has): resources of ``resource_type`` that a ``Type`` matching
    ``rest=value`` references through ``param``."""
    parts = key.split(":", 3)
    if len(parts) != 4 or not all(parts[1:]):
        raise bad_request(f"{key} must have the form _has:Type:reference-parameter:parameter", expression=key)
    _, source, pname, rest = parts
    if source not in search_params():
        raise bad_request(f"unknown resource type {source} in {key}", expression=key)
    param = search_param(source, pname)
    if param is None or param.type != "reference":
        raise bad_request(f"{pname} is not a reference parameter of {source}", expression=key)
    if param.targets and resource_type not in param.targets:
        raise bad_request(f"{source}.{pname} cannot refer to {resource_type}", expression=key)
    budget[0] -= 1
    inner = _parse_criterion(source, rest, value, budget)
    if inner is None:
        raise bad_request(f"unknown search parameter {rest} for {source} in {key}", expression=key)
    return Criterion("_has", "has", None, None, [], chain=inner, has=(source, param))


def _parse_criterion(
    resource_type: str, key: str, value: str, budget: list[int] | None = None
) -> Criterion | None:
    """A Criterion for ``key=value`` on ``resource_type``, or None when the parameter is unknown. ``budget``
    counts the (type, hop) pairs a chain may expand to (:data:`MAX_CHAIN_TYPES`)."""
    budget = [MAX_CHAIN_TYPES] if budget is None else budget
    if key.startswith("_has:"):
        return _parse_has(resource_type, key, value, budget)
    head, dot, rest = key.partition(".")
    name, _, given_modifier = head.partition(":")
    modifier = given_modifier or None
    if name in _SPECIAL:
        if dot:
            raise bad_request(f"{name} cannot be chained", expression=key)
        ptype = _SPECIAL[name]
        if modifier and modifier not in _MODIFIERS[ptype] - {"text"}:
            raise not_supported(f"modifier :{modifier} is not supported on {name}", expression=key)
        return Criterion(name, ptype, None, modifier, _split_values(value))
    param = _resolve_param(resource_type, name)
    if param is None or param.internal:
        return None
    if param.special is not None:  # mECR's own parameters that build their SQL (store/mecr_params.py)
        if dot or modifier:
            raise bad_request(f"{name} takes no modifier and cannot be chained", expression=key)
        return Criterion(name, "special", param, None, _split_values(value))
    if dot:
        if param.type != "reference":
            raise bad_request(f"{name} is not a reference parameter and cannot be chained", expression=key)
        types = (modifier,) if modifier else param.targets
        inner_types = tuple(t for t in types if t in search_params())
        if modifier and modifier not in search_params():
            raise bad_request(f"unknown resource type {modifier} in chain", expression=key)
        chained: Criterion | None = None
        usable: list[str] = []
        for t in inner_types:
            budget[0] -= 1
            if (
                budget[0] < 0
            ):  # each (type, hop) is a subquery: an untyped chain through "any" grows as 34^depth
                raise bad_request(
                    f"{key} follows too many resource types; name them with :Type (e.g. "
                    f"subject:Patient.name)",
                    expression=key,
                )
            c = _parse_criterion(t, rest, value, budget)
            if c is not None:
                chained = chained or c
                usable.append(t)
        if chained is None:
            raise bad_request(f"chained parameter {rest} is not known on {'/'.join(types)}", expression=key)
        return Criterion(name, "reference", param, None, [], chain=chained, chain_types=tuple(usable))
    if param.type not in _MODIFIERS:
        raise not_supported(f"search on {param.type} parameter {name} is not supported", expression=key)
    if modifier is not None and modifier not in _MODIFIERS[param.type]:
        if param.type == "reference" and modifier in search_params():
            pass  # the :[type] modifier
        else:
            raise not_supported(f"modifier :{modifier} is not supported on {name}", expression=key)
    if modifier == "missing" and value not in ("true", "false"):
        raise bad_request(f":missing takes true or false, not {value!r}", expression=key)
    return Criterion(name, param.type, param, modifier, _split_values(value))


def _parse_include(resource_type: str, raw: str, rev: bool, iterate: bool) -> Include:
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise bad_request(f"_include/_revinclude value must be Type:param[:targetType], not {raw!r}")
    source, pname = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    param = search_param(source, pname)
    if param is None or param.type != "reference":
        raise bad_request(f"{source}:{pname} is not a reference search parameter")
    if not rev and not iterate and source != resource_type:
        raise bad_request(f"_include={raw} must start with the searched type {resource_type}")
    return Include(source, pname, target, iterate)


def parse_search(
    resource_type: str,
    params: list[tuple[str, str]],
    *,
    strict: bool = False,
    default_count: int = 20,
    max_count: int = 1000,
) -> SearchQuery:
    """Parse ``params`` (in order, repeats allowed) into a SearchQuery; raise 400 on a bad value."""
    query = SearchQuery(resource_type, count=default_count)
    for key, value in params:
        check_text(key)
        check_text(value, key)
        if _chain_depth(key) > MAX_CHAIN_DEPTH:
            raise bad_request(f"{key} chains more than {MAX_CHAIN_DEPTH} references", expression=key)
        base = key.split(":")[0]
        if base in RESULT_PARAMETERS:
            _result_parameter(query, key, value, max_count)
            continue
        criterion = _parse_criterion(resource_type, key, value)
        if criterion is None:
            message = f"unknown search parameter {key} for {resource_type}"
            if strict:
                raise bad_request(message, expression=key)
            query.warnings.append(informational(f"{message}: ignored", expression=key))
            continue
        query.criteria.append(criterion)
    return query


def _chain_depth(key: str) -> int:
    """How many references a parameter name follows: one per chain hop (``.``) and per ``_has`` level."""
    return key.count(".") + key.count("_has:")


def _result_parameter(query: SearchQuery, key: str, value: str, max_count: int) -> None:
    base, _, modifier = key.partition(":")
    rtype = query.resource_type
    if base == "_count":
        query.count = min(_non_negative(key, value), max_count)
    elif base == "_offset":
        query.offset = _non_negative(key, value)
        if query.offset > MAX_OFFSET:
            raise bad_request(f"_offset must be at most {MAX_OFFSET}", expression=key)
    elif base == "_cursor":
        cursor = int(value, 36) if _CURSOR.match(value) else None
        if cursor is None or cursor > _MAX_CURSOR:
            raise bad_request(f"bad paging cursor {value!r}", expression=key)
        query.cursor = cursor
    elif base == "_sort":
        for item in _split_values(value):
            desc = item.startswith("-")
            name = item.lstrip("-")
            if name not in _SPECIAL and search_param(rtype, name) is None:
                raise bad_request(f"cannot sort by unknown parameter {name}", expression="_sort")
            query.sort.append((name, desc))
    elif base == "_include":
        query.includes.append(_parse_include(rtype, value, False, modifier == "iterate"))
    elif base == "_revinclude":
        query.revincludes.append(_parse_include(rtype, value, True, modifier == "iterate"))
    elif base == "_summary":
        if value not in ("true", "false", "text", "data", "count"):
            raise bad_request(f"_summary must be true, false, text, data or count, not {value!r}")
        query.summary = None if value == "false" else value
    elif base == "_elements":
        query.elements = [e.strip() for e in value.split(",") if e.strip()]
    elif base == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise bad_request(f"_total must be none, estimate or accurate, not {value!r}")
        query.total = value
    # _format, _pretty, _contained, _containedType: accepted and not needed (JSON only, no contained search)


def _non_negative(key: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise bad_request(f"{key} must be a non-negative integer, not {value!r}", expression=key)
    return int(value)
