"""The Bulk Data routes: the system-level kick-off ``/fhir/$export``, the status URL and the files
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html). ``Patient/$export`` and ``Group/{id}/$export`` are served by the
FHIR routes' operation dispatch; all three call the one ``$export`` operation (:func:`fhir_ecr.bulk.export.kick_off`).

Only the client that started an export may poll, download or delete it; for anyone else, and for an export that
expired, the answer is the one for an export that does not exist (404). Include this router before the FHIR
router: ``/fhir/{rtype}/{rid}`` would match these paths too.
"""

from __future__ import annotations

import json
import re
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import current_access
from ..outcomes import FhirError, issue, not_found
from ..services import Services, get_services
from ..store import jsonexact
from .export import job_dir

__all__ = ["router"]

router = APIRouter(prefix="/fhir", tags=["FHIR Bulk Data"])
ServicesDep = Annotated[Services, Depends(get_services)]
_NAME = re.compile(r"^[A-Za-z]+-[0-9]+\.ndjson$")
_JOB = re.compile(r"^[0-9a-f]{32}$")


@router.get("/$export", summary="Bulk Data export kick-off (system level)")
@router.post("/$export", include_in_schema=False)
async def export_system(request: Request, services: ServicesDep) -> Response:
    from ..fhir.routes import _operation  # the FHIR layer's one operation dispatch

    return await _operation(request, services, "$export", None, None)


def _job_for(request: Request, services: Services, job_id: str) -> dict[str, Any]:
    """The caller's export ``job_id``; 404 as for a missing one when it is someone else's or has expired."""
    access = current_access(request)
    principal = access.require_login()
    job = services.sync_store.export(job_id) if _JOB.match(job_id) else None
    owner = principal.client_id or principal.kind
    if job is None or job["client_id"] != owner:
        raise FhirError(issue("not-found", "no such export (it may have expired)"), 404)
    return job


def _fhir_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        jsonexact.dumps(body), status_code=status, media_type="application/fhir+json", headers=headers or {}
    )


@router.get("/$export-status/{job_id}", summary="Bulk Data export status (poll)")
async def export_status(job_id: str, request: Request, services: ServicesDep) -> Response:
    job = await run_in_threadpool(_job_for, request, services, job_id)
    state = job["state"]
    if state in ("queued", "running"):
        return Response(
            status_code=202, headers={"X-Progress": (job["progress"] or state)[:100], "Retry-After": "2"}
        )
    if state == "failed":
        return _fhir_json(
            {
                "resourceType": "OperationOutcome",
                "issue": [issue("exception", "the export failed; start a new one", severity="fatal")],
            },
            500,
        )
    if state == "cancelled":
        raise not_found("export", job_id)
    manifest = {
        "transactionTime": job["transaction_time"],
        "request": job["request"],
        "requiresAccessToken": True,
        "output": json.loads(job["output"] or "[]"),
        "error": [],
    }
    return Response(
        json.dumps(manifest),
        media_type="application/json",
        headers={"Expires": formatdate(job["expires"] or 0, usegmt=True)},
    )


@router.delete("/$export-status/{job_id}", summary="Cancel or delete a Bulk Data export")
async def export_delete(job_id: str, request: Request, services: ServicesDep) -> Response:
    def run() -> None:
        job = _job_for(request, services, job_id)
        store = services.sync_store
        if job["state"] in ("queued", "running"):
            store.update_export(job_id, state="cancelled", expires=0)
        else:
            store.delete_export(job_id)
        import shutil

        shutil.rmtree(job_dir(services, job_id), ignore_errors=True)

    await run_in_threadpool(run)
    return _fhir_json(
        {
            "resourceType": "OperationOutcome",
            "issue": [issue("informational", "export deleted", severity="information")],
        },
        202,
    )


@router.get("/$export-file/{job_id}/{name}", summary="A file of a finished Bulk Data export")
async def export_file(job_id: str, name: str, request: Request, services: ServicesDep) -> Response:
    job = await run_in_threadpool(_job_for, request, services, job_id)
    path = job_dir(services, job_id) / name
    listed = {o["url"].rsplit("/", 1)[-1] for o in json.loads(job["output"] or "[]")}
    if job["state"] != "complete" or not _NAME.match(name) or name not in listed or not path.is_file():
        raise FhirError(issue("not-found", "no such file (the export may have expired)"), 404)
    return FileResponse(path, media_type="application/fhir+ndjson")
