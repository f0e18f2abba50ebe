"""The FHIR R4 SearchParameter definitions, compiled into fast value extractors.

Definitions are the spec's own (vendored in ``data/search-parameters.json`` by
``scripts/vendor_fhir_definitions.py``). Each parameter's FHIRPath expression is compiled once:

- the common shapes — dotted paths, ``(path as Type)``, ``.where(field='literal')`` and the
  ``.where(resolve() is Type)`` filter on references — become a small tree walker over the JSON (a few µs);
- anything else is evaluated by ``fhirpathpy`` with the R4 model (tens of µs, used by a handful of parameters).

``resolve()`` cannot be evaluated at index time (the target may not exist yet), so ``where(resolve() is T)``
is compiled to a target-type filter on the extracted references — the meaning the spec gives it
(https://hl7.org/fhir/R4/fhirpath.html#functions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "SearchParam",
    "search_params",
    "search_param",
    "resource_types",
    "patient_compartment",
    "summary_elements",
    "RESOURCE_LEVEL",
    "candidate_params",
]

Extractor = Callable[[dict[str, Any]], list[Any]]

# Parameters every resource type has, answered from the resource table's own columns or indexed like others.
RESOURCE_LEVEL = {"_id", "_lastUpdated", "_profile", "_security", "_source", "_tag"}


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of one resource type."""

    resource_type: str
    code: str
    type: str
    expression: str
    url: str
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    # Filled by compile(): the extractor, the reference target-type filter and whether the fast path is used.
    extract: Extractor = field(default=lambda r: [], compare=False, repr=False)
    target_filter: frozenset[str] | None = None
    fast: bool = True
    # Top-level JSON keys (or choice-element base names) the expression starts from: a resource that has
    # none of them cannot produce a value, so the indexer skips the parameter without evaluating it.
    roots: frozenset[str] = frozenset()
    # The union members of the expression (``where(resolve() is T)`` removed), to find derived parameters.
    parts: frozenset[str] = frozenset()
    # Non-empty when this parameter's index rows are those of other parameters (see ``_derive``): it is not
    # indexed itself, and a search on it reads the rows stored under these codes.
    stored_as: tuple[str, ...] = ()
    # mECR's own parameters (``mecr_params``): ``special`` builds the SQL of a criterion itself
    # (``special(criterion, key_column) -> condition``), ``internal`` ones only hold index rows for a special one
    # and cannot be searched directly.
    special: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    internal: bool = False

    @property
    def index_names(self) -> tuple[str, ...]:
        """The ``param`` values under which this parameter's rows are stored."""
        return self.stored_as or (self.code,)

    @property
    def query_type_filter(self) -> frozenset[str] | None:
        """Target types a search must add when the rows are borrowed from an unfiltered parameter."""
        return self.target_filter if self.stored_as else None


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("fhir_ecr.store").joinpath("data", name).read_text())
    return data


@cache
def _choice_paths() -> frozenset[str]:
    return frozenset(_load("summary-elements.json")["choice"])


@cache
def summary_elements() -> dict[str, frozenset[str]]:
    """Top-level element names marked ``isSummary`` per resource type (for ``_summary=true``)."""
    return {k: frozenset(v) for k, v in _load("summary-elements.json")["elements"].items()}


@cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type -> the search parameters that put it in a Patient's compartment (R4 definition)."""
    return {k: tuple(v) for k, v in _load("compartment-patient.json")["resources"].items()}


# --- the fast path ------------------------------------------------------------------------------------------

_NAME = r"[A-Za-z][A-Za-z0-9]*"
_WHERE_RESOLVE = re.compile(r"\.where\(resolve\(\) is (" + _NAME + r")\)")
_WHERE_EQ = re.compile(r"^where\((" + _NAME + r")\s*=\s*'([^']*)'\)$")
_AS = re.compile(r"^\((" + _NAME + r"(?:\." + _NAME + r")*) as (" + _NAME + r")\)((?:\." + _NAME + r")*)$")
_DOT_AS = re.compile(r"^(" + _NAME + r"(?:\." + _NAME + r")*)\.as\((" + _NAME + r")\)$")
_PATH = re.compile(r"^" + _NAME + r"(?:\.(?:" + _NAME + r"|where\(" + _NAME + r"\s*=\s*'[^']*'\)))*$")


def _split_union(expression: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expression):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return parts


def _split_steps(path: str) -> list[str]:
    steps, depth, start = [], 0, 0
    for i, ch in enumerate(path):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "." and depth == 0:
            steps.append(path[start:i])
            start = i + 1
    steps.append(path[start:])
    return steps


Step = tuple[str, Any]  # ("child", name) | ("choice", name) | ("typed", key) | ("where", (field, literal))


def _compile_part(part: str, resource_type: str) -> list[Step] | None:
    """Compile one union member to steps, or None when it needs the full FHIRPath engine."""
    cast: str | None = None
    tail = ""
    dot_as = _DOT_AS.match(part)
    if dot_as:  # ``path.as(Type)`` means the same as ``(path as Type)``
        part = f"({dot_as.group(1)} as {dot_as.group(2)})"
    m = _AS.match(part)
    if m:
        part, cast, tail = m.group(1), m.group(2), m.group(3)
    elif not _PATH.match(part):
        return None
    steps_text = _split_steps(part)
    if steps_text[0] != resource_type:
        return None
    steps: list[Step] = []
    element = resource_type
    body = steps_text[1:]
    for i, text in enumerate(body):
        w = _WHERE_EQ.match(text)
        if w:
            steps.append(("where", (w.group(1), w.group(2))))
            continue
        element = f"{element}.{text}"
        last = i == len(body) - 1
        if last and cast is not None:
            # A choice element is always serialised as name + TypeName in JSON (R4 json.html#choice).
            steps.append(("typed", text + cast[0].upper() + cast[1:]))
        elif element in _choice_paths():
            steps.append(("choice", text))
        else:
            steps.append(("child", text))
    for text in _split_steps(tail.lstrip("."))[0:] if tail else []:
        element = f"{element}.{text}"
        steps.append(("child", text))
    return steps


def _walk(nodes: list[Any], steps: list[Step]) -> list[Any]:
    for kind, arg in steps:
        out: list[Any] = []
        if kind == "where":
            key, literal = arg
            out = [n for n in nodes if isinstance(n, dict) and n.get(key) == literal]
        else:
            for node in nodes:
                if not isinstance(node, dict):
                    continue
                if kind == "choice":
                    for k, v in node.items():
                        if k.startswith(arg) and len(k) > len(arg) and k[len(arg)].isupper():
                            out.extend(v) if isinstance(v, list) else out.append(v)
                    continue
                v = node.get(arg)
                if v is None:
                    continue
                if isinstance(v, list):
                    out.extend(v)
                else:
                    out.append(v)
        if not out:
            return out
        nodes = out
    return nodes


def _children(names: list[str]) -> Extractor:
    """The extractor of a path of plain elements (``Observation.code``, ``AuditEvent.entity.what``): what
    :func:`_walk` computes for it, without its generic loop (most parameters are such paths; every write
    evaluates a dozen of them)."""
    if len(names) == 1:
        (name,) = names

        def one(resource: dict[str, Any]) -> list[Any]:
            v = resource.get(name)
            if v is None:
                return []
            return list(v) if isinstance(v, list) else [v]

        return one
    first, rest = names[0], names[1:]

    def chain(resource: dict[str, Any]) -> list[Any]:
        v = resource.get(first)
        if v is None:
            return []
        nodes = v if isinstance(v, list) else [v]
        for name in rest:
            out: list[Any] = []
            for node in nodes:
                if isinstance(node, dict):
                    w = node.get(name)
                    if w is not None:
                        if isinstance(w, list):
                            out.extend(w)
                        else:
                            out.append(w)
            if not out:
                return out
            nodes = out
        return nodes

    return chain


def _fast_extractor(parts: list[list[Step]]) -> Extractor:
    if len(parts) == 1:
        steps = parts[0]
        if steps and all(kind in ("child", "typed") for kind, _ in steps):
            return _children([str(arg) for _, arg in steps])
        return lambda resource: _walk([resource], steps)

    def extract(resource: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for steps in parts:
            out.extend(_walk([resource], steps))
        return out

    return extract


def _fhirpath_extractor(expression: str) -> Extractor:
    from fhirpathpy import compile as fp_compile
    from fhirpathpy.models import models

    fn = fp_compile(expression, model=models["r4"])

    def extract(resource: dict[str, Any]) -> list[Any]:
        return [
            v if isinstance(v, (dict, list, str, int, float, bool)) else str(v) for v in fn(resource, None)
        ]

    return extract


def _compile(raw: dict[str, Any]) -> SearchParam:
    rtype, expression = raw["resourceType"], raw["expression"]
    target_filter: set[str] = set()
    plain = expression
    for m in _WHERE_RESOLVE.finditer(expression):
        target_filter.add(m.group(1))
    plain = _WHERE_RESOLVE.sub("", expression)
    parts = [_compile_part(p, rtype) for p in _split_union(plain)]
    compiled = [p for p in parts if p is not None]
    fast = len(compiled) == len(parts)
    extract = _fast_extractor(compiled) if fast else _fhirpath_extractor(plain)
    if fast:
        roots = frozenset(str(steps[0][1]) for steps in compiled if steps and steps[0][0] != "where")
    else:
        roots = frozenset(re.findall(rf"\b{rtype}\.([a-zA-Z]+)", plain))
    return SearchParam(
        resource_type=rtype,
        code=raw["code"],
        type=raw["type"],
        expression=expression,
        url=raw["url"],
        targets=tuple(raw.get("target", ())),
        modifiers=tuple(raw.get("modifier", ())),
        extract=extract,
        target_filter=frozenset(target_filter) or None,
        fast=fast,
        roots=roots,
        parts=frozenset(p.strip() for p in _split_union(plain)),
    )


def _derive(params: dict[str, SearchParam]) -> dict[str, SearchParam]:
    """Mark parameters whose index rows would repeat other parameters' rows, so they are not stored twice.

    - alias: ``patient`` = ``Observation.subject.where(resolve() is Patient)`` is ``subject`` restricted to
      Patient targets: searched as ``subject`` rows with target type Patient;
    - union: ``combo-code`` = ``Observation.code | Observation.component.code`` is the rows of ``code`` and
      ``component-code`` together;
    - both: ``AuditEvent.patient`` = ``AuditEvent.agent.who.where(resolve() is Patient) |
      AuditEvent.entity.what.where(resolve() is Patient)`` is the rows of ``agent`` and ``entity`` with target type
      Patient (the indexer applies a parameter's target types to all its values, as the search does to the
      borrowed rows). The audit trail writes an AuditEvent per patient a request touched: one row fewer each.
    All are exact: the rows a derived parameter would get are precisely the borrowed ones.
    """
    from dataclasses import replace

    out = dict(params)
    plain = [p for p in params.values() if not p.target_filter]
    for code, p in params.items():
        same = [b for b in plain if b.code != code and b.type == p.type and b.parts <= p.parts]
        exact = [b for b in same if b.parts == p.parts]
        if p.target_filter and exact:
            out[code] = replace(p, stored_as=(exact[0].code,))
        elif len(p.parts) > 1 and not exact:
            members = [b for b in same if b.parts < p.parts and len(b.parts) < len(p.parts)]
            if members and frozenset().union(*(b.parts for b in members)) == p.parts:
                out[code] = replace(p, stored_as=tuple(sorted(b.code for b in members)))
    # a parameter only borrows from parameters that are stored themselves
    for code, p in out.items():
        if p.stored_as and any(out[b].stored_as for b in p.stored_as):
            out[code] = replace(p, stored_as=())
    return out


@cache
def search_params() -> dict[str, dict[str, SearchParam]]:
    """Resource type -> code -> compiled SearchParam, for every type the store serves."""
    out: dict[str, dict[str, SearchParam]] = {}
    for raw in _load("search-parameters.json")["parameters"]:
        if raw["type"] == "composite":
            continue
        out.setdefault(raw["resourceType"], {})[raw["code"]] = _compile(raw)
    from .mecr_params import mecr_params  # mECR's own parameters are compiled with this module's helpers

    derived = {rtype: _derive(params) for rtype, params in out.items()}
    for param in mecr_params():
        derived.setdefault(param.resource_type, {})[param.code] = param
    return derived


def search_param(resource_type: str, code: str) -> SearchParam | None:
    """The compiled parameter ``code`` of ``resource_type``, or None."""
    return search_params().get(resource_type, {}).get(code)


_CHOICE_KEY = re.compile(r"^([a-z][a-zA-Z0-9]*?)[A-Z]")


@cache
def params_by_root(resource_type: str) -> dict[str, tuple[SearchParam, ...]]:
    """Top-level key (or choice base name) -> the parameters of ``resource_type`` that start from it."""
    out: dict[str, list[SearchParam]] = {}
    for param in search_params().get(resource_type, {}).values():
        if param.stored_as:
            continue
        for root in param.roots:
            out.setdefault(root, []).append(param)
    return {k: tuple(v) for k, v in out.items()}


_CANDIDATES: dict[tuple[str, ...], list[SearchParam]] = {}


def candidate_params(resource: dict[str, Any]) -> list[SearchParam]:
    """The stored parameters of the resource's type that can have a value in ``resource``."""
    shape = (resource.get("resourceType", ""), *resource)
    found = _CANDIDATES.get(shape)
    if found is None:
        found = _candidates(resource)
        if len(_CANDIDATES) > 4096:  # resources come in few shapes; bound the cache all the same
            _CANDIDATES.clear()
        _CANDIDATES[shape] = found
    return found


def _candidates(resource: dict[str, Any]) -> list[SearchParam]:
    index = params_by_root(resource.get("resourceType", ""))
    seen: dict[str, SearchParam] = {}
    for key in resource:
        for p in index.get(key, ()):
            seen[p.code] = p
        m = _CHOICE_KEY.match(key)
        if m:
            for p in index.get(m.group(1), ()):
                seen[p.code] = p
    return list(seen.values())


@cache
def resource_types() -> tuple[str, ...]:
    """The resource types the store serves, sorted."""
    return tuple(sorted(search_params()))
