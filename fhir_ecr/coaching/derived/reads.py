"""Where the coaching views find a patient's Observations: the search index (always right, walks every
Observation of the patient) or the derived tables (an index range of a few small rows), behind one interface.

Both sources answer the same five questions with the same results, in the same order — the derived one is the
search it replaces, run against a table that holds one row per Observation (or per coding) with the patient,
codes and date range already joined; the few elements a view reads of a reading are picked out of the stored
documents by the database, as ``search_elements`` picks them. Every Observation a view reads is noted with the
caller's guard (the audit trail), as the searches note them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, Protocol

import sqlalchemy as sa

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.derived.rows import CHECKIN_CODE
from fhir_ecr.store.records import R, element_picker, partial_content
from fhir_ecr.store.repository import Stored, UnitOfWork
from fhir_ecr.store.search import parse_search
from fhir_ecr.store.search_sql import date_condition
from fhir_ecr.store.tables import DerivedObservation, DerivedObservationCode

__all__ = ["ObservationSource", "IndexSource", "DerivedSource", "coding_token", "elements"]

OBS = DerivedObservation.__table__  # type: ignore[attr-defined]
CODES = DerivedObservationCode.__table__  # type: ignore[attr-defined]


def coding_token(codings: Sequence[tuple[str, str]]) -> str:
    """A ``code`` search value matching any of ``codings``."""
    return ",".join(f"{s}|{c}".replace(",", "\\,") for s, c in codings)


def elements(
    uow: UnitOfWork, rtype: str, params: list[tuple[str, str]], names: list[str]
) -> Iterator[dict[str, Any]]:
    """Every match with only the named elements, picked out by the store, parsed one at a time as iterated."""
    return uow.search_elements(parse_search(rtype, params, strict=True), names)


class ObservationSource(Protocol):
    """The patient's Observations a coaching view reads (``patient`` is the Patient id)."""

    def checkin_rows(self, uow: UnitOfWork, patient: str, since: date) -> list[tuple[Any, ...]]:
        """``(id, check-in identifier, result code, status)`` of the check-ins dated ``ge since``, in key order
        (what :func:`resources.checkins_from_tokens` reads)."""
        ...

    def readings(
        self,
        uow: UnitOfWork,
        patient: str,
        codes: Sequence[tuple[str, str]],
        dates: Sequence[str],
        names: list[str],
    ) -> list[dict[str, Any]]:
        """The Observations coded with any of ``codes`` whose date matches every ``dates`` value (``ge…``,
        ``le…``), in key order, with only the elements ``names``."""
        ...

    def first_readings(
        self, uow: UnitOfWork, patient: str, measures: Sequence[tuple[str, str]], n: int, names: list[str]
    ) -> list[dict[str, Any]]:
        """For each measure, its first ``n`` Observations by date (earliest first, undated last, then key order):
        all of them once, in key order, with only the elements ``names``."""
        ...

    def first_since(
        self,
        uow: UnitOfWork,
        patient: str,
        codes: Sequence[tuple[str, str]],
        start: date,
        limit: int,
        names: list[str],
    ) -> list[dict[str, Any]]:
        """The first ``limit`` Observations coded with any of ``codes`` dated ``ge start``, in date order."""
        ...

    def latest(self, uow: UnitOfWork, patient: str, today: date, names: list[str]) -> dict[str, Any] | None:
        """The patient's Observation of any code with the latest date ``le today`` (ties: the first key)."""
        ...


class IndexSource:
    """The search index: every question is a FHIR search through the unit of work."""

    def checkin_rows(self, uow: UnitOfWork, patient: str, since: date) -> list[tuple[Any, ...]]:
        query = parse_search(
            "Observation",
            [
                ("patient", f"Patient/{patient}"),
                ("code", f"{res.MECR_CODES}|habit-check-in"),
                ("date", f"ge{since.isoformat()}"),
            ],
            strict=True,
        )
        return uow.search_index_values(query, res.CHECKIN_TOKENS)

    def readings(
        self,
        uow: UnitOfWork,
        patient: str,
        codes: Sequence[tuple[str, str]],
        dates: Sequence[str],
        names: list[str],
    ) -> list[dict[str, Any]]:
        return list(
            elements(
                uow,
                "Observation",
                [
                    ("patient", f"Patient/{patient}"),
                    ("code", coding_token(codes)),
                    *(("date", d) for d in dates),
                ],
                names,
            )
        )

    def first_readings(
        self, uow: UnitOfWork, patient: str, measures: Sequence[tuple[str, str]], n: int, names: list[str]
    ) -> list[dict[str, Any]]:
        query = parse_search(
            "Observation", [("patient", f"Patient/{patient}"), ("code", coding_token(measures))], strict=True
        )
        rows = uow.search_index_values(query, [("code", system, code) for system, code in measures], ["date"])
        first: set[str] = set()
        for i in range(len(measures)):
            # rows come in key order, and sorted() is stable: equal dates keep it, as _sort=date does
            having = sorted(
                (r for r in rows if r[1 + i] is not None),
                key=lambda r: (r[-1] is None, r[-1] if r[-1] is not None else 0),
            )
            first.update(str(r[0]) for r in having[:n])
        if not first:
            return []
        return list(elements(uow, "Observation", [("_id", ",".join(sorted(first)))], names))

    def first_since(
        self,
        uow: UnitOfWork,
        patient: str,
        codes: Sequence[tuple[str, str]],
        start: date,
        limit: int,
        names: list[str],
    ) -> list[dict[str, Any]]:
        return list(
            uow.search_elements(
                parse_search(
                    "Observation",
                    [
                        ("patient", f"Patient/{patient}"),
                        ("code", coding_token(codes)),
                        ("date", f"ge{start.isoformat()}"),
                        ("_sort", "date"),
                    ],
                    strict=True,
                ),
                names,
                limit=limit,
            )
        )

    def latest(self, uow: UnitOfWork, patient: str, today: date, names: list[str]) -> dict[str, Any] | None:
        return next(
            iter(
                uow.search_elements(
                    parse_search(
                        "Observation",
                        [
                            ("patient", f"Patient/{patient}"),
                            ("date", f"le{today.isoformat()}"),
                            ("_sort", "-date"),
                        ],
                        strict=True,
                    ),
                    names,
                    limit=1,
                )
            ),
            None,
        )


def _coded(patient: str, codes: Sequence[tuple[str, str]], dates: Sequence[str] = ()) -> Any:
    """``(res_pk, low)`` of the patient's Observations coded with any of ``codes`` whose date matches every
    ``dates`` value: the first coding is in ``derived_observation``, any further ones in
    ``derived_observation_code`` (one index range in each; a key may come twice if several of its codings match)."""
    parts = []
    for table in (OBS, CODES):
        parts.append(
            sa.select(table.c.res_pk, table.c.low).where(
                table.c.patient_id == patient,
                sa.or_(*(sa.and_(table.c.code == c, table.c.system == s) for s, c in codes)),
                *(date_condition("date", d, table.c.low, table.c.high) for d in dates),
            )
        )
    return sa.union_all(*parts).subquery()


def _docs(uow: UnitOfWork, keys: Any, order: Sequence[Any], names: list[str]) -> list[dict[str, Any]]:
    """The Observations whose keys the subquery ``keys`` (a ``res_pk`` column) selects, in ``order`` (columns of
    ``keys`` or of the resource table), as ``search_elements`` returns them: only the elements ``names``, picked
    out of the stored documents by the database; each noted with the guard (the audit trail)."""
    picked, skip = element_picker(names, uow.is_postgres)
    stmt = sa.select(R.c.res_id, picked.label("picked")).join(keys, keys.c.res_pk == R.c.pk).order_by(*order)
    out = [
        partial_content("Observation", rid, names, kept, skip) for rid, kept in uow.conn.execute(stmt).all()
    ]
    if uow.guard is not None:
        uow.guard.after_read([Stored("Observation", str(d["id"]), 0, 0, False, d) for d in out])
    return out


class DerivedSource:
    """The derived tables (fhir_ecr.coaching.derived.maintain keeps them): one index range per question (two for
    the coded ones, check-ins included: an Observation's first coding, then its others; for the latest data, the
    patient's whole range of the one index, its dates read in the index)."""

    def checkin_rows(self, uow: UnitOfWork, patient: str, since: date) -> list[tuple[Any, ...]]:
        uow.flush()
        # A check-in is an Observation with the check-in coding (rows.observation_rows), found by it like a
        # reading: as its first coding or a further one, never both (an Observation's codings are distinct).
        dated = _coded(patient, [CHECKIN_CODE], [f"ge{since.isoformat()}"])
        rows = [
            tuple(r)
            for r in uow.conn.execute(
                sa.select(R.c.res_id, OBS.c.checkin_key, OBS.c.checkin_result, OBS.c.status)
                .select_from(dated)
                .join(OBS, OBS.c.res_pk == dated.c.res_pk)
                .join(R, R.c.pk == OBS.c.res_pk)
                .order_by(OBS.c.res_pk)
            ).all()
        ]
        if uow.guard is not None:
            uow.guard.after_read(
                [
                    Stored("Observation", str(r[0]), 0, 0, False, {"resourceType": "Observation", "id": r[0]})
                    for r in rows
                ]
            )
        return rows

    def readings(
        self,
        uow: UnitOfWork,
        patient: str,
        codes: Sequence[tuple[str, str]],
        dates: Sequence[str],
        names: list[str],
    ) -> list[dict[str, Any]]:
        uow.flush()
        matching = _coded(patient, codes, dates)
        keys = sa.select(matching.c.res_pk).distinct().subquery()
        return _docs(uow, keys, [keys.c.res_pk], names)

    def first_readings(
        self, uow: UnitOfWork, patient: str, measures: Sequence[tuple[str, str]], n: int, names: list[str]
    ) -> list[dict[str, Any]]:
        uow.flush()
        coded = [_coded(patient, [measure]) for measure in measures]
        firsts = [
            sa.select(c.c.res_pk).order_by(c.c.low.is_(None), c.c.low, c.c.res_pk).limit(n).subquery()
            for c in coded
        ]
        if not firsts:
            return []
        pks = sa.union(*(sa.select(f.c.res_pk) for f in firsts)).subquery()
        return _docs(uow, pks, [pks.c.res_pk], names)

    def first_since(
        self,
        uow: UnitOfWork,
        patient: str,
        codes: Sequence[tuple[str, str]],
        start: date,
        limit: int,
        names: list[str],
    ) -> list[dict[str, Any]]:
        uow.flush()
        coded = _coded(patient, codes, [f"ge{start.isoformat()}"])
        page = (
            sa.select(coded.c.res_pk, coded.c.low)
            .distinct()
            .order_by(coded.c.low, coded.c.res_pk)
            .limit(limit)
            .subquery()
        )
        return _docs(uow, page, [page.c.low, page.c.res_pk], names)

    def latest(self, uow: UnitOfWork, patient: str, today: date, names: list[str]) -> dict[str, Any] | None:
        uow.flush()
        last = (
            sa.select(OBS.c.res_pk)
            .where(
                OBS.c.patient_id == patient,
                date_condition("date", f"le{today.isoformat()}", OBS.c.low, OBS.c.high),
            )
            .order_by(OBS.c.high.desc(), OBS.c.res_pk)
            .limit(1)
            .subquery()
        )
        found = _docs(uow, last, [], names)
        return found[0] if found else None
