"""OperationOutcome factories and the one error type that carries them.

Domain code raises :class:`FhirError` — one of its typed subclasses, built with the factories below — and the
FHIR layer's single exception handler turns it into an HTTP response whose status comes from :func:`status_for`.
Callers that handle an error catch its type, never compare status numbers. Hierarchy::

    Exception
     └── FhirError                 carries an OperationOutcome and an HTTP status
          ├── BadRequest           400  the request is malformed (bad JSON, search value, header)
          ├── Invalid              400  the resource is not acceptable (structure, bindings, profiles)
          │    └── BusinessRule    422  a valid resource that breaks a rule of the domain
          ├── Unauthorized         401  no or bad credentials
          ├── Forbidden            403  authenticated, but not allowed
          ├── NotFound             404  no such type, resource or version
          ├── NotSupported         400/405/406/415  a feature, interaction, format or parameter not supported
          ├── VersionConflict      the current version is not the one the caller expected
          │    ├── Conflict        409  a write race, a duplicate, a state that forbids the change
          │    └── PreconditionFailed  412  If-Match did not match; a conditional matched several
          ├── Gone                 410  the resource was deleted
          ├── TooLarge             413  the request body is larger than allowed
          └── ServerError          500  unexpected; the details stay in the log

Issue codes and severities are those of http://hl7.org/fhir/R4/valueset-issue-type.html.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "FhirError",
    "BadRequest",
    "Invalid",
    "BusinessRule",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "NotSupported",
    "VersionConflict",
    "Conflict",
    "PreconditionFailed",
    "Gone",
    "TooLarge",
    "ServerError",
    "Issue",
    "outcome",
    "issue",
    "bad_request",
    "invalid",
    "business_rule",
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

    def __init__(
        self,
        issues: Issue | Sequence[Issue],
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.issues: list[Issue] = [issues] if isinstance(issues, dict) else list(issues)
        self.outcome = outcome(self.issues)
        self.status = status or status_for(self.outcome)
        self.headers = headers or {}
        super().__init__("; ".join(_describe(i) for i in self.issues))


def _describe(item: Issue) -> str:
    text = str(item.get("diagnostics") or item["code"])
    where = item.get("expression")
    return f"{', '.join(where)}: {text}" if where else text


class BadRequest(FhirError):
    """400: the request is malformed (https://hl7.org/fhir/R4/http.html#2.21.0.4)."""


class Invalid(FhirError):
    """400: the resource is not acceptable (structure, required bindings, profiles)."""


class BusinessRule(Invalid):
    """422: a resource that is valid FHIR but breaks a rule of the domain (https://hl7.org/fhir/R4/http.html#update)."""


class Unauthorized(FhirError):
    """401: no or bad credentials."""


class Forbidden(FhirError):
    """403: authenticated, but not allowed."""


class NotFound(FhirError):
    """404: no such resource type, resource or version."""


class NotSupported(FhirError):
    """400/405/406/415: a feature, interaction, format or parameter this server does not support."""


class VersionConflict(FhirError):
    """The resource's current version is not the one the caller expected (https://hl7.org/fhir/R4/http.html#concurrency)."""


class Conflict(VersionConflict):
    """409: the request conflicts with the server's current state."""


class PreconditionFailed(VersionConflict):
    """412: If-Match did not match, or a conditional interaction matched more than one resource."""


class Gone(FhirError):
    """410: the resource was deleted."""


class TooLarge(FhirError):
    """413: the request body is larger than allowed."""


class ServerError(FhirError):
    """500: an unexpected error; the details stay in the server log, never in the response."""


def bad_request(diagnostics: str, expression: str | None = None) -> BadRequest:
    """400: the request is malformed (bad JSON, bad search value, bad header)."""
    return BadRequest(issue("invalid", diagnostics, expression=expression), 400)


def invalid(issues: Issue | Sequence[Issue], status: int = 400) -> Invalid:
    """400 (or 422 for a valid resource that breaks a business rule): the resource is not acceptable."""
    return BusinessRule(issues, 422) if status == 422 else Invalid(issues, status)


def business_rule(issues: Issue | Sequence[Issue]) -> BusinessRule:
    """422: a valid resource that breaks a rule of the domain."""
    return BusinessRule(issues, 422)


def not_found(resource_type: str, resource_id: str | None = None, version: str | None = None) -> NotFound:
    """404: no such resource type, resource or version."""
    what = resource_type if resource_id is None else f"{resource_type}/{resource_id}"
    if version is not None:
        what += f"/_history/{version}"
    return NotFound(issue("not-found", f"{what} is not known"), 404)


def gone(resource_type: str, resource_id: str, version: str) -> Gone:
    """410: the resource was deleted (its last version is ``version``)."""
    return Gone(
        issue("deleted", f"{resource_type}/{resource_id} was deleted"), 410, {"ETag": f'W/"{version}"'}
    )


def not_supported(diagnostics: str, status: int = 400, expression: str | None = None) -> NotSupported:
    """400/405/406/415: a feature, interaction, format or parameter this server does not support."""
    return NotSupported(issue("not-supported", diagnostics, expression=expression), status)


def conflict(diagnostics: str, status: int = 409) -> Conflict:
    """409: the request conflicts with the server's current state."""
    return Conflict(issue("conflict", diagnostics), status)


def precondition_failed(diagnostics: str, code: str = "conflict") -> PreconditionFailed:
    """412: If-Match did not match, or a conditional interaction matched more than one resource."""
    return PreconditionFailed(issue(code, diagnostics), 412)


def too_large(diagnostics: str) -> TooLarge:
    """413: the request body is larger than allowed."""
    return TooLarge(issue("too-long", diagnostics), 413)


def unauthorized(diagnostics: str) -> Unauthorized:
    """401: no or bad credentials."""
    return Unauthorized(issue("login", diagnostics), 401, {"WWW-Authenticate": 'Bearer realm="mecr"'})


def forbidden(diagnostics: str) -> Forbidden:
    """403: authenticated, but not allowed."""
    return Forbidden(issue("forbidden", diagnostics), 403)


def server_error(diagnostics: str = "internal server error") -> ServerError:
    """500: an unexpected error; the details stay in the server log, never in the response."""
    return ServerError(issue("exception", diagnostics, severity="fatal"), 500)


def informational(diagnostics: str, expression: str | None = None) -> Issue:
    """A warning issue, e.g. for an ignored search parameter."""
    return issue("informational", diagnostics, severity="warning", expression=expression)
