"""FHIRPath invariants (``ElementDefinition.constraint``) compiled once with fhirpathpy and the R4 model.

https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.constraint: a constraint's
``expression`` must be true for every instance of its element; ``severity`` error makes a violation an error,
warning a warning. A constraint on the root element is evaluated with the resource as context; one on a
nested element ``Type.a.b`` is evaluated, once per resource and only when the element is present, as
``a.b.all(<expression>)`` with ``%resource`` bound, which keeps fhirpathpy's type information (choice
elements, primitives) that evaluating the element on its own would lose.

Constraints fhirpathpy 2.2.4 cannot evaluate are skipped, each with its reason, in :data:`SKIPPED` terms:
a constraint without an expression, one that does not parse, or one that calls a function fhirpathpy does not
implement. In the base spec that is ``ele-1`` (``hasValue()``) on every element, and any ``htmlChecks()``
constraint (``txt-1``/``txt-2`` on Narrative). ``ele-1`` (no empty elements) is already refused by the
structural validation, which rejects empty objects and nulls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.models import models
from fhirpathpy.parser import parse as _untyped_parse

__all__ = ["Constraint", "compile_constraint", "skip_reason", "R4_MODEL"]

parse: Callable[[str], Any] = _untyped_parse  # fhirpathpy's parser is untyped: its tree is Any here

log = logging.getLogger("mecr.conformance")

R4_MODEL: dict[str, Any] = models["r4"]
_OPTIONS = {"traceFn": lambda *args: None}  # dom-3 calls trace(); keep it off stdout


def _functions(node: dict[str, Any]) -> Iterator[str]:
    if node.get("type") == "Functn":
        for child in node.get("children", []):
            if child.get("type") == "Identifier":
                yield str(child.get("text"))
                break
    for child in node.get("children", []) or []:
        yield from _functions(child)


@cache
def skip_reason(expression: str | None) -> str | None:
    """Why fhirpathpy cannot evaluate ``expression`` (None when it can)."""
    if not expression:
        return "the constraint has no FHIRPath expression"
    try:
        tree = parse(expression)
    except Exception as exc:  # the ANTLR parser raises plain exceptions on bad input
        return f"fhirpathpy cannot parse it ({type(exc).__name__})"
    missing = sorted({f for f in _functions(tree) if f not in invocation_registry})
    if missing:
        return "fhirpathpy 2.2.4 does not implement " + ", ".join(f"{m}()" for m in missing)
    return None


_MACROS = frozenset({"where", "select", "all", "exists", "repeat", "aggregate"})
_OPERATORS = frozenset(
    {
        "ImpliesExpression",
        "AndExpression",
        "OrExpression",
        "XorExpression",
        "EqualityExpression",
        "InequalityExpression",
        "MembershipExpression",
        "AdditiveExpression",
        "MultiplicativeExpression",
        "UnionExpression",
        "TypeExpression",
        "PolarityExpression",
        "IndexerExpression",
    }
)
_ROOT_CONSTANTS = frozenset({"resource", "rootResource", "context", "ucum"})


def _reaches_root(node: dict[str, Any]) -> bool:
    if node.get("type") == "ExternalConstant":
        return True
    return any(_reaches_root(c) for c in node.get("children", []) or [])


def _heads(node: dict[str, Any]) -> frozenset[str] | None:
    """The resource's elements a root-level expression reads, when it reads nothing else (else None).

    Sound rule: every path in the expression starts at a root element (``contained.where(...)``), and
    functions that are not per-item macros take no ``%constant`` argument. Then, when none of those elements
    is present, every path is empty and the result is the one on an empty resource of the same type.
    """
    kind = node.get("type")
    children = node.get("children", []) or []
    if kind is None or kind == "ParenthesizedTerm":
        return _heads(children[0]) if children else None
    if kind in _OPERATORS:
        out: set[str] = set()
        for child in children:
            if child.get("type") in ("TypeSpecifier", "QualifiedIdentifier"):
                continue
            got = _heads(child)
            if got is None:
                return None
            out |= got
        return frozenset(out)
    if kind == "TermExpression":
        term = children[0]
        if term.get("type") == "LiteralTerm":
            return frozenset()
        if term.get("type") == "ParenthesizedTerm":
            return _heads(term)
        if term.get("type") == "InvocationTerm" and term["children"][0].get("type") == "MemberInvocation":
            return frozenset({term["children"][0]["children"][0]["text"]})
        return None
    if kind == "InvocationExpression":
        left, right = children[0], children[1]
        heads = _heads(left)
        if heads is None:
            return None
        if right.get("type") == "FunctionInvocation":
            functn = right["children"][0]
            name = functn["children"][0]["text"]
            if name not in _MACROS and _reaches_root(functn):
                return None
        return heads
    return None


def root_elements(expression: str) -> frozenset[str] | None:
    """See :func:`_heads`: the root elements ``expression`` depends on, or None when it cannot be told."""
    try:
        return _heads(parse(expression))
    except Exception:  # unparseable expressions are skipped elsewhere
        return None


def _present(resource: dict[str, Any], names: frozenset[str]) -> bool:
    for key in resource:
        name = key[1:] if key.startswith("_") else key
        if name in names or any(name.startswith(n) and name[len(n) : len(n) + 1].isupper() for n in names):
            return True
    return False


@dataclass(frozen=True)
class Constraint:
    """One compiled invariant: where it applies and how to evaluate it."""

    key: str
    severity: str
    human: str
    expression: str
    element_path: str  # e.g. "Observation" or "Observation.component"
    evaluate: Callable[[dict[str, Any]], list[Any]]
    heads: frozenset[str] | None = None
    _absent: dict[str, bool | None] = field(default_factory=dict)

    def holds(self, resource: dict[str, Any]) -> bool | None:
        """True/False, or None when fhirpathpy fails on this resource (logged; reported as a warning)."""
        if self.heads is not None and not _present(resource, self.heads):
            # dom-2..dom-5 read only `contained`, absent from almost every resource: answer from the cache.
            rtype = str(resource.get("resourceType"))
            if rtype not in self._absent:
                self._absent[rtype] = self._holds({"resourceType": rtype})
            return self._absent[rtype]
        return self._holds(resource)

    def _holds(self, resource: dict[str, Any]) -> bool | None:
        try:
            result = self.evaluate(resource)
        except Exception as exc:  # fhirpathpy raises bare exceptions from deep inside its engine
            log.warning("constraint %s could not be evaluated: %s", self.key, type(exc).__name__)
            return None
        # An empty result is not a violation (the expression found nothing to judge); only false is.
        return not (len(result) == 1 and result[0] is False)


def _relative(element_path: str) -> str:
    """``Observation.value[x]`` -> ``value``: the element's path from the resource, as FHIRPath."""
    return ".".join(part.removesuffix("[x]") for part in element_path.split(".")[1:])


@cache
def _compiled(expression: str) -> Callable[..., Any]:
    # Parsing is the slow part (ANTLR, milliseconds); profiles share most expressions (dom-*, ext-1, vs-*).
    return fhirpath_compile(expression, R4_MODEL, _OPTIONS)


def compile_constraint(raw: dict[str, Any], element_path: str) -> Constraint:
    """Compile one ``ElementDefinition.constraint`` (whose expression :func:`skip_reason` accepted)."""
    expression = raw["expression"]
    relative = _relative(element_path)
    full = expression if not relative else f"{relative}.all({expression})"

    def evaluate(resource: dict[str, Any]) -> list[Any]:
        # Compiled on first use: most element-level constraints (ext-1 on every extension path) never run.
        return list(_compiled(full)(resource, {"resource": resource, "rootResource": resource}))

    return Constraint(
        key=raw["key"],
        severity=raw.get("severity", "error"),
        human=raw.get("human", raw["key"]),
        expression=expression,
        element_path=element_path,
        evaluate=evaluate,
        heads=None if relative else root_elements(expression),
    )
