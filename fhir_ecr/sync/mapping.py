"""How an EMR's resource becomes mECR's pulled copy, and how mECR's resource becomes what it pushes. Pure: no I/O;
what a reference points to on the other side is asked of the ``resolve`` function the caller passes in.

**Pulled resources** (docs/sync.md, "References"):

- their id in mECR is a UUID derived from (EMR, type, EMR id) (:func:`local_id`), so a re-pull updates the same
  record and a reference can be mapped before its target is written;
- ``meta.source`` names the EMR record (``{EMR base}/{type}/{id}``); ``meta.tag`` carries
  :data:`~fhir_ecr.auth.access.RECORD_SOURCE_SYSTEM` ``ehr`` — the EMR owns the resource, it is read-only in mECR;
- the EMR's identifiers are kept, marked as set by the EHR, and the link identifier
  ``urn:mecr:ehr:{ehr}:{Type}|{EMR id}`` is added — the scheme launches link Patients by (fhir_ecr/auth/linking.py);
- a reference to the EMR (relative, or absolute under its base) becomes a local reference when ``resolve`` knows
  the local record (a linked Patient, a resource pulled before or in the same batch); any other one becomes the
  EMR's absolute URL, which mECR's referential-integrity check leaves alone (it names another server) and a
  client can still follow with a token for the EMR.

**Pushed resources**: no ``id`` or version (the EMR assigns them), mECR's identifier
``{MECR_SYNC_IDENTIFIER_SYSTEM}|{Type}/{id}`` added (a retried create finds the first one), local references
mapped to the EMR's ids through ``resolve`` (a linked Patient, a pulled or earlier pushed resource) and any other
one made absolute (mECR's own URL).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..auth.access import IDENTIFIER_SOURCE_URL, LINK_SYSTEM_PREFIX, RECORD_SOURCE_SYSTEM
from ..store import jsonexact
from ..store.indexer import parse_reference

__all__ = [
    "local_id",
    "link_system",
    "pulled",
    "draft",
    "finish",
    "Draft",
    "push_body",
    "content_hash",
    "same_content",
    "is_pushed_by",
    "Resolver",
]

#: Namespace of the UUIDs of pulled resources (:func:`local_id`); never change it, or re-pulls duplicate.
_NAMESPACE = uuid.UUID("6d3c52a4-9a3f-4d67-9a43-3c0e3b5c2f18")
_SKIP = frozenset({"meta", "id", "resourceType"})

#: ``resolve(type, id)`` → ``"Type/id"`` on the other side, or None when there is no counterpart.
Resolver = Callable[[str, str], str | None]


_NAMESPACE_BYTES = _NAMESPACE.bytes


def local_id(ehr_id: str, rtype: str, remote_id: str) -> str:
    """The id in mECR of the EMR's ``rtype/remote_id`` (deterministic): ``str(uuid.uuid5(_NAMESPACE,
    f"{ehr_id}/{rtype}/{remote_id}"))`` (RFC 4122 section 4.3), written out without the ``UUID`` object, which
    cost more than the hash itself (tests/sync/test_mapping_ids.py checks them equal)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{ehr_id}/{rtype}/{remote_id}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def link_system(ehr_id: str, rtype: str) -> str:
    return f"{LINK_SYSTEM_PREFIX}{ehr_id}:{rtype}"


def _ref_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped object (with a string ``reference``) below ``node``, contained resources included."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield item
            stack.extend(v for k, v in item.items() if k not in _SKIP and isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _emr_target(text: str, emr_base: str) -> tuple[str, str] | None:
    if not text or text.startswith(("#", "urn:")):
        return None
    if "://" in text and not text.startswith(emr_base.rstrip("/") + "/"):
        return None  # a third server: not the EMR's to map
    rtype, rid, _ = parse_reference(text, emr_base)
    return (rtype, rid) if rtype and rid else None


#: A Reference object of a draft (its copy, whose ``reference`` :func:`finish` sets), its text, and its target at
#: the EMR (None: not the EMR's to map).
_Node = tuple[dict[str, Any], str, tuple[str, str] | None]


@dataclass(slots=True)
class Draft:
    """mECR's copy of an EMR resource with its references not yet mapped (:func:`draft`, then :func:`finish`):
    the references it holds are known after one walk, before what they map to is (their Patients may have to be
    read from the EMR first)."""

    content: dict[str, Any]
    #: ``(type, EMR id)`` of every reference to the EMR (contained resources included), in document order
    refs: list[tuple[str, str]]
    nodes: list[_Node]
    remote: dict[str, Any]
    ehr_id: str


def pulled(remote: dict[str, Any], *, ehr_id: str, emr_base: str, resolve: Resolver) -> dict[str, Any]:
    """mECR's copy of the EMR's ``remote`` (a new dict; ``remote`` is left as it was)."""
    return finish(draft(remote, ehr_id=ehr_id, emr_base=emr_base), resolve, emr_base)


def draft(remote: dict[str, Any], *, ehr_id: str, emr_base: str, local: str | None = None) -> Draft:
    """The first half of :func:`pulled`: one walk copies ``remote`` and notes its references (the JSON is copied
    and walked once, and a Loader reads the references to resolve from the draft)."""
    found: list[tuple[dict[str, Any], str]] = []
    content: dict[str, Any] = {
        k: (_copy_noting(v, found) if k not in _SKIP else _copy(v)) for k, v in remote.items()
    }
    targets: dict[str, tuple[str, str] | None] = {}  # a resource repeats the same few references
    nodes: list[_Node] = []
    refs: list[tuple[str, str]] = []
    for node, text in found:
        if text not in targets:
            targets[text] = _emr_target(text, emr_base)
        target = targets[text]
        nodes.append((node, text, target))
        if target is not None:
            refs.append(target)
    top = remote.get("reference")
    if isinstance(top, str):  # a reference on the resource itself is counted; none is mapped there
        target = _emr_target(top, emr_base)
        if target is not None:
            refs.append(target)
    content["id"] = (
        local if local is not None else local_id(ehr_id, str(remote["resourceType"]), str(remote["id"]))
    )
    return Draft(content, refs, nodes, remote, ehr_id)


def _stamp(content: dict[str, Any], remote: dict[str, Any], ehr_id: str, base: str) -> None:
    """Mark the copy ``content`` of ``remote`` as the EMR's (see the module docstring): ``meta.source``, the
    ``ehr`` tag, its identifiers set by the EHR and the link identifier."""
    rtype, rid = str(remote["resourceType"]), str(remote["id"])
    meta = {k: v for k, v in (remote.get("meta") or {}).items() if k in ("profile", "security")}
    meta["source"] = f"{base}/{rtype}/{rid}"
    meta["tag"] = [{"system": RECORD_SOURCE_SYSTEM, "code": "ehr", "display": f"EHR {ehr_id}"}]
    content["meta"] = meta
    idents = [
        i
        for i in content.get("identifier") or []
        if isinstance(i, dict) and not str(i.get("system") or "").startswith(LINK_SYSTEM_PREFIX)
    ]
    for ident in idents:
        if ident.get("system") and ident.get("value"):
            ext = [e for e in ident.get("extension") or [] if e.get("url") != IDENTIFIER_SOURCE_URL]
            ident["extension"] = [*ext, {"url": IDENTIFIER_SOURCE_URL, "valueCode": "ehr"}]
    content["identifier"] = [*idents, {"system": link_system(ehr_id, rtype), "value": rid}]


def finish(drafted: Draft, resolve: Resolver, emr_base: str) -> dict[str, Any]:
    """The second half of :func:`pulled`: each reference to the EMR becomes the local one ``resolve`` knows, else
    the EMR's absolute URL; any other one stays as it was; then the copy is marked as the EMR's. Returns the
    draft's content (mapped and marked in place)."""
    base = emr_base.rstrip("/")
    mapped: dict[str, str] = {}
    for node, text, target in drafted.nodes:
        to = mapped.get(text)
        if to is None:
            to = text if target is None else resolve(*target) or f"{base}/{target[0]}/{target[1]}"
            mapped[text] = to
        node["reference"] = to
    _stamp(drafted.content, drafted.remote, drafted.ehr_id, base)
    return drafted.content


def _copy_noting(value: Any, found: list[tuple[dict[str, Any], str]]) -> Any:
    """A deep copy of JSON data; each copied Reference object (one with a string ``reference``) is noted in
    ``found`` with its text (``meta``, ``id`` and ``resourceType`` below are copied as they are, as
    :func:`_ref_nodes` skips them)."""
    if isinstance(value, dict):
        out = {
            k: (_copy_noting(v, found) if k not in _SKIP else _copy(v)) if isinstance(v, (dict, list)) else v
            for k, v in value.items()
        }
        ref = out.get("reference")
        if isinstance(ref, str):
            found.append((out, ref))
        return out
    if isinstance(value, list):
        return [_copy_noting(v, found) if isinstance(v, (dict, list)) else v for v in value]
    return value


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (keeps jsonexact's exact numbers: they are immutable values)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def is_pushed_by(resource: dict[str, Any], identifier_system: str) -> bool:
    """Does ``resource`` (read from an EMR) carry mECR's push identifier: is it a copy of mECR's own record?"""
    return any(
        isinstance(i, dict) and i.get("system") == identifier_system for i in resource.get("identifier") or []
    )


def push_body(
    local: dict[str, Any],
    *,
    identifier_system: str,
    mecr_base: str,
    resolve: Resolver,
    remote_id: str | None = None,
) -> dict[str, Any]:
    """What mECR sends the EMR for its ``local`` resource (``remote_id``: the EMR's id, for an update)."""
    rtype, rid = str(local["resourceType"]), str(local["id"])
    body: dict[str, Any] = _copy({k: v for k, v in local.items() if k not in ("id", "meta")})
    profiles = (local.get("meta") or {}).get("profile")
    if profiles:
        body["meta"] = {"profile": list(profiles)}
    if remote_id is not None:
        body["id"] = remote_id
    mine = {"system": identifier_system, "value": f"{rtype}/{rid}"}
    idents = [
        i
        for i in body.get("identifier") or []
        if isinstance(i, dict) and i.get("system") != identifier_system
    ]
    body["identifier"] = [*idents, mine]
    base = mecr_base.rstrip("/")
    for node in _ref_nodes({k: v for k, v in body.items() if k not in _SKIP}):
        text = node["reference"]
        if text.startswith(("#", "urn:")) or ("://" in text and not text.startswith(base + "/")):
            continue
        ttype, tid, _ = parse_reference(text, base)
        if not ttype or not tid:
            continue
        mapped = resolve(ttype, tid)
        node["reference"] = mapped if mapped is not None else f"{base}/{ttype}/{tid}"
    return body


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    profiles = (resource.get("meta") or {}).get("profile")
    if profiles:
        out["meta"] = {"profile": profiles}
    return out


def content_hash(resource: dict[str, Any]) -> str:
    """A hash of what matters of a pushed resource (id and meta aside): two equal hashes, the same content."""
    return hashlib.sha256(jsonexact.dumps(_comparable(resource), orjson.OPT_SORT_KEYS)).hexdigest()


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return content_hash(a) == content_hash(b)
