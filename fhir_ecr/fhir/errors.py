"""The one place that writes error bodies: every failure leaves as an OperationOutcome.

- :class:`~fhir_ecr.outcomes.FhirError` → its own status and outcome;
- FastAPI/pydantic request validation errors → 400, one issue per problem;
- Starlette HTTP errors (unknown route 404, wrong method 405, …) → that status;
- anything else → 500 with a generic message, and one log line with the method, the route template, the
  exception's type and where it was raised (:func:`describe`) — never its message or the traceback text: a
  database error's message quotes values and whole rows (PostgreSQL's ``DETAIL: Failing row contains (…)``,
  ``invalid input syntax for type integer: "…"``), that is PHI.

Starlette re-raises an unexpected exception after the handler has answered, so that the server can log it;
uvicorn then logs it with its traceback. :class:`RedactTracebacks` on the ``uvicorn.error`` and ``asyncio``
loggers turns such records into the same message-free description.
"""

from __future__ import annotations

import logging
import os
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..outcomes import FhirError, issue, outcome
from .http import fhir_response

__all__ = ["install_error_handlers", "describe", "RedactTracebacks"]

log = logging.getLogger("mecr.errors")

_HTTP_CODES = {
    404: "not-found",
    405: "not-supported",
    401: "login",
    403: "forbidden",
    413: "too-long",
    415: "not-supported",
    406: "not-supported",
}


#: Loggers outside mECR that log exceptions with their traceback (and so their message).
FOREIGN_LOGGERS = ("uvicorn.error", "asyncio")


_PACKAGES = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_OUR_CODE = tuple(os.path.join(_PACKAGES, name) + os.sep for name in ("fhir_ecr", "smart_launch"))


def _name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def describe(exc: BaseException, frames: int = 4) -> str:
    """The exception's type, the types of its causes and where it was raised: the innermost ``frames`` of
    mECR's own code (``file:line in function``) and the frame that raised it — never an exception's message,
    which can quote SQL parameters, rows or bodies.

    >>> describe(KeyError("Ana Lopez"))
    'KeyError'
    """
    chain: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(_name(cur))
        cur = cur.__cause__ or cur.__context__
    stack = traceback.extract_tb(exc.__traceback__)
    picked = [f for f in stack if os.path.abspath(f.filename).startswith(_OUR_CODE)][-frames:]
    if stack and (not picked or picked[-1] is not stack[-1]):
        picked.append(stack[-1])
    where = [f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in reversed(picked)]
    text = " from ".join(chain)
    return f"{text} at {' < '.join(where)}" if where else text


class RedactTracebacks(logging.Filter):
    """Replaces a record's traceback by :func:`describe` of its exception (and keeps the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage().rstrip()}: {describe(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _redact_foreign_tracebacks() -> None:
    for name in FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTracebacks) for f in logger.filters):
            logger.addFilter(RedactTracebacks())


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers on ``app`` (and redact the tracebacks uvicorn logs)."""
    _redact_foreign_tracebacks()

    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, exc: FhirError) -> Response:
        return fhir_response(exc.outcome, exc.status, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        issues = [
            issue(
                "invalid", str(e.get("msg", "invalid")), expression=".".join(str(x) for x in e.get("loc", ()))
            )
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
        log.error("unexpected error in %s %s: %s", request.method, where, describe(exc))
        body = outcome([issue("exception", "internal server error", severity="fatal")])
        return fhir_response(body, 500)
