"""Writing the importer's batches: one unit of work each, idempotent and validated once per shape.

Each Observation's id is its identifier value, so a batch finds what is stored with key lookups
(:meth:`UnitOfWork.read_many`), creates what is absent, updates what changed and leaves the rest alone
(``docs/wearables.md``). A stored day summary is not overwritten by a lower-priority source
(:meth:`BatchWriter.stored_wins`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from mappings.wearables import DailySummary, DedupRule, Source, device_id

from ..outcomes import Conflict
from ..store.indexer import IndexTemplate
from ..store.repository import FhirRepository, Stored, UnitOfWork

__all__ = ["Batch", "BatchWriter", "IMPORT_CACHE_KIB", "same_content"]

#: SQLite page cache of a batch's connection, KiB. The store's own (``SQLITE_CACHE_KIB``: 32 MiB, 64 MiB when this
#: was measured) serves reads; an import writes mostly at the ends of its indexes and ran as fast with a quarter
#: of 64 MiB (docs/benchmarks.md), and the 48 MiB spared held batches four times as large (fewer commits) within
#: the same peak RSS.
IMPORT_CACHE_KIB: Final = 16384

#: What a mapped Observation of one shape differs in from the next (``reading_to_observation``,
#: ``summary_to_observation``): the rest (status, category, code, subject, device) is indexed once per shape
#: (:class:`~fhir_ecr.store.indexer.IndexTemplate`, which gives :func:`~fhir_ecr.store.indexer.index_resource`'s
#: rows whatever it is given).
_PER_READING: Final = (
    "id",
    "meta",
    "identifier",
    "effectiveDateTime",
    "effectivePeriod",
    "valueQuantity",
    "component",
    "note",
    "extension",
)


@dataclass
class Batch:
    """What one batch did: counts by outcome, and the version of every resource it stored or found."""

    counts: Counter[str] = field(default_factory=Counter)
    versions: dict[str, int] = field(default_factory=dict)


def _shape(resource: dict[str, Any]) -> Any:
    """The structure of a mapped resource: its elements two levels deep, list lengths, and its codes."""
    parts: list[Any] = []
    for key, value in resource.items():
        if isinstance(value, dict):
            parts.append(
                (
                    key,
                    tuple(
                        (k, type(v), len(v) if isinstance(v, (list, dict)) else 0) for k, v in value.items()
                    ),
                )
            )
        elif isinstance(value, list):
            parts.append(
                (key, len(value), tuple(tuple(v) if isinstance(v, dict) else type(v) for v in value))
            )
        else:
            parts.append((key, type(value)))
    codes = tuple((c.get("system"), c.get("code")) for c in (resource.get("code") or {}).get("coding", []))
    return tuple(parts), codes


def same_content(stored: Stored, new: Mapping[str, Any]) -> bool:
    old = stored.content or {}
    for key in set(old) | set(new):
        if key == "meta":
            a = {k: v for k, v in (old.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
            b = {k: v for k, v in (new.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
            if a != b:
                return False
        elif key != "id" and old.get(key) != new.get(key):
            return False
    return True


@contextmanager
def _page_cache(uow: UnitOfWork, kib: int) -> Iterator[None]:
    """On SQLite, bound the page cache of the unit's connection to ``kib`` while the block runs and its creates
    are flushed (the bulk of the unit's writing), then give the (pooled) connection its own setting back;
    PostgreSQL has no per-connection cache to bound."""
    if uow.is_postgres:
        yield
        return
    conn = uow.conn
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
        uow.flush()
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


class _Committer:
    """Runs one COMMIT at a time on a thread of its own (:meth:`BatchWriter.committing_aside`)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None

    def __call__(self, commit: Callable[[], None]) -> None:
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="mecr-import-commit")
        self._running = self._pool.submit(commit)

    def wait(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


class BatchWriter:
    """Runs and writes the importer's batches against ``repo``; ``rule`` ranks sources for day summaries.

    The importer's one collaborator for writing: a test that needs an import to stop halfway (as a crash
    would) passes a writer whose :meth:`run` fails after some batches."""

    def __init__(self, repo: FhirRepository, rule: DedupRule) -> None:
        self.repo = repo
        self.rule = rule
        self._validated: set[Any] = set()
        self._templates: dict[Any, IndexTemplate] = {}
        self._committer: _Committer | None = None

    @contextmanager
    def committing_aside(self) -> Iterator[None]:
        """While the block runs, each batch's COMMIT runs on a thread of its own while the importer reads and maps
        the next batch (the COMMIT, mostly writing pages, leaves the interpreter free); :meth:`settle` waits for
        it, and so does the next batch, before anything else touches the store. Whatever happens, the last
        COMMIT has ended when the block does. Each batch is still one transaction, committed before the next
        begins, so what is stored, in what order, is what committing in line stores (docs/wearables.md)."""
        committer = _Committer()
        self._committer = committer
        try:
            yield
        finally:
            self._committer = None
            committer.close()

    def settle(self) -> None:
        """Wait until the last batch's COMMIT has ended; raise what it raised. Call before touching the store."""
        if self._committer is not None:
            self._committer.wait()

    def run(self, write: Callable[[UnitOfWork, bool], Batch]) -> Batch:
        """Run a batch in one unit of work; after a 409 (a concurrent import created one of its resources) run
        it once more, writing absent resources with update semantics. Inside :meth:`committing_aside` the
        COMMIT is left running when this returns."""
        self.settle()
        committer = self._committer
        try:
            with self.repo.unit(committer=committer) as uow, _page_cache(uow, IMPORT_CACHE_KIB):
                return write(uow, False)
        except Conflict:
            with self.repo.unit(committer=committer) as uow, _page_cache(uow, IMPORT_CACHE_KIB):
                return write(uow, True)

    def existing(self, uow: UnitOfWork, rtype: str, ids: Sequence[str]) -> dict[str, Stored]:
        """What is stored under ``ids``, deleted resources included (``Stored.deleted``): key lookups on the
        ``(type, id)`` index, one per 1,000 ids, whatever the size of the store."""
        return uow.read_many(rtype, ids)

    def write_devices(self, uow: UnitOfWork, devices: list[dict[str, Any]]) -> None:
        existing = self.existing(uow, "Device", [d["id"] for d in devices])
        for device in devices:
            found = existing.get(device["id"])
            if found is None or found.deleted:
                uow.update("Device", device["id"], device)

    def upsert(
        self,
        uow: UnitOfWork,
        resources: list[dict[str, Any]],
        batch: Batch,
        retry: bool,
        existing: dict[str, Stored] | None = None,
    ) -> list[dict[str, Any]]:
        counts, versions = batch.counts, batch.versions
        if existing is None:
            existing = self.existing(uow, "Observation", [r["id"] for r in resources])
        out = []
        seen: set[str] = set()
        for resource in resources:
            rid = resource["id"]
            if rid in seen:  # the same reading twice in one batch (an exact duplicate record)
                continue
            seen.add(rid)
            old = existing.get(rid)
            if old is None or old.deleted:  # a deleted reading is written again (a new version of its id)
                shape = self.validate(resource)
                if retry or old is not None:
                    result = uow.update("Observation", rid, resource, validated=True)
                else:
                    template = self._templates.get(shape)
                    if template is None:
                        template = self._templates[shape] = IndexTemplate(_PER_READING, self.repo.fhir_base)
                    result = uow.create(
                        resource, resource_id=rid, method="PUT", validated=True, template=template
                    )
                counts["created"] += 1
                versions[rid] = result.stored.version_id
                out.append(result.stored.content or resource)
            elif same_content(old, resource):
                counts["unchanged"] += 1
                versions[rid] = old.version_id
                out.append(resource)
            else:
                self.validate(resource)
                result = uow.update("Observation", rid, resource, validated=True)
                counts["updated"] += 1
                versions[rid] = result.stored.version_id
                out.append(result.stored.content or resource)
        return out

    def validate(self, resource: dict[str, Any]) -> Any:
        """The repository's validator, run once per shape of resource per importer.

        The mapper writes every Observation of one shape (the same elements two levels deep, the same list
        lengths, the same codes) from the same code path: codes and units are constants, dates come from one
        formatter and values passed the plausibility limits. Validating one resource per shape keeps every
        shape checked while making structural validation (about 1 ms a resource) a fixed cost, not one that
        grows with the export. Returns the shape, which also keys the shape's index template.
        """
        shape = _shape(resource)
        if shape not in self._validated:
            self.repo.validator(resource)
            self._validated.add(shape)
        return shape

    def stored_wins(self, uow: UnitOfWork, old: Stored, new: DailySummary) -> bool:
        """True when the stored summary comes from a source the rule prefers to the new one's."""
        content = old.content or {}
        ref = str((content.get("device") or {}).get("reference") or "")
        old_device = ref.removeprefix("Device/")
        if not old_device or old_device == device_id(new.source):
            return False
        found = self.existing(uow, "Device", [old_device]).get(old_device)
        ident = (
            next(
                (
                    i.get("value")
                    for i in ((found.content or {}).get("identifier") or [])
                    if isinstance(i, dict)
                ),
                None,
            )
            if found
            else None
        )
        if not isinstance(ident, str) or ident.count("|") != 2:
            return False
        vendor, name, device = ident.split("|")
        old_source = Source(vendor, name, device or None)
        rule = self.rule
        old_rank, new_rank = rule.rank(new.metric, old_source), rule.rank(new.metric, new.source)
        old_value = (content.get("valueQuantity") or {}).get("value")
        if old_rank != new_rank:
            return old_rank < new_rank
        return isinstance(old_value, (int, float)) and old_value > new.value
