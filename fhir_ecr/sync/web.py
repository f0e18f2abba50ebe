"""The sync status page for the practice's coaches and administrators: ``/app/sync`` (per EMR: the last pull of each
type and its lag, the outbox depth, parked failures) and ``POST /app/sync/retry`` (retry parked rows). Coaches
only (a patient gets 403, as on every coach page); the retry form carries the session's CSRF token."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import Access, current_access
from ..outcomes import bad_request
from ..web.pages import PageRoute, page, require_coach
from .status import sync_status

__all__ = ["router"]

router = APIRouter(prefix="/app/sync", route_class=PageRoute, include_in_schema=False)
AccessDep = Annotated[Access, Depends(current_access)]


def _ago(epoch: int | None) -> str:
    if not epoch:
        return "never"
    seconds = max(0, int(time.time() - epoch))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _span(seconds: int | None) -> str:
    if seconds is None:
        return "–"
    return _ago(int(time.time()) - seconds).removesuffix(" ago")


@router.get("")
async def status_page(request: Request, access: AccessDep) -> Response:
    require_coach(access)
    services = request.app.state.services
    ehrs = await run_in_threadpool(sync_status, services)
    return page(
        request,
        "sync_status.html",
        {
            "title": "EMR sync",
            "ehrs": ehrs,
            "ago": _ago,
            "span": _span,
            "retried": request.query_params.get("retried"),
        },
    )


@router.post("/retry")
async def retry(request: Request, access: AccessDep) -> Response:
    require_coach(access)
    form = await request.form()
    services = request.app.state.services
    raw = form.get("row")
    ehr = form.get("ehr")
    if raw is not None:
        if not isinstance(raw, str) or not raw.isdigit():
            raise bad_request("row must be an outbox row number")
        n = await run_in_threadpool(services.sync_store.retry, [int(raw)])
    elif isinstance(ehr, str) and ehr:
        n = await run_in_threadpool(services.sync_store.retry, None, ehr)
    else:
        raise bad_request("say which row (row) or which EHR (ehr) to retry")
    for ehr_id in await run_in_threadpool(services.sync_store.due_ehrs):
        services.jobs.enqueue("deliver", ehr_id)
    return RedirectResponse(f"/app/sync?retried={n}", 303)
