"""``POST /api/patients/{patient_id}/wearable-imports``: the patient app uploads a wearable export.

The multipart body is streamed to a temporary file (never held in memory) and refused with 413 as soon as it
passes the size limit (``max_upload_bytes`` when the settings have it, else ``max_body_bytes``). The import
runs in the thread pool; the answer is the import summary (201) or an OperationOutcome (4xx): 401/403 from
the access check, 404 for an unknown patient, 413 too large (the upload, or a zip archive past
``max_unzipped_bytes`` / ``max_zip_ratio``: a zip bomb), 415 not multipart, 422 an unreadable file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..coaching.service import CoachingService
from ..deps import AccessDep, ServicesDep
from ..outcomes import Invalid, bad_request, business_rule, issue, not_supported, too_large
from ..services import Services
from .formats import FORMATS
from .importer import ImportOptions, WearableImporter, WearableImportError, parse_source_priority
from .ziplimits import ZipLimits

__all__ = ["router", "upload_limit", "zip_limits", "UPLOAD_PATH"]

router = APIRouter(tags=["wearables"])
#: The upload route's path: its bodies get ``max_upload_bytes`` instead of ``max_body_bytes`` (RequestGuard).
UPLOAD_PATH = re.compile(r"^/api/patients/[^/]+/wearable-imports/?$")


def upload_limit(services: Services) -> int:
    """Largest upload accepted, in bytes."""
    return services.settings.max_upload_bytes


def zip_limits(services: Services) -> ZipLimits:
    """The limits on zip archives (``MECR_MAX_UNZIPPED_BYTES``, ``MECR_MAX_ZIP_RATIO``)."""
    return ZipLimits(services.settings.max_unzipped_bytes, services.settings.max_zip_ratio)


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise too_large(f"the upload is larger than the limit of {limit:,} bytes")
        yield chunk


@router.post(
    "/api/patients/{patient_id}/wearable-imports",
    status_code=201,
    summary="Import a wearable export for a patient",
    response_description="The import summary: read, mapped, skipped (with reasons and locations), created, "
    "updated, unchanged",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "the export (Apple Health export.zip/xml, Fitbit, Garmin .fit, Withings, "
                                "Google Fit, iHealth, Open mHealth JSON)",
                            },
                            "format": {
                                "type": "string",
                                "enum": list(FORMATS),
                                "description": "default: detected",
                            },
                            "sourcePriority": {
                                "type": "string",
                                "description": "e.g. 'garmin,apple watch' (docs/wearables.md)",
                            },
                        },
                    }
                }
            },
        }
    },
)
async def upload_wearable_export(
    patient_id: str, request: Request, access: AccessDep, services: ServicesDep
) -> JSONResponse:
    """Stream the uploaded file to disk, import it idempotently, answer with the summary (docs/wearables.md)."""
    access.require_patient(patient_id, "c", "Observation")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise not_supported("upload the export as multipart/form-data with a 'file' part", 415)
    limit = upload_limit(services)
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large(f"the upload is larger than the limit of {limit:,} bytes")
    parser = MultiPartParser(request.headers, _limited(request, limit), max_files=1, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise bad_request(f"the multipart body cannot be read: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("the upload has no 'file' part", "file")
        fmt = form.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise Invalid(
                issue("value", f"format must be one of {', '.join(FORMATS)}", expression="format"), 400
            )
        priority = form.get("sourcePriority")
        try:
            rule = parse_source_priority([str(priority)]) if priority else None
        except ValueError as exc:
            raise Invalid(issue("value", str(exc), expression="sourcePriority"), 400) from None
        name = Path(upload.filename or "upload").name
        extra: dict[str, Any] = {"rule": rule} if rule else {}
        options = ImportOptions(format=str(fmt) if fmt else None, zip_limits=zip_limits(services), **extra)
        summary = await run_in_threadpool(_run_import, services, patient_id, upload, name, options)
    finally:
        await form.close()
    return JSONResponse(summary, status_code=201)


def _run_import(
    services: Services, patient_id: str, upload: UploadFile, name: str, options: ImportOptions
) -> dict[str, Any]:
    tz = services.settings.default_time_zone
    importer = WearableImporter(
        services.repo, default_tz=tz, options=options, coaching=CoachingService(services.repo, default_tz=tz)
    )
    # The parser has spooled the part to a temporary file (seekable, on disk beyond 1 MB): read it from there.
    upload.file.seek(0)
    try:
        return importer.import_stream(patient_id, upload.file, name).to_dict()
    except WearableImportError as exc:
        where = ", ".join(str(x) for x in (exc.file or name, f"line {exc.line}" if exc.line else None))
        if exc.too_large:
            raise too_large(f"{where}: {exc}") from None
        raise business_rule(issue("invalid", f"{where}: {exc}")) from None
