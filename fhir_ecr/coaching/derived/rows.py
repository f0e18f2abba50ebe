"""What the coaching views keep of an Observation (pure): its row of ``derived_observation`` (with its first
``code`` coding) and, for each further coding, a row of ``derived_observation_code``, computed from the
search-index rows the store computed for the write — so a derived row says exactly what a search of the index
would find (the same patient, codes and date range). Nearly every Observation has one coding, so it costs one
row and no code row (migration 0013; docs/benchmarks.md, "write overhead").

Nothing here depends on the patient's time zone or on their plans and goals: a time-zone change or a habit
edit changes no derived row, and the local-day arithmetic stays in the views (docs/architecture.md,
"Derived data").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from fhir_ecr.coaching.resources import CHECKIN_ID_SYSTEM, CHECKIN_RESULT_SYSTEM, MECR_CODES
from fhir_ecr.store.searchparams import search_param

__all__ = ["OBSERVATION_COLUMNS", "CODE_COLUMNS", "observation_rows"]

OBSERVATION_COLUMNS = (
    "res_pk",
    "patient_id",
    "low",
    "high",
    "checkin_key",
    "checkin_result",
    "status",
    "system",
    "code",
)
CODE_COLUMNS = ("res_pk", "seq", "patient_id", "system", "code", "low", "high")
CHECKIN_CODE = (MECR_CODES, "habit-check-in")


@cache
def _names(param: str) -> frozenset[str]:
    found = search_param("Observation", param)
    assert found is not None, param
    return frozenset(found.index_names)


@cache
def _all_names() -> tuple[frozenset[str], ...]:
    """The index names of patient, date, code, identifier, value-concept and status (looked up once: every
    Observation write computes its rows)."""
    return tuple(_names(p) for p in ("patient", "date", "code", "identifier", "value-concept", "status"))


def observation_rows(
    pk: int, index: Mapping[str, Sequence[tuple[Any, ...]]]
) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
    """The derived rows of the Observation with key ``pk`` from its index rows
    (``extract_index_rows``): (``derived_observation`` row, ``derived_observation_code`` rows); (None, []) when its
    subject is no Patient. The first distinct coding is in the observation row, the others (``seq`` 1, 2, …) are
    code rows. For each token parameter, the greatest code is kept (what ``search_index_values`` reads)."""
    patient_names, date_names, code_names, id_names, value_names, status_names = _all_names()
    patient = None
    for r in index.get("idx_reference", ()):
        if r[0] in patient_names and r[1] == "Patient":
            patient = r[2]
            break
    if patient is None:
        return None, []
    low = high = None
    for r in index.get("idx_date", ()):
        if r[0] in date_names:
            low, high = r[1], r[2]
            break
    codings: dict[tuple[Any, Any], None] = {}
    key = result = status = None
    for param, system, code, _ in index.get("idx_token", ()):
        if code is None:
            continue
        if param in code_names:
            codings[(system, code)] = None
        elif param in status_names:
            if status is None or code > status:
                status = code
        elif param in id_names:
            if system == CHECKIN_ID_SYSTEM and (key is None or code > key):
                key = code
        elif param in value_names and system == CHECKIN_RESULT_SYSTEM and (result is None or code > result):
            result = code
    is_checkin = CHECKIN_CODE in codings
    ordered = list(codings)
    first_system, first_code = ordered[0] if ordered else (None, None)
    obs = (
        pk,
        patient,
        low,
        high,
        key if is_checkin else None,
        result if is_checkin else None,
        status if is_checkin else None,
        first_system,
        first_code,
    )
    codes = [
        (pk, seq, patient, system, code, low, high) for seq, (system, code) in enumerate(ordered) if seq > 0
    ]
    return obs, codes
