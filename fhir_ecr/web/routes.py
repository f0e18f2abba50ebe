"""The page routes under ``/app``: thin — check who may see it, gather (views), render (templates).

=====================================  ==========================================================
``/app``                               where to go: coach -> caseload, patient -> /app/me
``/app/caseload``                      the coach's patients ranked by what needs attention
``/app/patients/{id}``                 the coach's page of one patient (``?series=`` run chart)
``/app/patients/{id}/print``           the printable summary
``/app/patients/{id}/sessions/new``    document a session (POST ``/app/patients/{id}/sessions``)
``/app/patients/{id}/goals/...``       SMART goal editor
``/app/patients/{id}/habits``          habits editor: add, change, pause, resume, stop
``/app/patients/{id}/messages``        the coach's side of the conversation
``/app/me``                            the patient app (PWA): today, goals, messages, settings
``/app/me/check-in``                   POST JSON, idempotent per habit per local day (offline queue)
``/app/signout``                       POST: end the session (coach or patient) -> ``/app/signed-out``
``/app/signed-out``                    the "you have signed out" page, with the way back in
=====================================  ==========================================================
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import Access
from ..auth.routes import delete_cookie
from ..auth.sessions import SESSION_COOKIE
from ..coaching import resources as res
from ..deps import AccessDep
from ..outcomes import BadRequest, FhirError, Unauthorized, bad_request, issue
from . import caseload as caseload_view
from . import catalog, forms, views
from .messaging import mark_read, send_message, thread
from .pages import STATIC_DIR, PageRoute, page, require_coach, require_patient_app

__all__ = ["api_router", "router"]

router = APIRouter(prefix="/app", route_class=PageRoute, include_in_schema=False)
api_router = APIRouter(prefix="/app", include_in_schema=False)  # JSON for the pages' scripts


def _data(request: Request, access: Access) -> views.Data:
    return views.Data.of(request.app.state.services, access)


def _viewer(access: Access) -> str:
    p = access.principal
    return p.subject if p is not None else "anonymous"


async def _form(request: Request) -> tuple[dict[str, Any], dict[str, list[str]]]:
    form = await request.form()
    single = {k: v for k, v in form.items() if isinstance(v, str)}
    multi = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}
    return single, multi


def _coach_page_guard(access: Access, patient_id: str) -> None:
    require_coach(access)
    access.require_patient(patient_id, "r")


def _viewer_tz(data: views.Data, access: Access) -> str:
    """The zone the viewer reads times in: a patient's own; a coach's own setting (the ``timezone`` extension
    on their Practitioner), else the practice's (``MECR_DEFAULT_TIME_ZONE``)."""
    p = access.principal
    try:
        if p is not None and p.kind == "patient" and p.patient_id:
            return res.patient_time_zone(data.repo.read("Patient", p.patient_id).content, data.default_tz)
        if p is not None and p.fhir_user and p.fhir_user.startswith("Practitioner/"):
            return res.patient_time_zone(
                data.repo.read("Practitioner", p.fhir_user.split("/", 1)[1]).content, data.default_tz
            )
    except FhirError:
        pass
    return data.default_tz


def _head(data: views.Data, access: Access, patient_id: str) -> dict[str, Any]:
    """What every page about one patient starts with: the banner (read through the caller's repository, so a
    record the caller may not see is a 404/403 here) and the viewer's time zone."""
    tz = _viewer_tz(data, access)
    patient = data.repo.read("Patient", patient_id).content or {}
    return {
        "banner": views.patient_banner(patient, datetime.now(ZoneInfo(tz)).date()),
        "viewer_tz": tz,
        "patient_tz": res.patient_time_zone(patient, data.default_tz),
        "patient": patient,
    }


# -- landing ----------------------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(access: AccessDep) -> Response:
    p = access.principal
    if p is None:
        raise Unauthorized(issue("login", "sign in"), 401)
    if p.kind == "patient":
        return RedirectResponse("/app/me", 303)
    require_coach(access)
    return RedirectResponse("/app/caseload", 303)


@router.get("/signin")
async def signin(request: Request) -> Response:
    return page(request, "signin.html", {"title": "Sign in"})


# -- coach: caseload and patient page ---------------------------------------------------------------------------


@router.get("/caseload")
async def caseload(
    request: Request, access: AccessDep, q: str = "", show: str = "all", scope: str = "mine"
) -> Response:
    principal = require_coach(access)
    data = _data(request, access)
    tz = await run_in_threadpool(_viewer_tz, data, access)
    found = await run_in_threadpool(
        caseload_view.caseload, data, principal, _viewer(access), q=q, show=show, scope=scope, viewer_tz=tz
    )
    return page(request, "caseload.html", {"title": "Caseload", "viewer_tz": tz, **found})


@router.get("/patients/{patient_id}")
async def patient(
    request: Request, patient_id: str, access: AccessDep, series: str | None = None
) -> Response:
    _coach_page_guard(access, patient_id)
    store = _data(request, access)
    data = await run_in_threadpool(
        views.patient_page, store, patient_id, series=series, viewer=_viewer(access)
    )
    tz = await run_in_threadpool(_viewer_tz, store, access)
    return page(request, "patient.html", {"title": data["banner"]["name"], "viewer_tz": tz, **data})


@router.get("/patients/{patient_id}/print")
async def patient_print(request: Request, patient_id: str, access: AccessDep) -> Response:
    _coach_page_guard(access, patient_id)
    store = _data(request, access)
    data = await run_in_threadpool(views.patient_page, store, patient_id, series=None, viewer=_viewer(access))
    tz = await run_in_threadpool(_viewer_tz, store, access)
    return page(
        request, "print.html", {"title": f"Summary: {data['banner']['name']}", "viewer_tz": tz, **data}
    )


# -- coach: messages --------------------------------------------------------------------------------------------


@router.get("/patients/{patient_id}/messages")
async def coach_messages(request: Request, patient_id: str, access: AccessDep) -> Response:
    _coach_page_guard(access, patient_id)
    data = _data(request, access)
    head = await run_in_threadpool(_head, data, access, patient_id)
    await run_in_threadpool(mark_read, data.repo, patient_id, reader_is_patient=False)
    conv = await run_in_threadpool(thread, data.repo, patient_id)
    return page(
        request,
        "messages.html",
        {
            "title": f"Messages: {head['banner']['name']}",
            "thread": conv,
            "patient_id": patient_id,
            "name": head["banner"]["name"],
            "side": "coach",
            "post_url": f"/app/patients/{patient_id}/messages",
            "errors": {},
            **head,
        },
    )


@router.post("/patients/{patient_id}/messages")
async def coach_send(request: Request, patient_id: str, access: AccessDep) -> Response:
    _coach_page_guard(access, patient_id)
    access.require_patient(patient_id, "c", "Communication")
    single, _ = await _form(request)
    data = _data(request, access)
    p = access.principal
    sender = p.fhir_user if p is not None else None
    try:
        await run_in_threadpool(
            send_message, data.repo, patient_id, single.get("text", ""), from_patient=False, sender=sender
        )
    except BadRequest as exc:  # send_message's own refusals (no text, too long): the form shows them
        conv = await run_in_threadpool(thread, data.repo, patient_id)
        head = await run_in_threadpool(_head, data, access, patient_id)
        return page(
            request,
            "messages.html",
            {
                "title": f"Messages: {head['banner']['name']}",
                "thread": conv,
                "patient_id": patient_id,
                "name": head["banner"]["name"],
                "side": "coach",
                "post_url": f"/app/patients/{patient_id}/messages",
                "errors": {"text": str(exc.issues[0]["diagnostics"])},
                "text": single.get("text", ""),
                **head,
            },
            422,
        )
    back = single.get("back") or f"/app/patients/{patient_id}/messages"
    if not back.startswith("/app/"):
        back = f"/app/patients/{patient_id}/messages"
    return RedirectResponse(back, 303)


# -- coach: document a session ----------------------------------------------------------------------------------


def _session_choices(data: views.Data, access: Access, patient_id: str, principal: Any) -> dict[str, Any]:
    repo = data.repo
    head = _head(data, access, patient_id)
    roles = views._search(
        repo, "PractitionerRole", [("role", f"{res.MECR_CODES}|health-and-wellness-coach")], 100
    )
    people = {}
    for r in roles:
        ref = (r.get("practitioner") or {}).get("reference")
        if ref and ref not in people:
            try:
                people[ref] = views.human_name(repo.read(*ref.split("/", 1)).content)
            except FhirError:
                people[ref] = ref
    coaches = [
        {
            "id": r.get("id"),
            "name": people.get((r.get("practitioner") or {}).get("reference"), r.get("id")),
            "mine": principal.fhir_user is not None
            and (r.get("practitioner") or {}).get("reference") == principal.fhir_user,
        }
        for r in roles
    ]
    groups = [
        {"id": g.get("id"), "name": g.get("name") or g.get("id")}
        for g in views._search(repo, "Group", [("member", f"Patient/{patient_id}")], 50)
    ]
    goals = [
        {"id": g.get("id"), "text": (g.get("description") or {}).get("text", "")}
        for g in views._search(repo, "Goal", [("patient", f"Patient/{patient_id}")], 100)
        if g.get("lifecycleStatus") not in ("completed", "cancelled", "rejected", "entered-in-error")
    ]
    return {"coaches": coaches, "groups": groups, "goal_choices": goals, **head}


@router.get("/patients/{patient_id}/sessions/new")
async def session_form(request: Request, patient_id: str, access: AccessDep) -> Response:
    principal = require_coach(access)
    access.require_patient(patient_id, "c", "Encounter")
    data = _data(request, access)
    choices = await run_in_threadpool(_session_choices, data, access, patient_id, principal)
    mine = next((c["id"] for c in choices["coaches"] if c["mine"]), None)
    if mine is None and len(choices["coaches"]) == 1:
        mine = choices["coaches"][0]["id"]
    # Documented straight after the session: it started now, in the coach's zone (to the five minutes before).
    now = datetime.now(ZoneInfo(choices["viewer_tz"]))
    now -= timedelta(minutes=now.minute % 5)
    values = {
        "modality": "video",
        "session_type": "follow-up",
        "time_zone": choices["viewer_tz"],
        "coach": mine or "",
        "goals": [],
        "date": now.date().isoformat(),
        "start_time": f"{now:%H:%M}",
    }
    return page(
        request,
        "session_form.html",
        {"title": "Document a session", "values": values, "errors": {}, "patient_id": patient_id, **choices},
    )


@router.post("/patients/{patient_id}/sessions")
async def session_submit(request: Request, patient_id: str, access: AccessDep) -> Response:
    principal = require_coach(access)
    access.require_patient(patient_id, "c", "Encounter")
    single, multi = await _form(request)
    values = forms.session_values(single, multi)
    data = _data(request, access)
    result = await run_in_threadpool(forms.submit_session, data, patient_id, values)
    if result.ok:
        eid = result.written.encounters[0].id if result.written.encounters else ""
        return RedirectResponse(f"/app/patients/{patient_id}?saved=session&encounter={eid}", 303)
    choices = await run_in_threadpool(_session_choices, data, access, patient_id, principal)
    return page(
        request,
        "session_form.html",
        {
            "title": "Document a session",
            "values": result.values,
            "errors": result.errors,
            "patient_id": patient_id,
            **choices,
        },
        result.status,
    )


# -- coach: goals -----------------------------------------------------------------------------------------------


def _goal_page(
    request: Request,
    head: dict[str, Any],
    patient_id: str,
    values: dict[str, Any],
    errors: dict[str, str],
    goal_id: str | None,
    status: int = 200,
) -> Response:
    checks = forms.smart_check(
        values.get("description", ""),
        values.get("measure", ""),
        values.get("value", ""),
        values.get("due", ""),
        date.today(),
    )
    return page(
        request,
        "goal_form.html",
        {
            "title": "Edit goal" if goal_id else "New goal",
            "values": values,
            "errors": errors,
            "goal_id": goal_id,
            "patient_id": patient_id,
            "checks": checks,
            "categories": catalog.goal_categories(),
            "measures": catalog.target_measures(),
            **head,
        },
        status,
    )


@router.get("/patients/{patient_id}/goals/new")
async def goal_new(request: Request, patient_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "c", "Goal")
    head = await run_in_threadpool(_head, _data(request, access), access, patient_id)
    return _goal_page(
        request, head, patient_id, {"direction": "at_least", "category": "physical-activity"}, {}, None
    )


@router.get("/patients/{patient_id}/goals/{goal_id}/edit")
async def goal_edit(request: Request, patient_id: str, goal_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "u", "Goal")
    data = _data(request, access)
    head = await run_in_threadpool(_head, data, access, patient_id)
    goal = (await run_in_threadpool(data.repo.read, "Goal", goal_id)).content or {}
    if res.ref_id(goal.get("subject"), "Patient") != patient_id:
        raise bad_request("this goal belongs to another patient")
    return _goal_page(request, head, patient_id, forms.goal_form_values(goal), {}, goal_id)


@router.post("/patients/{patient_id}/goals")
@router.post("/patients/{patient_id}/goals/{goal_id}")
async def goal_submit(
    request: Request, patient_id: str, access: AccessDep, goal_id: str | None = None
) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "u" if goal_id else "c", "Goal")
    single, _ = await _form(request)
    values = forms.goal_values(single)
    data = _data(request, access)
    result = await run_in_threadpool(forms.submit_goal, data, patient_id, values, goal_id=goal_id)
    if result.ok:
        return RedirectResponse(f"/app/patients/{patient_id}?saved=goal", 303)
    head = await run_in_threadpool(_head, data, access, patient_id)
    return _goal_page(request, head, patient_id, result.values, result.errors, goal_id, result.status)


@router.get("/goal-check")
async def goal_check(description: str = "", measure: str = "", value: str = "", due: str = "") -> Response:
    """The SMART helper as JSON (the goal form's script asks it as the coach types)."""
    checks = forms.smart_check(description, measure, value, due, date.today())
    return JSONResponse([{"letter": c.letter, "name": c.name, "ok": c.ok, "hint": c.hint} for c in checks])


# -- coach: habits ----------------------------------------------------------------------------------------------


def _plans(data: views.Data, patient_id: str) -> list[dict[str, Any]]:
    return views._search(
        data.repo,
        "CarePlan",
        [("patient", f"Patient/{patient_id}"), ("category", f"{res.MECR_CODES}|habit-plan")],
        20,
    )


def _habits_context(data: views.Data, access: Access, patient_id: str) -> dict[str, Any]:
    plans = [p for p in _plans(data, patient_id) if p.get("status") in ("active", "draft", "on-hold")]
    plan = plans[0] if plans else None
    habits = []
    if plan is not None:
        for h in res.habits_of_plan(plan):
            habits.append(
                {
                    "id": h.habit_id,
                    "title": h.title,
                    "status": h.status,
                    "reason": h.status_reason,
                    "goal": h.goal_id,
                    "schedule": views._schedule_text(h),
                    "start": h.start,
                    "end": h.end,
                    "open_pause": h.open_pause,
                }
            )
    goals = [
        {"id": g.get("id"), "text": (g.get("description") or {}).get("text", "")}
        for g in views._search(data.repo, "Goal", [("patient", f"Patient/{patient_id}")], 100)
        if g.get("lifecycleStatus") not in ("completed", "cancelled", "rejected", "entered-in-error")
    ]
    head = _head(data, access, patient_id)
    return {
        "plan": plan,
        "version": (plan.get("meta") or {}).get("versionId") if plan else "",
        "habits": habits,
        "goal_choices": goals,
        "reasons": catalog.pause_reasons(),
        "patient_id": patient_id,
        "name": head["banner"]["name"],
        **head,
    }


@router.get("/patients/{patient_id}/habits")
async def habits(request: Request, patient_id: str, access: AccessDep) -> Response:
    require_coach(access)
    access.require_patient(patient_id, "r", "CarePlan")
    ctx = await run_in_threadpool(_habits_context, _data(request, access), access, patient_id)
    return page(
        request,
        "habits.html",
        {"title": "Habits", "values": {"schedule": "daily"}, "errors": {}, "action": "", **ctx},
    )


@router.post("/patients/{patient_id}/habits")
async def habits_submit(request: Request, patient_id: str, access: AccessDep) -> Response:
    principal = require_coach(access)
    access.require_patient(patient_id, "u", "CarePlan")
    single, multi = await _form(request)
    values = forms.habit_values(single, multi)
    data = _data(request, access)
    ctx = await run_in_threadpool(_habits_context, data, access, patient_id)
    if values.get("plan") and ctx["plan"] is not None and values["plan"] != ctx["plan"].get("id"):
        values["version"] = "0"  # the form was for another plan: let the service refuse it as stale
    coach = (
        principal.fhir_user
        if principal.fhir_user and principal.fhir_user.startswith("Practitioner")
        else None
    )
    result = await run_in_threadpool(
        forms.submit_habit, data, patient_id, values, plan=ctx["plan"], coach=coach
    )
    if result.ok:
        return RedirectResponse(f"/app/patients/{patient_id}/habits?saved={values.get('action')}", 303)
    ctx = await run_in_threadpool(_habits_context, data, access, patient_id)
    return page(
        request,
        "habits.html",
        {
            "title": "Habits",
            "values": result.values,
            "errors": result.errors,
            "action": values.get("action"),
            **ctx,
        },
        result.status,
    )


# -- the patient app --------------------------------------------------------------------------------------------


@router.get("/me")
async def me(request: Request, access: AccessDep, patient: str | None = None) -> Response:
    _, pid = require_patient_app(access, patient)
    access.require_patient(pid, "r")
    data = await run_in_threadpool(views.patient_app, _data(request, access), pid)
    return page(
        request,
        "me.html",
        {
            "title": "Today",
            "patient_id": pid,
            "viewer_tz": data["tz"],
            "preview": patient if access.principal and access.principal.kind == "developer" else None,
            **data,
        },
    )


def _patient_tz(data: views.Data, patient_id: str) -> str:
    return res.patient_time_zone(data.repo.read("Patient", patient_id).content, data.default_tz)


@router.get("/me/messages")
async def me_messages(request: Request, access: AccessDep, patient: str | None = None) -> Response:
    _, pid = require_patient_app(access, patient)
    access.require_patient(pid, "r", "Communication")
    data = _data(request, access)
    await run_in_threadpool(mark_read, data.repo, pid, reader_is_patient=True)
    conv = await run_in_threadpool(thread, data.repo, pid)
    tz = await run_in_threadpool(_patient_tz, data, pid)
    q = f"?patient={patient}" if patient else ""
    return page(
        request,
        "messages.html",
        {
            "title": "Messages",
            "thread": conv,
            "patient_id": pid,
            "name": "",
            "side": "patient",
            "post_url": f"/app/me/messages{q}",
            "errors": {},
            "viewer_tz": tz,
        },
    )


@router.post("/me/messages")
async def me_send(request: Request, access: AccessDep, patient: str | None = None) -> Response:
    _, pid = require_patient_app(access, patient)
    access.require_patient(pid, "c", "Communication")
    single, _ = await _form(request)
    data = _data(request, access)
    q = f"?patient={patient}" if patient else ""
    try:
        await run_in_threadpool(send_message, data.repo, pid, single.get("text", ""), from_patient=True)
    except BadRequest as exc:  # send_message's own refusals (no text, too long): the form shows them
        conv = await run_in_threadpool(thread, data.repo, pid)
        tz = await run_in_threadpool(_patient_tz, data, pid)
        return page(
            request,
            "messages.html",
            {
                "title": "Messages",
                "thread": conv,
                "patient_id": pid,
                "name": "",
                "side": "patient",
                "post_url": f"/app/me/messages{q}",
                "errors": {"text": str(exc.issues[0]["diagnostics"])},
                "text": single.get("text", ""),
                "viewer_tz": tz,
            },
            422,
        )
    return RedirectResponse(f"/app/me/messages{q}", 303)


@router.post("/me/settings")
async def me_settings(request: Request, access: AccessDep, patient: str | None = None) -> Response:
    _, pid = require_patient_app(access, patient)
    access.require_patient(pid, "u")
    single, _ = await _form(request)
    reminder = single.get("reminder", "")
    if reminder and not (len(reminder) == 5 and reminder[2] == ":" and reminder.replace(":", "").isdigit()):
        reminder = ""
    await run_in_threadpool(
        views.save_preferences,
        _data(request, access),
        pid,
        time_zone=single.get("time_zone") or None,
        reminder=reminder,
        hide_sensitive=single.get("hide_sensitive") == "on",
    )
    q = f"?patient={patient}&saved=settings" if patient else "?saved=settings"
    return RedirectResponse(f"/app/me{q}#settings", 303)


@api_router.post("/me/check-in")
async def me_check_in(request: Request, access: AccessDep, patient: str | None = None) -> Response:
    """One check-in from the patient app (JSON: ``plan``, ``habit``, ``status``, ``date`` = the local day).

    Idempotent per habit per local day (the coaching service writes it with a conditional update on the
    day's identifier), so the offline queue may send the same check-in twice without creating two."""
    _, pid = require_patient_app(access, patient)
    access.require_patient(pid, "c", "Observation")
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("the body must be JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    day = None
    if body.get("date"):
        try:
            day = date.fromisoformat(str(body["date"]))
        except ValueError:
            raise bad_request("date must be YYYY-MM-DD", "date") from None
    data = _data(request, access)
    svc = views.coaching_service(data)
    plan, habit = str(body.get("plan", "")), str(body.get("habit", ""))
    result = await run_in_threadpool(
        svc.check_in, plan, habit, str(body.get("status", "")), day=day, patient_id=pid
    )
    # The habit's streak as the app shows it, from the page's own overview (so the next visit is warm too).
    streak = await run_in_threadpool(views.habit_streak, data, pid, plan, habit)
    return JSONResponse(
        {
            "id": result.stored.id,
            "localDate": result.day.isoformat(),
            "created": result.created,
            "changed": result.changed,
            "version": result.stored.version_id,
            "goalAchievementStatus": result.goal_status,
            "streak": streak,
        }
    )


# -- signing out ------------------------------------------------------------------------------------------------


@router.post("/signout")
async def signout(request: Request, access: AccessDep) -> Response:
    """End the session (coach or patient) and go to the "signed out" page, which also clears the patient app's
    offline copy of ``/app/me`` from the service worker's cache (the cached page is the patient's own data)."""
    services = request.app.state.services
    p = access.principal
    who = "patient" if p is not None and p.kind == "patient" else "coach"
    cookie = getattr(request.state, "session_cookie", None) or request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(services.sessions.end, cookie)
    response = RedirectResponse(f"/app/signed-out?who={who}", 303)
    delete_cookie(response, services, SESSION_COOKIE, path="/")
    response.headers["Clear-Site-Data"] = '"cache"'
    return response


@router.get("/signed-out")
async def signed_out(request: Request, who: str = "coach") -> Response:
    settings = request.app.state.services.settings
    return page(
        request,
        "signed_out.html",
        {
            "title": "Signed out",
            "who": "patient" if who == "patient" else "coach",
            "sandbox": settings.sandbox_ehr,
            "principal": None,
            "is_coach": False,
        },
    )


# -- PWA files (the service worker must be served from /app/ to control /app/me) ---------------------------------


@api_router.get("/sw.js")
async def service_worker() -> Response:
    return FileResponse(
        STATIC_DIR / "sw.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/app/"},
    )


@api_router.get("/manifest.webmanifest")
async def manifest() -> Response:
    return FileResponse(STATIC_DIR / "manifest.webmanifest", media_type="application/manifest+json")
