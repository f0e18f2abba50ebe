"""The derived tables as a search accelerator: ``Observation?patient=X&code=system|code…`` driven by
``(patient_id, code, system)`` instead of the generic index.

Through the search index such a search walks every one of the patient's Observations (the patient's reference
rows) and probes each for the code, because the code alone matches a quarter of a million rows at 1,000,000
Observations and no generic index holds patient and code together. ``derived_observation`` and
``derived_observation_code`` do, in one index range each (``(patient_id, code, system, low)``): the patient's
readings of that code. :class:`DerivedSearch` is a :class:`~fhir_ecr.store.search_sql.SearchDriver`, registered on
the repository with the write hook (:func:`~fhir_ecr.coaching.derived.maintain.install_derived`); the store asks it
for a driver on every search and knows nothing of these tables.

It answers only when the answer is exactly the index's (tests/coaching/test_derived_search.py compares both on
random data and queries):

- the search is of Observations, with one ``patient`` criterion (or ``subject`` naming a ``Patient/id``) of a
  single value, no modifier and no chain, and one ``code`` criterion whose values are all ``system|code`` with
  both parts (no modifier; several values are ORed). The derived rows hold, for every current Observation whose
  ``subject`` index row is a Patient (there is at most one: ``subject`` is 0..1), that patient's id and each
  distinct coding of its ``code`` index rows — computed from the same index rows the search reads
  (:func:`~fhir_ecr.coaching.derived.rows.observation_rows`). So "a derived row of this patient with this
  system and code" holds exactly when "a subject row naming Patient/X" and "a code row with this system and
  code" both exist;
- no criterion needs the resource table (``_id``, ``_lastUpdated``, ``_has``): then the store's own plan applies;
- the hook is installed on the searching repository and the tables are complete (the ``derived.coaching`` flag,
  :func:`~fhir_ecr.coaching.derived.maintain.derived_ready`).

Every other criterion, ``date`` included, stays the store's correlated ``EXISTS`` probe: a derived row keeps only
the first date row of its Observation (an ``effectiveTiming`` with several events has several), so its
``low``/``high`` is no filter. Confinement, totals, sort order, paging and includes are the store's, applied to
the same set of keys.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fhir_ecr.store.references import parse_reference
from fhir_ecr.store.search import Criterion
from fhir_ecr.store.search_sql import Driver
from fhir_ecr.store.tables import DerivedObservation, DerivedObservationCode

__all__ = ["DerivedSearch", "patient_of", "codings_of"]

OBS = DerivedObservation.__table__  # type: ignore[attr-defined]
CODES = DerivedObservationCode.__table__  # type: ignore[attr-defined]


def _plain(c: Criterion) -> bool:
    return c.param is not None and c.modifier is None and c.chain is None and c.has is None


def patient_of(c: Criterion, base_url: str | None) -> str | None:
    """The patient id ``c`` searches for when it is ``patient=id`` / ``patient=Patient/id`` / ``subject=Patient/id``
    with one value, no modifier and no chain; None otherwise."""
    if c.name not in ("patient", "subject") or c.type != "reference" or not _plain(c) or len(c.values) != 1:
        return None
    value = c.values[0]
    if not value:
        return None
    if c.name == "patient" and "/" not in value and ":" not in value:
        return value  # a bare id: the store matches it on Patient targets (``patient`` has that one target)
    ttype, tid, _ = parse_reference(value, base_url)
    return tid if ttype == "Patient" and tid else None


def codings_of(c: Criterion) -> list[tuple[str, str]] | None:
    """The ``(system, code)`` pairs ``c`` ORs when it is ``code=system|code,…`` (both parts in every value, no
    modifier); None otherwise."""
    if c.name != "code" or c.type != "token" or not _plain(c) or not c.values:
        return None
    pairs = []
    for value in c.values:
        system, bar, code = value.partition("|")
        if not (bar and system and code):
            return None
        pairs.append((system, code))
    return pairs


def _lookup(patient: str, pairs: list[tuple[str, str]]) -> Any:
    """``SELECT res_pk`` of the patient's Observations with any of the codings: one index range of each table per
    coding (``UNION ALL``; a key appears more than once only for several codings, the caller's DISTINCT folds)."""

    def matching(table: Any) -> Any:
        return sa.or_(*[sa.and_(table.c.code == code, table.c.system == system) for system, code in pairs])

    return sa.union_all(
        sa.select(OBS.c.res_pk.label("res_pk")).where(OBS.c.patient_id == patient, matching(OBS)),
        sa.select(CODES.c.res_pk.label("res_pk")).where(CODES.c.patient_id == patient, matching(CODES)),
    )


class DerivedSearch:
    """The :class:`~fhir_ecr.store.search_sql.SearchDriver` of the derived tables (module docstring)."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook  # the DerivedHook whose tables these are (its readiness decides)

    def __call__(self, uow: Any, resource_type: str, criteria: list[Criterion]) -> Driver | None:
        if resource_type != "Observation" or any(c.param is None or c.has is not None for c in criteria):
            return None
        base_url = uow.repo.fhir_base
        by_patient = next(((c, p) for c in criteria if (p := patient_of(c, base_url)) is not None), None)
        by_code = next(((c, pairs) for c in criteria if (pairs := codings_of(c)) is not None), None)
        if by_patient is None or by_code is None:
            return None
        if not any(h is self.hook for h in uow.repo.write_hooks) or not self.hook.ready(uow):
            return None
        return Driver(_lookup(by_patient[1], by_code[1]), (by_patient[0], by_code[0]))
