"""Structural validation of resources with the ``fhir.resources`` R4 models.

``fhir.resources`` 8 ships R4B models (``fhir.resources.R4B``); R4B changed none of the resources mECR serves in
ways that matter here except: ``R4B`` adds a few elements (e.g. ``Observation.subject`` targets), never removes
R4 ones, so every valid R4 resource of these types validates. Its errors (pydantic) are turned into one
OperationOutcome issue per problem, each with the FHIRPath of the offending element, together with the problems
the models leave unreported after a first one (:mod:`.structure`) and the codes that break a required binding
of the base spec (:mod:`.bindings`, which the models do not check): one answer lists every problem.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from pydantic import ValidationError

from ..outcomes import FhirError, Issue, issue
from .bindings import binding_issues
from .searchparams import resource_types
from .structure import unreported_issues

__all__ = ["validate_resource", "model_for", "validation_issues"]


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
        raise FhirError(issue("required", "resourceType is missing", expression="resourceType"), 400)
    try:
        model = model_for(rtype)
    except KeyError:
        raise FhirError(issue("not-supported", f"resource type {rtype} is not supported"), 400) from None
    structural: list[Issue] = []
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        structural = validation_issues(rtype, exc)
        structural += unreported_issues(model, resource, structural)
    except (ValueError, TypeError, AttributeError) as exc:  # fhir.resources raises these for some primitive
        # checks (AttributeError: a number where it expects a uri string, e.g. Attachment.url = 1.5)
        structural = [issue("value", str(exc)[:500], expression=rtype)]
    bindings = binding_issues(resource)
    if structural or bindings:
        raise FhirError(structural + bindings, 400 if structural else 422)
