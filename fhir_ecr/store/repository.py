"""The FhirRepository: the one way to read and write FHIR resources (SQLite and PostgreSQL).

Every write goes through a ``UnitOfWork``: it is validated, given its id and ``meta``, indexed, versioned
(current row + history row) and committed atomically — a failure anywhere rolls the whole unit back. Creates
are buffered and flushed in bulk (one ``executemany`` per table), which is what makes a 500-entry transaction
Bundle cheap; any read, update or delete flushes the buffer first so a unit always sees its own writes.

The unit of work is built in layers (one module each): :mod:`.unit_core` (transaction, bulk inserts, the guard,
visibility), :mod:`.queries` (search), :mod:`.reads` (read, vread, history, everything), :mod:`.writes` (create,
update, patch, delete). :mod:`.records` holds what they return; :mod:`.visibility` what a confined caller sees.

Concurrency: on SQLite a write unit starts with ``BEGIN IMMEDIATE`` (writers queue); on PostgreSQL an update or
delete locks the row (``SELECT … FOR UPDATE``) and conditional creates take a transaction-scoped advisory lock
on their (normalised) criteria, so two conditional creates of the same thing cannot both create. An expected
version (``If-Match``) that is not the current one raises 412 (https://hl7.org/fhir/R4/http.html#concurrency).

Authorization: :meth:`FhirRepository.guarded` gives one caller's view; every read, search, history and write of
that view asks the caller's ``Guard`` before it reads (see :mod:`.unit_core` and docs/security.md).

Patient data versions: a unit of work collects the patients whose compartment its writes touch (the old and
the new version of each resource) and, as its last statement, bumps each one's ``patient_version`` row once
(sorted, so two units never wait on each other in opposite orders). :meth:`FhirRepository.patient_version` is
one key lookup; caches of computed views key on it (``fhir_ecr.coaching.cache``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa

from ..outcomes import conflict
from .db import WRITE
from .records import HistoryResult, SearchResult, Stored, WriteResult, iso_instant, new_id, now_us
from .search import SearchQuery, parse_search
from .search_sql import SearchDriver
from .unit_core import PV_SELECT, UNVERSIONED_TYPES, Change, Guard, WriteHook
from .validation import validate_resource
from .validation_pool import ValidationPool
from .visibility import Confinement, compartment_patients
from .writes import UnitOfWork

__all__ = [
    "FhirRepository",
    "UnitOfWork",
    "Guard",
    "Confinement",
    "Stored",
    "WriteResult",
    "SearchResult",
    "HistoryResult",
    "Validator",
    "iso_instant",
    "new_id",
    "compartment_patients",
    "UNVERSIONED_TYPES",
    "Change",
    "WriteHook",
    "Committer",
]

log = logging.getLogger("mecr.store")

Validator = Callable[[dict[str, Any]], None]
#: Runs a unit's COMMIT (a callable) now or later: see :meth:`FhirRepository.unit`.
Committer = Callable[[Callable[[], None]], None]
_CONCURRENT = "a concurrent write created the same resource; retry the request"


def _ending(uow: UnitOfWork) -> list[Callable[[], None]]:
    """What a unit of work does when its block has run, before its COMMIT: the references check, the write hooks
    (what they return runs after the COMMIT) and the patient versions."""
    uow.check_references()
    after = uow.run_write_hooks()
    uow.bump_patient_versions()
    return after


def _after_commit(after: list[Callable[[], None]]) -> None:
    """Run the write hooks' after-commit actions: committed, what they do must not fail the write."""
    for done in after:
        try:
            done()
        except Exception as exc:  # noqa: BLE001 - logged by type only (no PHI)
            log.warning("an after-commit action failed: %s", type(exc).__name__)


class FhirRepository:
    """Reads and writes FHIR resources; each public call is one unit of work."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        fhir_base: str | None = None,
        validator: Validator | None = None,
        clock: Callable[[], int] = now_us,
        enforce_references: bool = True,
    ) -> None:
        self.engine = engine
        self.fhir_base = fhir_base
        self.validator = validator or validate_resource
        self.clock = clock
        #: Refuse dangling references and deletes of what others refer to (fhir_ecr.store.references).
        self.enforce_references = enforce_references
        self.guard: Guard | None = None
        #: Called at the end of every unit of work that wrote (see :class:`WriteHook`); shared by guarded views.
        self.write_hooks: list[WriteHook] = []
        #: Offer other tables to drive a search (see :class:`~.search_sql.SearchDriver`); the first that answers
        #: drives. Shared by guarded views.
        self.search_drivers: list[SearchDriver] = []
        #: Validates a large transaction's resources in other processes (:mod:`.validation_pool`); None: in line.
        self.validation_pool: ValidationPool | None = None

    def guarded(self, guard: Guard | None) -> FhirRepository:
        """This repository as seen by one caller: every read, search and write is checked by ``guard``."""
        view = copy.copy(self)
        view.guard = guard
        return view

    @contextmanager
    def unit(
        self, write: bool = True, *, lone_reads: bool = False, committer: Committer | None = None
    ) -> Iterator[UnitOfWork]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``lone_reads`` (with ``write=False``): the unit only reads, and its statements need no transaction in
        common — on PostgreSQL they run in autocommit, without a BEGIN and a COMMIT (two round trips of a
        search's five). Nothing changes for what they see: at READ COMMITTED each statement takes its own snapshot
        anyway. For the repository's own reads, searches and histories.

        ``committer`` (a writing unit): everything up to the COMMIT runs when the block ends, as usual (the
        references check, the write hooks, the patient versions); the COMMIT itself, closing the connection and
        the hooks' after-commit actions are handed to ``committer`` as one callable, which may run it later on
        another thread (:class:`fhir_ecr.wearables.upsert.BatchWriter` overlaps it with reading the next batch).
        The caller must run it, and must not touch the store before it has returned: it raises what the COMMIT
        raised."""
        if committer is not None:
            with self._unit_committed_by(committer) as uow:
                yield uow
            return
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{WRITE: True})
                elif lone_reads and self.engine.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():
                    uow = UnitOfWork(self, conn)
                    yield uow
                    after = _ending(uow)
        except (sa.exc.IntegrityError, psycopg.IntegrityError) as exc:
            # Two writers created the same Type/id at the same moment: the unique index refused the second.
            raise conflict(_CONCURRENT) from exc
        _after_commit(after)

    @contextmanager
    def _unit_committed_by(self, committer: Committer) -> Iterator[UnitOfWork]:
        """:meth:`unit` whose COMMIT is run by ``committer``."""
        conn = self.engine.connect().execution_options(**{WRITE: True})
        try:
            trans = conn.begin()
            uow = UnitOfWork(self, conn)
            yield uow
            after = _ending(uow)
        except (sa.exc.IntegrityError, psycopg.IntegrityError) as exc:
            conn.close()  # rolls the transaction back
            raise conflict(_CONCURRENT) from exc
        except BaseException:
            conn.close()
            raise

        def commit() -> None:
            try:
                trans.commit()
            except (sa.exc.IntegrityError, psycopg.IntegrityError) as exc:
                raise conflict(_CONCURRENT) from exc
            finally:
                conn.close()
            _after_commit(after)

        committer(commit)

    def create(self, resource: dict[str, Any], *, if_none_exist: str | None = None) -> WriteResult:
        with self.unit() as uow:
            return uow.create(resource, if_none_exist=if_none_exist)

    def read(self, rtype: str, rid: str) -> Stored:
        with self.unit(write=False, lone_reads=True) as uow:
            return uow.read(rtype, rid)

    def vread(self, rtype: str, rid: str, version: str) -> Stored:
        with self.unit(write=False, lone_reads=True) as uow:
            return uow.vread(rtype, rid, version)

    def update(
        self, rtype: str, rid: str, resource: dict[str, Any], *, expected_version: int | None = None
    ) -> WriteResult:
        with self.unit() as uow:
            return uow.update(rtype, rid, resource, expected_version=expected_version)

    def patch(
        self, rtype: str, rid: str, operations: Any, *, expected_version: int | None = None
    ) -> WriteResult:
        with self.unit() as uow:
            return uow.patch(rtype, rid, operations, expected_version=expected_version)

    def delete(
        self, rtype: str, rid: str, *, expected_version: int | None = None, cascade: bool = False
    ) -> Stored | None:
        with self.unit() as uow:
            return uow.delete(rtype, rid, expected_version=expected_version, cascade=cascade)

    def conditional_update(
        self, rtype: str, criteria: str, resource: dict[str, Any], *, expected_version: int | None = None
    ) -> WriteResult:
        with self.unit() as uow:
            return uow.conditional_update(rtype, criteria, resource, expected_version=expected_version)

    def conditional_delete(self, rtype: str, criteria: str, *, cascade: bool = False) -> Stored | None:
        with self.unit() as uow:
            return uow.conditional_delete(rtype, criteria, cascade=cascade)

    def search(self, query: SearchQuery) -> SearchResult:
        with self.unit(write=False, lone_reads=True) as uow:
            return uow.search(query)

    def search_params(self, rtype: str, params: list[tuple[str, str]], **kwargs: Any) -> SearchResult:
        """Search with raw (name, value) pairs, e.g. ``[("patient", "Patient/1"), ("code", "x|y")]``."""
        return self.search(parse_search(rtype, params, **kwargs))

    def history(self, rtype: str | None = None, rid: str | None = None, **kwargs: Any) -> HistoryResult:
        with self.unit(write=False, lone_reads=True) as uow:
            return uow.history(rtype, rid, **kwargs)

    def patient_version(self, patient_id: str) -> int:
        """The patient's data version: it changes with every committed write of a resource in the patient's
        compartment (see :meth:`UnitOfWork.bump_patient_versions`). One primary-key lookup."""
        with self.engine.connect() as conn:
            row = conn.execute(PV_SELECT, {"p": patient_id}).first()
            conn.rollback()
        return int(row[0]) if row else 0
