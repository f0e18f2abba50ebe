"""Structural validation of resources with the ``fhir.resources`` R4 models.

``fhir.resources`` 8 ships R4B models (``fhir.resources.R4B``); R4B changed none of the resources mECR serves in
ways that matter here except: ``R4B`` adds a few elements (e.g. ``Observation.subject`` targets), never removes
R4 ones, so every valid R4 resource of these types validates. Its errors (pydantic) are turned into one
OperationOutcome issue per problem, each with the FHIRPath of the offending element, together with the problems
the models leave unreported after a first one (:mod:`.structure`) and the codes that break a required binding
of the base spec (:mod:`.bindings`, which the models do not check): one answer lists every problem.

Two rules the models do not check are checked too: the id rule (https://hl7.org/fhir/R4/datatypes.html#id:
at most 64 characters; the store's key column holds 64) and no NUL character in any string
(https://hl7.org/fhir/R4/datatypes.html#string; PostgreSQL cannot store one in JSONB).
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError

from ..outcomes import Invalid, Issue, NotSupported, invalid, issue
from .bindings import binding_issues
from .searchparams import resource_types
from .structure import unreported_issues

__all__ = ["validate_resource", "model_for", "validation_issues", "is_fhir_id"]

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_fhir_id(value: str) -> bool:
    """Whether ``value`` follows the FHIR id rule: 1 to 64 of ``A-Z a-z 0-9 - .``."""
    return _ID.fullmatch(value) is not None


def _nul_path(value: Any, path: str) -> str | None:
    """The FHIRPath of the first string (or key) holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = path if "\x00" in key else _nul_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


@cache
def model_for(resource_type: str) -> Any:
    """The ``fhir.resources.R4B`` model class for a resource type the store serves."""
    if resource_type not in resource_types():
        raise KeyError(resource_type)
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def _expression(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-") and part not in ("__root__",):
            path += f".{part}"
    return path


def validation_issues(resource_type: str, exc: ValidationError) -> list[dict[str, Any]]:
    """One OperationOutcome issue per pydantic error."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        message = err.get("msg", "invalid value")
        code = "structure" if kind == "extra_forbidden" else "value"
        if kind == "missing" or "is required" in message:
            code = "required"
        if kind == "extra_forbidden":
            message = "unknown element"
        issues.append(issue(code, f"{message}", expression=_expression(resource_type, loc)))
    return issues or [issue("invalid", "the resource is not valid", expression=resource_type)]


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise a FhirError listing every problem of ``resource`` (a parsed JSON object): 400 when its structure is
    wrong (with any broken bindings in the same answer), 422 when only required bindings are broken."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise Invalid(issue("required", "resourceType is missing", expression="resourceType"), 400)
    try:
        model = model_for(rtype)
    except KeyError:
        raise NotSupported(issue("not-supported", f"resource type {rtype} is not supported"), 400) from None
    structural: list[Issue] = []
    rid = resource.get("id")
    if isinstance(rid, str) and not is_fhir_id(rid):
        structural.append(
            issue("value", "id must be 1 to 64 of A-Z, a-z, 0-9, '-' and '.'", expression=f"{rtype}.id")
        )
    try:  # a cheap test first; the walk names the element
        suspect = b"\\u0000" in orjson.dumps(resource)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer past 64 bits: walk anyway
        suspect = True
    if suspect:
        where = _nul_path(resource, rtype)
        if where:
            structural.append(
                issue("value", "a NUL character (U+0000) is not allowed in a FHIR string", expression=where)
            )
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        found = validation_issues(rtype, exc)
        structural += found + unreported_issues(model, resource, found)
    except (ValueError, TypeError, AttributeError) as exc:  # fhir.resources raises these for some primitive
        # checks (AttributeError: a number where it expects a uri string, e.g. Attachment.url = 1.5)
        structural.append(issue("value", str(exc)[:500], expression=rtype))
    bindings = binding_issues(resource)
    if structural or bindings:
        raise invalid(structural + bindings, 400 if structural else 422)
