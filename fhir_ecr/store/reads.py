"""Reads inside a unit of work: read, vread, history and ``Patient/$everything``.

Each one authorizes before it reads: the scope check first, then (for a caller confined to a patient's record)
the resource's visibility, so that a resource they may not see answers exactly as one that does not exist —
the same 404, the same audit entry, no version number and no count (https://hl7.org/fhir/R4/security.html:
"a server may choose to return 404 Not Found ... to avoid leaking the existence of the resource").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..outcomes import gone, not_found
from .queries import UnitQueries
from .records import REF, H, HistoryResult, R, Stored, read_columns, select_versions, stored
from .search_sql import param_condition
from .searchparams import patient_compartment, search_param, search_params

__all__ = ["UnitReads", "READ_MANY"]

#: Ids per statement of :meth:`UnitReads.read_many` (well under SQLite's limit of bound parameters).
READ_MANY = 1000


class UnitReads(UnitQueries):
    """Reads (see the module docstring)."""

    def read(self, rtype: str, rid: str) -> Stored:
        """The current version; 404 when unknown (or not the caller's to see), 410 when deleted."""
        self._check_type(rtype)
        self._require(rtype, "r")
        self.flush()
        row = self.conn.execute(
            sa.select(*read_columns(R)).where(R.c.res_type == rtype, R.c.res_id == rid)
        ).first()
        self._gate(rtype, rid, row, "r")
        assert row is not None  # _gate answered 404 for an unknown id
        if row.deleted:
            raise gone(rtype, rid, str(row.version_id))
        found = stored(row)
        if self.guard is not None:
            self.guard.after_read([found])
        return found

    def read_many(self, rtype: str, ids: Sequence[str]) -> dict[str, Stored]:
        """The current versions of those of ``ids`` that exist, deleted ones included, by id: one key lookup
        per :data:`READ_MANY` ids (for bulk loaders that must know what is already stored). Not a search: no
        order, no paging, so the database answers from the ``(res_type, res_id)`` unique index whatever the size
        of the table (a search with ``_id`` orders by key, and PostgreSQL may walk every row of the type in key
        order to find a few ids). A confined caller gets only the undeleted ones they may see."""
        self._check_type(rtype)
        self._require(rtype, "r")
        self.flush()
        unique = list(dict.fromkeys(ids))
        rows: list[Any] = []
        for i in range(0, len(unique), READ_MANY):
            rows += self.conn.execute(
                sa.select(*read_columns(R)).where(
                    R.c.res_type == rtype, self.ids_in(R.c.res_id, unique[i : i + READ_MANY])
                )
            ).all()
        conf = self.confinement()
        if conf is not None:
            rows = self.visible_rows([r for r in rows if not r.deleted], conf)
        found = {r.res_id: stored(r) for r in rows}
        if self.guard is not None:
            self.guard.after_read([s for s in found.values() if not s.deleted])
        return found

    def vread(self, rtype: str, rid: str, version: str) -> Stored:
        """A given version; 404 when unknown (or not the caller's to see), 410 when it is a deletion."""
        self._check_type(rtype)
        self._require(rtype, "r")
        self.flush()
        current = self.conn.execute(
            sa.select(*read_columns(R)).where(R.c.res_type == rtype, R.c.res_id == rid)
        ).first()
        self._gate(rtype, rid, current, "r", version)
        number = int(version) if version.isdigit() and len(version) < 19 else None
        row = (
            self.conn.execute(
                select_versions().where(H.c.res_type == rtype, H.c.res_id == rid, H.c.version_id == number)
            ).first()
            if number is not None
            else None
        )
        conf = self.confinement()
        if (
            row is not None
            and conf is not None
            and not row.deleted
            and not self.visible(conf, rtype, rid, stored(row).content)
        ):
            row = None  # a version from before the resource was the caller's: as if it did not exist
        if row is None:
            raise not_found(rtype, rid, version)
        if row.deleted:
            raise gone(rtype, rid, version)
        found = stored(row)
        if self.guard is not None:
            self.guard.after_read([found])
        return found

    def history(
        self,
        rtype: str | None = None,
        rid: str | None = None,
        *,
        since: int | None = None,
        count: int = 20,
        offset: int = 0,
    ) -> HistoryResult:
        """Versions newest first: of one resource, of a type, or of the whole server. A confined caller sees
        the history of a resource they may see, without deletions and versions that were not theirs."""
        self.flush()
        if self.guard is not None:
            self.guard.before_history(rtype, rid)
        where = []
        if rtype is not None:
            self._check_type(rtype)
            where.append(H.c.res_type == rtype)
        conf = self.confinement()
        if rid is not None:
            where.append(H.c.res_id == rid)
            self._gate(rtype or "", rid, self._current_row(rtype or "", rid), "r")
        if since is not None:
            where.append(H.c.last_updated >= since)
        ordered = select_versions().where(*where).order_by(H.c.last_updated.desc(), H.c.pk.desc())
        if conf is not None and rid is not None and rtype is not None:
            # One resource's versions: judge each, then page (the total counts only what is shown).
            shown = [
                r
                for r in self.conn.execute(ordered).all()
                if not r.deleted and self.visible(conf, rtype, rid, stored(r).content)
            ]
            total, rows = len(shown), shown[offset : offset + count + 1]
        else:
            total = self.conn.execute(sa.select(sa.func.count()).select_from(H).where(*where)).scalar_one()
            rows = list(self.conn.execute(ordered.offset(offset).limit(count + 1)).all())
        more = len(rows) > count
        entries = [(stored(r), r.method) for r in rows[:count]]
        guard = self.guard
        if guard is not None:
            entries = [(st, m) for st, m in entries if guard.allows(st.resource_type, "r")]
            guard.after_read([st for st, _ in entries if st.content is not None])
        return HistoryResult(entries, total, offset + count if more else None)

    def everything(
        self,
        patient_id: str,
        *,
        since: int | None = None,
        types: set[str] | None = None,
        count: int = 1000,
        offset: int = 0,
    ) -> tuple[list[Stored], int]:
        """Patient/$everything: the patient, its compartment, and what those resources reference."""
        patient = self.read("Patient", patient_id)
        clauses = []
        for rtype, params in patient_compartment().items():
            if rtype == "Patient" or (types and rtype not in types) or rtype not in search_params():
                continue
            for p in params:
                param = search_param(rtype, p)
                if param is None:
                    continue
                clauses.append(sa.and_(REF.c.res_type == rtype, param_condition(REF, param)))
        members = sa.select(REF.c.res_pk).where(
            REF.c.target_type == "Patient", REF.c.target_id == patient_id, sa.or_(*clauses)
        )
        where = [R.c.pk.in_(members), R.c.deleted.is_(False)]
        if since is not None:
            where.append(R.c.last_updated >= since)
        compartment = self.conn.execute(sa.select(*read_columns(R)).where(*where).order_by(R.c.pk)).all()
        refs = self.conn.execute(
            sa.select(REF.c.target_type, REF.c.target_id)
            .where(
                REF.c.res_pk.in_([r.pk for r in compartment] or [-1]),
                REF.c.target_type.is_not(None),
                REF.c.target_type != "Patient",
            )
            .distinct()
        ).all()
        referenced: list[Any] = []
        by_type: dict[str, set[str]] = {}
        for t, i in refs:
            if not types or t in types:
                by_type.setdefault(t, set()).add(i)
        for t, ids in by_type.items():
            referenced += self.conn.execute(
                sa.select(*read_columns(R)).where(
                    R.c.res_type == t, R.c.res_id.in_(sorted(ids)), R.c.deleted.is_(False)
                )
            ).all()
        conf = self.confinement()
        if conf is not None:  # a patient's compartment is their own (the read above passed the gate)
            referenced = self.visible_rows(referenced, conf)
            if conf.organization is not None:  # an organisation sees only its referrals of the patient
                compartment = self.visible_rows(compartment, conf)
        seen: set[tuple[str, str]] = set()
        out: list[Stored] = []
        if types is None or "Patient" in types:
            out.append(patient)
            seen.add(("Patient", patient_id))
        for row in [*compartment, *referenced]:
            if (row.res_type, row.res_id) not in seen:
                seen.add((row.res_type, row.res_id))
                out.append(stored(row))
        guard = self.guard
        if guard is not None:
            out = [s for s in out if guard.allows(s.resource_type, "r")]
            guard.after_read(out[offset : offset + count])
        return out[offset : offset + count], len(out)
