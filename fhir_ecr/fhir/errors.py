"""The one place that writes error bodies: every failure leaves as an OperationOutcome.

- :class:`~fhir_ecr.outcomes.FhirError` → its own status and outcome;
- FastAPI/pydantic request validation errors → 400, one issue per problem;
- Starlette HTTP errors (unknown route 404, wrong method 405, …) → that status;
- anything else → 500 with a generic message; the traceback goes to the server log (no PHI: the log line holds
  the method, the path template and the exception type, not the body).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..outcomes import FhirError, issue, outcome
from .http import fhir_response

__all__ = ["install_error_handlers"]

log = logging.getLogger("mecr.errors")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden", 413: "too-long",
               415: "not-supported", 406: "not-supported"}


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, exc: FhirError) -> Response:
        return fhir_response(exc.outcome, exc.status, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        issues = [
            issue("invalid", str(e.get("msg", "invalid")), expression=".".join(str(x) for x in e.get("loc", ())))
            for e in exc.errors()
        ]
        return fhir_response(outcome(issues), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "processing")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return fhir_response(outcome([issue(code, detail)]), exc.status_code, dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")
        where = getattr(route, "path", "?")
        log.error("unexpected %s in %s %s", type(exc).__name__, request.method, where, exc_info=exc)
        body = outcome([issue("exception", "internal server error", severity="fatal")])
        return fhir_response(body, 500)
