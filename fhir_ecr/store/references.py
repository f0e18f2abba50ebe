"""Referential integrity, as HAPI FHIR enforces it by default: a write may not name a resource that is not on this
server, and a resource others refer to is not deleted from under them.

- **Dangling references.** Each create or update records the local references of what it writes (``Type/id`` or
  this server's own absolute URL; not ``#contained``, ``urn:``, canonical or foreign URLs). When the unit of work
  ends — after every entry of a transaction was written, so a transaction's entries resolve to each other in any
  order — each target must exist and not be deleted, else the unit fails with 422 and one issue per dangling
  reference, located by its FHIRPath (``Observation.subject``). For a caller confined to a patient's record a
  target they may not see counts as missing: the answer must not tell them it exists.
- **Deletes.** Deleting a resource that current resources refer to fails with 409 (naming the referrers the caller
  may see), unless the request asks ``_cascade=delete`` and the caller may delete every referrer (then they are
  deleted first, recursively, up to :data:`MAX_CASCADE`). AuditEvents do not hold a resource in place: the trail
  refers to what was, deleted or not.

``MECR_ENFORCE_REFERENCES=false`` turns both off (for bulk loads in dependency order).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .indexer import parse_reference

__all__ = ["local_references", "MAX_CASCADE", "NOT_HOLDING"]

#: Most resources one ``_cascade=delete`` removes.
MAX_CASCADE = 1000

#: Types whose references do not keep their target from being deleted.
NOT_HOLDING = frozenset({"AuditEvent"})

_SKIP = frozenset({"meta", "text", "id", "resourceType", "contained"})


def local_references(resource: dict[str, Any], base_url: str | None = None) -> Iterator[tuple[str, str, str]]:
    """``(FHIRPath location, type, id)`` of each reference in ``resource`` to a resource on this server, in
    document order."""
    root = str(resource.get("resourceType"))
    out: list[tuple[str, str, str]] = []
    for k, v in resource.items():
        if k not in _SKIP and isinstance(v, (dict, list)):
            _walk(v, (root, k), base_url, out)
    return iter(out)


# A location is kept as a chain (parent, key or index) and spelt only where a reference is found: every write
# walks its resource, and almost every node holds no reference (formatting each path cost more than the walk).
_Where = tuple[Any, str | int]


def _walk(node: Any, where: _Where, base_url: str | None, out: list[tuple[str, str, str]]) -> None:
    if isinstance(node, dict):
        text = node.get("reference")
        if isinstance(text, str) and text and not text.startswith("#"):
            ttype, tid, _ = parse_reference(text, base_url)
            if ttype is not None and tid is not None:
                out.append((_spell(where), ttype, tid))
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                _walk(v, (where, k), base_url, out)
    else:
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                _walk(v, (where, i), base_url, out)


def _spell(where: _Where) -> str:
    parts: list[str] = []
    node: Any = where
    while isinstance(node, tuple):
        node, key = node
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return str(node) + "".join(reversed(parts))
