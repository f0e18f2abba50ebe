"""The FhirRepository: the one way to read and write FHIR resources (SQLite and PostgreSQL).

Every write goes through :class:`UnitOfWork`: it is validated, given its id and ``meta``, indexed, versioned
(current row + history row) and committed atomically — a failure anywhere rolls the whole unit back. Creates
are buffered and flushed in bulk (one ``executemany`` per table), which is what makes a 500-entry transaction
Bundle cheap; any read, update or delete flushes the buffer first so a unit always sees its own writes.

Concurrency: on SQLite a write unit starts with ``BEGIN IMMEDIATE`` (writers queue); on PostgreSQL an update or
delete locks the row (``SELECT … FOR UPDATE``) and conditional creates take a transaction-scoped advisory lock
on their criteria, so two conditional creates of the same thing cannot both create. An expected version
(``If-Match``) that is not the current one raises 412 (https://hl7.org/fhir/R4/http.html#concurrency).

Patient data versions: a unit of work collects the patients whose compartment its writes touch (the old and
the new version of each resource) and, as its last statement, bumps each one's ``patient_version`` row once
(sorted, so two units never wait on each other in opposite orders). :meth:`FhirRepository.patient_version` is
one key lookup; caches of computed views key on it (``fhir_ecr.coaching.cache``).
"""

from __future__ import annotations

import copy
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol

import jsonpatch
import orjson
import psycopg
import sqlalchemy as sa

from ..outcomes import (
    FhirError,
    bad_request,
    conflict,
    gone,
    issue,
    not_found,
    precondition_failed,
)
from . import jsonexact
from .db import WRITE
from .indexer import extract_index_rows, parse_reference
from .search import SearchQuery, driven_pks, param_condition, parse_search, search_where, sort_sql
from .searchparams import SearchParam, patient_compartment, search_param, search_params, summary_elements
from .tables import INDEX_TABLES, HistoryRow, KeyValue, PatientVersion, ReferenceIndex, ResourceRow
from .validation import validate_resource

__all__ = [
    "FhirRepository",
    "UnitOfWork",
    "Stored",
    "SearchResult",
    "HistoryResult",
    "Validator",
    "iso_instant",
    "compartment_patients",
    "UNVERSIONED_TYPES",
]

R = ResourceRow.__table__  # type: ignore[attr-defined]
H = HistoryRow.__table__  # type: ignore[attr-defined]
KV = KeyValue.__table__  # type: ignore[attr-defined]
PV = PatientVersion.__table__  # type: ignore[attr-defined]

#: Types whose writes do not change a patient's data version: AuditEvents are written by mECR about each
#: request that read patient data; counting them would make every read invalidate what it just cached.
UNVERSIONED_TYPES = frozenset({"AuditEvent"})
REF = ReferenceIndex.__table__  # type: ignore[attr-defined]

Validator = Callable[[dict[str, Any]], None]


class Guard(Protocol):
    """Checks one caller's access inside the repository (``fhir_ecr.auth.access.Access`` implements it), so
    every path to the data — REST routes, Bundles, operations, the coaching service — is checked the same way.
    Each method raises a FhirError (401/403) to refuse."""

    def check_read(self, stored: Stored) -> None: ...

    def may_read(self, stored: Stored) -> bool: ...

    def after_read(self, found: list[Stored]) -> None: ...

    def before_search(self, rtype: str) -> str | None:
        """Check search permission; return a patient id to confine the search to that compartment."""

    def before_history(self, rtype: str | None, rid: str | None) -> None: ...

    def may_read_deleted(self, stored: Stored) -> bool: ...

    def check_write(self, letter: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None: ...


def _now_us() -> int:
    return time.time_ns() // 1000


def iso_instant(us: int) -> str:
    """A FHIR instant for µs since the epoch."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Stored:
    """A stored resource version. Read paths keep the JSON text as the database returned it (``raw``) and
    parse it only when ``content`` is used, so a search page or a read can be sent on without a parse and
    re-serialisation (see :meth:`json`)."""

    __slots__ = ("resource_type", "id", "version_id", "last_updated", "deleted", "_content", "raw")

    def __init__(self, resource_type: str, id: str, version_id: int, last_updated: int, deleted: bool,
                 content: dict[str, Any] | None = None, raw: str | None = None) -> None:
        self.resource_type = resource_type
        self.id = id
        self.version_id = version_id
        self.last_updated = last_updated
        self.deleted = deleted
        self._content = content
        self.raw = raw

    def __repr__(self) -> str:
        return f"Stored({self.resource_type}/{self.id}/_history/{self.version_id}{', deleted' if self.deleted else ''})"

    @property
    def content(self) -> dict[str, Any] | None:
        """The resource as a dict (parsed on first use)."""
        if self._content is None and self.raw is not None:
            self._content = jsonexact.loads(self.raw)
        return self._content

    def json(self) -> Any:
        """What to hand to ``orjson.dumps``: the stored text as is when it was not parsed, else the dict."""
        if self._content is None and self.raw is not None:
            return orjson.Fragment(self.raw)
        return self._content

    @property
    def etag(self) -> str:
        """The weak ETag of this version, ``W/"n"``."""
        return f'W/"{self.version_id}"'

    @property
    def last_modified(self) -> str:
        """``lastUpdated`` as an HTTP date."""
        return format_datetime(datetime.fromtimestamp(self.last_updated / 1_000_000, UTC), usegmt=True)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass
class WriteResult:
    """The outcome of a write: the stored version and whether it created the resource."""

    stored: Stored
    created: bool
    changed: bool = True


@dataclass
class SearchResult:
    """A page of matches, resources brought in by ``_include``/``_revinclude``, the total and paging state."""

    matches: list[Stored]
    included: list[Stored] = field(default_factory=list)
    total: int | None = None
    next_cursor: int | None = None
    next_offset: int | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HistoryResult:
    """A page of history entries, newest first."""

    entries: list[tuple[Stored, str]]  # (version, method)
    total: int
    next_offset: int | None


def _stored(row: Any) -> Stored:
    """A Stored from a row selected with :func:`_read_columns` (content as text)."""
    return Stored(row.res_type, row.res_id, row.version_id, row.last_updated, row.deleted, raw=row.content)


def _stored_parsed(row: Any) -> Stored:
    return Stored(row.res_type, row.res_id, row.version_id, row.last_updated, row.deleted, row.content)


def _read_columns(table: sa.Table) -> list[Any]:
    """The columns read paths select: the JSON document as text, not parsed (JSONB prints as text too)."""
    return [table.c.pk, table.c.res_type, table.c.res_id, table.c.version_id, table.c.last_updated,
            table.c.deleted, sa.cast(table.c.content, sa.Text).label("content"),
            *([table.c.method] if "method" in table.c else [])]


class UnitOfWork:
    """A database transaction over the FHIR store. Obtain one from :meth:`FhirRepository.unit`."""

    def __init__(self, repo: FhirRepository, conn: sa.Connection) -> None:
        self.repo = repo
        self.conn = conn
        # (content, method, index rows, lastUpdated µs) of creates not yet written
        self._pending: list[tuple[dict[str, Any], str, dict[str, list[tuple[Any, ...]]], int]] = []
        self._pending_keys: set[tuple[str, str]] = set()
        self._touched_patients: set[str] = set()  # patients whose compartment this unit wrote to
        self.is_postgres = conn.dialect.name == "postgresql"

    # -- writes --------------------------------------------------------------------------------------------

    def prepare(self, resource: dict[str, Any], resource_id: str | None = None) -> dict[str, Any]:
        """Validate ``resource`` and return the copy that would be stored (id assigned, meta not yet set)."""
        if not isinstance(resource, dict):
            raise bad_request("a resource must be a JSON object")
        self.repo.validator(resource)
        content = dict(resource)
        if resource_id is not None:
            content["id"] = resource_id
        return content

    def create(self, resource: dict[str, Any], *, resource_id: str | None = None,
               validated: bool = False, if_none_exist: str | None = None, method: str = "POST") -> WriteResult:
        """Create a resource (server-assigned id unless ``resource_id``); conditional with ``if_none_exist``."""
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if if_none_exist is not None and isinstance(rtype, str):
            existing = self.match_conditional(rtype, if_none_exist)
            if existing is not None:
                return WriteResult(existing, created=False, changed=False)
        rid = resource_id or str(uuid.uuid4())
        content = dict(resource) if validated else self.prepare(resource)
        content["id"] = rid
        rtype = content["resourceType"]
        if self.repo.guard is not None:
            self.repo.guard.check_write("c", None, content)
        if (rtype, rid) in self._pending_keys:
            raise conflict(f"{rtype}/{rid} is created twice in one transaction")
        now = self.repo.clock()
        content["meta"] = {**(content.get("meta") or {}), "versionId": "1", "lastUpdated": iso_instant(now)}
        rows = extract_index_rows(content, self.repo.fhir_base)
        self._touch_rows(rtype, rid, rows)
        self._pending.append((content, method, rows, now))
        self._pending_keys.add((rtype, rid))
        return WriteResult(Stored(rtype, rid, 1, now, False, content), created=True)

    def flush(self) -> None:
        """Write buffered creates (resource rows, history rows, index rows) in bulk."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._pending_keys.clear()
        # Server-assigned ids are random UUIDs: only client-chosen ids (update-as-create) can already exist.
        # The unique index stays the last word either way (see FhirRepository.unit).
        chosen = {(c["resourceType"], c["id"]) for c, method, _, _ in pending if method != "POST"}
        if chosen:
            self._check_absent(chosen)
        pks = self._allocate_pks(len(pending))
        docs = [jsonexact.dumps(c).decode() for c, _, _, _ in pending]
        self._bulk_insert(
            "resource", ("pk", "res_type", "res_id", "version_id", "last_updated", "deleted", "content"),
            [(pk, c["resourceType"], c["id"], 1, now, False, doc)
             for pk, (c, _, _, now), doc in zip(pks, pending, docs, strict=True)],
        )
        self._bulk_insert(
            "resource_history", ("res_type", "res_id", "version_id", "last_updated", "method", "deleted", "content"),
            [(c["resourceType"], c["id"], 1, now, method, False, doc)
             for (c, method, _, now), doc in zip(pending, docs, strict=True)],
        )
        self._insert_index_rows([(pk, c["resourceType"], rows) for pk, (c, _, rows, _) in zip(pks, pending,
                                                                                              strict=True)])

    def _allocate_pks(self, n: int) -> list[int]:
        """``n`` new resource keys. SQLite: the write lock is held (BEGIN IMMEDIATE), so max + 1 is safe."""
        if self.is_postgres:
            rows = self.conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('resource', 'pk')) FROM generate_series(1, %(n)s)",
                {"n": n},
            ).all()
            return [r[0] for r in rows]
        start = self.conn.exec_driver_sql("SELECT coalesce(max(pk), 0) FROM resource").scalar_one()
        return list(range(start + 1, start + n + 1))

    def _bulk_insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert many rows at once: COPY on PostgreSQL, executemany on SQLite (no ORM, no per-row dicts)."""
        if not rows:
            return
        if self.is_postgres:
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def _check_absent(self, keys: set[tuple[str, str]]) -> None:
        by_type: dict[str, list[str]] = {}
        for t, i in keys:
            by_type.setdefault(t, []).append(i)
        for t, ids in by_type.items():
            found = self.conn.execute(
                sa.select(R.c.res_id).where(R.c.res_type == t, R.c.res_id.in_(ids)).limit(1)
            ).first()
            if found:
                raise conflict(f"{t}/{found.res_id} already exists")

    def _insert_index_rows(self, items: list[tuple[int, str, dict[str, list[tuple[Any, ...]]]]]) -> None:
        batches: dict[str, list[tuple[Any, ...]]] = {}
        for pk, rtype, rows in items:
            for table_name, table_rows in rows.items():
                if table_rows:
                    batch = batches.setdefault(table_name, [])
                    batch.extend((pk, rtype, *row) for row in table_rows)
        for table_name, batch in batches.items():
            self._bulk_insert(table_name, ("res_pk", "res_type", *_INDEX_COLUMNS[table_name]), batch)

    def _delete_index_rows(self, pk: int) -> None:
        for table in INDEX_TABLES.values():
            self.conn.execute(table.delete().where(table.c.res_pk == pk))

    def _current_row(self, rtype: str, rid: str, lock: bool = False) -> Any:
        stmt = sa.select(R).where(R.c.res_type == rtype, R.c.res_id == rid)
        if lock and self.is_postgres:
            stmt = stmt.with_for_update()
        return self.conn.execute(stmt).first()

    def update(self, rtype: str, rid: str, resource: dict[str, Any], *,
               expected_version: int | None = None, validated: bool = False) -> WriteResult:
        """Update (or create with this id); ``expected_version`` is If-Match. Unchanged content is a no-op."""
        self.flush()
        if not isinstance(resource, dict):
            raise bad_request("a resource must be a JSON object")
        if resource.get("resourceType") != rtype:
            raise FhirError(issue("invalid", f"resourceType must be {rtype}", expression="resourceType"), 400)
        if resource.get("id") != rid:
            raise FhirError(
                issue("invalid", f"the resource id must be {rid!r}, the id in the URL", expression=f"{rtype}.id"),
                400,
            )
        content = resource if validated else self.prepare(resource)
        row = self._current_row(rtype, rid, lock=True)
        if row is None:
            if expected_version is not None:
                raise precondition_failed(f"{rtype}/{rid} does not exist (If-Match)")
            result = self.create(content, resource_id=rid, validated=True, method="PUT")
            self.flush()
            return result
        if expected_version is not None and row.version_id != expected_version:
            raise precondition_failed(
                f"{rtype}/{rid} is at version {row.version_id}, not {expected_version} (If-Match)"
            )
        if self.repo.guard is not None:
            self.repo.guard.check_write("c" if row.deleted else "u", None if row.deleted else row.content, content)
        if not row.deleted and _same_content(row.content, content):
            return WriteResult(_stored_parsed(row), created=False, changed=False)
        return self._write_version(row, content, "PUT", created=row.deleted)

    def _write_version(self, row: Any, content: dict[str, Any], method: str, created: bool) -> WriteResult:
        now = max(self.repo.clock(), row.last_updated + 1)
        version = row.version_id + 1
        content = dict(content)
        content["meta"] = {**(content.get("meta") or {}), "versionId": str(version), "lastUpdated": iso_instant(now)}
        done = self.conn.execute(
            R.update()
            .where(R.c.pk == row.pk, R.c.version_id == row.version_id)
            .values(version_id=version, last_updated=now, deleted=False, content=content)
        )
        if done.rowcount != 1:
            raise conflict(f"{row.res_type}/{row.res_id} was changed by another writer; retry")
        self.conn.execute(H.insert().values(res_type=row.res_type, res_id=row.res_id, version_id=version,
                                            last_updated=now, method=method, deleted=False, content=content))
        self._delete_index_rows(row.pk)
        rows = extract_index_rows(content, self.repo.fhir_base)
        self._touch_content(row.content)
        self._touch_rows(row.res_type, row.res_id, rows)
        self._insert_index_rows([(row.pk, row.res_type, rows)])
        return WriteResult(Stored(row.res_type, row.res_id, version, now, False, content), created=created)

    def conditional_update(self, rtype: str, criteria: str, resource: dict[str, Any], *,
                           expected_version: int | None = None) -> WriteResult:
        """Update the one resource matching ``criteria``, or create it when none does (R4 http.html#cond-update)."""
        existing = self.match_conditional(rtype, criteria)
        body_id = resource.get("id") if isinstance(resource, dict) else None
        if existing is not None and body_id and body_id != existing.id:
            raise bad_request(f"the resource id {body_id!r} is not that of the matching resource {existing.id!r}")
        rid = existing.id if existing is not None else (body_id or str(uuid.uuid4()))
        return self.update(rtype, rid, {**resource, "id": rid}, expected_version=expected_version)

    def conditional_delete(self, rtype: str, criteria: str) -> Stored | None:
        """Delete the one resource matching ``criteria`` (412 when several match; nothing when none does)."""
        existing = self.match_conditional(rtype, criteria)
        return self.delete(rtype, existing.id) if existing is not None else None

    def patch(self, rtype: str, rid: str, operations: Any, *, expected_version: int | None = None) -> WriteResult:
        """Apply a JSON Patch (RFC 6902) to the current version; the result must still be valid."""
        self.flush()
        row = self._current_row(rtype, rid, lock=True)
        if row is None:
            raise not_found(rtype, rid)
        if row.deleted:
            raise gone(rtype, rid, str(row.version_id))
        if expected_version is not None and row.version_id != expected_version:
            raise precondition_failed(
                f"{rtype}/{rid} is at version {row.version_id}, not {expected_version} (If-Match)"
            )
        try:
            patch = jsonpatch.JsonPatch(operations)
            patched = patch.apply(row.content)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as exc:
            raise FhirError(issue("processing", f"the JSON Patch cannot be applied: {exc}"), 422) from exc
        if patched.get("resourceType") != rtype or patched.get("id") != rid:
            raise FhirError(issue("processing", "a patch must not change resourceType or id"), 422)
        content = self.prepare(patched)
        if self.repo.guard is not None:
            self.repo.guard.check_write("u", row.content, content)
        if _same_content(row.content, content):
            return WriteResult(_stored_parsed(row), created=False, changed=False)
        return self._write_version(row, content, "PATCH", created=False)

    def delete(self, rtype: str, rid: str, *, expected_version: int | None = None) -> Stored | None:
        """Delete a resource (a new, deleted version). Deleting a deleted resource changes nothing."""
        self.flush()
        row = self._current_row(rtype, rid, lock=True)
        if row is None:
            raise not_found(rtype, rid)
        if expected_version is not None and row.version_id != expected_version:
            raise precondition_failed(
                f"{rtype}/{rid} is at version {row.version_id}, not {expected_version} (If-Match)"
            )
        if row.deleted:
            return None
        if self.repo.guard is not None:
            self.repo.guard.check_write("d", row.content, None)
        now = max(self.repo.clock(), row.last_updated + 1)
        version = row.version_id + 1
        done = self.conn.execute(
            R.update().where(R.c.pk == row.pk, R.c.version_id == row.version_id)
            .values(version_id=version, last_updated=now, deleted=True, content=None)
        )
        if done.rowcount != 1:
            raise conflict(f"{rtype}/{rid} was changed by another writer; retry")
        self.conn.execute(H.insert().values(res_type=rtype, res_id=rid, version_id=version, last_updated=now,
                                            method="DELETE", deleted=True, content=None))
        self._delete_index_rows(row.pk)
        self._touch_content(row.content)
        return Stored(rtype, rid, version, now, True, None)

    # -- patient data versions ---------------------------------------------------------------------------

    def _touch_rows(self, rtype: str, rid: str, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Note the patients whose compartment a new version with these index rows lies in."""
        if rtype in UNVERSIONED_TYPES:
            return
        if rtype == "Patient":
            self._touched_patients.add(rid)
        names = _compartment_index_names(rtype)
        if names:
            self._touched_patients.update(r[2] for r in rows.get("idx_reference", ())
                                          if r[1] == "Patient" and r[0] in names and r[2])

    def _touch_content(self, content: dict[str, Any] | None) -> None:
        """Note the patients whose compartment a replaced or deleted version lay in."""
        if not content or content.get("resourceType") in UNVERSIONED_TYPES:
            return
        self._touched_patients.update(compartment_patients(content, self.repo.fhir_base))

    def bump_patient_versions(self) -> None:
        """Give every patient this unit wrote to a new data version (one upsert each; the unit's last write).

        The version is the wall clock in µs, or one more than the previous version if that is not greater, so
        a version is never reused, not even by a database that was emptied and filled again.
        """
        if not self._touched_patients:
            return
        touched, self._touched_patients = sorted(self._touched_patients), set()
        now = time.time_ns() // 1000
        bigger = "greatest" if self.is_postgres else "max"
        self.conn.exec_driver_sql(
            "INSERT INTO patient_version (patient_id, version) VALUES (%(p)s, %(v)s) ON CONFLICT (patient_id) "
            f"DO UPDATE SET version = {bigger}(patient_version.version + 1, excluded.version)"
            if self.is_postgres else
            "INSERT INTO patient_version (patient_id, version) VALUES (:p, :v) ON CONFLICT (patient_id) "
            f"DO UPDATE SET version = {bigger}(patient_version.version + 1, excluded.version)",
            [{"p": p, "v": now} for p in touched],
        )

    def patient_version(self, patient_id: str) -> int:
        """The patient's data version (0 before anything of theirs was written). Read it before the data it
        guards, in the same unit: then what is read is at least as new as the version."""
        row = self.conn.execute(_PV_SELECT, {"p": patient_id}).first()
        return int(row[0]) if row else 0

    # -- reads ---------------------------------------------------------------------------------------------

    def read(self, rtype: str, rid: str) -> Stored:
        """The current version; 404 when unknown, 410 when deleted."""
        self._check_type(rtype)
        self.flush()
        row = self.conn.execute(
            sa.select(*_read_columns(R)).where(R.c.res_type == rtype, R.c.res_id == rid)
        ).first()
        if row is None:
            raise not_found(rtype, rid)
        if row.deleted:
            raise gone(rtype, rid, str(row.version_id))
        stored = _stored(row)
        if self.repo.guard is not None:
            self.repo.guard.check_read(stored)
        return stored

    def vread(self, rtype: str, rid: str, version: str) -> Stored:
        """A given version; 404 when unknown, 410 when it is a deletion."""
        self._check_type(rtype)
        self.flush()
        if not version.isdigit():
            raise not_found(rtype, rid, version)
        row = self.conn.execute(
            sa.select(*_read_columns(H)).where(H.c.res_type == rtype, H.c.res_id == rid,
                                              H.c.version_id == int(version))
        ).first()
        if row is None:
            raise not_found(rtype, rid, version)
        if row.deleted:
            raise gone(rtype, rid, version)
        stored = _stored(row)
        if self.repo.guard is not None:
            self.repo.guard.check_read(stored)
        return stored

    def _check_type(self, rtype: str) -> None:
        if rtype not in search_params():
            raise not_found(rtype)

    def match_conditional(self, rtype: str, criteria: str) -> Stored | None:
        """The one resource matching ``criteria`` (a query string); None for none; 412 for several."""
        from urllib.parse import parse_qsl

        pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
        if not pairs:
            raise bad_request("conditional criteria are empty")
        query = parse_search(rtype, pairs, strict=True, default_count=2)
        if query.sort or query.includes or query.revincludes:
            raise bad_request("conditional criteria cannot use _sort, _include or _revinclude")
        query.count = 2
        query.total = "none"
        if self.is_postgres:
            key = int.from_bytes(hashlib.sha256(f"{rtype}?{criteria}".encode()).digest()[:8], "big", signed=True)
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        found = self.search(query).matches
        if len(found) > 1:
            raise precondition_failed(f"{rtype}?{criteria} matches more than one resource", "multiple-matches")
        return found[0] if found else None

    def search(self, query: SearchQuery) -> SearchResult:
        """Run a search; returns one page plus includes (filtered by the repository's guard, if any)."""
        guard = self.repo.guard
        if guard is None:
            return self._search(query, None)
        compartment = guard.before_search(query.resource_type)
        result = self._search(query, compartment)
        if result.included:
            result.included = [s for s in result.included if guard.may_read(s)]
        guard.after_read([*result.matches, *result.included])
        return result

    def _compartment_where(self, rtype: str, patient_id: str) -> Any:
        """Rows of ``rtype`` in ``Patient/{patient_id}``'s compartment (the Patient itself for rtype Patient)."""
        if rtype == "Patient":
            return R.c.res_id == patient_id
        clauses = []
        for code in patient_compartment().get(rtype, ()):
            param = search_param(rtype, code)
            if param is not None:
                clauses.append(param_condition(REF, param))
        if not clauses:
            return sa.false()
        members = sa.select(REF.c.res_pk).where(REF.c.res_type == rtype, REF.c.target_type == "Patient",
                                                REF.c.target_id == patient_id, sa.or_(*clauses))
        return R.c.pk.in_(members)

    def _search(self, query: SearchQuery, compartment: str | None) -> SearchResult:
        self._check_type(query.resource_type)
        self.flush()
        rtype = query.resource_type
        base = self.repo.fhir_base
        want_total = query.total != "none" or query.summary == "count"
        page_only = query.summary == "count" or query.count == 0
        pks = driven_pks(rtype, query.criteria, base)
        if pks is not None and not query.sort and compartment is None:
            return self._search_by_index(query, pks, want_total, page_only)
        where = [R.c.pk.in_(pks)] if pks is not None else search_where(rtype, query.criteria, base)
        if compartment is not None:
            where.append(self._compartment_where(rtype, compartment))

        def count() -> int:
            return int(self.conn.execute(sa.select(sa.func.count()).select_from(R).where(*where)).scalar_one())

        # The total rides along with the page as a window count (one pass over the matches instead of two),
        # except after a cursor, whose page does not see the matches before it.
        separate_total = want_total and (page_only or query.cursor is not None)
        result = SearchResult(matches=[], total=count() if separate_total else None, warnings=list(query.warnings))
        if page_only:
            return result
        window = want_total and not separate_total
        columns = [*_read_columns(R), *([sa.func.count().over().label("total_")] if window else [])]
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
        result.matches = [_stored(r) for r in rows]
        if more:
            if query.sort:
                result.next_offset = query.offset + query.count
            else:
                result.next_cursor = rows[-1].pk
        if query.includes or query.revincludes:
            result.included = self._includes(query, rows)
        return result

    def _search_by_index(self, query: SearchQuery, pks: Any, want_total: bool, page_only: bool) -> SearchResult:
        """A search in the default order whose matches come from the index tables (see ``driven_pks``): find
        the page's keys there (with the total as a window count in the same pass), then read just those rows."""
        result = SearchResult(matches=[], warnings=list(query.warnings))
        matches = pks.subquery()
        if want_total and (page_only or query.cursor is not None):
            result.total = int(self.conn.execute(sa.select(sa.func.count()).select_from(matches)).scalar_one())
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
        rows = self.conn.execute(
            sa.select(*_read_columns(R)).where(R.c.pk.in_(page)).order_by(R.c.pk)
        ).all() if page else []
        result.matches = [_stored(r) for r in rows]
        if more:
            result.next_cursor = page[-1]
        if query.includes or query.revincludes:
            result.included = self._includes(query, rows)
        return result

    def _includes(self, query: SearchQuery, rows: list[Any]) -> list[Stored]:
        seen = {(r.res_type, r.res_id) for r in rows}
        included: list[Stored] = []
        frontier = [(r.pk, r.res_type, r.res_id) for r in rows]
        for depth in range(3):  # :iterate is followed up to three levels
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
                    sa.select(*_read_columns(R)).join(targets, sa.and_(R.c.res_type == targets.c.target_type,
                                                       R.c.res_id == targets.c.target_id))
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
                    sa.select(*_read_columns(R)).where(R.c.pk.in_(sources), R.c.deleted.is_(False))
                ).all()
            frontier = []
            for row in found:
                key = (row.res_type, row.res_id)
                if key not in seen:
                    seen.add(key)
                    included.append(_stored(row))
                    frontier.append((row.pk, row.res_type, row.res_id))
        return included

    def search_elements(self, query: SearchQuery, elements: list[str], *, limit: int | None = None
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
        self._check_type(query.resource_type)
        self.flush()
        rtype = query.resource_type
        guard = self.repo.guard
        compartment = guard.before_search(rtype) if guard is not None else None
        pks = driven_pks(rtype, query.criteria, self.repo.fhir_base)
        where = [R.c.pk.in_(pks)] if pks is not None else search_where(rtype, query.criteria, self.repo.fhir_base)
        if compartment is not None:
            where.append(self._compartment_where(rtype, compartment))
        # One JSON array of the elements per row (null where absent), so each document is parsed once.
        if self.is_postgres:
            picked = sa.cast(sa.func.jsonb_build_array(
                *[R.c.content.op("->")(sa.literal(e, sa.Text)) for e in elements]), sa.Text)
            skip = 0
        else:  # with two or more paths json_extract returns an array (https://sqlite.org/json1.html#jex)
            picked = sa.func.json_extract(R.c.content, "$.id", *[f"$.{e}" for e in elements])
            skip = 1
        order = sort_sql(rtype, query.sort) if query.sort else [R.c.pk]
        if limit is not None:
            # Pick the page's keys first, so the elements are extracted from ``limit`` documents, not from all
            # the matches that go into the sort.
            page = sa.select(R.c.pk).where(*where).order_by(*order).limit(limit).subquery()
            where = [R.c.pk.in_(sa.select(page.c.pk))]
        stmt = sa.select(R.c.res_id, R.c.version_id, R.c.last_updated, picked.label("picked")).where(*where)
        rows = self.conn.execute(stmt.order_by(*order)).all()

        def partial() -> Iterator[dict[str, Any]]:
            for row in rows:
                content = {"resourceType": rtype, "id": row.res_id}
                for name, value in zip(elements, orjson.loads(row.picked)[skip:], strict=True):
                    if value is not None:
                        content[name] = value
                if guard is not None:
                    guard.after_read([Stored(rtype, row.res_id, row.version_id, row.last_updated, False, content)])
                yield content

        return partial()

    def search_index_values(self, query: SearchQuery, tokens: list[tuple[str, str | None, str | None]] | None = None,
                            dates: list[str] | None = None) -> list[tuple[Any, ...]]:
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
            specs.append(("idx_token", self._index_param(rtype, name, "token"),
                          [*([tok.c.system == system] if system is not None else []),
                           *([tok.c.code == code] if code is not None else [])]))
        specs += [("idx_date", self._index_param(rtype, name, "date"), []) for name in dates or []]
        self.flush()
        guard = self.repo.guard
        compartment = guard.before_search(rtype) if guard is not None else None
        pks = driven_pks(rtype, query.criteria, self.repo.fhir_base)
        where = [R.c.pk.in_(pks)] if pks is not None else search_where(rtype, query.criteria, self.repo.fhir_base)
        if compartment is not None:
            where.append(self._compartment_where(rtype, compartment))

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
                stored = sorted({n for p, _ in mine for n in p.index_names})
                joined = joined.outerjoin(table, sa.and_(table.c.res_pk == R.c.pk, table.c.param.in_(stored)))
                column = table.c.code if name == "idx_token" else table.c.low
                agg = sa.func.max if name == "idx_token" else sa.func.min
                cols += [agg(sa.case((sa.and_(param_condition(table, p), *extra), column))) for p, extra in mine]
            # specs list the tokens before the dates, the order the columns were built in
            stmt = sa.select(R.c.res_id, *cols).select_from(joined).where(*where).group_by(R.c.pk, R.c.res_id)
            rows = self.conn.execute(stmt.order_by(R.c.pk)).all()
        else:
            # SQLite: one probe of the index's (res_pk, param, ...) key per match and value, no join, no grouping.
            picks = [sa.select(value(INDEX_TABLES[t])).where(INDEX_TABLES[t].c.res_pk == R.c.pk,
                                                             param_condition(INDEX_TABLES[t], p), *extra)
                     .scalar_subquery() for t, p, extra in specs]
            rows = self.conn.execute(sa.select(R.c.res_id, *picks).where(*where).order_by(R.c.pk)).all()
        # Plain tuples, fetched at once (fetchall): thousands of rows read by attribute cost more than the query.
        out = [tuple(r) for r in rows]
        if guard is not None:
            guard.after_read([Stored(rtype, str(r[0]), 0, 0, False, {"resourceType": rtype, "id": r[0]})
                              for r in out])
        return out

    @staticmethod
    def _index_param(rtype: str, name: str, ptype: str) -> SearchParam:
        param = search_param(rtype, name)
        if param is None or param.type != ptype:
            raise bad_request(f"{name} is not a {ptype} search parameter of {rtype}")
        return param

    def everything(self, patient_id: str, *, since: int | None = None, types: set[str] | None = None,
                   count: int = 1000, offset: int = 0) -> tuple[list[Stored], int]:
        """Patient/$everything: the patient, its compartment, and what those resources reference."""
        patient = self.read("Patient", patient_id)
        guard = self.repo.guard
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
        compartment = self.conn.execute(sa.select(*_read_columns(R)).where(*where).order_by(R.c.pk)).all()
        refs = self.conn.execute(
            sa.select(REF.c.target_type, REF.c.target_id)
            .where(REF.c.res_pk.in_([r.pk for r in compartment] or [-1]), REF.c.target_type.is_not(None),
                   REF.c.target_type != "Patient")
            .distinct()
        ).all()
        referenced = []
        by_type: dict[str, set[str]] = {}
        for t, i in refs:
            if not types or t in types:
                by_type.setdefault(t, set()).add(i)
        for t, ids in by_type.items():
            referenced += self.conn.execute(
                sa.select(*_read_columns(R)).where(R.c.res_type == t, R.c.res_id.in_(sorted(ids)),
                                                   R.c.deleted.is_(False))
            ).all()
        seen: set[tuple[str, str]] = set()
        out: list[Stored] = []
        if types is None or "Patient" in types:
            out.append(patient)
            seen.add(("Patient", patient_id))
        for row in [*compartment, *referenced]:
            if (row.res_type, row.res_id) not in seen:
                seen.add((row.res_type, row.res_id))
                out.append(_stored(row))
        if guard is not None:
            out = [s for s in out if guard.may_read(s)]
            guard.after_read(out[offset: offset + count])
        return out[offset: offset + count], len(out)

    def history(self, rtype: str | None = None, rid: str | None = None, *, since: int | None = None,
                count: int = 20, offset: int = 0) -> HistoryResult:
        """Versions newest first: of one resource, of a type, or of the whole server."""
        self.flush()
        if self.repo.guard is not None:
            self.repo.guard.before_history(rtype, rid)
        where = []
        if rtype is not None:
            self._check_type(rtype)
            where.append(H.c.res_type == rtype)
        if rid is not None:
            where.append(H.c.res_id == rid)
            if self._current_row(rtype or "", rid) is None:
                raise not_found(rtype or "", rid)
        if since is not None:
            where.append(H.c.last_updated >= since)
        total = self.conn.execute(sa.select(sa.func.count()).select_from(H).where(*where)).scalar_one()
        rows = self.conn.execute(
            sa.select(*_read_columns(H)).where(*where).order_by(H.c.last_updated.desc(), H.c.pk.desc())
            .offset(offset).limit(count + 1)
        ).all()
        more = len(rows) > count
        entries = [(_stored(r), r.method) for r in rows[:count]]
        guard = self.repo.guard
        if guard is not None:
            entries = [(st, m) for st, m in entries if st.content is not None and guard.may_read(st)
                       or st.content is None and guard.may_read_deleted(st)]
            guard.after_read([st for st, _ in entries if st.content is not None])
        return HistoryResult(entries, total, offset + count if more else None)

    # -- small state ---------------------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self.conn.execute(sa.select(KV.c.value).where(KV.c.key == key)).first()
        return row.value if row else None

    def set_state(self, key: str, value: str) -> None:
        self.conn.execute(KV.delete().where(KV.c.key == key))
        self.conn.execute(KV.insert().values(key=key, value=value))


_INDEX_COLUMNS = {
    "idx_token": ("param", "system", "code", "text"),
    "idx_string": ("param", "value", "exact"),
    "idx_date": ("param", "low", "high"),
    "idx_reference": ("param", "target_type", "target_id", "url"),
    "idx_number": ("param", "value"),
    "idx_quantity": ("param", "value", "system", "code", "unit"),
    "idx_uri": ("param", "value"),
}


_PV_SELECT = sa.select(PV.c.version).where(PV.c.patient_id == sa.bindparam("p"))


@cache
def _compartment_params(rtype: str) -> tuple[SearchParam, ...]:
    """The parameters that put a resource of ``rtype`` in a Patient's compartment (R4 definition)."""
    found = (search_param(rtype, code) for code in patient_compartment().get(rtype, ()))
    return tuple(p for p in found if p is not None and p.type == "reference")


@cache
def _compartment_index_names(rtype: str) -> frozenset[str]:
    return frozenset(n for p in _compartment_params(rtype) for n in p.index_names)


def compartment_patients(content: dict[str, Any], base_url: str | None = None) -> set[str]:
    """The ids of the patients in whose compartment ``content`` lies (a Patient: itself and linked ones)."""
    rtype = str(content.get("resourceType"))
    out = {str(content["id"])} if rtype == "Patient" and content.get("id") else set()
    for param in _compartment_params(rtype):
        for value in param.extract(content):
            ref = value.get("reference") if isinstance(value, dict) else value if isinstance(value, str) else None
            if ref:
                ttype, tid, _ = parse_reference(ref, base_url)
                if ttype == "Patient" and tid:
                    out.add(tid)
    return out


def _same_content(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (d.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        out = {k: v for k, v in d.items() if k != "meta"}
        if meta:
            out["meta"] = meta
        return out

    return jsonexact.same(strip(old), strip(new))


class FhirRepository:
    """Reads and writes FHIR resources; each public call is one unit of work."""

    def __init__(self, engine: sa.Engine, *, fhir_base: str | None = None, validator: Validator | None = None,
                 clock: Callable[[], int] = _now_us) -> None:
        self.engine = engine
        self.fhir_base = fhir_base
        self.validator = validator or validate_resource
        self.clock = clock
        self.guard: Guard | None = None

    def guarded(self, guard: Guard | None) -> FhirRepository:
        """This repository as seen by one caller: every read, search and write is checked by ``guard``."""
        view = copy.copy(self)
        view.guard = guard
        return view

    @contextmanager
    def unit(self, write: bool = True) -> Iterator[UnitOfWork]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{WRITE: True})
                with conn.begin():
                    uow = UnitOfWork(self, conn)
                    yield uow
                    uow.flush()
                    uow.bump_patient_versions()
        except (sa.exc.IntegrityError, psycopg.IntegrityError) as exc:
            # Two writers created the same Type/id at the same moment: the unique index refused the second.
            raise conflict("a concurrent write created the same resource; retry the request") from exc

    def create(self, resource: dict[str, Any], *, if_none_exist: str | None = None) -> WriteResult:
        with self.unit() as uow:
            return uow.create(resource, if_none_exist=if_none_exist)

    def read(self, rtype: str, rid: str) -> Stored:
        with self.unit(write=False) as uow:
            return uow.read(rtype, rid)

    def vread(self, rtype: str, rid: str, version: str) -> Stored:
        with self.unit(write=False) as uow:
            return uow.vread(rtype, rid, version)

    def update(self, rtype: str, rid: str, resource: dict[str, Any], *,
               expected_version: int | None = None) -> WriteResult:
        with self.unit() as uow:
            return uow.update(rtype, rid, resource, expected_version=expected_version)

    def patch(self, rtype: str, rid: str, operations: Any, *, expected_version: int | None = None) -> WriteResult:
        with self.unit() as uow:
            return uow.patch(rtype, rid, operations, expected_version=expected_version)

    def delete(self, rtype: str, rid: str, *, expected_version: int | None = None) -> Stored | None:
        with self.unit() as uow:
            return uow.delete(rtype, rid, expected_version=expected_version)

    def conditional_update(self, rtype: str, criteria: str, resource: dict[str, Any], *,
                           expected_version: int | None = None) -> WriteResult:
        with self.unit() as uow:
            return uow.conditional_update(rtype, criteria, resource, expected_version=expected_version)

    def conditional_delete(self, rtype: str, criteria: str) -> Stored | None:
        with self.unit() as uow:
            return uow.conditional_delete(rtype, criteria)

    def search(self, query: SearchQuery) -> SearchResult:
        with self.unit(write=False) as uow:
            return uow.search(query)

    def search_params(self, rtype: str, params: list[tuple[str, str]], **kwargs: Any) -> SearchResult:
        """Search with raw (name, value) pairs, e.g. ``[("patient", "Patient/1"), ("code", "x|y")]``."""
        return self.search(parse_search(rtype, params, **kwargs))

    def history(self, rtype: str | None = None, rid: str | None = None, **kwargs: Any) -> HistoryResult:
        with self.unit(write=False) as uow:
            return uow.history(rtype, rid, **kwargs)

    def patient_version(self, patient_id: str) -> int:
        """The patient's data version: it changes with every committed write of a resource in the patient's
        compartment (see :meth:`UnitOfWork.bump_patient_versions`). One primary-key lookup."""
        with self.engine.connect() as conn:
            row = conn.execute(_PV_SELECT, {"p": patient_id}).first()
            conn.rollback()
        return int(row[0]) if row else 0


def summarize(content: dict[str, Any], mode: str | None, elements: list[str] | None) -> dict[str, Any]:
    """Apply ``_summary`` (true/text/data) or ``_elements`` to a resource (R4 search.html#summary)."""
    if not mode and not elements:
        return content
    rtype = content.get("resourceType", "")
    keep_always = {"resourceType", "id", "meta"}
    if elements:
        wanted = keep_always | set(elements)
        out = {k: v for k, v in content.items() if k in wanted or _choice_match(k, elements)}
    elif mode == "true":
        names = summary_elements().get(rtype, frozenset())
        out = {k: v for k, v in content.items() if k in keep_always or k in names or _choice_match(k, names)}
    elif mode == "text":
        out = {k: v for k, v in content.items() if k in keep_always | {"text"}}
    elif mode == "data":
        out = {k: v for k, v in content.items() if k != "text"}
    else:
        return content
    meta = dict(out.get("meta") or {})
    tag = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
    meta["tag"] = [*meta.get("tag", []), tag]
    out["meta"] = meta
    return out


def _choice_match(key: str, names: Any) -> bool:
    return any(key.startswith(n) and len(key) > len(n) and key[len(n)].isupper() for n in names)
