"""Writes inside a unit of work: create, update (and update-as-create), conditional update/delete, JSON Patch,
delete. ``UnitOfWork`` — the whole unit, with the searches and reads below it — is defined here.

Every write authorizes before it reads or reveals anything: the scope check, then the target's visibility (a
resource the caller may not see answers 404, exactly as one that does not exist; a JSON Patch is not applied,
and its ``test`` operations not evaluated, before that), then ``If-Match`` (so a version number never leaks), then
the guard's check of the new content (compartment, identity rules). A confined caller (a patient) may create only
with server-assigned ids: ``PUT`` to an id they cannot see answers 404 whether or not it exists
(https://hl7.org/fhir/R4/http.html#upsert lets a server refuse update-as-create).
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from ..outcomes import FhirError, bad_request, conflict, gone, issue, not_found, precondition_failed
from . import jsonexact
from .indexer import IndexTemplate
from .reads import UnitReads
from .records import H, R, Stored, WriteResult, iso_instant, new_id, stored_parsed
from .references import MAX_CASCADE
from .validation_pool import DeferredValidation

__all__ = ["UnitOfWork", "same_content"]


def same_content(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Is ``new`` what ``old`` (a stored version) holds, ``meta.versionId`` and ``meta.lastUpdated`` aside: an
    update that would change nothing?"""
    if old is None:
        return False

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (d.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        out = {k: v for k, v in d.items() if k != "meta"}
        if meta:
            out["meta"] = meta
        return out

    return jsonexact.same(strip(old), strip(new))


class UnitOfWork(UnitReads):
    """A database transaction over the FHIR store. Obtain one from ``FhirRepository.unit``."""

    #: Resources of this unit validated in another process (a large transaction: :mod:`.validation_pool`);
    #: whoever sets it settles it before the unit ends.
    deferred: DeferredValidation | None = None

    def prepare(self, resource: dict[str, Any], resource_id: str | None = None) -> dict[str, Any]:
        """Validate ``resource`` (or leave it to :attr:`deferred`) and return the copy that would be stored (id
        assigned, meta not yet set)."""
        if not isinstance(resource, dict):
            raise bad_request("a resource must be a JSON object")
        if self.deferred is None or not self.deferred.take(resource):
            self.repo.validator(resource)
        content = dict(resource)
        if resource_id is not None:
            content["id"] = resource_id
        return content

    def create(
        self,
        resource: dict[str, Any],
        *,
        resource_id: str | None = None,
        validated: bool = False,
        if_none_exist: str | None = None,
        method: str = "POST",
        template: IndexTemplate | None = None,
    ) -> WriteResult:
        """Create a resource (server-assigned id unless ``resource_id``); conditional with ``if_none_exist``.
        ``template``: index it with this :class:`~.indexer.IndexTemplate` (many resources alike: the same rows)."""
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(rtype, str):
            self._require(rtype, "c")
        if if_none_exist is not None and isinstance(rtype, str):
            existing = self.match_conditional(rtype, if_none_exist)
            if existing is not None:
                return WriteResult(existing, created=False, changed=False)
        rid = resource_id or new_id()
        content = dict(resource) if validated else self.prepare(resource)
        content["id"] = rid
        rtype = content["resourceType"]
        if self.guard is not None:
            self.guard.check_write("c", None, content)
        if (rtype, rid) in self._pending_keys:
            raise conflict(f"{rtype}/{rid} is created twice in one transaction")
        now = self.repo.clock()
        content["meta"] = {**(content.get("meta") or {}), "versionId": "1", "lastUpdated": iso_instant(now)}
        rows, refs = self._index_rows(content) if template is None else template.index(content)
        self._touch_rows(rtype, rid, rows)
        self._note_references(content, refs)
        self._note_change(rtype, rid, 1, content, rows)
        self._pending.append((content, method, rows, now))
        self._pending_keys.add((rtype, rid))
        return WriteResult(Stored(rtype, rid, 1, now, False, content), created=True)

    def update(
        self,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        *,
        expected_version: int | None = None,
        validated: bool = False,
        server_chosen_id: bool = False,
    ) -> WriteResult:
        """Update (or create with this id); ``expected_version`` is If-Match. Unchanged content is a no-op.
        ``server_chosen_id``: the id was made up by mECR (a conditional update that matched nothing), so even a
        confined caller may create with it."""
        self.flush()
        if not isinstance(resource, dict):
            raise bad_request("a resource must be a JSON object")
        if resource.get("resourceType") != rtype:
            raise FhirError(issue("invalid", f"resourceType must be {rtype}", expression="resourceType"), 400)
        if resource.get("id") != rid:
            raise FhirError(
                issue(
                    "invalid", f"the resource id must be {rid!r}, the id in the URL", expression=f"{rtype}.id"
                ),
                400,
            )
        self._check_type(rtype)
        conf = self.confinement()
        if conf is not None:  # the letter must not depend on whether the resource exists
            self._require(rtype, "c" if server_chosen_id else "u")
        row = self._current_row(rtype, rid, lock=True)
        if conf is None:
            self._require(rtype, "u" if row is not None and not row.deleted else "c")
        if row is not None or not server_chosen_id:
            if row is None and conf is None:
                if expected_version is not None:  # If-Match on a resource that does not exist
                    raise not_found(rtype, rid)
            else:
                self._gate(rtype, rid, row, "u")
        content = resource if validated else self.prepare(resource)
        if row is None:
            result = self.create(content, resource_id=rid, validated=True, method="PUT")
            self.flush()
            return result
        if expected_version is not None and row.version_id != expected_version:
            raise precondition_failed(
                f"{rtype}/{rid} is at version {row.version_id}, not {expected_version} (If-Match)"
            )
        if self.guard is not None:
            self.guard.check_write("c" if row.deleted else "u", None if row.deleted else row.content, content)
        if not row.deleted and same_content(row.content, content):
            return WriteResult(stored_parsed(row), created=False, changed=False)
        return self._write_version(row, content, "PUT", created=row.deleted)

    def _write_version(self, row: Any, content: dict[str, Any], method: str, created: bool) -> WriteResult:
        now = max(self.repo.clock(), row.last_updated + 1)
        version = row.version_id + 1
        content = dict(content)
        content["meta"] = {
            **(content.get("meta") or {}),
            "versionId": str(version),
            "lastUpdated": iso_instant(now),
        }
        self.keep_version(row)
        done = self.conn.execute(
            R.update()
            .where(R.c.pk == row.pk, R.c.version_id == row.version_id)
            .values(version_id=version, last_updated=now, deleted=False, content=content)
        )
        if done.rowcount != 1:
            raise conflict(f"{row.res_type}/{row.res_id} was changed by another writer; retry")
        self.conn.execute(
            H.insert().values(
                res_type=row.res_type,
                res_id=row.res_id,
                version_id=version,
                last_updated=now,
                method=method,
                deleted=False,
            )
        )
        self._delete_index_rows(row.pk)
        rows, refs = self._index_rows(content)
        self._note_references(content, refs, row.content)
        self._touch_content(row.content)
        self._touch_rows(row.res_type, row.res_id, rows)
        self._note_change(row.res_type, row.res_id, version, content, rows, row.pk)
        self._insert_index_rows([(row.pk, row.res_type, rows)])
        return WriteResult(Stored(row.res_type, row.res_id, version, now, False, content), created=created)

    def conditional_update(
        self, rtype: str, criteria: str, resource: dict[str, Any], *, expected_version: int | None = None
    ) -> WriteResult:
        """Update the one resource matching ``criteria``, or create it when none does (R4 http.html#cond-update)."""
        existing = self.match_conditional(rtype, criteria)
        body_id = resource.get("id") if isinstance(resource, dict) else None
        if existing is not None and body_id and body_id != existing.id:
            raise bad_request(
                f"the resource id {body_id!r} is not that of the matching resource {existing.id!r}"
            )
        rid = existing.id if existing is not None else (body_id or new_id())
        return self.update(
            rtype,
            rid,
            {**resource, "id": rid},
            expected_version=expected_version,
            server_chosen_id=existing is None and not body_id,
        )

    def conditional_delete(self, rtype: str, criteria: str, *, cascade: bool = False) -> Stored | None:
        """Delete the one resource matching ``criteria`` (412 when several match; nothing when none does)."""
        self._require(rtype, "d")
        existing = self.match_conditional(rtype, criteria)
        return self.delete(rtype, existing.id, cascade=cascade) if existing is not None else None

    def patch(
        self, rtype: str, rid: str, operations: Any, *, expected_version: int | None = None
    ) -> WriteResult:
        """Apply a JSON Patch (RFC 6902) to the current version; the result must still be valid. The caller's
        right to read and update the target is checked before the patch (and its ``test`` operations) runs."""
        self._check_type(rtype)
        self._require(rtype, "r", "u")
        self.flush()
        row = self._current_row(rtype, rid, lock=True)
        self._gate(rtype, rid, row, "u")
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
        if not isinstance(patched, dict) or patched.get("resourceType") != rtype or patched.get("id") != rid:
            raise FhirError(issue("processing", "a patch must not change resourceType or id"), 422)
        content = self.prepare(patched)
        if self.guard is not None:
            self.guard.check_write("u", row.content, content)
        if same_content(row.content, content):
            return WriteResult(stored_parsed(row), created=False, changed=False)
        return self._write_version(row, content, "PATCH", created=False)

    def delete(
        self,
        rtype: str,
        rid: str,
        *,
        expected_version: int | None = None,
        cascade: bool = False,
        _budget: list[int] | None = None,
    ) -> Stored | None:
        """Delete a resource (a new, deleted version). Deleting a deleted resource changes nothing. A resource
        others refer to is not deleted (409 when the unit ends) unless ``cascade``: then its referrers are deleted
        first, recursively (each one as the caller may), at most ``MAX_CASCADE`` in all."""
        self._check_type(rtype)
        self._require(rtype, "d")
        self.flush()
        row = self._current_row(rtype, rid, lock=True)
        self._gate(rtype, rid, row, "d")
        if expected_version is not None and row.version_id != expected_version:
            raise precondition_failed(
                f"{rtype}/{rid} is at version {row.version_id}, not {expected_version} (If-Match)"
            )
        if row.deleted:
            return None
        if self.guard is not None:
            self.guard.check_write("d", row.content, None)
        if cascade and self.repo.enforce_references:
            budget = [MAX_CASCADE] if _budget is None else _budget
            for t, i in self.referrers(rtype, rid, limit=MAX_CASCADE + 1):
                budget[0] -= 1
                if budget[0] < 0:
                    raise conflict(
                        f"deleting {rtype}/{rid} would cascade to more than {MAX_CASCADE} resources"
                    )
                self.delete(t, i, cascade=True, _budget=budget)
        now = max(self.repo.clock(), row.last_updated + 1)
        version = row.version_id + 1
        self.keep_version(row)
        done = self.conn.execute(
            R.update()
            .where(R.c.pk == row.pk, R.c.version_id == row.version_id)
            .values(version_id=version, last_updated=now, deleted=True, content=None)
        )
        if done.rowcount != 1:
            raise conflict(f"{rtype}/{rid} was changed by another writer; retry")
        self.conn.execute(
            H.insert().values(
                res_type=rtype,
                res_id=rid,
                version_id=version,
                last_updated=now,
                method="DELETE",
                deleted=True,
                content=None,
            )
        )
        self._delete_index_rows(row.pk)
        self._touch_content(row.content)
        self._note_change(rtype, rid, version, None, None, row.pk)
        if self.repo.enforce_references:
            self._deleted.append((rtype, rid))
        return Stored(rtype, rid, version, now, True, None)
