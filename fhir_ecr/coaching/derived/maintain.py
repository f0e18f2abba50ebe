"""Keeping the coaching views' derived tables current: a write hook, a rebuild, and the readiness flag.

:class:`DerivedHook` is registered on the repository from the composition root (``install_derived``, called by
``create_app``; the store imports nothing from here). The store calls it at the end of every unit of work that
wrote, inside the transaction, with what was written: for each Observation it replaces the derived rows of
that resource key with those of the new version (none for a deletion), so the derived tables commit or roll
back with the writes. :func:`rebuild` recomputes them from the stored Observations (``mecr db
rebuild-derived``); both go through :func:`~fhir_ecr.coaching.derived.rows.observation_rows`, which is why a
rebuild and the incremental upkeep agree (tests/coaching/test_derived.py).

The kv flag ``derived.coaching`` says whether the tables are complete: ``ready`` (a new database, or after a
full rebuild) or ``stale`` (migration 0009 over a database that already held Observations); no flag at all
counts as ready (every table was emptied together). The flag cannot see writes made without the hook (a bare
repository, a restored database), so once per process the rows are also counted against the search index
(:func:`complete`). The views read the derived tables, and the searches they drive
(:mod:`~fhir_ecr.coaching.derived.drive`) use them, only when the hook is installed, the flag is not ``stale``
and the count agrees (:meth:`DerivedHook.ready`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from fhir_ecr.coaching.derived.drive import DerivedSearch
from fhir_ecr.coaching.derived.rows import CODE_COLUMNS, OBSERVATION_COLUMNS, observation_rows
from fhir_ecr.store import jsonexact
from fhir_ecr.store.indexer import extract_index_rows
from fhir_ecr.store.repository import Change, FhirRepository, UnitOfWork
from fhir_ecr.store.searchparams import search_param
from fhir_ecr.store.tables import INDEX_TABLES, DerivedObservation, DerivedObservationCode, ResourceRow

__all__ = [
    "DerivedHook",
    "STATE_KEY",
    "RECHECK_SECONDS",
    "complete",
    "install_derived",
    "derived_hook",
    "rebuild",
    "derived_ready",
]

STATE_KEY = "derived.coaching"
OBS = DerivedObservation.__table__  # type: ignore[attr-defined]
CODES = DerivedObservationCode.__table__  # type: ignore[attr-defined]
R = ResourceRow.__table__  # type: ignore[attr-defined]
_CHUNK = 500
#: Seconds before tables found incomplete are counted again (the count walks every Observation's subject row).
RECHECK_SECONDS = 60.0
log = logging.getLogger("mecr.coaching")


class DerivedHook:
    """The write hook that keeps ``derived_observation`` and ``derived_observation_code`` current."""

    def __init__(self) -> None:
        self._ready: set[int] = set()  # ids of engines whose tables were found complete (they never go back)
        self._incomplete: dict[int, float] = {}  # engines whose count disagreed: when (time.monotonic)

    def __call__(self, uow: Any, changes: list[Change]) -> Callable[[], None] | None:
        last: dict[int, Change] = {}
        replaced: set[int] = set()
        for change in changes:
            if change.resource_type != "Observation" or change.pk is None:
                continue
            last[change.pk] = change
            if change.version_id > 1:  # an earlier version may have rows
                replaced.add(change.pk)
        if last:
            _delete(uow, sorted(replaced))
            _insert(
                uow,
                (
                    (c.pk, c.index or {})  # type: ignore[misc]
                    for c in last.values()
                    if not c.deleted and c.content is not None
                ),
            )
        return None

    def ready(self, uow: UnitOfWork) -> bool:
        """Whether the derived tables are complete in this database; cached once they are.

        The kv flag first: ``stale`` (migration 0009 over Observations) means not yet. No flag, or ``ready``, is
        then checked once per process against the store itself (:func:`complete`): a database written without
        the hook — by a tool or a test with a bare repository, or restored from elsewhere — has a flag that says
        nothing of the rows it lacks, and the views and the searches the tables drive would miss them. Tables
        found incomplete are counted again after :data:`RECHECK_SECONDS` (or at once after a :func:`rebuild` in
        this process); until then the search index answers, which is always right."""
        key = id(uow.repo.engine)
        if key in self._ready:
            return True
        if uow.get_state(STATE_KEY) == "stale":
            return False
        found = self._incomplete.get(key)
        if found is not None and time.monotonic() - found < RECHECK_SECONDS:
            return False
        if complete(uow):
            self._ready.add(key)
            self._incomplete.pop(key, None)
            return True
        self._incomplete[key] = time.monotonic()
        return False

    def forget(self, engine: Any) -> None:
        """Drop what is cached of ``engine``'s tables (after a rebuild: counted again at the next read)."""
        self._ready.discard(id(engine))
        self._incomplete.pop(id(engine), None)


def complete(uow: UnitOfWork) -> bool:
    """Whether ``derived_observation`` holds a row for every current Observation whose subject is a Patient, as
    the hook writes them (:func:`~fhir_ecr.coaching.derived.rows.observation_rows`): both counts in one statement,
    so on PostgreSQL one snapshot sees them. Logs the two counts (no PHI) when they differ."""
    ref = INDEX_TABLES["idx_reference"]
    param = search_param("Observation", "patient")
    assert param is not None
    indexed = (
        sa.select(sa.func.count(sa.distinct(ref.c.res_pk)))
        .where(
            ref.c.res_type == "Observation",
            ref.c.param.in_(param.index_names),
            ref.c.target_type == "Patient",
        )
        .scalar_subquery()
    )
    derived = sa.select(sa.func.count()).select_from(OBS).scalar_subquery()
    want, have = uow.conn.execute(sa.select(indexed, derived)).one()
    if want != have:
        log.warning(
            "the derived coaching tables hold %d rows for %d Observations of patients: the search index answers "
            "until `mecr db rebuild-derived` has filled them",
            have,
            want,
        )
    return bool(want == have)


def _delete(uow: Any, pks: list[int]) -> None:
    for i in range(0, len(pks), _CHUNK):
        chunk = pks[i : i + _CHUNK]
        uow.conn.execute(CODES.delete().where(CODES.c.res_pk.in_(chunk)))
        uow.conn.execute(OBS.delete().where(OBS.c.res_pk.in_(chunk)))


def _insert(uow: Any, items: Iterable[tuple[int, dict[str, list[tuple[Any, ...]]]]]) -> int:
    obs_rows: list[tuple[Any, ...]] = []
    code_rows: list[tuple[Any, ...]] = []
    for pk, index in items:
        obs, codes = observation_rows(pk, index)
        if obs is not None:
            obs_rows.append(obs)
            code_rows += codes
    uow.bulk_insert("derived_observation", OBSERVATION_COLUMNS, obs_rows)
    uow.bulk_insert("derived_observation_code", CODE_COLUMNS, code_rows)
    return len(obs_rows)


def derived_hook(repo: FhirRepository) -> DerivedHook | None:
    """The derived-data hook installed on ``repo`` (shared by its guarded views), if any."""
    return next((h for h in repo.write_hooks if isinstance(h, DerivedHook)), None)


def install_derived(repo: FhirRepository, *, search: bool = True) -> DerivedHook:
    """Register the hook on ``repo`` (once) and return it: every later write keeps the derived tables current.
    With ``search``, the tables also drive the Observation searches by patient and code they answer exactly
    (:class:`~fhir_ecr.coaching.derived.drive.DerivedSearch`, a search driver of the repository)."""
    hook = derived_hook(repo)
    if hook is None:
        hook = DerivedHook()
        repo.write_hooks.append(hook)
    if search and not any(isinstance(d, DerivedSearch) for d in repo.search_drivers):
        repo.search_drivers.append(DerivedSearch(hook))
    return hook


def derived_ready(repo: FhirRepository, uow: UnitOfWork) -> bool:
    """Whether the views may read the derived tables: the hook is installed and the tables are complete."""
    hook = derived_hook(repo)
    return hook is not None and hook.ready(uow)


def rebuild(repo: FhirRepository, patient_id: str | None = None) -> int:
    """Recompute the derived rows from the stored Observations (all, or one patient's), in one transaction;
    returns how many Observations have rows. A full rebuild marks the tables ``ready``."""
    with repo.unit() as uow:
        if patient_id is None:
            uow.conn.execute(CODES.delete())
            uow.conn.execute(OBS.delete())
            where = [R.c.res_type == "Observation", R.c.deleted.is_(False)]
        else:
            uow.conn.execute(CODES.delete().where(CODES.c.patient_id == patient_id))
            uow.conn.execute(OBS.delete().where(OBS.c.patient_id == patient_id))
            where = [
                R.c.res_type == "Observation",
                R.c.deleted.is_(False),
                R.c.pk.in_(_patient_pks(patient_id)),
            ]
        done, after = 0, 0
        while True:
            page = uow.conn.execute(
                sa.select(R.c.pk, sa.cast(R.c.content, sa.Text).label("content"))
                .where(*where, R.c.pk > after)
                .order_by(R.c.pk)
                .limit(_CHUNK)
            ).all()
            if not page:
                break
            after = page[-1].pk
            done += _insert(
                uow, ((row.pk, extract_index_rows(_doc(row.content), repo.fhir_base)) for row in page)
            )
        if patient_id is None:
            uow.set_state(STATE_KEY, "ready")
    hook = derived_hook(repo)
    if hook is not None:
        hook.forget(repo.engine)
    return done


def _patient_pks(patient_id: str) -> Any:
    ref = INDEX_TABLES["idx_reference"]
    param = search_param("Observation", "patient")
    assert param is not None
    return sa.select(ref.c.res_pk).where(
        ref.c.res_type == "Observation",
        ref.c.param.in_(param.index_names),
        ref.c.target_type == "Patient",
        ref.c.target_id == patient_id,
    )


def _doc(content: Any) -> dict[str, Any]:
    return content if isinstance(content, dict) else jsonexact.loads(content)
