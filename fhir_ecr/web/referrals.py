"""The referral pages under ``/app`` (docs/referrals.md): thin — check who may see it, call the service, render.

=================================================  ==========================================================
``/app/patients/{id}/referrals/new?service=ID``    refer to a community service: need, note, the goal it serves,
                                                   the patient's consent — one form (POST ``…/referrals``)
``/app/patients/{id}/referrals/{task}``            one referral: status, what the organisation said, its steps
``…/referrals/{task}/link``                        POST: a new link for the organisation (shown once, with the
                                                   email and text-message wording to copy)
``…/referrals/{task}/revoke``                      POST: revoke the organisation's link
``…/referrals/{task}/consent``                     POST: the patient agreed now: record the Consent, send it
``…/referrals/{task}/cancel``                      POST: withdraw the referral (with a reason)
``/app/me/referrals/{task}``                       POST: the patient accepts (consents, sends) or declines
=================================================  ==========================================================
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import Access, current_access
from ..outcomes import FhirError, invalid, issue, not_found
from ..referrals.consent import build_consent
from ..referrals.links import issue_link, live_links, message_text, revoke_links
from ..referrals.service import SDOH_SYSTEM, Referral, create_referral, referrals_of
from ..store.repository import FhirRepository
from .pages import PageRoute, page, require_coach, require_patient_app

__all__ = ["router", "SDOH_CATEGORIES"]

router = APIRouter(prefix="/app", route_class=PageRoute, include_in_schema=False)
AccessDep = Annotated[Access, Depends(current_access)]

#: The Gravity SDOH categories a coach refers for most (the referral profile allows all of MecrReferralCategoryVS).
SDOH_CATEGORIES = [
    ("food-insecurity", "Food"),
    ("housing-instability", "Housing"),
    ("transportation-insecurity", "Transportation"),
    ("social-connection", "Social connection"),
    ("financial-insecurity", "Money"),
    ("stress", "Stress"),
    ("employment-status", "Employment"),
    ("digital-access", "Digital access"),
    ("sdoh-category-unspecified", "Other"),
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _repo(request: Request, access: Access) -> FhirRepository:
    return request.app.state.services.repo_for(access)  # type: ignore[no-any-return]


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _service_choice(repo: FhirRepository, service_id: str | None) -> dict[str, Any] | None:
    """The HealthcareService and its providing Organization (None when not given or not found)."""
    if not service_id:
        return None
    try:
        svc = repo.read("HealthcareService", service_id).content or {}
    except FhirError:
        return None
    org_ref = str((svc.get("providedBy") or {}).get("reference") or "")
    if not org_ref.startswith("Organization/"):
        return None
    org_id = org_ref.split("/", 1)[1]
    try:
        org = repo.read("Organization", org_id).content or {}
    except FhirError:
        return None
    category = next(
        (
            str(c.get("code"))
            for cat in svc.get("category") or ()
            for c in cat.get("coding") or ()
            if c.get("system") == SDOH_SYSTEM
        ),
        None,
    )
    return {
        "id": svc.get("id"),
        "name": svc.get("name") or "the service",
        "org_id": org_id,
        "org_name": org.get("name") or org_id,
        "category": category,
    }


def _new_context(repo: FhirRepository, patient_id: str, service_id: str | None) -> dict[str, Any]:
    patient = repo.read("Patient", patient_id).content or {}
    goals = [
        s.content
        for s in repo.search_params("Goal", [("patient", f"Patient/{patient_id}"), ("_count", "100")]).matches
        if s.content and s.content.get("lifecycleStatus") in ("active", "accepted", "planned", "proposed")
    ]
    services = (
        []
        if service_id
        else [
            {"id": s.id, "name": (s.content or {}).get("name") or s.id}
            for s in repo.search_params("HealthcareService", [("_count", "50")]).matches
        ]
    )
    name = " ".join(
        [
            *((patient.get("name") or [{}])[0].get("given") or []),
            (patient.get("name") or [{}])[0].get("family") or "",
        ]
    ).strip()
    return {
        "patient_id": patient_id,
        "patient_name": name or "The patient",
        "service": _service_choice(repo, service_id),
        "services": services,
        "categories": SDOH_CATEGORIES,
        "goals": [
            {"id": g["id"], "text": (g.get("description") or {}).get("text") or g["id"]} for g in goals
        ],
    }


@router.get("/patients/{patient_id}/referrals/new")
async def referral_new(
    request: Request, patient_id: str, access: AccessDep, service: str | None = None
) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "c", "ServiceRequest")
    ctx = await run_in_threadpool(_new_context, _repo(request, access), patient_id, service)
    values = {
        "category": (ctx["service"] or {}).get("category") or "food-insecurity",
        "need": (ctx["service"] or {}).get("name") or "",
        "note": "",
        "goal": "",
        "consent": "",
    }
    return page(
        request,
        "referral_new.html",
        {"title": "Refer to a community service", "values": values, "errors": {}, **ctx},
    )


@router.post("/patients/{patient_id}/referrals")
async def referral_create(request: Request, patient_id: str, access: AccessDep) -> Response:
    principal = require_coach(access)
    access.require_patient(patient_id, "c", "ServiceRequest")
    form = await _form(request)
    repo = _repo(request, access)
    ctx = await run_in_threadpool(_new_context, repo, patient_id, form.get("service"))
    errors: dict[str, str] = {}
    if ctx["service"] is None:
        errors["service"] = "Choose the community service to refer to."
    if not form.get("need", "").strip():
        errors["need"] = "Say what the person needs."
    if form.get("category") not in dict(SDOH_CATEGORIES):
        errors["category"] = "Choose the kind of need."
    if form.get("goal") and form["goal"] not in [g["id"] for g in ctx["goals"]]:
        errors["goal"] = "Choose one of the patient's goals."
    if not errors:
        svc = ctx["service"]
        requester = principal.fhir_user if principal.fhir_user else "Organization/" + svc["org_id"]
        try:
            _, task_id = await run_in_threadpool(
                lambda: create_referral(
                    repo,
                    patient_id=patient_id,
                    organization_id=svc["org_id"],
                    organization_name=svc["org_name"],
                    need=form["need"],
                    category=form["category"],
                    requester=requester,
                    service_id=svc["id"],
                    goal_id=form.get("goal") or None,
                    note=form.get("note"),
                    consent=form.get("consent") == "yes",
                )
            )
            return RedirectResponse(f"/app/patients/{patient_id}/referrals/{task_id}?saved=1", 303)
        except FhirError as exc:
            if exc.status in (401, 403, 404):
                raise
            errors[""] = "; ".join(str(i.get("diagnostics", "")) for i in exc.issues if i.get("diagnostics"))
    return page(
        request,
        "referral_new.html",
        {"title": "Refer to a community service", "values": form, "errors": errors, **ctx},
        422,
    )


def _referral_of(repo: FhirRepository, patient_id: str, task_id: str) -> Referral:
    found = [r for r in referrals_of(repo, patient_id) if r.task_id == task_id]
    if not found:
        raise not_found("Task", task_id)
    return found[0]


def _steps(repo: FhirRepository, task_id: str) -> list[dict[str, str]]:
    out = []
    for s in repo.search_params("Provenance", [("target", f"Task/{task_id}"), ("_count", "100")]).matches:
        c = s.content or {}
        agent = (c.get("agent") or [{}])[0].get("who") or {}
        out.append(
            {
                "when": str(c.get("recorded") or "")[:16].replace("T", " "),
                "what": str((c.get("activity") or {}).get("text") or ""),
                "who": str(agent.get("display") or ""),
                "why": "; ".join(str(r.get("text")) for r in c.get("reason") or ()),
            }
        )
    return out


def _detail(request: Request, access: Access, patient_id: str, task_id: str, **extra: Any) -> Response:
    repo = _repo(request, access)
    referral = _referral_of(repo, patient_id, task_id)
    services = request.app.state.services
    links = live_links(services, task_id)
    until = datetime.fromtimestamp(links[0].expires, UTC).strftime("%b %-d, %Y") if links else None
    return page(
        request,
        "referral_detail.html",
        {
            "title": f"Referral: {referral.need}",
            "patient_id": patient_id,
            "referral": referral,
            "steps": _steps(repo, task_id) if access.can("Provenance", "s") else [],
            "link_until": until,
            "saved": request.query_params.get("saved"),
            **extra,
        },
    )


@router.get("/patients/{patient_id}/referrals/{task_id}")
async def referral_detail(request: Request, patient_id: str, task_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "r", "Task")
    return await run_in_threadpool(_detail, request, access, patient_id, task_id)


@router.post("/patients/{patient_id}/referrals/{task_id}/link")
async def referral_link(request: Request, patient_id: str, task_id: str, access: AccessDep) -> Response:
    principal = require_coach(access)
    access.require_patient(patient_id, "u", "Task")
    services = request.app.state.services

    def make() -> Response:
        referral = _referral_of(_repo(request, access), patient_id, task_id)
        if referral.status == "draft" or referral.ended or not referral.organization:
            raise invalid(
                issue("business-rule", "a link is made for a referral that was sent and is still open"), 409
            )
        token = issue_link(services, task_id, referral.organization, principal.subject)
        url = f"{services.settings.base_url}/r/{token}"
        until = datetime.fromtimestamp(live_links(services, task_id)[0].expires, UTC).strftime("%b %-d, %Y")
        texts = message_text(
            url, referral.organization_name, "Your patient's care team", referral.need, until
        )
        return _detail(request, access, patient_id, task_id, new_link=url, texts=texts)

    return await run_in_threadpool(make)


@router.post("/patients/{patient_id}/referrals/{task_id}/revoke")
async def referral_revoke(request: Request, patient_id: str, task_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "u", "Task")
    await run_in_threadpool(_referral_of, _repo(request, access), patient_id, task_id)
    await run_in_threadpool(revoke_links, request.app.state.services, task_id)
    return RedirectResponse(f"/app/patients/{patient_id}/referrals/{task_id}?saved=revoked", 303)


def _move(
    repo: FhirRepository,
    task_id: str,
    status: str,
    *,
    reason: str | None = None,
    consent_for: tuple[str, str, str] | None = None,
) -> None:
    """Move the referral Task to ``status`` (recording the patient's Consent first, when given) in one unit;
    the write hook checks the step."""
    with repo.unit() as uow:
        stored = uow.read("Task", task_id)
        task = copy.deepcopy(stored.content or {})
        if consent_for is not None:
            pid, org, org_name = consent_for
            uow.create(build_consent(pid, org, org_name, today=_now()[:10]))
        task["status"] = status
        if reason:
            task["statusReason"] = {"text": reason[:500]}
        task["lastModified"] = _now()
        uow.update("Task", task_id, task, expected_version=int(stored.version_id))


@router.post("/patients/{patient_id}/referrals/{task_id}/consent")
async def referral_consent(request: Request, patient_id: str, task_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "u", "Task")
    repo = _repo(request, access)
    referral = await run_in_threadpool(_referral_of, repo, patient_id, task_id)
    await run_in_threadpool(
        lambda: _move(
            repo,
            task_id,
            "requested",
            consent_for=(patient_id, referral.organization or "", referral.organization_name),
        )
    )
    return RedirectResponse(f"/app/patients/{patient_id}/referrals/{task_id}?saved=sent", 303)


@router.post("/patients/{patient_id}/referrals/{task_id}/cancel")
async def referral_cancel(request: Request, patient_id: str, task_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "u", "Task")
    form = await _form(request)
    repo = _repo(request, access)
    await run_in_threadpool(_referral_of, repo, patient_id, task_id)
    reason = form.get("reason", "").strip() or "withdrawn by the care team"
    await run_in_threadpool(lambda: _move(repo, task_id, "cancelled", reason=reason))
    await run_in_threadpool(revoke_links, request.app.state.services, task_id)
    return RedirectResponse(f"/app/patients/{patient_id}/referrals/{task_id}?saved=cancelled", 303)


@router.post("/me/referrals/{task_id}")
async def my_referral(
    request: Request, task_id: str, access: AccessDep, patient: str | None = None
) -> Response:
    _, pid = require_patient_app(access, patient)
    access.require_patient(pid, "u", "Task")
    form = await _form(request)
    repo = _repo(request, access)
    referral = await run_in_threadpool(_referral_of, repo, pid, task_id)
    if form.get("action") == "accept":
        await run_in_threadpool(
            lambda: _move(
                repo,
                task_id,
                "requested",
                consent_for=(pid, referral.organization or "", referral.organization_name),
            )
        )
    else:
        await run_in_threadpool(lambda: _move(repo, task_id, "cancelled", reason="declined by the patient"))
        await run_in_threadpool(revoke_links, request.app.state.services, task_id)
    back = "/app/me" + (f"?patient={patient}" if patient else "")
    return RedirectResponse(back + "#referrals", 303)


def my_referrals(repo: FhirRepository, patient_id: str) -> list[Referral]:
    """The patient's own referrals for their app."""
    return referrals_of(repo, patient_id)
