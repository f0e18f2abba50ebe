"""Compiling a StructureDefinition's snapshot into a tree of element rules, once, at start-up.

Each :class:`ElementRule` holds what https://hl7.org/fhir/R4/elementdefinition.html lets a profile say of an
element and this validator checks: cardinality (``min``/``max``), allowed types and reference targets
(``type.code``, ``type.targetProfile``), ``fixed[x]`` and ``pattern[x]``, a required ``binding`` (expanded
from the IG), and slicing (https://hl7.org/fhir/R4/profiling.html#slicing: discriminators ``value``,
``pattern``, ``type`` and ``exists``; ``rules`` open/closed). Slices are matched by discriminators compiled
into small predicates. The checker (:mod:`.checker`) walks a resource over this tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhirpathpy.models import models

from .errors import ProfileCompileError
from .fhirpath import Constraint, compile_constraint, skip_reason
from .terminology import Code, ValueSetIndex, canonical_url

__all__ = [
    "ElementRule",
    "TypeRule",
    "Slicing",
    "CompiledProfile",
    "compile_profile",
    "choice_type",
    "RESOURCE_TYPES",
]

_R4 = models["r4"]["type2Parent"]
RESOURCE_TYPES = frozenset(t for t, parent in _R4.items() if parent in ("DomainResource", "Resource")) | {
    "Resource",
    "DomainResource",
}
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
# FHIR R4 primitive types (https://hl7.org/fhir/R4/datatypes.html#primitive): their type codes start lower-case.
PRIMITIVES = frozenset(
    {
        "base64Binary",
        "boolean",
        "canonical",
        "code",
        "date",
        "dateTime",
        "decimal",
        "id",
        "instant",
        "integer",
        "markdown",
        "oid",
        "positiveInt",
        "string",
        "time",
        "unsignedInt",
        "uri",
        "url",
        "uuid",
        "xhtml",
    }
)
_NONE: Any = object()


def choice_type(suffix: str) -> str:
    """The type code of a choice element's JSON suffix: ``DateTime`` -> ``dateTime``, ``Quantity`` -> itself."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVES else suffix


@dataclass(frozen=True)
class TypeRule:
    """One allowed type; for a Reference, the resource types its target profiles allow (None: any)."""

    code: str
    target_types: frozenset[str] | None = None
    profiles: tuple[str, ...] = ()


@dataclass
class Slicing:
    """``ElementDefinition.slicing``: the discriminators and whether unmatched items are allowed."""

    discriminators: list[tuple[str, str]]
    rules: str
    ordered: bool


@dataclass
class ElementRule:
    """The compiled rules of one element (or one slice) of a profile."""

    id: str
    path: str
    name: str
    choice: bool
    min: int
    max: int | None
    types: tuple[TypeRule, ...] = ()
    fixed: Any = _NONE
    pattern: Any = _NONE
    binding: str | None = None
    binding_codes: frozenset[Code] | None = None
    slice_name: str | None = None
    slicing: Slicing | None = None
    children: list[ElementRule] = field(default_factory=list)
    slices: list[ElementRule] = field(default_factory=list)
    matcher: Callable[[Any, str | None], bool] | None = None

    @property
    def has_fixed(self) -> bool:
        return self.fixed is not _NONE

    @property
    def has_pattern(self) -> bool:
        return self.pattern is not _NONE

    def type_codes(self) -> frozenset[str]:
        return frozenset(t.code for t in self.types)

    def type_rule(self, code: str | None) -> TypeRule | None:
        for t in self.types:
            if t.code == code or len(self.types) == 1:
                return t
        return None

    def child(self, name: str) -> ElementRule | None:
        for c in self.children:
            if c.name == name:
                return c
        return None


@dataclass
class CompiledProfile:
    """A profile ready to check resources: its element tree, invariants, and what it does not check (why)."""

    url: str
    type: str
    root: ElementRule
    constraints: list[Constraint]
    skipped_constraints: dict[str, str]
    unchecked_bindings: dict[str, str]


def _type_code(raw: str) -> str:
    # Snapshot ids and the like are typed with FHIRPath system types; they are strings in JSON.
    return "string" if raw.startswith("http://hl7.org/fhirpath/System.") else raw


def matches_pattern(value: Any, pattern: Any) -> bool:
    """https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.pattern_x_: every value in
    the pattern is in the instance; a list in the pattern needs each of its items matched by some item."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches_pattern(value[k], v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(matches_pattern(v, p) for v in value) for p in pattern)
    return bool(value == pattern)


def values_at(value: Any, path: str) -> list[Any]:
    """The values at a simple dotted ``path`` under ``value`` (lists flattened); ``$this`` is the value."""
    current = [value]
    if path == "$this":
        return current
    for step in path.split("."):
        nxt: list[Any] = []
        for v in current:
            if isinstance(v, dict):
                got = v.get(step, _NONE)
                if got is _NONE:  # a choice element named without [x]: take whichever type is present
                    got = next(
                        (
                            x
                            for k, x in v.items()
                            if k.startswith(step) and k[len(step) : len(step) + 1].isupper()
                        ),
                        _NONE,
                    )
                if got is not _NONE:
                    nxt.extend(got if isinstance(got, list) else [got])
        current = nxt
    return current


def item_choice_type(value: Any, name: str) -> str | None:
    """The type of the choice element ``name[x]`` inside ``value`` (``valueReference`` -> Reference)."""
    if isinstance(value, dict):
        for key in value:
            if key.startswith(name) and key[len(name) : len(name) + 1].isupper():
                return choice_type(key[len(name) :])
    return None


class _Compiler:
    def __init__(self, sd: dict[str, Any], sds: dict[str, dict[str, Any]], valuesets: ValueSetIndex) -> None:
        self.sd = sd
        self.sds = sds
        self.valuesets = valuesets
        self.unchecked_bindings: dict[str, str] = {}

    def target_types(self, profiles: list[str]) -> frozenset[str] | None:
        types: set[str] = set()
        for url in profiles:
            url = canonical_url(url)
            if url in self.sds:
                types.add(self.sds[url]["type"])
            elif url.startswith(CORE_SD) and url[len(CORE_SD) :] in RESOURCE_TYPES:
                types.add(url[len(CORE_SD) :])
            else:
                return None  # a profile outside the IG and core (e.g. vitalsigns): its type is not known here
        return None if not types or types & {"Resource", "DomainResource"} else frozenset(types)

    def rule(self, el: dict[str, Any]) -> ElementRule:
        last = el["id"].rsplit(".", 1)[-1]
        base, _, slice_name = last.partition(":")
        max_raw = el.get("max", "*")
        types = tuple(
            TypeRule(
                code=_type_code(t["code"]),
                target_types=self.target_types(t.get("targetProfile", []))
                if t["code"] == "Reference"
                else None,
                profiles=tuple(t.get("profile", [])),
            )
            for t in el.get("type", [])
        )
        rule = ElementRule(
            id=el["id"],
            path=el["path"],
            name=base.removesuffix("[x]"),
            choice=base.endswith("[x]"),
            min=int(el.get("min", 0)),
            max=None if max_raw == "*" else int(max_raw),
            types=types,
            slice_name=slice_name or None,
        )
        for key, value in el.items():
            if key.startswith("fixed"):
                rule.fixed = value
            elif key.startswith("pattern"):
                rule.pattern = value
        binding = el.get("binding") or {}
        if binding.get("strength") == "required" and binding.get("valueSet"):
            rule.binding = binding["valueSet"]
            rule.binding_codes = self.valuesets.codes(rule.binding)
            if rule.binding_codes is None:
                why = (
                    self.valuesets.unexpandable.get(canonical_url(rule.binding))
                    or "not an IG ValueSet: core R4 code lists are enforced by the structural validation"
                )
                self.unchecked_bindings[el["id"]] = f"{rule.binding}: {why}"
        if "slicing" in el:
            s = el["slicing"]
            rule.slicing = Slicing(
                [(d["type"], d["path"]) for d in s.get("discriminator", [])],
                s.get("rules", "open"),
                bool(s.get("ordered", False)),
            )
        return rule

    def tree(self) -> tuple[ElementRule, list[Constraint], dict[str, str]]:
        elements = self.sd["snapshot"]["element"]
        by_id: dict[str, ElementRule] = {}
        root = self.rule(elements[0])
        by_id[root.id] = root
        constraints: list[Constraint] = []
        skipped: dict[str, str] = {}
        seen: set[tuple[str, str]] = set()
        for el in elements:
            for raw in el.get("constraint", []):
                if (el["path"], raw["key"]) in seen:
                    continue
                seen.add((el["path"], raw["key"]))
                why = skip_reason(raw.get("expression"))
                if why:
                    skipped[raw["key"]] = why
                else:
                    constraints.append(compile_constraint(raw, el["path"]))
            if el is elements[0]:
                continue
            rule = self.rule(el)
            by_id[rule.id] = rule
            head, _, last = rule.id.rpartition(".")
            if rule.slice_name:
                sliced = by_id.get(f"{head}.{last.split(':')[0]}")
                if sliced is None:
                    raise ProfileCompileError(f"{self.sd['url']}: slice {rule.id} has no sliced element")
                sliced.slices.append(rule)
            else:
                parent = by_id.get(head)
                if parent is None:
                    raise ProfileCompileError(f"{self.sd['url']}: element {rule.id} has no parent")
                parent.children.append(rule)
        for rule in by_id.values():
            if rule.slicing is not None:
                for s in rule.slices:
                    s.matcher = self.matcher(rule, s)
        return root, constraints, skipped

    def matcher(self, sliced: ElementRule, s: ElementRule) -> Callable[[Any, str | None], bool]:
        tests: list[Callable[[Any, str | None], bool]] = []
        assert sliced.slicing is not None
        for kind, path in sliced.slicing.discriminators:
            tests.append(self.discriminator(kind, path, s))
        return lambda value, type_code: all(t(value, type_code) for t in tests)

    def discriminator(self, kind: str, path: str, s: ElementRule) -> Callable[[Any, str | None], bool]:
        where = f"{self.sd['url']} slice {s.id}"
        if kind == "type":
            if path == "$this":
                allowed = s.type_codes()
                return lambda value, type_code: type_code in allowed
            target = self.resolve(s, path)
            if target is None:
                raise ProfileCompileError(f"{where}: type discriminator path {path!r} not found")
            name, allowed_types = target.name, target.type_codes()
            return lambda value, type_code: item_choice_type(value, name) in allowed_types
        if kind in ("value", "pattern"):
            target = self.resolve(s, path)
            if target is None and path == "url" and s.types and s.types[0].profiles:
                url = s.types[0].profiles[0]  # an extension slice: its url is its profile's canonical
                return lambda value, type_code: isinstance(value, dict) and value.get("url") == url
            if target is None:
                raise ProfileCompileError(f"{where}: discriminator path {path!r} not found")
            if target.has_fixed:
                fixed = target.fixed
                return lambda value, type_code: any(v == fixed for v in values_at(value, path))
            if target.has_pattern:
                pattern = target.pattern
                return lambda value, type_code: any(
                    matches_pattern(v, pattern) for v in values_at(value, path)
                )
            if target.binding_codes is not None:
                codes = target.binding_codes
                return lambda value, type_code: any(in_codes(v, codes) for v in values_at(value, path))
            raise ProfileCompileError(f"{where}: nothing fixed, patterned or bound at {path!r}")
        if kind == "exists":
            target = self.resolve(s, path)
            if target is None:
                raise ProfileCompileError(f"{where}: exists discriminator path {path!r} not found")
            must = target.min > 0
            return lambda value, type_code: bool(values_at(value, path)) == must
        raise ProfileCompileError(f"{where}: discriminator type {kind!r} is not supported")

    @staticmethod
    def resolve(s: ElementRule, path: str) -> ElementRule | None:
        """The element at ``path`` under slice ``s``; through sub-slices (bp's ``code.coding:SBPCode.code``)
        the first one that fixes, patterns or binds a value is taken."""
        if path == "$this":
            return s
        nodes = [s]
        for step in path.split("."):
            nxt: list[ElementRule] = []
            for node in nodes:
                child = node.child(step)
                if child is not None:
                    nxt += [child, *child.slices]
            nodes = nxt
        for node in nodes:
            if node.has_fixed or node.has_pattern or node.binding_codes is not None:
                return node
        return nodes[0] if nodes else None


def in_codes(value: Any, codes: frozenset[Code]) -> bool:
    """Whether a code, Coding, CodeableConcept or Quantity ``value`` is in the expansion ``codes``.

    For a CodeableConcept one coding from the ValueSet suffices (R4 terminologies.html#required); a bare
    ``code`` (whose system is implied by the element) matches a code of any system of the expansion.
    """
    if isinstance(value, str):
        return any(code == value for _, code in codes)
    if isinstance(value, dict):
        if "coding" in value:
            return any(in_codes(c, codes) for c in value.get("coding") or [])
        return (value.get("system"), value.get("code")) in codes
    return False


def compile_profile(
    sd: dict[str, Any], sds: dict[str, dict[str, Any]], valuesets: ValueSetIndex
) -> CompiledProfile:
    """Compile one StructureDefinition (with a snapshot); ``sds`` are the IG's, to type reference targets."""
    if not sd.get("snapshot", {}).get("element"):
        raise ProfileCompileError(f"{sd.get('url')}: the StructureDefinition has no snapshot")
    compiler = _Compiler(sd, sds, valuesets)
    root, constraints, skipped = compiler.tree()
    return CompiledProfile(
        url=sd["url"],
        type=sd["type"],
        root=root,
        constraints=constraints,
        skipped_constraints=skipped,
        unchecked_bindings=compiler.unchecked_bindings,
    )
