"""Required bindings of the FHIR R4 base spec, enforced on every write and by ``$validate``.

https://hl7.org/fhir/R4/terminologies.html#required: "To be conformant, the concept in this element SHALL be
from the specified value set." ``fhir.resources`` does not check bindings (``Observation.status = "bogus"``
passes its models), so :func:`binding_issues` walks the resource's JSON over a precomputed table,
``data/required-bindings.json``: every element of the served resource types, and of the data types they use,
bound ``required`` to a value set that expands from the FHIR definitions alone (generated from HL7's R4
definitions by ``scripts/vendor_fhir_definitions.py``; ``scripts/required_bindings.py`` says what expands).
Value sets that would need a terminology server (MIME types, currencies) are not checked; :func:`log_unchecked`
says so once at start-up and docs/validation.md lists them.

Rules, per element type:

- ``code`` (``Observation.status``, ``Quantity.comparator``): the code must be in the expansion;
- ``Coding``: its (system, code) must be in the expansion;
- ``CodeableConcept`` (``Condition.clinicalStatus``): at least one coding must be in the expansion (text alone
  does not meet a required binding).

The walk follows data types, backbone elements, extensions (``valueQuantity.comparator`` in an extension is
checked too) and contained resources; only elements that can lead to a binding are visited.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

from ..outcomes import Issue, issue

__all__ = ["binding_issues", "BindingTable", "binding_table", "log_unchecked"]

DATA = Path(__file__).resolve().parent / "data" / "required-bindings.json"
_RESOURCE = "Resource"
_CODE, _CODING, _CONCEPT = 0, 1, 2
_SHOWN_CODES = 12  # the allowed codes are listed in the issue when there are at most this many

log = logging.getLogger("mecr.validation")


class _Binding:
    __slots__ = ("url", "codes", "pairs", "kind")

    def __init__(self, url: str, by_system: dict[str, list[str]], kind: int) -> None:
        self.url = url
        self.kind = kind
        self.codes = frozenset(c for codes in by_system.values() for c in codes)
        self.pairs = frozenset((s, c) for s, codes in by_system.items() for c in codes)

    def describe(self) -> str:
        if len(self.codes) > _SHOWN_CODES:
            return f"the value set {self.url}"
        return f"the value set {self.url} ({', '.join(sorted(self.codes))})"


# key -> (binding or None, the node of the element's content or None, the content is a contained resource)
_Edge = tuple[_Binding | None, Any, bool]
_Node = dict[str, _Edge]


class BindingTable:
    """The vendored table compiled into one dict per node (type or backbone element): JSON key -> edge."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.source = str(table.get("source", ""))
        self.not_checked: dict[str, dict[str, Any]] = table.get("notChecked") or {}
        self.checked_elements = len(table["bindings"])
        self.value_sets = len(table["valueSets"])
        self.nodes: dict[str, _Node] = {name: {} for name in table["elements"]}
        for path in table["bindings"]:
            self.nodes.setdefault(path.rsplit(".", 1)[0], {})
        for name, keys in table["elements"].items():
            node = self.nodes[name]
            for key, child in keys.items():
                node[key] = (None, None if child == _RESOURCE else self.nodes.get(child), child == _RESOURCE)
        for path, url in table["bindings"].items():
            name, key = path.rsplit(".", 1)
            child_name = table["elements"].get(name, {}).get(key)
            kind = {"Coding": _CODING, "CodeableConcept": _CONCEPT}.get(child_name or "", _CODE)
            _, child, contained = self.nodes[name].get(key, (None, None, False))
            self.nodes[name][key] = (_Binding(url, table["valueSets"][url], kind), child, contained)

    def issues(self, resource: dict[str, Any]) -> list[Issue]:
        """One ``code-invalid`` issue per element of ``resource`` whose code breaks a required binding."""
        rtype = resource.get("resourceType")
        node = self.nodes.get(rtype) if isinstance(rtype, str) else None
        out: list[Issue] = []
        if node is not None:
            self._walk(node, resource, rtype, out)  # type: ignore[arg-type]
        return out

    def _walk(self, node: _Node, obj: dict[str, Any], path: str, out: list[Issue]) -> None:
        for key, value in obj.items():
            edge = node.get(key)
            if edge is None:
                continue
            if type(value) is list:
                for i, item in enumerate(value):
                    self._visit(edge, item, f"{path}.{key}[{i}]", out)
            else:
                self._visit(edge, value, f"{path}.{key}", out)

    def _visit(self, edge: _Edge, value: Any, path: str, out: list[Issue]) -> None:
        binding, child, contained = edge
        if binding is not None:
            problem = _check(binding, value)
            if problem:
                out.append(
                    issue(
                        "code-invalid",
                        f"{problem} {binding.describe()}, to which {path} is bound (required)",
                        expression=path,
                    )
                )
        if type(value) is not dict:
            return
        if contained:
            rtype = value.get("resourceType")
            child = self.nodes.get(rtype) if type(rtype) is str else None
        if child is not None:
            self._walk(child, value, path, out)


def _check(binding: _Binding, value: Any) -> str | None:
    """What breaks the binding (the start of the message), or None when ``value`` meets it or is not coded."""
    if binding.kind == _CODE:
        return f"the code {value!r} is not in" if type(value) is str and value not in binding.codes else None
    if type(value) is not dict:
        return None  # not the JSON shape of the type: the structural validation reports it
    if binding.kind == _CODING:
        if _pair(value) in binding.pairs:
            return None
        return f"the coding {_coding(value)} is not in"
    codings = value.get("coding")
    codings = [c for c in codings if type(c) is dict] if type(codings) is list else []
    if any(_pair(c) in binding.pairs for c in codings):
        return None
    if not codings:
        return "a concept without a coding (text alone) does not meet"
    return "no coding (" + ", ".join(_coding(c) for c in codings) + ") is in"


def _pair(coding: dict[str, Any]) -> tuple[Any, Any] | None:
    """(system, code) of a coding, or None when they are not strings (the structural validation says so)."""
    system, code = coding.get("system"), coding.get("code")
    return (system, code) if type(system) is str and type(code) is str else None


def _coding(coding: dict[str, Any]) -> str:
    return f"{coding.get('system') or '(no system)'}|{coding.get('code') or '(no code)'}"


@cache
def binding_table() -> BindingTable:
    """The vendored table, compiled once per process."""
    return BindingTable(json.loads(DATA.read_text(encoding="utf-8")))


def binding_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every required-binding problem of ``resource`` (a parsed JSON object), one issue each."""
    return binding_table().issues(resource)


def log_unchecked() -> str:
    """Log (a warning: the operator should know) which required bindings are not checked; returns the line.

    Called once when the server starts (the app's lifespan)."""
    table = binding_table()
    elements = sorted(e for entry in table.not_checked.values() for e in entry["elements"])
    line = (
        f"required bindings: {table.checked_elements} elements checked against {table.value_sets} value sets "
        f"of the FHIR R4 base spec; {len(elements)} not checked, as their value sets need a terminology server "
        f"({', '.join(elements)}; docs/validation.md, 'Required bindings')"
    )
    log.warning(line)
    return line
