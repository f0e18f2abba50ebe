"""``/app/directory``: the coach's search of the community resource directory (docs/community.md).

==========================  ===================================================================================
``/app/directory``          category, keyword, near a ZIP code (radius), open now, a day, language, age;
                            ``?patient=ID`` pre-fills the patient's SDOH needs and ZIP code, and each result
                            links to ``/app/patients/ID/referrals/new?service=SERVICE-ID`` ("Refer")
==========================  ===================================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mappings.community import CATEGORIES

from ..auth import Access, current_access
from ..directory.finder import LANGUAGES, DirectoryQuery, find_services, patient_needs
from ..outcomes import bad_request
from ..store.mecr_params import DAYS
from . import views
from .pages import PageRoute, page, require_coach

__all__ = ["router"]

router = APIRouter(prefix="/app", route_class=PageRoute, include_in_schema=False)
AccessDep = Annotated[Access, Depends(current_access)]
_RADII = (2, 5, 10, 25, 50)


def _number(text: str, name: str, low: int, high: int) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise bad_request(f"{name} must be a whole number from {low} to {high}", expression=name)
    return int(text)


@router.get("/directory")
async def directory(
    request: Request,
    access: AccessDep,
    patient: str = "",
    category: str = "",
    q: str = "",
    zip: str = "",
    radius: str = "10",
    open_now: str = "",
    day: str = "",
    language: str = "",
    age: str = "",
) -> Response:
    """The directory search page (module docstring)."""
    require_coach(access)
    if category and category not in CATEGORIES:
        raise bad_request(f"unknown category {category!r}", expression="category")
    if day and day not in DAYS:
        raise bad_request(f"day must be one of {', '.join(DAYS)}", expression="day")
    data = views.Data.of(request.app.state.services, access)
    needs: list[str] = []
    head = None
    if patient:
        access.require_patient(patient, "r")
        needs, patient_zip = await run_in_threadpool(patient_needs, data.repo, patient)
        head = await run_in_threadpool(lambda: data.repo.read("Patient", patient).content or {})
        if "category" not in request.query_params and needs:
            category = needs[0]
        if "zip" not in request.query_params:
            zip = patient_zip
    query = DirectoryQuery(
        category=category,
        keyword=q.strip()[:200],
        postal_code=zip.strip()[:12],
        radius_km=float(_number(radius, "radius", 1, 500) or 10),
        open_now=bool(open_now),
        day=day,
        language=language.strip()[:20],
        age=_number(age, "age", 0, 130),
    )
    found = await run_in_threadpool(
        find_services, data.repo, query, now=datetime.now(UTC), tz=data.default_tz
    )
    name = ""
    if head is not None:
        name = " ".join(
            [
                *((head.get("name") or [{}])[0].get("given") or []),
                (head.get("name") or [{}])[0].get("family") or "",
            ]
        ).strip()
    return page(
        request,
        "directory.html",
        {
            "title": "Community resources",
            "viewer_tz": data.default_tz,
            "query": query,
            "found": found,
            "categories": CATEGORIES,
            "needs": [(c, CATEGORIES[c]) for c in needs],
            "patient_id": patient,
            "patient_name": name,
            "languages": LANGUAGES,
            "days": DAYS,
            "radii": _RADII,
        },
    )
