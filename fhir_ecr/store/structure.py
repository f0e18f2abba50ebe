"""The structural problems the ``fhir.resources`` models leave unreported once another one is found.

Its models check two rules in a pydantic "after" validator (``fhir_core``'s
``validate_after_model_construction``), which pydantic runs only when every field of that object, and of every
object inside it, is valid: a missing required primitive element (``Observation.status``; the element may be
absent when its ``_status`` carries an extension, https://hl7.org/fhir/R4/extensibility.html#Special-Case) and
a choice element given more than once (``valueQuantity`` and ``valueString``,
https://hl7.org/fhir/R4/formats.html#choice; the first such choice also hides the others). So a resource with a
bad date *and* no status would be answered with the date alone. When the models have failed,
:func:`unreported_issues` walks the raw JSON over the same models and reports those two rules everywhere, so
that one answer lists every problem. It is never run on a valid resource.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Iterable
from functools import cache
from typing import Any

from ..outcomes import Issue, issue

__all__ = ["unreported_issues"]


class _Shape(typing.NamedTuple):
    required: tuple[str, ...]  # primitive elements with min = 1 (JSON names)
    choices: tuple[tuple[str, tuple[str, ...], bool], ...]  # (prefix, JSON names, one required)
    children: tuple[tuple[str, Any], ...]  # (JSON name, model class, or None for a contained resource)


def _model_classes(annotation: Any) -> Iterable[Any]:
    """The FHIR model classes named in a field annotation (``Optional[List[abc.ObservationComponentType]]``)."""
    klass = getattr(annotation, "_model_klass", None)
    if isinstance(klass, str):
        yield klass
    for arg in typing.get_args(annotation):
        yield from _model_classes(arg)


@cache
def _load(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@cache
def _shape(model: Any) -> _Shape:
    required: list[str] = []
    choices: dict[str, tuple[list[str], bool]] = {}
    children: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        alias = field.alias or name
        if extra.get("element_required"):
            required.append(alias)
        if extra.get("one_of_many"):
            names, needed = choices.setdefault(str(extra["one_of_many"]), ([], False))
            names.append(alias)
            choices[str(extra["one_of_many"])] = (names, needed or extra.get("one_of_many_required") is True)
        for dotted in _model_classes(field.annotation):
            klass = _load(dotted)
            children.append((alias, None if klass.__name__ == "Resource" else klass))
            break
    return _Shape(tuple(required), tuple((p, tuple(n), r) for p, (n, r) in choices.items()), tuple(children))


def _contained_model(value: dict[str, Any]) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(str(value.get("resourceType")))
    except (KeyError, ValueError, AttributeError):
        return None


def _has_extension(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("extension"))


# (the issue, the path pydantic would report it at)
_Found = list[tuple[Issue, str]]


def _walk(model: Any, obj: dict[str, Any], path: str, out: _Found) -> None:
    shape = _shape(model)
    for alias in shape.required:
        if obj.get(alias) is None and not _has_extension(obj.get(f"_{alias}")):
            where = f"{path}.{alias}"
            out.append(
                (issue("required", f"Value for the field '{alias}' is required.", expression=where), where)
            )
    for prefix, names, needed in shape.choices:
        present = [n for n in names if obj.get(n) is not None]
        if len(present) > 1:
            out.append(
                (
                    issue(
                        "structure",
                        f"{prefix}[x] is a choice of one type, but {', '.join(present)} are all present",
                        expression=path,
                    ),
                    path,
                )
            )
        elif needed and not present:
            out.append(
                (issue("required", f"one of {prefix}[x] is required", expression=f"{path}.{prefix}[x]"), path)
            )
    for alias, child in shape.children:
        value = obj.get(alias)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            if not isinstance(item, dict):
                continue
            klass = child if child is not None else _contained_model(item)
            if klass is not None:
                _walk(klass, item, f"{path}.{alias}" if i is None else f"{path}.{alias}[{i}]", out)


def unreported_issues(model: Any, resource: dict[str, Any], reported: list[Issue]) -> list[Issue]:
    """The missing required primitives and repeated choices of ``resource`` not already among ``reported``."""
    found: _Found = []
    _walk(model, resource, str(resource.get("resourceType")), found)
    seen = {where for i in reported for where in i.get("expression") or ()}
    return [item for item, where in found if where not in seen]
