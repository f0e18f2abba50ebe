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

import re
from collections.abc import Iterator
from typing import Any

__all__ = [
    "local_references",
    "parse_reference",
    "reference_walk",
    "LocalReference",
    "MAX_CASCADE",
    "NOT_HOLDING",
]

#: Most resources one ``_cascade=delete`` removes.
MAX_CASCADE = 1000

#: Types whose references do not keep their target from being deleted.
NOT_HOLDING = frozenset({"AuditEvent"})

#: ``(FHIRPath location, type, id)`` of a reference to a resource on this server.
LocalReference = tuple[str, str, str]

_SKIP = frozenset({"meta", "text", "id", "resourceType"})
_REL_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def parse_reference(reference: str, base_url: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(type, id, url) of a reference string: relative ``Type/id``, our own absolute URL, or anything else."""
    if base_url and reference.startswith(base_url + "/"):
        reference = reference[len(base_url) + 1 :]
    m = _REL_REF.match(reference)
    if m:
        return m.group(1), m.group(2), None
    return None, None, reference


def local_references(resource: dict[str, Any], base_url: str | None = None) -> Iterator[LocalReference]:
    """``(FHIRPath location, type, id)`` of each reference in ``resource`` to a resource on this server, in
    document order (contained resources aside: they are part of the resource, not targets it needs)."""
    return iter(reference_walk(resource, base_url)[0])


def reference_walk(
    resource: dict[str, Any], base_url: str | None = None
) -> tuple[list[LocalReference], list[tuple[str, str]]]:
    """One walk over ``resource`` for every local reference in it: those of the resource itself, with their
    location (document order), and the ``(type, id)`` of those inside its contained resources. The write path
    needs both — the first for referential integrity, all of them for the index's other references
    (:func:`fhir_ecr.store.indexer.index_resource`) — and walks each resource once for them."""
    root = str(resource.get("resourceType"))
    out: list[LocalReference] = []
    contained: list[tuple[str, str]] = []
    for k, v in resource.items():
        if k not in _SKIP and isinstance(v, (dict, list)):
            if k == "contained":
                _walk_contained(v, base_url, contained)
            else:
                _walk(v, (root, k), base_url, out)
    return out, contained


# A location is kept as a chain (parent, key or index) and spelt only where a reference is found: every write
# walks its resource, and almost every node holds no reference (formatting each path cost more than the walk).
_Where = tuple[Any, str | int]


def _walk(node: Any, where: _Where, base_url: str | None, out: list[LocalReference]) -> None:
    if isinstance(node, dict):
        text = node.get("reference")
        if isinstance(text, str) and text and text[0] != "#":
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


def _walk_contained(node: Any, base_url: str | None, out: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        text = node.get("reference")
        if isinstance(text, str) and text and text[0] != "#":
            ttype, tid, _ = parse_reference(text, base_url)
            if ttype is not None and tid is not None:
                out.append((ttype, tid))
        values: Any = node.values()
    else:
        values = node
    for v in values:
        if isinstance(v, (dict, list)):
            _walk_contained(v, base_url, out)


def _spell(where: _Where) -> str:
    parts: list[str] = []
    node: Any = where
    while isinstance(node, tuple):
        node, key = node
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return str(node) + "".join(reversed(parts))
