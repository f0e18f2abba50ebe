"""The write path's indexing (``index_resource``: a plan per resource shape, specialised extractors, one walk
for references) gives exactly the rows and references of the straightforward algorithm it replaced — kept here as
the oracle: every stored parameter of the type evaluated by the generic step walker, every value through the
generic token reader, every parameter whose top-level element is present (``candidate_params``), and two separate walks for the other references and the local ones.

Over every resource of the examples (``examples/demo``, the IG's generated examples) and of the test fixtures,
each also with a ``meta`` as a write gives it and with the shapes a write can meet (a ``meta.tag``, a contained
resource that refers elsewhere)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_ecr.store import indexer
from fhir_ecr.store.indexer import OTHER_REFERENCES, index_resource
from fhir_ecr.store.mecr_params import mecr_params
from fhir_ecr.store.references import parse_reference
from fhir_ecr.store.searchparams import (
    _WHERE_RESOLVE,
    SearchParam,
    _compile_part,
    _split_union,
    _walk,
    candidate_params,
    search_params,
)
from tests.conftest import FIXTURES, REPO_ROOT

BASE = "https://mecr.example/fhir"


def _examples() -> Iterator[dict[str, Any]]:
    for path in sorted((REPO_ROOT / "examples").rglob("*.json")):
        yield from _resources(json.loads(path.read_text()))
    for path in sorted((REPO_ROOT / "profiles" / "generated" / "resources").glob("*.json")):
        yield from _resources(json.loads(path.read_text()))
    for path in sorted(FIXTURES.rglob("*.json")):
        try:
            yield from _resources(json.loads(path.read_text()))
        except ValueError:
            continue


def _resources(doc: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        return
    if doc["resourceType"] == "Bundle":
        for entry in doc.get("entry") or []:
            if isinstance(entry, dict):
                yield from _resources(entry.get("resource"))
    if doc["resourceType"] in search_params():
        yield doc


def _variants(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield resource
    written = copy.deepcopy(resource)
    written["meta"] = {**(written.get("meta") or {}), "versionId": "1", "lastUpdated": "2026-12-06T10:00:00Z"}
    yield written
    tagged = copy.deepcopy(written)
    tagged["meta"]["tag"] = [{"system": "urn:t", "code": "x"}]
    tagged["contained"] = [
        {"resourceType": "Basic", "id": "c", "subject": {"reference": "Patient/contained-only"}},
        {"resourceType": "Basic", "id": "d", "author": {"reference": f"{BASE}/Practitioner/p1"}},
    ]
    yield tagged


def _all() -> list[dict[str, Any]]:
    out = [v for r in _examples() for v in _variants(r)]
    # a large corpus: every shape once is what matters (a plan is per shape), but keep the whole of small files
    seen: set[str] = set()
    unique = []
    for r in out:
        key = json.dumps(r, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


RESOURCES = _all()


_MECR = {(p.resource_type, p.code) for p in mecr_params()}  # their own extractors, not FHIRPath


def _generic_extract(param: SearchParam, resource: dict[str, Any]) -> list[Any]:
    """The parameter's values by the generic step walker (or the parameter's own extractor where the expression
    needs fhirpathpy): what every parameter did before the specialised extractors."""
    if not param.fast or (param.resource_type, param.code) in _MECR:
        return param.extract(resource)
    plain = _WHERE_RESOLVE.sub("", param.expression)
    out: list[Any] = []
    for part in _split_union(plain):
        steps = _compile_part(part, param.resource_type)
        assert steps is not None
        out += _walk([resource], steps)
    return out


def _oracle(resource: dict[str, Any], base: str) -> tuple[dict[str, list[tuple[Any, ...]]], list[Any]]:
    rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in indexer.TABLE_FOR_TYPE.values()}
    for param in candidate_params(resource):  # the parameters whose top-level elements are present
        if param.code in ("_id", "_lastUpdated"):
            continue
        values = _generic_extract(param, resource)
        if not values:
            continue
        code, table = param.code, rows[indexer.TABLE_FOR_TYPE[param.type]]
        if param.type == "token":
            seen = set()
            for t in (t for v in values for t in indexer._tokens(v)):
                if t not in seen:
                    seen.add(t)
                    table.append((code, *t))
        elif param.type == "reference":
            indexer._references(param, values, base, table)
        elif param.type == "date":
            table += [(code, low, high) for v in values for low, high in indexer._dates(v)]
        elif param.type == "string":
            seen_s = set()
            for s in (s for v in values for s in indexer._strings(v)):
                if s not in seen_s:
                    seen_s.add(s)
                    table.append((code, indexer.normalize_string(s)[:255], s[:255]))
        elif param.type == "quantity":
            for v in values:
                value = indexer._number(v.get("value")) if isinstance(v, dict) else None
                if value is not None:
                    table.append((code, value, v.get("system"), v.get("code"), v.get("unit")))
        elif param.type == "number":
            table += [(code, n) for n in map(indexer._number, values) if n is not None]
        elif param.type == "uri":
            table += [(code, v) for v in values if isinstance(v, str)]
    # the other references: one walk of everything but meta, text, id and resourceType, contained included
    have = {(r[1], r[2]) for r in rows["idx_reference"]}
    stack: list[Any] = [v for k, v in resource.items() if k not in ("meta", "text", "id", "resourceType")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            text = node.get("reference")
            if isinstance(text, str) and text and not text.startswith("#"):
                ttype, tid, _ = parse_reference(text, base)
                if ttype is not None and (ttype, tid) not in have:
                    have.add((ttype, tid))
                    rows["idx_reference"].append((OTHER_REFERENCES, ttype, tid, None))
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    # the local references: document order, contained resources aside, each with its FHIRPath
    local: list[Any] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            text = node.get("reference")
            if isinstance(text, str) and text and not text.startswith("#"):
                ttype, tid, _ = parse_reference(text, base)
                if ttype is not None:
                    local.append((path, ttype, tid))
            for k, v in node.items():
                if isinstance(v, (dict, list)):
                    walk(v, f"{path}.{k}")
        else:
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)):
                    walk(v, f"{path}[{i}]")

    for k, v in resource.items():
        if k not in ("meta", "text", "id", "resourceType", "contained") and isinstance(v, (dict, list)):
            walk(v, f"{resource['resourceType']}.{k}")
    return rows, local


def test_the_corpus_is_large_and_varied() -> None:
    assert len(RESOURCES) > 1000
    assert len({r["resourceType"] for r in RESOURCES}) >= 20


@pytest.mark.parametrize("base", [BASE, None])
def test_index_resource_equals_the_generic_algorithm_on_every_example(base: str | None) -> None:
    """Rows per table equal as multisets (a table's rows are a set to search; the order of parameters follows the
    resource's keys); the local references equal, in document order (a 422 lists them so)."""
    differences = []
    for resource in RESOURCES:
        try:
            expected, expected_local = _oracle(resource, base or "")
        except ValueError:  # a malformed value the validator would have refused: both must refuse
            with pytest.raises(ValueError):
                index_resource(resource, base)
            continue
        rows, local = index_resource(resource, base)
        for table, want in expected.items():
            got, want = sorted(rows[table], key=repr), sorted(want, key=repr)
            if got != want:
                differences.append((resource["resourceType"], resource.get("id"), table, got, want))
        if local != expected_local:
            differences.append((resource["resourceType"], resource.get("id"), "local", local, expected_local))
    assert not differences, differences[:3]
