"""``$validate`` on every resource type (https://hl7.org/fhir/R4/resource-operation-validate.html).

``POST /fhir/{type}/$validate`` with the resource as the body, or a Parameters with ``resource`` and
optional ``profile`` (also accepted as a query parameter). The answer is always 200 with an
OperationOutcome listing every problem a write would be refused for -- structure, required bindings of the base
spec, and the profile issues (errors and warnings) -- or one informational issue saying the resource is valid.
Without ``profile`` the resource is checked against its own mECR ``meta.profile`` claims, exactly as a write
would be. ``mode`` (create/update/delete) is not supported: every call validates the resource as content.
"""

from __future__ import annotations

from typing import Any

from ..fhir.operations import Operation, OperationCall, OperationRegistry
from ..outcomes import FhirError, Issue, bad_request, business_rule, issue, outcome
from ..store.validation import validate_resource
from .validator import compose_validators

__all__ = ["register_validate_operation", "validate_call"]


def validate_call(call: OperationCall) -> dict[str, Any]:
    """The ``$validate`` handler: an OperationOutcome for the resource in the call."""
    resource = call.get("resource")
    if resource is None and isinstance(call.body, dict) and call.body.get("resourceType") != "Parameters":
        resource = call.body
    if not isinstance(resource, dict):
        raise bad_request("$validate needs a resource: the request body, or a Parameters 'resource'")
    if resource.get("resourceType") != call.resource_type:
        raise bad_request(
            f"$validate on {call.resource_type} needs a {call.resource_type}, "
            f"not {resource.get('resourceType')!r}",
            "resourceType",
        )
    profiles = [str(p) for p in call.get_all("profile") if p]
    warnings: list[Issue] = []

    def check_profiles(res: dict[str, Any]) -> None:
        found = call.services.conformance.issues(res, profiles or None)
        if any(i["severity"] in ("error", "fatal") for i in found):
            raise business_rule(found)
        warnings.extend(found)

    try:
        compose_validators(validate_resource, check_profiles)(resource)
    except FhirError as exc:
        return outcome(exc.issues + warnings)
    issues = warnings
    if not issues:
        what = ", ".join(profiles) if profiles else "its profile claims"
        issues = [
            issue("informational", f"valid: no problems found (structure and {what})", severity="information")
        ]
    return outcome(issues)


def register_validate_operation(registry: OperationRegistry) -> None:
    """Add ``$validate`` (type level, every resource type) to ``registry``."""
    registry.register(
        Operation(
            name="validate",
            title="Validate a resource",
            description="Checks a resource's structure and its mECR profiles (those it claims in meta.profile, or "
            "the one given as 'profile') without storing it; answers an OperationOutcome.",
            handler=validate_call,
            type=True,
            parameters=[
                {"name": "resource", "use": "in", "min": 0, "max": "1", "type": "Resource"},
                {"name": "profile", "use": "in", "min": 0, "max": "1", "type": "uri"},
                {"name": "return", "use": "out", "min": 1, "max": "1", "type": "OperationOutcome"},
            ],
        )
    )
