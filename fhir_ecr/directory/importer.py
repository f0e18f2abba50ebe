"""Import an HSDS directory into the store as Organizations, Locations and HealthcareServices (docs/community.md).

* **Stable ids.** Every resource's id is derived from its HSDS id (:func:`mappings.community.fhir_id`), so the
  same directory imported twice names the same resources.
* **Idempotent.** Each batch finds what already exists with one key lookup per type (``UnitOfWork.read_many``:
  a statement per 1,000 ids, not a search, whose ``ORDER BY`` key let PostgreSQL walk the whole type), creates what
  is absent, updates what changed (a deleted one is written again) and leaves the rest alone: a second import of
  the same input writes no new version, and issues only those lookups and the retirement scan.
* **Removed entries.** A directory is imported under a name (``meta.source`` ``urn:mecr:directory:{name}``); an
  entry that an earlier import of that name wrote and this one does not have is *retired*, not deleted
  (``active`` false, Location ``status`` inactive), so referrals that name it stay valid.
* **Bulk writes.** Batches of :data:`BATCH` resources, each one unit of work (one transaction, written with
  the store's bulk insert path); Organizations first, then Locations, then HealthcareServices, so every
  reference points at a resource already stored (the store's per-reference checks are skipped, as for any bulk
  load in dependency order). The store's validator runs once per *shape* of resource (the
  mapping writes codes and times it has checked, so resources of one shape are valid alike).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mappings.community import Directory, directory_to_fhir
from mappings.community.systems import DIRECTORY_TAG
from mappings.errors import SkipLog

from ..store import jsonexact
from ..store.records import Stored
from ..store.repository import FhirRepository, UnitOfWork
from ..store.search import parse_search

__all__ = ["BATCH", "DirectoryImporter", "DirectorySummary", "source_uri"]

BATCH = 2000
_TYPES = ("Organization", "Location", "HealthcareService")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def source_uri(name: str) -> str:
    """``meta.source`` of the resources of the directory imported as ``name``."""
    if not _NAME.match(name):
        raise ValueError(f"a directory name is 1-63 lower-case letters, digits and hyphens, not {name!r}")
    return f"urn:mecr:directory:{name}"


@dataclass
class DirectorySummary:
    """What an import did, per FHIR type and in total."""

    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    orphans: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            k: dict(sorted(getattr(self, k).items())) for k in ("created", "updated", "unchanged", "removed")
        } | {"ignored": dict(self.ignored.most_common()), "orphans": self.orphans}

    def text(self) -> str:
        """One line per count, for people."""
        lines = []
        for label in ("created", "updated", "unchanged", "removed"):
            counts: Counter[str] = getattr(self, label)
            detail = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()) if n)
            lines.append(f"{label}: {sum(counts.values())}" + (f" ({detail})" if detail else ""))
        if self.orphans:
            lines.append(f"rows whose parent is in no table (not imported): {self.orphans}")
        for reason, n in self.ignored.most_common():
            lines.append(f"left out ({n}): {reason}")
        return "\n".join(lines)


def _shape(resource: dict[str, Any]) -> Any:
    """The structure of a mapped resource: its elements and, for each, the keys of its members (two levels)."""
    parts: list[tuple[str, Any]] = []
    for key, value in resource.items():
        if isinstance(value, list):
            parts.append((key, frozenset(tuple(v) if isinstance(v, dict) else type(v) for v in value)))
        elif isinstance(value, dict):
            parts.append((key, tuple(value)))
        else:
            parts.append((key, type(value)))
    return tuple(parts)


def _same(old: Stored, new: dict[str, Any]) -> bool:
    content = dict(old.content or {})
    meta = {
        k: v for k, v in (content.pop("meta", None) or {}).items() if k not in ("versionId", "lastUpdated")
    }
    mine = dict(new)
    new_meta = mine.pop("meta", None) or {}
    return meta == new_meta and jsonexact.same(content, mine)


class DirectoryImporter:
    """Writes directories into ``repo`` (an unguarded repository: the CLI and the demo loader)."""

    def __init__(self, repo: FhirRepository, *, batch: int = BATCH) -> None:
        # Every reference the mapping writes names a resource of the same import, written in an earlier batch
        # (or earlier in the same one): the bulk-load case for which the store's reference checks can be off
        # (fhir_ecr/store/references.py). A reference to an entry the directory does not hold is never written.
        self.repo = copy.copy(repo)
        self.repo.enforce_references = False
        self.batch = batch
        self._validated: set[Any] = set()

    def import_directory(
        self,
        directory: Directory,
        *,
        name: str,
        remove_missing: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> DirectorySummary:
        """Write ``directory`` as the directory ``name``; ``progress(n)`` is called as n resources are done."""
        source = source_uri(name)
        log = SkipLog()
        resources = directory_to_fhir(directory, source=source, log=log)
        summary = DirectorySummary(ignored=Counter(log.ignored))
        for i in range(0, len(resources), self.batch):
            chunk = resources[i : i + self.batch]
            with self.repo.unit() as uow:
                self._write(uow, chunk, summary)
            if progress is not None:
                progress(len(chunk))
        if remove_missing:
            keep = {(r["resourceType"], r["id"]) for r in resources}
            self._retire(source, keep, summary)
        return summary

    def _existing(self, uow: UnitOfWork, rtype: str, ids: Sequence[str]) -> dict[str, Stored]:
        """What is stored under ``ids`` (deleted resources included): key lookups, one per 1,000 ids."""
        return uow.read_many(rtype, ids)

    def _validate(self, resource: dict[str, Any]) -> None:
        shape = _shape(resource)
        if shape not in self._validated:
            self.repo.validator(resource)
            self._validated.add(shape)

    def _write(self, uow: UnitOfWork, resources: list[dict[str, Any]], summary: DirectorySummary) -> None:
        by_type: dict[str, list[dict[str, Any]]] = {}
        for r in resources:
            by_type.setdefault(r["resourceType"], []).append(r)
        for rtype in sorted(by_type, key=lambda t: _TYPES.index(t) if t in _TYPES else 9):
            items = by_type[rtype]
            existing = self._existing(uow, rtype, [r["id"] for r in items])
            for resource in items:
                old = existing.get(resource["id"])
                if old is not None and not old.deleted and _same(old, resource):
                    summary.unchanged[rtype] += 1
                    continue
                self._validate(resource)
                if old is None:
                    uow.create(resource, resource_id=resource["id"], method="PUT", validated=True)
                    summary.created[rtype] += 1
                else:
                    uow.update(rtype, resource["id"], resource, validated=True)
                    summary.updated[rtype] += 1

    def _retire(self, source: str, keep: set[tuple[str, str]], summary: DirectorySummary) -> None:
        """Mark what an earlier import of this directory wrote, and this one did not, as no longer offered."""
        for rtype in reversed(_TYPES):
            stale = [s for s in self._of_source(rtype, source) if (rtype, s.id) not in keep]
            for i in range(0, len(stale), self.batch):
                with self.repo.unit() as uow:
                    for stored in stale[i : i + self.batch]:
                        content = dict(stored.content or {})
                        if rtype == "Location":
                            if content.get("status") == "inactive":
                                continue
                            content["status"] = "inactive"
                        else:
                            if content.get("active") is False:
                                continue
                            content["active"] = False
                        uow.update(rtype, stored.id, content, validated=True)
                        summary.removed[rtype] += 1

    def _of_source(self, rtype: str, source: str) -> Iterable[Stored]:
        cursor: int | None = None
        while True:
            query = parse_search(
                rtype,
                [("_source", source), ("_tag", f"{DIRECTORY_TAG[0]}|{DIRECTORY_TAG[1]}")],
                default_count=1000,
                max_count=1000,
            )
            query.total = "none"
            query.cursor = cursor
            result = self.repo.search(query)
            yield from result.matches
            if result.next_cursor is None:
                return
            cursor = result.next_cursor
