"""The table of the FHIR R4 base spec's *required* bindings that can be checked offline, from the definitions.

Used by ``vendor_fhir_definitions.py``, which writes it to ``fhir_ecr/store/data/required-bindings.json``;
``fhir_ecr/store/bindings.py`` enforces it on every write and in ``$validate``.

https://hl7.org/fhir/R4/terminologies.html#required: "To be conformant, the concept in this element SHALL be
from the specified value set." Every element of the resource types mECR serves, and of the data types they
use, whose binding strength is ``required`` is listed, with its value set expanded here
(https://hl7.org/fhir/R4/valueset.html#compositions) when that needs no terminology server:

- a ``compose.include`` that lists its concepts (any code system);
- a ``compose.include`` of a whole code system that the FHIR definitions themselves hold with
  ``content = complete`` (the FHIR, v2 and v3 code systems in ``valuesets.json``, ``v2-tables.json`` and
  ``v3-codesystems.json``);
- imports of such value sets, and ``compose.exclude`` of the same kinds.

A value set with a ``filter`` or an include of an external code system (BCP-13 MIME types, ISO 4217
currencies, SNOMED CT, LOINC) cannot be expanded offline: it is listed under ``notChecked`` with the reason
and the elements bound to it, so that the server can say at start-up what it does not check.

The table::

    valueSets:  {url: {system: [code, ...]}}        expansions of the checked value sets
    bindings:   {"Node.key": url}                   bound elements ("Observation.status", "Quantity.comparator")
    elements:   {"Node": {"key": "ChildNode"}}       how to reach them: JSON key -> the node of its content
    notChecked: {url: {"reason": ..., "elements": [...]}}

A node is a resource or data type (``Observation``, ``Quantity``), a backbone element (``Observation.component``)
or ``Resource`` (a contained resource: its own ``resourceType`` decides). Keys are JSON property names, so a
choice element appears once per type (``valueQuantity``). Only elements that lead to a binding are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["required_binding_table"]

TERMINOLOGY_BUNDLES = ("valuesets.json", "v3-codesystems.json", "v2-tables.json")
CODED_TYPES = {"code", "Coding", "CodeableConcept", "string", "uri"}
RESOURCE = "Resource"


def _entries(path: Path) -> Iterable[dict[str, Any]]:
    for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
        yield entry["resource"]


def _canonical(url: str) -> str:
    return url.split("|", 1)[0]


class _Expander:
    """Expands the definitions' value sets from their own code systems; LookupError says why it cannot."""

    def __init__(self, r4: Path) -> None:
        self.value_sets: dict[str, dict[str, Any]] = {}
        self.code_systems: dict[str, dict[str, Any]] = {}
        for name in TERMINOLOGY_BUNDLES:
            for res in _entries(r4 / name):
                if res["resourceType"] == "ValueSet":
                    self.value_sets.setdefault(res["url"], res)
                elif res["resourceType"] == "CodeSystem":
                    self.code_systems.setdefault(res["url"], res)

    def expand(self, url: str, seen: tuple[str, ...] = ()) -> set[tuple[str, str]]:
        url = _canonical(url)
        vs = self.value_sets.get(url)
        if vs is None:
            raise LookupError(f"the value set {url} is not part of the FHIR R4 definitions")
        if url in seen:
            raise LookupError(f"the value set {url} imports itself")
        compose = vs.get("compose") or {}
        codes: set[tuple[str, str]] = set()
        for part in compose.get("include") or []:
            codes |= self._part(part, (*seen, url))
        for part in compose.get("exclude") or []:
            codes -= self._part(part, (*seen, url))
        return codes

    def _part(self, part: dict[str, Any], seen: tuple[str, ...]) -> set[tuple[str, str]]:
        system = part.get("system")
        if part.get("filter"):
            raise LookupError(f"a filter on {system} needs a terminology server")
        codes: set[tuple[str, str]] = set()
        if system is not None:
            if part.get("concept"):
                codes = {(system, c["code"]) for c in part["concept"]}
            else:
                cs = self.code_systems.get(system)
                if cs is None:
                    raise LookupError(
                        f"all of {system}, a code system outside FHIR, needs a terminology server"
                    )
                if cs.get("content") != "complete":
                    raise LookupError(
                        f"all of {system}, whose definition is not complete here "
                        f"(content = {cs.get('content')})"
                    )
                codes = {(system, code) for code in _concepts(cs.get("concept") or [])}
        for imported in part.get("valueSet") or []:
            expansion = self.expand(imported, seen)
            codes = (codes & expansion) if system is not None else (codes | expansion)
        return codes


def _concepts(concepts: Iterable[dict[str, Any]]) -> Iterable[str]:
    for concept in concepts:
        yield concept["code"]
        yield from _concepts(concept.get("concept") or [])


def _structure_definitions(r4: Path, resource_types: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The resource types asked for and every complex data type (specialisations only)."""
    wanted = set(resource_types)
    out: dict[str, dict[str, Any]] = {}
    for name in ("profiles-resources.json", "profiles-types.json"):
        for sd in _entries(r4 / name):
            if sd.get("resourceType") != "StructureDefinition" or sd.get("derivation") == "constraint":
                continue
            if (sd["kind"] == "resource" and sd["name"] in wanted) or sd["kind"] == "complex-type":
                out[sd["name"]] = sd
    return out


def _keys(name: str, types: list[str]) -> list[tuple[str, str]]:
    """(JSON key, type) for an element name: ``value[x]`` -> ``valueQuantity``, ``valueString``, ..."""
    if not name.endswith("[x]"):
        return [(name, t) for t in types[:1]]
    base = name[:-3]
    return [(base + t[0].upper() + t[1:], t) for t in types]


def required_binding_table(r4: Path, resource_types: Iterable[str]) -> dict[str, Any]:
    """The table described in the module docstring, for ``resource_types`` and the data types they reach."""
    sds = _structure_definitions(r4, resource_types)
    expander = _Expander(r4)
    elements: dict[str, dict[str, str]] = {}
    bindings: dict[str, str] = {}
    expansions: dict[str, set[tuple[str, str]]] = {}
    not_checked: dict[str, dict[str, Any]] = {}
    complex_types = {n for n, sd in sds.items() if sd["kind"] == "complex-type"}
    for _name, sd in sorted(sds.items()):
        snapshot = sd["snapshot"]["element"]
        with_children = {el["path"].rsplit(".", 1)[0] for el in snapshot if "." in el["path"]}
        for el in snapshot:
            path = el["path"]
            if "." not in path:
                continue
            node, name = path.rsplit(".", 1)
            types = [t["code"] for t in el.get("type") or []]
            binding = el.get("binding") or {}
            vs = (
                _canonical(binding["valueSet"])
                if binding.get("strength") == "required" and binding.get("valueSet")
                else None
            )
            for key, t in _keys(name, types) or [(name, "")]:
                child = None
                if el.get("contentReference"):
                    child = el["contentReference"].lstrip("#")
                elif t in ("BackboneElement", "Element") and path in with_children:
                    child = path
                elif t in complex_types and t not in ("BackboneElement", "Element"):
                    child = t
                elif t == RESOURCE:
                    child = RESOURCE
                if child is not None:
                    elements.setdefault(node, {})[key] = child
                if vs is None or t not in CODED_TYPES:
                    continue
                if vs not in expansions and vs not in not_checked:
                    try:
                        expansions[vs] = expander.expand(vs)
                    except LookupError as why:
                        not_checked[vs] = {"reason": str(why), "elements": []}
                if vs in expansions:
                    bindings[f"{node}.{key}"] = vs
                else:
                    not_checked[vs]["elements"].append(f"{node}.{key}")
    # Keep only what leads to a binding: a node is relevant when one of its keys is bound or reaches a
    # relevant node (Resource is, whenever a served resource type is).
    relevant = {n.rsplit(".", 1)[0] for n in bindings} | {RESOURCE}
    changed = True
    while changed:
        changed = False
        for node, keys in elements.items():
            if node not in relevant and any(child in relevant for child in keys.values()):
                relevant.add(node)
                changed = True
    kept = {
        node: {k: c for k, c in sorted(keys.items()) if c in relevant}
        for node, keys in sorted(elements.items())
        if node in relevant
    }
    kept = {
        node: keys for node, keys in kept.items() if keys or any(b.startswith(node + ".") for b in bindings)
    }
    used = set(bindings.values())
    value_sets: dict[str, dict[str, list[str]]] = {}
    for vs in sorted(used):
        by_system: dict[str, list[str]] = {}
        for system, code in sorted(expansions[vs]):
            by_system.setdefault(system, []).append(code)
        value_sets[vs] = by_system
    for entry in not_checked.values():
        entry["elements"] = sorted(set(entry["elements"]))
    return {
        "valueSets": value_sets,
        "bindings": dict(sorted(bindings.items())),
        "elements": kept,
        "notChecked": {vs: not_checked[vs] for vs in sorted(not_checked) if not_checked[vs]["elements"]},
    }
