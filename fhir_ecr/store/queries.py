"""Searches inside a unit of work: matches and paging, includes, partial documents and index values, and the
conditional matching that conditional create/update/delete build on.

A confined caller (a patient) gets the visibility condition of :mod:`.visibility` on the searched type and on
every chained, ``_has`` and included hop, so matches, totals and includes only ever count what they may see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa

from ..outcomes import bad_request, precondition_failed
from .records import REF, R, SearchResult, Stored, element_picker, partial_content, read_columns, stored
from .search import RESULT_PARAMETERS, SearchQuery, parse_search
from .search_sql import Visibility, driven_pks, param_condition, search_where, sort_sql
from .searchparams import SearchParam, search_param
from .tables import INDEX_TABLES
from .unit_core import UnitCore
from .visibility import Confinement, visible_condition

__all__ = ["UnitQueries", "normalized_criteria"]

#: Search-result parameters that do not change what a conditional interaction matches (dropped from its key).
_NOT_CRITERIA = RESULT_PARAMETERS - {"_sort", "_include", "_revinclude"}


def normalized_criteria(criteria: str) -> list[tuple[str, str]]:
    """The criteria of a conditional interaction, decoded, without result parameters, in a canonical order, so
    that two requests that mean the same match (and lock) the same way (``b=2&a=1&_count=5`` == ``a=1&b=2``)."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    return sorted((k, v) for k, v in pairs if k.split(":")[0] not in _NOT_CRITERIA)


class UnitQueries(UnitCore):
    """Searches (see the module docstring)."""

    def _vis(self, conf: Confinement | None) -> Visibility | None:
        if conf is None:
            return None
        return lambda rtype, r: visible_condition(rtype, conf, r)

    def _scoped(self, rtype: str) -> Confinement | None:
        """Check the caller may search ``rtype``; the confinement their matches are narrowed to."""
        self._require(rtype, "s")
        return self.confinement()

    def match_conditional(self, rtype: str, criteria: str) -> Stored | None:
        """The one resource matching ``criteria`` (a query string); None for none; 412 for several."""
        pairs = normalized_criteria(criteria)
        if not pairs:
            raise bad_request("conditional criteria are empty")
        query = parse_search(rtype, pairs, strict=True, default_count=2)
        if query.sort or query.includes or query.revincludes:
            raise bad_request("conditional criteria cannot use _sort, _include or _revinclude")
        query.count = 2
        query.total = "none"
        if self.is_postgres:
            canonical = f"{rtype}?{urlencode(pairs)}"
            key = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big", signed=True)
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        found = self.search(query).matches
        if len(found) > 1:
            raise precondition_failed(
                f"{rtype}?{criteria} matches more than one resource", "multiple-matches"
            )
        return found[0] if found else None

    def search(self, query: SearchQuery) -> SearchResult:
        """Run a search; returns one page plus includes, all narrowed to what the caller may see."""
        self._check_type(query.resource_type)
        conf = self._scoped(query.resource_type)
        result = self._search(query, conf)
        if self.guard is not None:
            self.guard.after_read([*result.matches, *result.included])
        return result

    def _where(self, rtype: str, query: SearchQuery, conf: Confinement | None) -> tuple[list[Any], Any]:
        """The WHERE conditions of ``query`` and its index-driven keys (or None)."""
        vis = self._vis(conf)
        # A driver reads tables kept by write hooks, which see this unit's writes only when it ends: a unit that
        # has written (a transaction Bundle's conditional entries) searches the index alone.
        drivers = self.repo.search_drivers if not self._changes else []
        driver = next((d for d in (f(self, rtype, query.criteria) for f in drivers) if d is not None), None)
        pks = driven_pks(rtype, query.criteria, self.repo.fhir_base, vis, driver)
        where = (
            [R.c.pk.in_(pks)]
            if pks is not None
            else search_where(rtype, query.criteria, self.repo.fhir_base, R, vis)
        )
        if conf is not None:
            where.append(visible_condition(rtype, conf))
        return where, pks

    def _search(self, query: SearchQuery, conf: Confinement | None) -> SearchResult:
        self.flush()
        rtype = query.resource_type
        want_total = query.total != "none" or query.summary == "count"
        page_only = query.summary == "count" or query.count == 0
        where, pks = self._where(rtype, query, conf)
        if pks is not None and not query.sort and conf is None:
            return self._search_by_index(query, pks, want_total, page_only)

        def count() -> int:
            return int(
                self.conn.execute(sa.select(sa.func.count()).select_from(R).where(*where)).scalar_one()
            )

        # The total rides along with the page as a window count (one pass over the matches instead of two),
        # except after a cursor, whose page does not see the matches before it.
        separate_total = want_total and (page_only or query.cursor is not None)
        result = SearchResult(
            matches=[], total=count() if separate_total else None, warnings=list(query.warnings)
        )
        if page_only:
            return result
        window = want_total and not separate_total
        columns = [*read_columns(R), *([sa.func.count().over().label("total_")] if window else [])]
        stmt = sa.select(*columns).where(*where)
        if query.sort:
            stmt = stmt.order_by(*sort_sql(rtype, query.sort)).offset(query.offset)
        else:
            if query.cursor is not None:
                stmt = stmt.where(R.c.pk > query.cursor)
            stmt = stmt.order_by(R.c.pk)
        rows = self.conn.execute(stmt.limit(query.count + 1)).all()
        if window:
            result.total = int(rows[0].total_) if rows else (0 if not query.offset else count())
        more = len(rows) > query.count
        rows = rows[: query.count]
        result.matches = [stored(r) for r in rows]
        if more:
            if query.sort:
                result.next_offset = query.offset + query.count
            else:
                result.next_cursor = rows[-1].pk
        if query.includes or query.revincludes:
            result.included = self._includes(query, rows, conf)
        return result

    def _search_by_index(
        self, query: SearchQuery, pks: Any, want_total: bool, page_only: bool
    ) -> SearchResult:
        """A search in the default order whose matches come from the index tables (see ``driven_pks``): find
        the page's keys there (with the total as a window count in the same pass), then read just those rows."""
        result = SearchResult(matches=[], warnings=list(query.warnings))
        matches = pks.subquery()
        if want_total and (page_only or query.cursor is not None):
            result.total = int(
                self.conn.execute(sa.select(sa.func.count()).select_from(matches)).scalar_one()
            )
        if page_only:
            return result
        window = want_total and result.total is None
        stmt = sa.select(matches.c.res_pk, *([sa.func.count().over().label("total_")] if window else []))
        if query.cursor is not None:
            stmt = stmt.where(matches.c.res_pk > query.cursor)
        keys = self.conn.execute(stmt.order_by(matches.c.res_pk).limit(query.count + 1)).all()
        if window:
            result.total = int(keys[0].total_) if keys else 0
        more = len(keys) > query.count
        page = [k.res_pk for k in keys[: query.count]]
        rows = (
            self.conn.execute(sa.select(*read_columns(R)).where(R.c.pk.in_(page)).order_by(R.c.pk)).all()
            if page
            else []
        )
        result.matches = [stored(r) for r in rows]
        if more:
            result.next_cursor = page[-1]
        if query.includes or query.revincludes:
            result.included = self._includes(query, rows, None)
        return result

    def _includes(self, query: SearchQuery, rows: Sequence[Any], conf: Confinement | None) -> list[Stored]:
        """``_include`` / ``_revinclude`` (``:iterate`` up to three levels). Includes are only what the caller's
        scopes and confinement let them see, and iteration continues only from those."""
        seen = {(r.res_type, r.res_id) for r in rows}
        included: list[Stored] = []
        frontier = [(r.pk, r.res_type, r.res_id) for r in rows]
        for depth in range(3):
            incs = query.includes if depth == 0 else [i for i in query.includes if i.iterate]
            revs = query.revincludes if depth == 0 else [i for i in query.revincludes if i.iterate]
            if not (incs or revs) or not frontier:
                break
            found: list[Any] = []
            for inc in incs:
                pks = [pk for pk, t, _ in frontier if t == inc.source_type]
                if not pks:
                    continue
                param = search_param(inc.source_type, inc.param)
                assert param is not None  # checked when the query was parsed
                cond = [REF.c.res_pk.in_(pks), param_condition(REF, param), REF.c.res_type == inc.source_type]
                if inc.target_type:
                    cond.append(REF.c.target_type == inc.target_type)
                targets = sa.select(REF.c.target_type, REF.c.target_id).where(*cond).distinct().subquery()
                found += self.conn.execute(
                    sa.select(*read_columns(R))
                    .join(
                        targets,
                        sa.and_(R.c.res_type == targets.c.target_type, R.c.res_id == targets.c.target_id),
                    )
                    .where(R.c.deleted.is_(False))
                ).all()
            for inc in revs:
                ids = [i for _, t, i in frontier if inc.target_type in (None, t)]
                if not ids:
                    continue
                param = search_param(inc.source_type, inc.param)
                assert param is not None
                sources = sa.select(REF.c.res_pk).where(
                    REF.c.res_type == inc.source_type, param_condition(REF, param), REF.c.target_id.in_(ids)
                )
                found += self.conn.execute(
                    sa.select(*read_columns(R)).where(R.c.pk.in_(sources), R.c.deleted.is_(False))
                ).all()
            fresh = []
            for row in found:
                key = (row.res_type, row.res_id)
                if key not in seen:
                    seen.add(key)
                    fresh.append(row)
            if self.guard is not None:
                fresh = [row for row in fresh if self.guard.allows(row.res_type, "r")]
            if conf is not None:
                fresh = self.visible_rows(fresh, conf)
            included += [stored(row) for row in fresh]
            frontier = [(row.pk, row.res_type, row.res_id) for row in fresh]
        return included

    def search_elements(
        self, query: SearchQuery, elements: list[str], *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The matches of ``query``, each as a partial resource holding only ``resourceType``, ``id`` and the named
        top-level ``elements``, picked out in the database (FHIR ``_elements``,
        https://hl7.org/fhir/R4/search.html#elements, without the SUBSETTED tag).

        For callers that reduce thousands of resources to a few values each, such as the coaching summary over
        two years of check-ins: one statement; all matches (or the first ``limit``) in ``_sort`` order, else
        in key order (``_count``, paging, ``_include`` and totals do not apply); each partial resource is
        parsed only when the returned iterator reaches it, so the caller never holds thousands of parsed
        documents at once. Consume the iterator inside the unit of work. Never write a partial resource back.
        """
        if not elements or not all(e.isascii() and e.isalnum() for e in elements):
            raise bad_request(f"element names must be letters and digits, not {elements!r}")
        rtype = query.resource_type
        self._check_type(rtype)
        conf = self._scoped(rtype)
        self.flush()
        where, _ = self._where(rtype, query, conf)
        picked, skip = element_picker(elements, self.is_postgres)
        order = sort_sql(rtype, query.sort) if query.sort else [R.c.pk]
        if limit is not None:
            # Pick the page's keys first, so the elements are extracted from ``limit`` documents, not from all
            # the matches that go into the sort.
            page = sa.select(R.c.pk).where(*where).order_by(*order).limit(limit).subquery()
            where = [R.c.pk.in_(sa.select(page.c.pk))]
        stmt = sa.select(R.c.res_id, R.c.version_id, R.c.last_updated, picked.label("picked")).where(*where)
        rows = self.conn.execute(stmt.order_by(*order)).all()
        guard = self.guard

        def partial() -> Iterator[dict[str, Any]]:
            for row in rows:
                content = partial_content(rtype, row.res_id, elements, row.picked, skip)
                if guard is not None:
                    guard.after_read(
                        [Stored(rtype, row.res_id, row.version_id, row.last_updated, False, content)]
                    )
                yield content

        return partial()

    def search_index_values(
        self,
        query: SearchQuery,
        tokens: list[tuple[str, str | None, str | None]] | None = None,
        dates: list[str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """One row per match of ``query``, read from the search index alone (no document is read or parsed): its
        id; for each ``(param, system, code)`` of ``tokens`` the code of its value of that token parameter with
        that system (any when None) and that code (any when None), or None (the greatest code when several
        match); for each of ``dates`` the earliest instant of its value of that date parameter (µs since the
        epoch, UTC; a date counts from its start), or None. All matches in key order, in one statement
        (``_count``, paging, ``_sort``, ``_include`` and totals do not apply).

        For callers that need a few indexed values of thousands of resources, such as the coaching summary
        reading each check-in's identifier and result: ``search_index_values(q, [("identifier", system, None)])``.
        """
        rtype = query.resource_type
        self._check_type(rtype)
        specs: list[tuple[str, SearchParam, list[Any]]] = []  # (index table, parameter, extra conditions)
        tok = INDEX_TABLES["idx_token"]
        for name, system, code in tokens or []:
            specs.append(
                (
                    "idx_token",
                    self._index_param(rtype, name, "token"),
                    [
                        *([tok.c.system == system] if system is not None else []),
                        *([tok.c.code == code] if code is not None else []),
                    ],
                )
            )
        specs += [("idx_date", self._index_param(rtype, name, "date"), []) for name in dates or []]
        conf = self._scoped(rtype)
        self.flush()
        where, _ = self._where(rtype, query, conf)

        def value(table: Any) -> Any:
            return sa.func.max(table.c.code) if table.name == "idx_token" else sa.func.min(table.c.low)

        if self.is_postgres:
            # PostgreSQL joins the index rows and groups them (a subplan per match and value is slower there).
            joined, cols = R, []
            for name in ("idx_token", "idx_date"):
                mine = [(p, extra) for t, p, extra in specs if t == name]
                if not mine:
                    continue
                table = INDEX_TABLES[name]
                names = sorted({n for p, _ in mine for n in p.index_names})
                joined = joined.outerjoin(table, sa.and_(table.c.res_pk == R.c.pk, table.c.param.in_(names)))
                column = table.c.code if name == "idx_token" else table.c.low
                agg = sa.func.max if name == "idx_token" else sa.func.min
                cols += [
                    agg(sa.case((sa.and_(param_condition(table, p), *extra), column))) for p, extra in mine
                ]
            # specs list the tokens before the dates, the order the columns were built in
            stmt = sa.select(R.c.res_id, *cols).select_from(joined).where(*where).group_by(R.c.pk, R.c.res_id)
            rows = self.conn.execute(stmt.order_by(R.c.pk)).all()
        else:
            # SQLite: one probe of the index's (res_pk, param, ...) key per match and value, no join, no grouping.
            picks = [
                sa.select(value(INDEX_TABLES[t]))
                .where(INDEX_TABLES[t].c.res_pk == R.c.pk, param_condition(INDEX_TABLES[t], p), *extra)
                .scalar_subquery()
                for t, p, extra in specs
            ]
            rows = self.conn.execute(sa.select(R.c.res_id, *picks).where(*where).order_by(R.c.pk)).all()
        # Plain tuples, fetched at once (fetchall): thousands of rows read by attribute cost more than the query.
        out = [tuple(r) for r in rows]
        if self.guard is not None:
            self.guard.after_read(
                [Stored(rtype, str(r[0]), 0, 0, False, {"resourceType": rtype, "id": r[0]}) for r in out]
            )
        return out

    @staticmethod
    def _index_param(rtype: str, name: str, ptype: str) -> SearchParam:
        param = search_param(rtype, name)
        if param is None or param.type != ptype:
            raise bad_request(f"{name} is not a {ptype} search parameter of {rtype}")
        return param
