"""The core of a unit of work: the transaction, bulk inserts, the caller's guard and what a confined caller may see.

The unit of work is built in layers, each a module: this core; :mod:`.queries` (search, includes, index reads,
conditional matching); :mod:`.reads` (read, vread, history, ``$everything``); :mod:`.writes` (create, update,
patch, delete) — ``UnitOfWork`` is the last. Every layer authorizes before it reads: the guard's scope check
first (it depends on nothing stored), then, for a caller confined to one patient's record, the resource's
visibility (:mod:`.visibility`) — what they may not see answers exactly as what does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from ..outcomes import FhirError, conflict, issue, not_found
from . import jsonexact
from .db import next_resource_keys
from .indexer import index_resource
from .records import INDEX_COLUMNS, KV, PV, REF, H, R, Stored, select_versions
from .references import NOT_HOLDING, LocalReference, local_references
from .searchparams import search_params
from .tables import INDEX_TABLES
from .visibility import (
    Confinement,
    compartment_index_names,
    compartment_patients,
    has_compartment,
    organisation_sees,
    visible_condition,
)

if TYPE_CHECKING:
    from .repository import FhirRepository

__all__ = ["Guard", "UnitCore", "UNVERSIONED_TYPES", "PendingCreate", "Change", "WriteHook"]

#: Types whose writes do not change a patient's data version: AuditEvents are written by mECR about each
#: request that read patient data; counting them would make every read invalidate what it just cached.
UNVERSIONED_TYPES = frozenset({"AuditEvent"})

#: (content, method, index rows, lastUpdated µs) of a create not yet written.
PendingCreate = tuple[dict[str, Any], str, dict[str, list[tuple[Any, ...]]], int]


@dataclass(frozen=True, slots=True)
class Change:
    """One version a unit of work wrote, as its write hooks see it: the new content (None for a deletion) and its
    token index rows ``(param, system, code, text)``, so a hook can filter by code or category without re-indexing;
    ``pk``, the resource's key (stable across versions: derived rows key on it), and ``index``, all its search
    index rows by table (``{"idx_date": [(param, low, high)], ...}``, see ``records.INDEX_COLUMNS``)."""

    resource_type: str
    id: str
    version_id: int
    deleted: bool
    content: dict[str, Any] | None
    tokens: tuple[tuple[Any, ...], ...] = ()
    pk: int | None = None
    index: dict[str, list[tuple[Any, ...]]] | None = None


class WriteHook(Protocol):
    """Called once at the end of each unit of work that wrote something, inside its transaction, with what it
    wrote. It may add rows through the unit (e.g. :meth:`UnitCore.add_outbox`) — they commit or roll back with the
    writes — and may return a callable to run after the commit (e.g. to wake a worker). The store knows nothing
    of what the hook decides (fhir_ecr.sync registers one: docs/sync.md)."""

    def __call__(self, uow: UnitCore, changes: list[Change]) -> Callable[[], None] | None: ...


class Guard(Protocol):
    """One caller's access, checked inside the repository (``fhir_ecr.auth.access.Access`` implements it), so every
    path to the data — REST routes, Bundles, operations, the coaching service — is checked the same way. The
    methods that refuse raise a FhirError (401/403)."""

    def require(self, rtype: str, letter: str) -> object:
        """Scopes permit ``letter`` (c r u d s) on ``rtype``: decided before anything is read."""

    def allows(self, rtype: str, letter: str) -> bool:
        """Do the scopes permit ``letter`` on ``rtype`` (without refusing: for filtering included resources)?"""

    def confinement(self) -> Confinement | None:
        """The patient record the caller is confined to, or None for a caller who sees all their scopes allow."""

    def before_history(self, rtype: str | None, rid: str | None) -> None: ...

    def after_read(self, found: list[Stored], patient_id: str | None = None) -> None:
        """The caller was shown ``found`` (for the audit trail)."""

    def hidden(self, letter: str, rtype: str, rid: str) -> None:
        """A confined caller asked for ``rtype/rid``, which they may not see or which does not exist."""

    def check_write(self, letter: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """May the caller write ``new`` over ``old`` (scopes, compartment, identity rules)?"""


_KEEP_VERSION = (
    "UPDATE resource_history SET content = (SELECT content FROM resource WHERE pk = {0}) "
    "WHERE res_type = {0} AND res_id = {0} AND version_id = {0} AND content IS NULL"
)
#: :meth:`UnitCore.keep_version`'s statement with the driver's parameter markers (PostgreSQL: True).
_KEEP_VERSION_SQL = {True: _KEEP_VERSION.format("%s"), False: _KEEP_VERSION.format("?")}


class UnitCore:
    """A database transaction over the FHIR store. Obtain a ``UnitOfWork`` from ``FhirRepository.unit``."""

    def __init__(self, repo: FhirRepository, conn: sa.Connection) -> None:
        self.repo = repo
        self.conn = conn
        self._pending: list[PendingCreate] = []
        self._pending_keys: set[tuple[str, str]] = set()
        self._touched_patients: set[str] = set()  # patients whose compartment this unit wrote to
        # Referential integrity, checked when the unit ends (.references): what its writes refer to
        # (source type, source id, FHIRPath, target type, target id), and what it deleted.
        self._refs: list[tuple[str, str, str, str, str]] = []
        self._deleted: list[tuple[str, str]] = []
        self._written: set[tuple[str, str]] = set()  # what this unit created or updated
        self._new_targets: set[tuple[str, str]] = (
            set()
        )  # targets a write refers to that its old version did not
        # What this unit wrote, for the repository's write hooks: (type, id, version, content, index rows, key).
        self._changes: list[
            tuple[str, str, int, dict[str, Any] | None, dict[str, list[tuple[Any, ...]]] | None, int | None]
        ] = []
        self._new_pks: dict[tuple[str, str], int] = {}  # keys given to buffered creates (for the write hooks)
        self.is_postgres = conn.dialect.name == "postgresql"

    # -- the caller --------------------------------------------------------------------------------------------

    @property
    def guard(self) -> Guard | None:
        return self.repo.guard

    def confinement(self) -> Confinement | None:
        """The patient record the caller is confined to (None: not confined, or no guard)."""
        return self.repo.guard.confinement() if self.repo.guard is not None else None

    def _require(self, rtype: str, *letters: str) -> None:
        if self.repo.guard is not None:
            for letter in letters:
                self.repo.guard.require(rtype, letter)

    def _last_content(self, rtype: str, rid: str) -> dict[str, Any] | None:
        """The newest version of ``rtype/rid`` that has content (for a deleted resource: what it was)."""
        row = self.conn.execute(
            select_versions()
            .where(H.c.res_type == rtype, H.c.res_id == rid, H.c.deleted.is_(False))
            .order_by(H.c.version_id.desc())
            .limit(1)
        ).first()
        return jsonexact.loads(row.content) if row is not None and row.content is not None else None

    def keep_version(self, row: Any) -> None:
        """Before the current version ``row`` (a ``resource`` row) is replaced by a newer one or a deletion: its
        history row, which left the JSON to the ``resource`` row, receives it (copied in the database). A history
        row that has its own (written before migration 0017) is left as it is."""
        if row.deleted:
            return
        # The statement as the driver takes it: built with the expression language it cost 183 µs on SQLite and
        # 524 µs on PostgreSQL against 25 and 286 µs (docs/benchmarks.md, "Transaction ingest, eighth pass").
        self.conn.exec_driver_sql(
            _KEEP_VERSION_SQL[self.is_postgres], (row.pk, row.res_type, row.res_id, row.version_id)
        )

    def visible(
        self,
        conf: Confinement,
        rtype: str,
        rid: str,
        content: dict[str, Any] | None,
        exclude: tuple[int, ...] = (),
    ) -> bool:
        """May ``conf`` see ``rtype/rid`` (whose content is ``content``; None: deleted, judged by what it was)?
        ``exclude``: keys of resources not to count as part of the record (see :meth:`check_references`)."""
        if rtype in conf.public_types:
            return True
        if conf.organization is not None:
            if content is None:
                content = self._last_content(rtype, rid)
            return organisation_sees(self.conn, conf.organization, rtype, rid, content, self.repo.fhir_base)
        if rtype == "Patient":
            return rid == conf.patient_id
        if has_compartment(rtype):
            if content is None:
                content = self._last_content(rtype, rid)
            return content is not None and conf.patient_id in compartment_patients(
                content, self.repo.fhir_base
            )
        found = self.conn.execute(
            sa.select(R.c.pk).where(
                R.c.res_type == rtype, R.c.res_id == rid, visible_condition(rtype, conf, R, exclude)
            )
        ).first()
        return found is not None

    def _gate(self, rtype: str, rid: str, row: Any, letter: str, version: str | None = None) -> None:
        """404 when ``row`` (the current row of ``rtype/rid``, or None) does not exist or, for a confined caller,
        may not be seen — the same answer, so a refusal says nothing about the resource."""
        conf = self.confinement()
        if conf is not None:
            content = None if row is None or row.deleted else _content_of(row)
            if row is None or not self.visible(conf, rtype, rid, content):
                assert self.repo.guard is not None
                self.repo.guard.hidden(letter, rtype, rid)
                raise not_found(rtype, rid, version)
        elif row is None:
            raise not_found(rtype, rid, version)

    def visible_rows(self, rows: Iterable[Any], conf: Confinement) -> list[Any]:
        """The rows (with ``pk`` and ``res_type``) ``conf`` may see, in their order: one query per shared type."""
        rows = list(rows)
        by_type: dict[str, list[int]] = {}
        for row in rows:
            if row.res_type not in conf.public_types:
                by_type.setdefault(row.res_type, []).append(row.pk)
        seen: set[int] = set()
        for rtype, pks in by_type.items():
            for i in range(0, len(pks), 1000):
                chunk = pks[i : i + 1000]
                seen.update(
                    self.conn.execute(
                        sa.select(R.c.pk).where(R.c.pk.in_(chunk), visible_condition(rtype, conf))
                    ).scalars()
                )
        return [row for row in rows if row.res_type in conf.public_types or row.pk in seen]

    def _check_type(self, rtype: str) -> None:
        if rtype not in search_params():
            raise not_found(rtype)

    def _current_row(self, rtype: str, rid: str, lock: bool = False) -> Any:
        stmt = sa.select(R).where(R.c.res_type == rtype, R.c.res_id == rid)
        if lock and self.is_postgres:
            stmt = stmt.with_for_update()
        return self.conn.execute(stmt).first()

    # -- buffered creates ------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write buffered creates (resource rows, history rows, index rows) in bulk."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._pending_keys.clear()
        # Server-assigned ids carry 62 random bits: only client-chosen ids (update-as-create) can already exist.
        # The unique index stays the last word either way (see FhirRepository.unit).
        chosen = {(c["resourceType"], c["id"]) for c, method, _, _ in pending if method != "POST"}
        if chosen:
            self._check_absent(chosen)
        pks = self._allocate_pks(len(pending))
        if self.repo.write_hooks:
            self._new_pks.update(
                ((c["resourceType"], c["id"]), pk) for pk, (c, _, _, _) in zip(pks, pending, strict=True)
            )
        docs = [jsonexact.dumps(c).decode() for c, _, _, _ in pending]
        self._bulk_insert(
            "resource",
            ("pk", "res_type", "res_id", "version_id", "last_updated", "deleted", "content"),
            [
                (pk, c["resourceType"], c["id"], 1, now, False, doc)
                for pk, (c, _, _, now), doc in zip(pks, pending, docs, strict=True)
            ],
        )
        self._bulk_insert(  # the JSON is the resource row's until a newer version replaces it (keep_version)
            "resource_history",
            ("res_type", "res_id", "version_id", "last_updated", "method", "deleted"),
            [(c["resourceType"], c["id"], 1, now, method, False) for c, method, _, now in pending],
        )
        self._insert_index_rows(
            [(pk, c["resourceType"], rows) for pk, (c, _, rows, _) in zip(pks, pending, strict=True)]
        )

    def _allocate_pks(self, n: int) -> list[int]:
        """``n`` new resource keys. SQLite: the write lock is held (BEGIN IMMEDIATE), so max + 1 is safe."""
        if self.is_postgres:
            return next_resource_keys(self.conn, n)
        start = self.conn.exec_driver_sql("SELECT coalesce(max(pk), 0) FROM resource").scalar_one()
        return list(range(start + 1, start + n + 1))

    def bulk_insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert many rows into ``table`` in this unit's transaction: COPY on PostgreSQL, ``executemany`` on
        SQLite (for write hooks that keep derived tables)."""
        self._bulk_insert(table, columns, rows)

    def _bulk_insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert many rows at once: COPY on PostgreSQL, executemany on SQLite (no ORM, no per-row dicts)."""
        if not rows:
            return
        if self.is_postgres:
            raw = self.conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def ids_in(self, column: Any, ids: list[str]) -> Any:
        """``column IN (ids)``; on PostgreSQL ``column = ANY(array)``, one bound parameter: psycopg rewrites a
        statement's placeholders one by one, which for a thousand ids costs more than the lookup itself."""
        if self.is_postgres:
            return column == sa.any_(sa.bindparam(None, ids, type_=ARRAY(sa.String)))
        return column.in_(ids)

    def _check_absent(self, keys: set[tuple[str, str]]) -> None:
        by_type: dict[str, list[str]] = {}
        for t, i in keys:
            by_type.setdefault(t, []).append(i)
        for t, ids in by_type.items():
            found = self.conn.execute(
                sa.select(R.c.res_id).where(R.c.res_type == t, self.ids_in(R.c.res_id, ids)).limit(1)
            ).first()
            if found:
                raise conflict(f"{t}/{found.res_id} already exists")

    def _insert_index_rows(self, items: list[tuple[int, str, dict[str, list[tuple[Any, ...]]]]]) -> None:
        batches: dict[str, list[tuple[Any, ...]]] = {}
        for pk, rtype, rows in items:
            key = (pk, rtype).__add__  # (pk, rtype, *row) for each row, without a Python loop over the rows
            for table_name, table_rows in rows.items():
                if table_rows:
                    batches.setdefault(table_name, []).extend(map(key, table_rows))
        for table_name, batch in batches.items():
            self._bulk_insert(table_name, ("res_pk", "res_type", *INDEX_COLUMNS[table_name]), batch)

    def _delete_index_rows(self, pk: int) -> None:
        for table in INDEX_TABLES.values():
            self.conn.execute(table.delete().where(table.c.res_pk == pk))

    def _index_rows(
        self, content: dict[str, Any]
    ) -> tuple[dict[str, list[tuple[Any, ...]]], list[LocalReference]]:
        """The index rows of a new version and its local references (one walk for both)."""
        return index_resource(content, self.repo.fhir_base)

    # -- referential integrity (fhir_ecr.store.references) ----------------------------------------------------

    def _note_references(
        self, content: dict[str, Any], refs: list[LocalReference], old: dict[str, Any] | None = None
    ) -> None:
        """Record what a new version (``content``, whose local references are ``refs``, replacing ``old``) refers
        to, for :meth:`check_references`."""
        rtype = str(content["resourceType"])
        if not self.repo.enforce_references or rtype in NOT_HOLDING:
            return
        rid = str(content["id"])
        self._written.add((rtype, rid))
        before = {(t, i) for _, t, i in local_references(old, self.repo.fhir_base)} if old else set()
        self._refs += [(rtype, rid, path, t, i) for path, t, i in refs]
        self._new_targets.update((t, i) for _, t, i in refs if (t, i) not in before)

    def _present(
        self, targets: set[tuple[str, str]], written: set[tuple[str, str]], new: set[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """The targets that exist, are not deleted and (for a confined caller) may be seen; ``written``: what
        this unit created or updated; ``new``: targets that a write refers to and its old version did not."""
        by_type: dict[str, list[str]] = {}
        for t, i in targets:
            by_type.setdefault(t, []).append(i)
        found: set[tuple[str, str]] = set()
        for t, ids in by_type.items():
            for n in range(0, len(ids), 1000):
                found.update(
                    (t, str(i))
                    for i in self.conn.execute(
                        sa.select(R.c.res_id).where(
                            R.c.res_type == t,
                            self.ids_in(R.c.res_id, ids[n : n + 1000]),
                            R.c.deleted.is_(False),
                        )
                    ).scalars()
                )
        conf = self.confinement()
        if conf is not None:
            # What the caller could see before this unit: its own new references must not make a shared
            # resource visible (then a write would tell them it exists). What the unit wrote itself is theirs.
            keys = tuple(self._keys(written))
            found = {
                (t, i)
                for t, i in found
                if (t, i) in written or (t, i) not in new or self.visible(conf, t, i, None, keys)
            }
        return found

    def _keys(self, refs: set[tuple[str, str]]) -> list[int]:
        keys: list[int] = []
        by_type: dict[str, list[str]] = {}
        for t, i in refs:
            by_type.setdefault(t, []).append(i)
        for t, ids in by_type.items():
            keys += self.conn.execute(
                sa.select(R.c.pk).where(R.c.res_type == t, self.ids_in(R.c.res_id, ids))
            ).scalars()
        return keys

    def referrers(self, rtype: str, rid: str, limit: int = 11) -> list[tuple[str, str]]:
        """Current resources (AuditEvents aside) that refer to ``rtype/rid``, itself aside."""
        ref = REF.alias()
        rows = self.conn.execute(
            sa.select(R.c.res_type, R.c.res_id)
            .join(ref, ref.c.res_pk == R.c.pk)
            .where(
                ref.c.target_type == rtype,
                ref.c.target_id == rid,
                ref.c.res_type.not_in(sorted(NOT_HOLDING)),
                sa.not_(sa.and_(R.c.res_type == rtype, R.c.res_id == rid)),
            )
            .distinct()
            .order_by(R.c.res_type, R.c.res_id)
            .limit(limit)
        ).all()
        return [(r.res_type, r.res_id) for r in rows]

    def check_references(self) -> None:
        """422 when a write of this unit refers to a resource that is not here (one issue per reference); 409 when
        a resource this unit deleted is still referred to. Runs when the unit ends (after its last flush)."""
        self.flush()
        refs, self._refs = self._refs, []
        deleted, self._deleted = self._deleted, []
        written, self._written = self._written, set()
        new, self._new_targets = self._new_targets, set()
        if refs:
            present = self._present({(t, i) for *_, t, i in refs}, written, new)
            seen: set[tuple[str, str, str]] = set()
            issues = []
            for stype, sid, path, t, i in refs:
                if (t, i) not in present and (stype, sid, path) not in seen:
                    seen.add((stype, sid, path))
                    issues.append(
                        issue(
                            "processing",
                            f"{path} refers to {t}/{i}, which is not on this server",
                            expression=path,
                        )
                    )
            if issues:
                raise FhirError(issues, 422)
        conf = self.confinement()
        for rtype, rid in deleted:
            held = self.referrers(rtype, rid)
            if held:
                shown = held if conf is None else []
                names = ", ".join(f"{t}/{i}" for t, i in shown[:10]) or "other resources"
                raise conflict(
                    f"{rtype}/{rid} is referred to by {names}; delete those first, or ask _cascade=delete"
                )

    # -- patient data versions -------------------------------------------------------------------------------

    def _touch_rows(self, rtype: str, rid: str, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Note the patients whose compartment a new version with these index rows lies in."""
        if rtype in UNVERSIONED_TYPES:
            return
        if rtype == "Patient":
            self._touched_patients.add(rid)
        names = compartment_index_names(rtype)
        if names:
            self._touched_patients.update(
                r[2] for r in rows.get("idx_reference", ()) if r[1] == "Patient" and r[0] in names and r[2]
            )

    def _touch_content(self, content: dict[str, Any] | None) -> None:
        """Note the patients whose compartment a replaced or deleted version lay in."""
        if not content or content.get("resourceType") in UNVERSIONED_TYPES:
            return
        self._touched_patients.update(compartment_patients(content, self.repo.fhir_base))

    def bump_patient_versions(self) -> None:
        """Give every patient this unit wrote to a new data version (one upsert each, in id order; on PostgreSQL
        in one statement; the unit's last write).

        The version is the wall clock in µs, or one more than the previous version if that is not greater, so
        a version is never reused, not even by a database that was emptied and filled again.
        """
        if not self._touched_patients:
            return
        touched, self._touched_patients = sorted(self._touched_patients), set()
        now = time.time_ns() // 1000
        if self.is_postgres:  # one statement (the ids as one array), not one per patient: a round trip each
            self.conn.exec_driver_sql(
                "INSERT INTO patient_version (patient_id, version) "
                "SELECT p, %(v)s FROM unnest(%(ps)s::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n "
                "ON CONFLICT (patient_id) "
                "DO UPDATE SET version = greatest(patient_version.version + 1, excluded.version)",
                {"ps": touched, "v": now},
            )
            return
        self.conn.exec_driver_sql(
            "INSERT INTO patient_version (patient_id, version) VALUES (:p, :v) ON CONFLICT (patient_id) "
            "DO UPDATE SET version = max(patient_version.version + 1, excluded.version)",
            [{"p": p, "v": now} for p in touched],
        )

    def patient_versions(self, patient_ids: Iterable[str]) -> dict[str, int]:
        """The data versions of many patients (0 for one never written), one statement per 500."""
        out = dict.fromkeys(patient_ids, 0)
        ids = list(out)
        for i in range(0, len(ids), 500):
            for row in self.conn.execute(
                sa.select(PV.c.patient_id, PV.c.version).where(PV.c.patient_id.in_(ids[i : i + 500]))
            ):
                out[row.patient_id] = int(row.version)
        return out

    def patient_version(self, patient_id: str) -> int:
        """The patient's data version (0 before anything of theirs was written). Read it before the data it
        guards, in the same unit: then what is read is at least as new as the version."""
        row = self.conn.execute(PV_SELECT, {"p": patient_id}).first()
        return int(row[0]) if row else 0

    # -- write hooks and the outbox ----------------------------------------------------------------------------

    def _note_change(
        self,
        rtype: str,
        rid: str,
        version: int,
        content: dict[str, Any] | None,
        rows: dict[str, list[tuple[Any, ...]]] | None,
        pk: int | None = None,
    ) -> None:
        if self.repo.write_hooks:
            self._changes.append((rtype, rid, version, content, rows, pk))

    def run_write_hooks(self) -> list[Callable[[], None]]:
        """Call the repository's write hooks with what this unit wrote (inside the transaction); the callables
        they return run after the commit (:meth:`FhirRepository.unit`). Each :class:`Change` is made here, once
        the buffered creates have their keys."""
        self.flush()
        noted, self._changes = self._changes, []
        new_pks, self._new_pks = self._new_pks, {}
        changes = [
            Change(
                rtype,
                rid,
                version,
                content is None,
                content,
                tuple(rows.get("idx_token", ())) if rows else (),
                pk if pk is not None else new_pks.get((rtype, rid)),
                rows,
            )
            for rtype, rid, version, content, rows, pk in noted
        ]
        after: list[Callable[[], None]] = []
        if changes:
            for hook in self.repo.write_hooks:
                done = hook(self, changes)
                if done is not None:
                    after.append(done)
        return after

    def add_outbox(self, entries: Iterable[tuple[str, str, str, int]], now: int | None = None) -> int:
        """Record ``(ehr id, type, id, version)`` writes to push, in this unit's transaction (the transactional
        outbox): one pending row per EMR and resource — a pending row already there takes the new version."""
        rows = [(e, t, i, v, int(now if now is not None else time.time())) for e, t, i, v in entries]
        if not rows:
            return 0
        mark = "%s" if self.is_postgres else "?"
        values = f"({mark}, {mark}, {mark}, {mark}, 'pending', 0, {mark}, {mark})"
        sql = (
            "INSERT INTO sync_outbox (ehr_id, res_type, res_id, version_id, state, attempts, created, next_attempt) "
            f"VALUES {values} ON CONFLICT (ehr_id, res_type, res_id) WHERE state = 'pending' "
            "DO UPDATE SET version_id = excluded.version_id"
        )
        self.conn.exec_driver_sql(sql, [(e, t, i, v, n, n) for e, t, i, v, n in rows])
        return len(rows)

    # -- small state -----------------------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self.conn.execute(sa.select(KV.c.value).where(KV.c.key == key)).first()
        return row.value if row else None

    def set_state(self, key: str, value: str) -> None:
        self.conn.execute(KV.delete().where(KV.c.key == key))
        self.conn.execute(KV.insert().values(key=key, value=value))

    def states(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, value) of the small state whose key starts with ``prefix``, in key order."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.conn.execute(
            sa.select(KV.c.key, KV.c.value)
            .where(KV.c.key.like(escaped + "%", escape="\\"))
            .order_by(KV.c.key)
        ).all()
        return [(r.key, r.value) for r in rows]

    def delete_state(self, key: str) -> None:
        self.conn.execute(KV.delete().where(KV.c.key == key))


PV_SELECT = sa.select(PV.c.version).where(PV.c.patient_id == sa.bindparam("p"))


def _content_of(row: Any) -> dict[str, Any] | None:
    """The content of a row selected whole (parsed by the engine) or with :func:`read_columns` (text)."""
    content = row.content
    if isinstance(content, str):
        parsed: dict[str, Any] = jsonexact.loads(content)
        return parsed
    return content  # type: ignore[no-any-return]
