"""FHIR search as SQL: the conditions, driving lookups, chains and sort order of a parsed :class:`SearchQuery`.

The most selective criterion drives the query through its index lookup; every other criterion is a correlated
``EXISTS`` probe (docs/architecture.md, "Search SQL"). Confinement: the builders take ``vis``, a function giving
the condition on a resource-table alias for the rows of a type the caller may see
(``fhir_ecr.store.visibility``); every hop of a chain or ``_has`` is narrowed by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import sqlalchemy as sa

from ..outcomes import bad_request, not_supported
from .indexer import date_range, normalize_string, parse_reference
from .search import _PREFIXES, Criterion
from .searchparams import SearchParam, search_param
from .tables import INDEX_TABLES, REFERENCE_INDEX, ResourceRow

__all__ = [
    "Driver",
    "SearchDriver",
    "Visibility",
    "criteria_sql",
    "date_condition",
    "driven_pks",
    "param_condition",
    "search_where",
    "sort_sql",
]

R = ResourceRow.__table__  # type: ignore[attr-defined]
REF = REFERENCE_INDEX

#: ``vis(rtype, r)``: the condition on resource-table alias ``r`` for the rows of ``rtype`` the caller may see.
Visibility = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Driver:
    """A driving lookup supplied from outside the store (``FhirRepository.search_drivers``): ``lookup``, a
    ``SELECT res_pk`` of exactly the current resources that match every criterion of ``used`` (duplicates
    allowed), in place of the index lookup of the most selective criterion. The other criteria stay correlated
    ``EXISTS`` probes on its ``res_pk``, so the matches are those the index alone would give."""

    lookup: Any
    used: tuple[Criterion, ...]


class SearchDriver(Protocol):
    """Offers a :class:`Driver` for a search (or None: the store's own lookup drives). Registered on the repository
    from the composition root (``FhirRepository.search_drivers``, as write hooks are); the store knows nothing of
    the tables it reads. ``uow`` is the searching unit of work (to check the tables are complete)."""

    def __call__(self, uow: Any, resource_type: str, criteria: list[Criterion]) -> Driver | None: ...


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


def date_condition(name: str, value: str, low_col: Any, high_col: Any) -> Any:
    """The condition a date search value (``ge2026-01-01``) puts on a (low, high) range in µs, exactly as a search
    applies it to the ``idx_date`` rows: for tables that keep an indexed copy of a date (derived data)."""
    prefix, low, high = _date_value(name, value)
    return _range_condition(prefix, low_col, high_col, low, high, name)


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


def _value_condition(c: Criterion, table: sa.FromClause, value: str, base_url: str | None) -> Any:
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


def _value_conditions(
    c: Criterion, table: sa.FromClause, values: list[str], base_url: str | None
) -> list[Any]:
    """The OR-ed conditions of a criterion's values. Many references of one type (``subject=Patient/a,Patient/b,
    …``: the caseload asks about hundreds of patients at once) become one ``target_id IN (…)`` per type: one bound
    list instead of hundreds of clauses to build and compile."""
    if c.type != "reference" or len(values) < 2 or (c.modifier and c.modifier != "missing"):
        return [_value_condition(c, table, v, base_url) for v in values]
    by_type: dict[str, list[str]] = {}
    rest: list[Any] = []
    for v in values:
        ttype, tid, _ = parse_reference(v, base_url)
        if tid is not None and ttype is not None:
            by_type.setdefault(ttype, []).append(tid)
        else:
            rest.append(_value_condition(c, table, v, base_url))
    grouped = [
        sa.and_(
            table.c.target_type == ttype,
            table.c.target_id.in_(ids) if len(ids) > 1 else table.c.target_id == ids[0],
        )
        for ttype, ids in by_type.items()
    ]
    return grouped + rest


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


def search_where(
    resource_type: str,
    criteria: list[Criterion],
    base_url: str | None,
    r: Any = R,
    vis: Visibility | None = None,
) -> list[Any]:
    """The WHERE conditions of a search of ``resource_type``: the type, not deleted, and the criteria.

    When the first criterion looks rows up in an index table, that lookup already implies the type and a
    current version (index rows exist only for current, undeleted versions), so the type test is left out:
    SQLite would otherwise walk every resource of the type by its (type, id) index instead of following the
    lookup.
    """
    conds = criteria_sql(resource_type, criteria, base_url, r, vis)
    ordered = sorted(criteria, key=_rank)
    driven = (
        bool(ordered)
        and ordered[0].param is not None
        and ordered[0].modifier not in ("not", "missing")
        and (ordered[0].type != "special" or _drives(ordered[0]))
    )
    if driven:
        return conds
    return [r.c.res_type == resource_type, r.c.deleted.is_(False), *conds]


def criteria_sql(
    resource_type: str,
    criteria: list[Criterion],
    base_url: str | None,
    r: Any = R,
    vis: Visibility | None = None,
) -> list[Any]:
    """SQL conditions on the resource table ``r`` for ``criteria`` (ANDed by the caller).

    The most selective criterion becomes ``pk IN (index lookup)``, which drives the query through its index;
    every other one is a correlated ``EXISTS`` probed per candidate through the ``(res_pk, param)`` index.
    Without this, SQLite materialises every ``IN`` list in full (e.g. all step counts of all patients).
    """
    ordered = sorted(criteria, key=_rank)
    return [
        _criterion_sql(resource_type, c, base_url, r, correlated=i > 0, vis=vis)
        for i, c in enumerate(ordered)
    ]


def driven_pks(
    resource_type: str,
    criteria: list[Criterion],
    base_url: str | None,
    vis: Visibility | None = None,
    driver: Driver | None = None,
) -> Any | None:
    """``SELECT DISTINCT res_pk`` of the matches, computed from the index tables alone, or None.

    The most selective criterion's index lookup drives; every other criterion is an ``EXISTS`` probe on the
    driver row's ``res_pk``. The resource table (wide rows: the JSON documents) is not touched until the page
    of matches is known, so a search over a million resources reads dense index pages only. Index rows exist
    only for current, undeleted versions, so no resource-table check is needed. None when a criterion needs
    the resource table (``_id``, ``_lastUpdated``) or the best criterion cannot drive (``:not``, ``:missing``).
    A ``driver`` (:class:`Driver`) drives instead, for the criteria it answers.
    """
    if driver is not None:
        found = driver.lookup.subquery()
        rest = [c for c in criteria if not any(c is u for u in driver.used)]
        return _probed(resource_type, found.c.res_pk, sorted(rest, key=_rank), base_url, vis)
    ordered = sorted(criteria, key=_rank)
    if (
        not ordered
        or any(c.param is None for c in ordered)
        or ordered[0].modifier in ("not", "missing")
        or ordered[0].type == "special"
        and not _drives(ordered[0])
    ):
        return None
    if ordered[0].type == "special":  # a mECR parameter's own index lookup (store/mecr_params.py)
        assert ordered[0].param is not None and ordered[0].param.special is not None
        special: Any = ordered[
            0
        ].param.special  # a driving special parameter has a ``lookup`` (its index rows)
        found = special.lookup(ordered[0]).subquery()
        return _probed(resource_type, found.c.res_pk, ordered[1:], base_url, vis)
    select, table = _criterion_sql(resource_type, ordered[0], base_url, None, driver=True, vis=vis)
    return _probed(resource_type, table.c.res_pk, ordered[1:], base_url, vis, select)


def _probed(
    resource_type: str,
    key: Any,
    others: list[Criterion],
    base_url: str | None,
    vis: Visibility | None,
    select: Any = None,
) -> Any:
    """``SELECT DISTINCT key`` of the driver rows (``select``, else ``key``'s own) that pass every ``others``
    criterion, each a correlated ``EXISTS`` probe on ``key``."""
    probes = [
        _criterion_sql(resource_type, c, base_url, None, correlated=True, key=key, vis=vis) for c in others
    ]
    stmt: Any = sa.select(key) if select is None else select
    return stmt.where(*probes).distinct()


def _criterion_sql(
    resource_type: str,
    c: Criterion,
    base_url: str | None,
    r: Any,
    correlated: bool = False,
    key: Any = None,
    driver: bool = False,
    vis: Visibility | None = None,
) -> Any:
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
        targets = sa.select(ref.c.target_id).where(
            ref.c.res_type == source,
            param_condition(ref, param),
            ref.c.target_type == resource_type,
            ref.c.res_pk.in_(sources),
        )
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
    value_conds = _value_conditions(c, table, [v for v in c.values if v != ""], base_url)
    if not value_conds:
        raise bad_request(f"{c.name} has no value", expression=c.name)
    if c.modifier == "not":
        correlated = True
        return sa.not_(matching(sa.or_(*value_conds)))
    return matching(sa.or_(*value_conds))


def _narrowed(
    rtype: str, criteria: list[Criterion], base_url: str | None, r: Any, vis: Visibility | None
) -> list[Any]:
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
            agg = (
                sa.func.max(table.c.high)
                if (param.type == "date" and desc)
                else (sa.func.max(column) if desc else sa.func.min(column))
            )
            col = (
                sa.select(agg)
                .where(table.c.res_pk == r.c.pk, param_condition(table, param))
                .scalar_subquery()
            )
        terms.append(sa.nulls_last(col.desc()) if desc else sa.nulls_last(col.asc()))
    terms.append(r.c.pk.asc())
    return terms
