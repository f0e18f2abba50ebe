"""Walking a resource over a compiled profile: one OperationOutcome issue per problem, each with its FHIRPath.

Issue codes (http://hl7.org/fhir/R4/valueset-issue-type.html): ``required`` for a missing element (below
``min``), ``structure`` for too many (above ``max``), a wrong type or reference target, a slice's cardinality
and an item outside a closed slicing, ``value`` for a ``fixed[x]``/``pattern[x]`` mismatch, ``code-invalid``
for a code outside a required binding, ``invariant`` for a FHIRPath constraint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..outcomes import Issue, issue
from .compiler import CompiledProfile, ElementRule, choice_type, in_codes, matches_pattern

__all__ = ["check_profile", "reference_type"]

# A literal reference: [base/]Type/id[/_history/vid] (R4 references.html#literal).
_LITERAL = re.compile(r"^(?:.*/)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def reference_type(reference: str, resource: dict[str, Any]) -> str | None:
    """The resource type a literal reference points at; None when it cannot be told (urn:uuid, urn:oid)."""
    if reference.startswith("#"):
        for contained in resource.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                return contained.get("resourceType")
        return None
    if reference.startswith("urn:"):
        return None  # a placeholder resolved inside a transaction Bundle; its target is not known here
    m = _LITERAL.match(reference)
    return m.group(1) if m else None


@dataclass
class _Item:
    value: Any
    expr: str
    type_code: str | None


@dataclass
class _Walk:
    resource: dict[str, Any]
    extensions: dict[str, CompiledProfile]
    issues: list[Issue] = field(default_factory=list)
    present: set[str] = field(default_factory=set)

    def error(self, code: str, message: str, expr: str) -> None:
        self.issues.append(issue(code, message, expression=expr))

    def items(self, obj: dict[str, Any], rule: ElementRule, parent_expr: str) -> list[_Item]:
        found: list[tuple[str, Any, str | None]] = []
        if rule.choice:
            n = len(rule.name)
            for key, value in obj.items():
                if key.startswith(rule.name) and key[n : n + 1].isupper():
                    found.append((key, value, choice_type(key[n:])))
        elif rule.name in obj:
            found.append((rule.name, obj[rule.name], rule.types[0].code if len(rule.types) == 1 else None))
        elif "_" + rule.name in obj:  # a primitive with only an extension is still present
            found.append((rule.name, None, None))
        out: list[_Item] = []
        for key, value, type_code in found:
            if isinstance(value, list):
                out += [_Item(v, f"{parent_expr}.{key}[{i}]", type_code) for i, v in enumerate(value)]
            else:
                out.append(_Item(value, f"{parent_expr}.{key}", type_code))
        return out

    def children(self, rule: ElementRule, obj: dict[str, Any], expr: str) -> None:
        for child in rule.children:
            self.element(child, self.items(obj, child, expr), f"{expr}.{child.name}")

    def element(self, rule: ElementRule, items: list[_Item], expr: str) -> None:
        n = len(items)
        if n < rule.min:
            self.error("required", f"{rule.path}: at least {rule.min} required, found {n}", expr)
        if rule.max is not None and n > rule.max:
            self.error("structure", f"{rule.path}: at most {rule.max} allowed, found {n}", expr)
        if items:
            self.present.add(rule.path)
        for item in items:
            self.item(rule, item)
        if rule.slicing is not None:
            self.slicing(rule, items, expr)

    def item(self, rule: ElementRule, item: _Item) -> None:
        if not self.type_ok(rule, item):
            return
        value = item.value
        if value is None:
            return
        if rule.has_fixed and value != rule.fixed:
            self.error(
                "value", f"{rule.path}: must be exactly {_show(rule.fixed)}, not {_show(value)}", item.expr
            )
        if rule.has_pattern and not matches_pattern(value, rule.pattern):
            self.error("value", f"{rule.path}: must match the pattern {_show(rule.pattern)}", item.expr)
        if rule.binding_codes is not None and not in_codes(value, rule.binding_codes):
            self.error(
                "code-invalid",
                f"{rule.path}: {_show(_code_of(value))} is not in the required value set {rule.binding}",
                item.expr,
            )
        type_rule = rule.type_rule(item.type_code)
        if type_rule is not None and isinstance(value, dict):
            if type_rule.code == "Reference" and type_rule.target_types is not None:
                ref = value.get("reference")
                target = reference_type(ref, self.resource) if isinstance(ref, str) else None
                if target is not None and target not in type_rule.target_types:
                    allowed = ", ".join(sorted(type_rule.target_types))
                    self.error(
                        "structure",
                        f"{rule.path}: a reference to {target} is not allowed here (allowed: {allowed})",
                        f"{item.expr}.reference",
                    )
            for url in type_rule.profiles:
                ext = self.extensions.get(url)
                if ext is not None:
                    self.children(ext.root, value, item.expr)
        if rule.children and isinstance(value, dict):
            self.children(rule, value, item.expr)

    def type_ok(self, rule: ElementRule, item: _Item) -> bool:
        if not rule.choice or not rule.types:
            return True
        allowed = rule.type_codes()
        if item.type_code in allowed:
            return True
        self.error(
            "structure",
            f"{rule.path}: type {item.type_code} is not allowed here (allowed: {', '.join(sorted(allowed))})",
            item.expr,
        )
        return False

    def slicing(self, rule: ElementRule, items: list[_Item], expr: str) -> None:
        assert rule.slicing is not None
        valid = [i for i in items if not rule.choice or i.type_code in rule.type_codes()]
        matched_any: set[int] = set()
        for s in rule.slices:
            assert s.matcher is not None
            matched = [i for i in valid if s.matcher(i.value, i.type_code)]
            matched_any.update(id(i) for i in matched)
            if len(matched) < s.min:
                self.error(
                    "structure",
                    f"{rule.path}: slice '{s.slice_name}' needs at least {s.min}, found {len(matched)}",
                    expr,
                )
            if s.max is not None and len(matched) > s.max:
                self.error(
                    "structure",
                    f"{rule.path}: slice '{s.slice_name}' allows at most {s.max}, found {len(matched)}",
                    expr,
                )
            for item in matched:
                self.item(s, item)
        if rule.slicing.rules == "closed":
            for item in valid:
                if id(item) not in matched_any:
                    self.error(
                        "structure",
                        f"{rule.path}: matches none of the slices "
                        f"({', '.join(str(s.slice_name) for s in rule.slices)}) and the slicing is closed",
                        item.expr,
                    )


def _code_of(value: Any) -> Any:
    if isinstance(value, dict):
        if "coding" in value:
            return [f"{c.get('system')}#{c.get('code')}" for c in value.get("coding") or []]
        return f"{value.get('system')}#{value.get('code')}"
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_profile(
    profile: CompiledProfile, resource: dict[str, Any], extensions: dict[str, CompiledProfile]
) -> list[Issue]:
    """Every problem of ``resource`` against ``profile``: element rules, then invariants (deduplicated)."""
    walk = _Walk(resource, extensions)
    rtype = profile.type
    walk.children(profile.root, resource, rtype)
    walk.present.add(profile.root.path)
    for c in profile.constraints:
        if c.element_path not in walk.present:
            continue
        held = c.holds(resource)
        where = c.element_path.replace("[x]", "")
        if held is None:
            walk.issues.append(
                issue(
                    "processing",
                    f"constraint {c.key} could not be evaluated",
                    severity="warning",
                    expression=where,
                )
            )
        elif not held:
            walk.issues.append(
                issue(
                    "invariant",
                    f"{c.key}: {c.human}",
                    expression=where,
                    severity="error" if c.severity == "error" else "warning",
                )
            )
    out: list[Issue] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i in walk.issues:
        key = (i["severity"], i["code"], i["diagnostics"], ",".join(i.get("expression", [])))
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out
