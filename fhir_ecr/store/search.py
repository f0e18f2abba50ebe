"""FHIR search: parse a query (name/value pairs) into a :class:`SearchQuery`, and turn it into SQL.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from ..outcomes import bad_request, informational, not_supported
from .indexer import date_range, normalize_string, parse_reference
from .searchparams import SearchParam, search_param, search_params
from .tables import INDEX_TABLES, ReferenceIndex, ResourceRow

__all__ = [
    "Criterion",
    "Include",
    "SearchQuery",
    "parse_search",
    "criteria_sql",
    "search_where",
    "driven_pks",
    "sort_sql",
    "RESULT_PARAMETERS",
    "param_condition",
    "MAX_CHAIN_DEPTH",
    "Visibility",
    "MAX_CHAIN_TYPES",
    "MAX_OFFSET",
    "check_text",
]

R = ResourceRow.__table__  # type: ignore[attr-defined]
REF = ReferenceIndex.__table__  # type: ignore[attr-defined]

#: ``vis(rtype, r)``: the condition on resource-table alias ``r`` for the rows of ``rtype`` the caller may see.
Visibility = Callable[[str, Any], Any]

RESULT_PARAMETERS = {
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_format", "_pretty",
    "_cursor", "_offset", "_contained", "_containedType",
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
    has: tuple[str, SearchParam] | None = None  # _has: (source type, its reference parameter); ``chain`` on it


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


def _parse_criterion(resource_type: str, key: str, value: str, budget: list[int] | None = None) -> Criterion | None:
    """A Criterion for ``key=value`` on ``resource_type``, or None when the parameter is unknown. ``budget``
    counts the (type, hop) pairs a chain may expand to (:data:`MAX_CHAIN_TYPES`)."""
    budget = [MAX_CHAIN_TYPES] if budget is None else budget
    if key.startswith("_has:"):
        return _parse_has(resource_type, key, value, budget)
    head, dot, rest = key.partition(".")
    name, _, modifier = head.partition(":")
    modifier = modifier or None
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
            if budget[0] < 0:  # each (type, hop) is a subquery: an untyped chain through "any" grows as 34^depth
                raise bad_request(f"{key} follows too many resource types; name them with :Type (e.g. "
                                  f"subject:Patient.name)", expression=key)
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


# --- SQL ------------------------------------------------------------------------------------------------------


def _prefix(value: str, allow: bool = True) -> tuple[str, str]:
    if allow and len(value) > 2 and value[:2] in _PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def _range_condition(prefix: str, low_col: Any, high_col: Any, s_low: Any, s_high: Any, name: str) -> Any:
    contained = sa.and_(low_col >= s_low, high_col <= s_high)
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return sa.not_(contained)
    if prefix == "gt":
        return high_col > s_high
    if prefix == "lt":
        return low_col < s_low
    if prefix == "ge":
        return sa.or_(high_col > s_high, contained)
    if prefix == "le":
        return sa.or_(low_col < s_low, contained)
    if prefix == "sa":
        return low_col > s_high
    if prefix == "eb":
        return high_col < s_low
    raise not_supported(f"prefix {prefix} is not supported on {name}", expression=name)


def _date_value(name: str, value: str) -> tuple[str, int, int]:
    prefix, text = _prefix(value)
    try:
        low, high = date_range(text)
    except (ValueError, OverflowError):
        raise bad_request(f"{value!r} is not a valid date for {name}", expression=name) from None
    return prefix, low, high


def _number_value(name: str, text: str) -> tuple[Decimal, Decimal]:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise bad_request(f"{text!r} is not a number for {name}", expression=name) from None
    if not number.is_finite():
        raise bad_request(f"{text!r} is not a finite number for {name}", expression=name)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5) * Decimal(10) ** (exponent - 1)  # implicit precision: 100 means [99.5, 100.5)
    return number, half


def _number_condition(name: str, prefix: str, col: Any, text: str) -> Any:
    number, half = _number_value(name, text)
    lo, hi, exact = float(number - half), float(number + half), float(number)
    if prefix == "eq":
        return sa.and_(col >= lo, col < hi)
    if prefix == "ne":
        return sa.or_(col < lo, col >= hi)
    if prefix in ("gt", "sa"):
        return col > exact
    if prefix in ("lt", "eb"):
        return col < exact
    if prefix == "ge":
        return col >= exact
    if prefix == "le":
        return col <= exact
    raise not_supported(f"prefix {prefix} is not supported on {name}", expression=name)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value_condition(c: Criterion, table: sa.Table, value: str, base_url: str | None) -> Any:
    name, t = c.name, c.type
    if t == "token":
        if c.modifier == "text":
            return table.c.text.ilike(f"%{_like_escape(value)}%", escape="\\")
        if "|" in value:
            system, _, code = value.partition("|")
            if not system:
                return sa.and_(table.c.system.is_(None), table.c.code == code)
            if not code:
                return table.c.system == system
            return sa.and_(table.c.system == system, table.c.code == code)
        return table.c.code == value
    if t == "string":
        if c.modifier == "exact":
            return table.c.exact == value
        norm = _like_escape(normalize_string(value))
        if c.modifier == "contains":
            return table.c.value.like(f"%{norm}%", escape="\\")
        return table.c.value.like(f"{norm}%", escape="\\")
    if t == "date":
        prefix, low, high = _date_value(name, value)
        return _range_condition(prefix, table.c.low, table.c.high, low, high, name)
    if t == "number":
        prefix, text = _prefix(value)
        return _number_condition(name, prefix, table.c.value, text)
    if t == "quantity":
        number_part, _, unit_part = value.partition("|")
        prefix, text = _prefix(number_part)
        cond = _number_condition(name, prefix, table.c.value, text)
        if unit_part:
            system, _, code = unit_part.partition("|")
            if system:
                cond = sa.and_(cond, table.c.system == system, table.c.code == code)
            elif code:
                cond = sa.and_(cond, sa.or_(table.c.code == code, table.c.unit == code))
        return cond
    if t == "uri":
        if c.modifier == "below":
            return table.c.value.like(f"{_like_escape(value)}%", escape="\\")
        if c.modifier == "above":
            return sa.literal(value).like(table.c.value + "%")
        return table.c.value == value
    if t == "reference":
        type_modifier = c.modifier if c.modifier and c.modifier != "missing" else None
        if type_modifier:
            return sa.and_(table.c.target_type == type_modifier, table.c.target_id == value)
        ttype, tid, url = parse_reference(value, base_url)
        if tid is not None:
            return sa.and_(table.c.target_type == ttype, table.c.target_id == tid)
        if "/" not in value and ":" not in value:  # a bare id
            cond = table.c.target_id == value
            if c.param is not None and len(c.param.targets) == 1:
                cond = sa.and_(cond, table.c.target_type == c.param.targets[0])
            return cond
        return table.c.url == url
    raise not_supported(f"search on {t} parameter {name} is not supported", expression=name)


_RANK = {"reference": 1, "token": 2, "uri": 2, "string": 3, "date": 4, "quantity": 5, "number": 5}


def _drives(c: Criterion) -> bool:
    """A mECR special criterion whose SQL is ``key IN (index lookup)`` (``near``, ``keyword``): it can drive."""
    return c.type == "special" and c.param is not None and getattr(c.param.special, "drives", False)


def _rank(c: Criterion) -> int:
    """How selective a criterion usually is (lower first): the first one drives the query."""
    if c.name == "_id":
        return 0
    if c.type == "special":
        return 2 if _drives(c) else 7
    if c.chain is not None and _drives(c.chain) and c.modifier is None:
        return 1  # ``location.near=…``: the few Locations around a point drive better than a common category
    if c.modifier in ("not", "missing", "contains", "text") or c.chain is not None:
        return 9
    if c.name == "_lastUpdated":
        return 6
    return _RANK.get(c.type, 8)


def search_where(resource_type: str, criteria: list[Criterion], base_url: str | None, r: Any = R,
                 vis: Visibility | None = None) -> list[Any]:
    """The WHERE conditions of a search of ``resource_type``: the type, not deleted, and the criteria.

    When the first criterion looks rows up in an index table, that lookup already implies the type and a
    current version (index rows exist only for current, undeleted versions), so the type test is left out:
    SQLite would otherwise walk every resource of the type by its (type, id) index instead of following the
    lookup.
    """
    conds = criteria_sql(resource_type, criteria, base_url, r, vis)
    ordered = sorted(criteria, key=_rank)
    driven = bool(ordered) and ordered[0].param is not None and ordered[0].modifier not in ("not", "missing") \
        and (ordered[0].type != "special" or _drives(ordered[0]))
    if driven:
        return conds
    return [r.c.res_type == resource_type, r.c.deleted.is_(False), *conds]


def criteria_sql(resource_type: str, criteria: list[Criterion], base_url: str | None, r: Any = R,
                 vis: Visibility | None = None) -> list[Any]:
    """SQL conditions on the resource table ``r`` for ``criteria`` (ANDed by the caller).

    The most selective criterion becomes ``pk IN (index lookup)``, which drives the query through its index;
    every other one is a correlated ``EXISTS`` probed per candidate through the ``(res_pk, param)`` index.
    Without this, SQLite materialises every ``IN`` list in full (e.g. all step counts of all patients).
    """
    ordered = sorted(criteria, key=_rank)
    return [_criterion_sql(resource_type, c, base_url, r, correlated=i > 0, vis=vis) for i, c in enumerate(ordered)]


def driven_pks(resource_type: str, criteria: list[Criterion], base_url: str | None,
               vis: Visibility | None = None) -> Any | None:
    """``SELECT DISTINCT res_pk`` of the matches, computed from the index tables alone, or None.

    The most selective criterion's index lookup drives; every other criterion is an ``EXISTS`` probe on the
    driver row's ``res_pk``. The resource table (wide rows: the JSON documents) is not touched until the page
    of matches is known, so a search over a million resources reads dense index pages only. Index rows exist
    only for current, undeleted versions, so no resource-table check is needed. None when a criterion needs
    the resource table (``_id``, ``_lastUpdated``) or the best criterion cannot drive (``:not``, ``:missing``).
    """
    ordered = sorted(criteria, key=_rank)
    if not ordered or any(c.param is None for c in ordered) or ordered[0].modifier in ("not", "missing") \
            or ordered[0].type == "special" and not _drives(ordered[0]):
        return None
    if ordered[0].type == "special":  # a mECR parameter's own index lookup (store/mecr_params.py)
        assert ordered[0].param is not None and ordered[0].param.special is not None
        found = ordered[0].param.special.lookup(ordered[0]).subquery()
        select, key = sa.select(found.c.res_pk), found.c.res_pk
        others = [_criterion_sql(resource_type, c, base_url, None, correlated=True, key=key, vis=vis)
                  for c in ordered[1:]]
        return select.where(*others).distinct()
    select, table = _criterion_sql(resource_type, ordered[0], base_url, None, driver=True, vis=vis)
    key = table.c.res_pk
    others = [_criterion_sql(resource_type, c, base_url, None, correlated=True, key=key, vis=vis)
              for c in ordered[1:]]
    return select.where(*others).distinct()


def _criterion_sql(resource_type: str, c: Criterion, base_url: str | None, r: Any,
                   correlated: bool = False, key: Any = None, driver: bool = False,
                   vis: Visibility | None = None) -> Any:
    """One criterion as SQL: ``key IN (lookup)``, a correlated ``EXISTS`` on ``key`` (``correlated``), or, for
    the driver of :func:`driven_pks`, ``(SELECT res_pk … , table alias)``. ``key`` defaults to ``r.c.pk``.
    Every chained or ``_has`` hop only sees the rows ``vis`` allows."""
    if key is None and r is not None:
        key = r.c.pk
    if c.has is not None:
        assert c.chain is not None
        source, param = c.has
        inner, ref = R.alias(), REF.alias()
        sources = sa.select(inner.c.pk).where(*_narrowed(source, [c.chain], base_url, inner, vis))
        targets = sa.select(ref.c.target_id).where(ref.c.res_type == source, param_condition(ref, param),
                                                   ref.c.target_type == resource_type, ref.c.res_pk.in_(sources))
        return r.c.res_id.in_(targets)
    if c.type == "special":
        assert c.param is not None and c.param.special is not None
        return c.param.special(c, key)
    if c.param is None:  # _id, _lastUpdated: columns of the resource table
        if c.name == "_id":
            if c.modifier == "missing":
                return sa.true() if c.values[0] == "false" else sa.false()
            cond = r.c.res_id.in_(c.values)
            return sa.not_(cond) if c.modifier == "not" else cond
        if c.modifier == "missing":
            return sa.true() if c.values[0] == "false" else sa.false()
        ors = []
        for v in c.values:
            prefix, low, high = _date_value(c.name, v)
            ors.append(_range_condition(prefix, r.c.last_updated, r.c.last_updated, low, high, c.name))
        return sa.or_(*ors)
    table = INDEX_TABLES[_table_name(c.type)].alias()
    param_cond = param_condition(table, c.param)
    scope = sa.and_(table.c.res_type == resource_type, param_cond)

    def matching(*conds: Any) -> Any:
        if driver:
            return sa.select(table.c.res_pk).where(scope, *conds), table
        if correlated:
            # EXISTS (SELECT res_pk …), not SELECT *: SQLite then answers the probe from the covering
            # (res_pk, param, value…) index without visiting the table row (~20% off a summary's probes).
            return sa.exists(table.c.res_pk).where(table.c.res_pk == key, param_cond, *conds)
        return key.in_(sa.select(table.c.res_pk).where(scope, *conds))

    if c.chain is not None:
        ors = []
        for t in c.chain_types:
            inner_r = R.alias()
            ids = sa.select(inner_r.c.res_id).where(*_narrowed(t, [c.chain], base_url, inner_r, vis))
            ors.append(sa.and_(table.c.target_type == t, table.c.target_id.in_(ids)))
        return matching(sa.or_(*ors))
    if c.modifier == "missing":
        present = matching()
        return sa.not_(present) if c.values[0] == "true" else present
    value_conds = [_value_condition(c, table, v, base_url) for v in c.values if v != ""]
    if not value_conds:
        raise bad_request(f"{c.name} has no value", expression=c.name)
    if c.modifier == "not":
        correlated = True
        return sa.not_(matching(sa.or_(*value_conds)))
    return matching(sa.or_(*value_conds))


def _narrowed(rtype: str, criteria: list[Criterion], base_url: str | None, r: Any,
              vis: Visibility | None) -> list[Any]:
    """The conditions of a search of ``rtype`` on alias ``r``, narrowed to what the caller may see."""
    conds = search_where(rtype, criteria, base_url, r, vis)
    return [*conds, vis(rtype, r)] if vis is not None else conds


def param_condition(table: Any, param: SearchParam) -> Any:
    """Rows of ``param`` in an index table: its own, or those it borrows (``SearchParam.stored_as``)."""
    names = param.index_names
    cond = table.c.param == names[0] if len(names) == 1 else table.c.param.in_(names)
    type_filter = param.query_type_filter
    if type_filter:
        cond = sa.and_(cond, table.c.target_type.in_(sorted(type_filter)))
    return cond


def _table_name(ptype: str) -> str:
    return f"idx_{ptype}"


_SORT_COLUMN = {
    "date": "low",
    "string": "value",
    "token": "code",
    "number": "value",
    "quantity": "value",
    "uri": "value",
    "reference": "target_id",
}


def sort_sql(resource_type: str, sort: list[tuple[str, bool]], r: Any = R) -> list[Any]:
    """ORDER BY terms for ``_sort``; always ends with the resource key so the order is total."""
    terms: list[Any] = []
    for name, desc in sort:
        if name == "_id":
            col: Any = r.c.res_id
        elif name == "_lastUpdated":
            col = r.c.last_updated
        else:
            param = search_param(resource_type, name)
            if param is None or param.type not in _SORT_COLUMN:
                raise bad_request(f"cannot sort by {name}", expression="_sort")
            table = INDEX_TABLES[_table_name(param.type)]
            column = table.c[_SORT_COLUMN[param.type]]
            agg = sa.func.max(table.c.high) if (param.type == "date" and desc) else (
                sa.func.max(column) if desc else sa.func.min(column))
            col = (
                sa.select(agg)
                .where(table.c.res_pk == r.c.pk, param_condition(table, param))
                .scalar_subquery()
            )
        terms.append(sa.nulls_last(col.desc()) if desc else sa.nulls_last(col.asc()))
    terms.append(r.c.pk.asc())
    return terms

