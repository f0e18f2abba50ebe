"""What the store hands back: stored versions, write/search/history results, and the row helpers behind them."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
import sqlalchemy as sa

from . import jsonexact
from .tables import INDEX_TABLES, REFERENCE_INDEX, HistoryRow, KeyValue, PatientVersion, ResourceRow

__all__ = [
    "Stored",
    "WriteResult",
    "SearchResult",
    "HistoryResult",
    "iso_instant",
    "now_us",
    "read_columns",
    "select_versions",
    "element_picker",
    "partial_content",
    "stored",
    "stored_parsed",
    "R",
    "H",
    "KV",
    "PV",
    "REF",
    "INDEX_COLUMNS",
]

R = ResourceRow.__table__  # type: ignore[attr-defined]
H = HistoryRow.__table__  # type: ignore[attr-defined]
KV = KeyValue.__table__  # type: ignore[attr-defined]
PV = PatientVersion.__table__  # type: ignore[attr-defined]
REF = REFERENCE_INDEX

#: The value columns of each index table (after ``res_pk`` and ``res_type``), in the order the indexer emits them.
INDEX_COLUMNS = {
    name: tuple(c.name for c in table.columns if c.name not in {"res_pk", "res_type"})
    for name, table in INDEX_TABLES.items()
}


def new_id() -> str:
    """A version 7 UUID (RFC 9562 §5.7): the id of every resource created without one (twice per Observation of a
    transaction: its own, and its AuditEvent's).

    The first 60 bits are the creation time, in milliseconds and 1/4096 of a millisecond (§6.2, method 3), kept
    increasing within a thread; the last 62 are random. Ids made one after another therefore sort next to each
    other, so the unique ``(type, id)`` indexes of ``resource`` and ``resource_history``, and the reference
    index entries of whatever points at a new resource (an AuditEvent's ``entity``), grow at their right edge
    instead of at random places: a commit writes about a third fewer pages (docs/benchmarks.md). What the id
    tells is when the resource was created, which its first version's ``meta.lastUpdated`` tells anyone who can
    read it; the 62 random bits keep it unguessable."""
    now = time.time_ns()
    stamp = now // 1_000_000 << 12 | now % 1_000_000 * 4096 // 1_000_000
    if stamp <= _last_stamp[0]:  # the clock did not move on (or went back): keep the order
        stamp = _last_stamp[0] + 1
    _last_stamp[0] = stamp  # two threads at once may take the same stamp; the random bits still differ
    h = f"{stamp << 64 | int.from_bytes(os.urandom(8)) >> 2 | _VARIANT_BITS:031x}"
    return f"{h[:8]}-{h[8:12]}-7{h[12:15]}-{h[15:19]}-{h[19:]}"


_last_stamp = [0]
#: The variant (RFC 9562 §4.1: binary 10) in the top bits of the random 64.
_VARIANT_BITS = 1 << 63


def now_us() -> int:
    return time.time_ns() // 1000


def iso_instant(us: int) -> str:
    """A FHIR instant for µs since the epoch (``2026-12-06T22:00:00.123456Z``). Every write stamps one, and writes
    come many to a second: the date and time to the second are formatted once per second."""
    seconds, micro = divmod(us, 1_000_000)
    last = _last_second
    if last[0] != seconds:
        last = _remember_second(seconds)
    return f"{last[1]}.{micro:06d}Z"


_last_second: tuple[int | None, str] = (None, "")


def _remember_second(seconds: int) -> tuple[int, str]:
    global _last_second
    _last_second = (seconds, datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat())
    return _last_second


class Stored:
    """A stored resource version. Read paths keep the JSON text as the database returned it (``raw``) and
    parse it only when ``content`` is used, so a search page or a read can be sent on without a parse and
    re-serialisation (see :meth:`json`)."""

    __slots__ = ("resource_type", "id", "version_id", "last_updated", "deleted", "_content", "raw")

    def __init__(
        self,
        resource_type: str,
        id: str,
        version_id: int,
        last_updated: int,
        deleted: bool,
        content: dict[str, Any] | None = None,
        raw: str | None = None,
    ) -> None:
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


def stored(row: Any) -> Stored:
    """A Stored from a row selected with :func:`read_columns` (content as text). The columns are taken by
    position: a Row's attribute lookup by name costs about 30 times a slice, which showed in every large page
    (a Bulk Data export reads a million rows through here)."""
    _, rtype, rid, version, last_updated, deleted, raw = row[:7]
    return Stored(rtype, rid, version, last_updated, deleted, raw=raw)


def stored_parsed(row: Any) -> Stored:
    """A Stored from a row whose JSON column the engine already parsed."""
    return Stored(row.res_type, row.res_id, row.version_id, row.last_updated, row.deleted, row.content)


def read_columns(table: sa.Table) -> list[Any]:
    """The columns read paths select: the JSON document as text, not parsed (JSONB prints as text too). Keep the
    first seven in this order: :func:`stored` takes them by position."""
    return [
        table.c.pk,
        table.c.res_type,
        table.c.res_id,
        table.c.version_id,
        table.c.last_updated,
        table.c.deleted,
        sa.cast(table.c.content, sa.Text).label("content"),
        *([table.c.method] if "method" in table.c else []),
    ]


#: ``resource_history`` beside the ``resource`` row of the same version: a history row leaves the current version's
#: JSON to that row (written once; ``UnitOfWork.keep_version`` copies it back before it is replaced).
_VERSIONS = H.outerjoin(
    R, sa.and_(R.c.res_type == H.c.res_type, R.c.res_id == H.c.res_id, R.c.version_id == H.c.version_id)
)


def select_versions() -> sa.Select[Any]:
    """``resource_history``'s rows as :func:`read_columns` selects them (for :func:`stored`), each with its
    version's JSON from its own row or, for the current version, from the ``resource`` row; add the ``where``."""
    columns = read_columns(H)
    columns[6] = sa.cast(sa.func.coalesce(H.c.content, R.c.content), sa.Text).label("content")
    return sa.select(*columns).select_from(_VERSIONS)


def element_picker(names: Sequence[str], postgres: bool) -> tuple[Any, int]:
    """A column expression that picks the top-level elements ``names`` of ``R.content`` in the database, as one
    JSON array per row (null where absent), so that each partial document is parsed once; and how many leading
    items of that array to skip. The names must already be checked (letters and digits: they go into paths)."""
    if postgres:
        items = [R.c.content.op("->")(sa.literal(name, sa.Text)) for name in names]
        return sa.cast(sa.func.jsonb_build_array(*items), sa.Text), 0
    # with two or more paths json_extract returns an array (https://sqlite.org/json1.html#jex)
    return sa.func.json_extract(R.c.content, "$.id", *[f"$.{name}" for name in names]), 1


def partial_content(
    rtype: str, rid: str, names: Sequence[str], picked: str | bytes, skip: int
) -> dict[str, Any]:
    """The partial resource of one row picked with :func:`element_picker`: ``resourceType``, ``id`` and the
    elements present."""
    content: dict[str, Any] = {"resourceType": rtype, "id": rid}
    for name, value in zip(names, orjson.loads(picked)[skip:], strict=True):
        if value is not None:
            content[name] = value
    return content
