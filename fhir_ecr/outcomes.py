"""OperationOutcome factories and the one error type that carries them.

Domain code raises :class:`FhirError` (built with the factories below); the FHIR layer's single exception
handler turns it into an HTTP response whose status comes from :func:`status_for`. Hierarchy::

    Exception
     └── FhirError                 carries an OperationOutcome and an HTTP status
          └── VersionConflict      If-Match / expected version did not match (412) or a write race (409)

Issue codes and severities are those of http://hl7.org/fhir/R4/valueset-issue-type.html.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "FhirError",
    "VersionConflict",
    "Issue",
    "outcome",
    "issue",
    "bad_request",
    "invalid",
    "not_found",
    "gone",
    "not_supported",
    "conflict",
    "precondition_failed",
    "too_large",
    "forbidden",
    "unauthorized",
    "server_error",
    "informational",
    "status_for",
]

Issue = dict[str, Any]

# The HTTP status each issue code maps to when it is the first error of an outcome.
_STATUS = {
    "invalid": 400,
    "structure": 400,
    "required": 400,
    "value": 400,
    "invariant": 400,
    "processing": 422,
    "not-supported": 400,
    "duplicate": 409,
    "multiple-matches": 412,
    "not-found": 404,
    "deleted": 410,
    "too-long": 413,
    "conflict": 409,
    "security": 401,
    "login": 401,
    "forbidden": 403,
    "suppressed": 403,
    "exception": 500,
    "too-costly": 400,
    "informational": 200,
}


def issue(
    code: str,
    diagnostics: str,
    *,
    severity: str = "error",
    expression: Sequence[str] | str | None = None,
    details: str | None = None,
) -> Issue:
    """One OperationOutcome.issue; ``expression`` is a FHIRPath (or a list of them) saying where."""
    item: Issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if details:
        item["details"] = {"text": details}
    if expression:
        item["expression"] = [expression] if isinstance(expression, str) else list(expression)
    return item


def outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource holding ``issues``."""
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def status_for(resource: dict[str, Any]) -> int:
    """The HTTP status for an OperationOutcome: that of its first error or fatal issue."""
    for item in resource.get("issue", []):
        if item.get("severity") in ("error", "fatal"):
            return _STATUS.get(item.get("code", ""), 400)
    return 200


class FhirError(Exception):
    """An error that is answered with an OperationOutcome."""

    def __init__(self, issues: Issue | Sequence[Issue], status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.issues: list[Issue] = [issues] if isinstance(issues, dict) else list(issues)
        self.outcome = outcome(self.issues)
        self.status = status or status_for(self.outcome)
        self.headers = headers or {}
        super().__init__("; ".join(_describe(i) for i in self.issues))


def _describe(item: Issue) -> str:
    text = str(item.get("diagnostics") or item["code"])
    where = item.get("expression")
    return f"{', '.join(where)}: {text}" if where else text


class VersionConflict(FhirError):
    """The resource's current version is not the one the caller expected."""


def bad_request(diagnostics: str, expression: str | None = None) -> FhirError:
    """400: the request is malformed (bad JSON, bad search value, bad header)."""
    return FhirError(issue("invalid", diagnostics, expression=expression), 400)


def invalid(issues: Issue | Sequence[Issue], status: int = 400) -> FhirError:
    """400 (or 422 for a valid resource that breaks a business rule): the resource is not acceptable."""
    return FhirError(issues, status)


def not_found(resource_type: str, resource_id: str | None = None, version: str | None = None) -> FhirError:
    """404: no such resource type, resource or version."""
    what = resource_type if resource_id is None else f"{resource_type}/{resource_id}"
    if version is not None:
        what += f"/_history/{version}"
    return FhirError(issue("not-found", f"{what} is not known"), 404)


def gone(resource_type: str, resource_id: str, version: str) -> FhirError:
    """410: the resource was deleted (its last version is ``version``)."""
    return FhirError(
        issue("deleted", f"{resource_type}/{resource_id} was deleted"), 410, {"ETag": f'W/"{version}"'}
    )


def not_supported(diagnostics: str, status: int = 400, expression: str | None = None) -> FhirError:
    """400/405/406/415: a feature, interaction, format or parameter this server does not support."""
    return FhirError(issue("not-supported", diagnostics, expression=expression), status)


def conflict(diagnostics: str, status: int = 409) -> FhirError:
    """409: the request conflicts with the server's current state."""
    return VersionConflict(issue("conflict", diagnostics), status)


def precondition_failed(diagnostics: str, code: str = "conflict") -> FhirError:
    """412: If-Match did not match, or a conditional interaction matched more than one resource."""
    return VersionConflict(issue(code, diagnostics), 412)


def too_large(diagnostics: str) -> FhirError:
    """413: the request body is larger than allowed."""
    return FhirError(issue("too-long", diagnostics), 413)


def unauthorized(diagnostics: str) -> FhirError:
    """401: no or bad credentials."""
    return FhirError(issue("login", diagnostics), 401, {"WWW-Authenticate": 'Bearer realm="mecr"'})


def forbidden(diagnostics: str) -> FhirError:
    """403: authenticated, but not allowed."""
    return FhirError(issue("forbidden", diagnostics), 403)


def server_error(diagnostics: str = "internal server error") -> FhirError:
    """500: an unexpected error; the details stay in the server log, never in the response."""
    return FhirError(issue("exception", diagnostics, severity="fatal"), 500)


def informational(diagnostics: str, expression: str | None = None) -> Issue:
    """A warning issue, e.g. for an ignored search parameter."""
    return issue("informational", diagnostics, severity="warning", expression=expression)
