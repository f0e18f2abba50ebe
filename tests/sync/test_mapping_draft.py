"""``mapping.draft`` + ``mapping.finish`` (one walk that copies a pulled resource and notes its references, then the
mapping) give exactly what the two walks they replaced gave: ``remote_refs`` (the references to resolve; unchanged)
and the copy that mapped each reference as it went (its walk kept below as the reference implementation)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fhir_ecr.auth.access import IDENTIFIER_SOURCE_URL, LINK_SYSTEM_PREFIX
from fhir_ecr.sync.mapping import (
    _copy,
    _emr_target,
    _ref_nodes,
    _stamp,
    draft,
    finish,
    local_id,
    pulled,
)

BASE = "http://emr.example/fhir/"
_SKIP = frozenset({"meta", "id", "resourceType"})


# -- the implementation before (fhir_ecr/sync/mapping.py at main, 2026-12-06) ------------------------------------


def _old_copy_mapped(value: Any, map_ref: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        out = {
            k: (_old_copy_mapped(v, map_ref) if k not in _SKIP else _copy(v))
            if isinstance(v, (dict, list))
            else v
            for k, v in value.items()
        }
        ref = out.get("reference")
        if isinstance(ref, str):
            out["reference"] = map_ref(ref)
        return out
    if isinstance(value, list):
        return [_old_copy_mapped(v, map_ref) if isinstance(v, (dict, list)) else v for v in value]
    return value


def remote_refs(resource: dict[str, Any], emr_base: str) -> Iterator[tuple[str, str]]:
    """``(type, EMR id)`` of every reference of ``resource`` to the EMR: the first of the two walks."""
    for node in _ref_nodes({k: v for k, v in resource.items() if k not in _SKIP}):
        target = _emr_target(node["reference"], emr_base)
        if target is not None:
            yield target


def _old_pulled(
    remote: dict[str, Any], *, ehr_id: str, emr_base: str, resolve: Callable[[str, str], str | None]
) -> dict[str, Any]:
    rtype, rid = str(remote["resourceType"]), str(remote["id"])
    base = emr_base.rstrip("/")
    targets: dict[str, str] = {}

    def map_ref(text: str) -> str:
        mapped = targets.get(text)
        if mapped is None:
            target = _emr_target(text, emr_base)
            mapped = text if target is None else resolve(*target) or f"{base}/{target[0]}/{target[1]}"
            targets[text] = mapped
        return mapped

    content: dict[str, Any] = {
        k: (_old_copy_mapped(v, map_ref) if k not in _SKIP else _copy(v)) for k, v in remote.items()
    }
    content["id"] = local_id(ehr_id, rtype, rid)
    _stamp(content, remote, ehr_id, base)  # unchanged, moved out of pulled
    return content


# -- generated resources --------------------------------------------------------------------------------------

REFERENCES = [
    "Patient/p1",
    "Patient/p2",
    "Patient/p1/_history/3",
    "Observation/o9",
    "Encounter/e1",
    f"{BASE}Patient/p1",
    f"{BASE}Practitioner/dr1",
    "http://third.example/fhir/Patient/p1",
    "#contained-1",
    "urn:uuid:5b9a2c6e-0d0c-4b4e-9d8e-111111111111",
    "",
    "not a reference",
    "Unknowntype/x",
]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([1, 2.50, "text", True, None, "Patient/p2"])
    if roll < 0.55:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.75:
        node: dict[str, Any] = {"reference": rng.choice(REFERENCES)}
        if rng.random() < 0.3:
            node["display"] = "x"
        if rng.random() < 0.2:
            node["extension"] = [{"url": "u", "valueReference": {"reference": rng.choice(REFERENCES)}}]
        return node
    out = {f"k{i}": _value(rng, depth + 1) for i in range(rng.randint(0, 4))}
    if rng.random() < 0.15:
        out["meta"] = {"source": "x", "inner": {"reference": "Patient/p1"}}
    if rng.random() < 0.1:
        out["reference"] = rng.choice([3, None, {"reference": "Patient/p1"}])  # not a string: not a Reference
    return out


def _resource(rng: random.Random, n: int) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": rng.choice(["Observation", "Condition", "Encounter"]),
        "id": f"r{n}",
        "meta": {"versionId": "4", "lastUpdated": "2026-01-01T00:00:00Z", "profile": ["http://p"], "tag": []},
        "subject": {"reference": rng.choice(REFERENCES)},
    }
    for i in range(rng.randint(0, 5)):
        res[f"e{i}"] = _value(rng, 0)
    if rng.random() < 0.5:
        res["identifier"] = [
            {"system": "urn:mrn", "value": f"v{n}", "assigner": {"reference": rng.choice(REFERENCES)}},
            {
                "system": f"{LINK_SYSTEM_PREFIX}old:Observation",
                "value": "x",
                "assigner": {"reference": "Patient/p9"},
            },
            {"system": "urn:nov"},
            {
                "system": "urn:ext",
                "value": "1",
                "extension": [{"url": IDENTIFIER_SOURCE_URL, "valueCode": "x"}, {"url": "keep"}],
            },
        ]
    if rng.random() < 0.3:
        res["contained"] = [
            {"resourceType": "Practitioner", "id": "contained-1", "meta": {"x": {"reference": "Patient/p1"}}},
            {"resourceType": "Location", "id": "l", "partOf": {"reference": rng.choice(REFERENCES)}},
        ]
    if rng.random() < 0.1:
        res["reference"] = rng.choice(REFERENCES)  # on the resource itself: counted, never mapped
    return res


def _resolve(t: str, i: str) -> str | None:
    return {
        ("Patient", "p1"): "Patient/local-p1",
        ("Observation", "o9"): "Observation/local-o9",
        ("Practitioner", "dr1"): "",  # "no counterpart" as an empty string: the absolute URL too
    }.get((t, i))


def test_draft_and_finish_equal_the_two_walks_they_replace() -> None:
    rng = random.Random(2026)
    for n in range(3000):
        remote = _resource(rng, n)
        before = _copy(remote)
        drafted = draft(remote, ehr_id="emr", emr_base=BASE)
        assert Counter(drafted.refs) == Counter(remote_refs(remote, BASE)), remote
        content = finish(drafted, _resolve, BASE)
        assert content == _old_pulled(remote, ehr_id="emr", emr_base=BASE, resolve=_resolve), remote
        assert pulled(remote, ehr_id="emr", emr_base=BASE, resolve=_resolve) == content
        assert remote == before  # the EMR's resource is left as it was
        assert list(content) == list(_old_pulled(remote, ehr_id="emr", emr_base=BASE, resolve=_resolve))


def test_a_draft_of_a_malformed_resource_fails_only_where_the_copy_failed_before() -> None:
    # The Loader drafts every resource of a batch, also those it then leaves out (a Patient not linked), where it
    # used to find their references alone: drafting must not fail where finding references did not.
    for bad in (
        {"identifier": 5},
        {"meta": ["x"]},
        {"identifier": [{"system": "s", "value": "v", "extension": 3}]},
    ):
        remote = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}, **bad}
        drafted = draft(remote, ehr_id="emr", emr_base=BASE)
        assert drafted.refs == [("Patient", "p1")]
        with pytest.raises((TypeError, AttributeError)) as old:
            _old_pulled(remote, ehr_id="emr", emr_base=BASE, resolve=_resolve)
        with pytest.raises(old.type):
            finish(drafted, _resolve, BASE)
