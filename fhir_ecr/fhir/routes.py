"""The FHIR R4 REST routes at ``/fhir`` (https://hl7.org/fhir/R4/http.html).

Routes are thin: they parse the HTTP request, call the repository (in the thread pool) and render. The
interactions declared here are what the CapabilityStatement advertises.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..auth.access import current_access
from ..deps import ServicesDep
from ..outcomes import bad_request, not_found, not_supported
from ..services import Services
from ..store.indexer import date_range
from ..store.repository import FhirRepository, UnitOfWork
from ..store.search import MAX_OFFSET, check_text, parse_search
from ..store.searchparams import search_params
from . import capability
from .bundles import history_bundle, process_bundle, search_bundle
from .http import (
    check_format,
    check_id,
    check_version,
    fhir_response,
    parse_etag,
    prefer,
    read_form_body,
    read_json_body,
    resource_headers,
    write_body,
)
from .operations import OperationCall, parameters_to_pairs
from .summary import summarize

__all__ = ["router"]

router = APIRouter(prefix="/fhir", tags=["FHIR R4 REST API"])


def _repo(request: Request, services: Services) -> FhirRepository:
    """The repository as this caller sees it: every read, search and write checked by their Access."""
    return services.repo_for(current_access(request))


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items()]


def _pretty(request: Request) -> bool:
    return request.query_params.get("_pretty") == "true"


def _check_type(rtype: str) -> None:
    if rtype not in search_params():
        raise not_found(rtype)


def _since(params: list[tuple[str, str]]) -> int | None:
    for k, v in params:
        if k == "_since":
            check_text(v, "_since")
            try:
                return date_range(v)[0]
            except ValueError:
                raise bad_request(f"_since must be an instant, not {v!r}", "_since") from None
    return None


def _int_param(params: list[tuple[str, str]], name: str, default: int, cap: int | None = None) -> int:
    for k, v in params:
        if k == name:
            if not (v.isascii() and v.isdigit()):
                raise bad_request(f"{name} must be a non-negative integer", name)
            value = int(v)
            if cap:
                return min(value, cap)
            if value > MAX_OFFSET:
                raise bad_request(f"{name} must be at most {MAX_OFFSET}", name)
            return value
    return default


async def _history(
    request: Request, services: Services, rtype: str | None, rid: str | None, path: str
) -> Response:
    """A history Bundle (system, type or instance level) with ``_since``, ``_count`` and ``_offset``."""
    check_format(request)
    if rid is not None:
        check_id(rid)
    params = _query_pairs(request)
    result = await run_in_threadpool(
        _repo(request, services).history,
        rtype,
        rid,
        since=_since(params),
        count=_int_param(
            params, "_count", services.settings.default_page_size, services.settings.max_page_size
        ),
        offset=_int_param(params, "_offset", 0),
    )
    return fhir_response(history_bundle(services.fhir_base, path, params, result), pretty=_pretty(request))


# --- system level ---------------------------------------------------------------------------------------------


@router.get("/metadata", summary="CapabilityStatement (generated from the implementation)")
async def metadata(request: Request, services: ServicesDep) -> Response:
    check_format(request)
    return fhir_response(capability.capability_for(services, router.routes), pretty=_pretty(request))


@router.post("", summary="Batch or transaction Bundle")
@router.post("/", include_in_schema=False)
async def batch_or_transaction(request: Request, services: ServicesDep) -> Response:
    check_format(request)
    body = await read_json_body(request, services.settings.max_body_bytes)
    pref = prefer(request)
    repo = _repo(request, services)

    def run() -> dict[str, Any]:
        return process_bundle(
            repo,
            body,
            fhir_base=services.fhir_base,
            max_entries=services.settings.max_bundle_entries,
            return_pref=pref.get("return"),
            strict=pref.get("handling") == "strict",
            run_get=lambda uow, rtype, url: _bundle_get(services, uow, rtype, url),
        )

    return fhir_response(await run_in_threadpool(run), pretty=_pretty(request))


def _bundle_get(services: Services, uow: UnitOfWork, rtype: str, url: str) -> dict[str, Any]:
    path, _, query = url.partition("?")
    parts = path.split("/")
    for part in parts[1:2]:
        check_id(part)
    if len(parts) == 1:
        pairs = parse_qsl(query, keep_blank_values=True)
        q = parse_search(
            rtype,
            pairs,
            default_count=services.settings.default_page_size,
            max_count=services.settings.max_page_size,
        )
        return search_bundle(services.fhir_base, rtype, pairs, uow.search(q), q.summary, q.elements)
    if len(parts) == 2:
        stored = uow.read(rtype, parts[1])
    elif len(parts) == 4 and parts[2] == "_history":
        check_version(rtype, parts[1], parts[3])
        stored = uow.vread(rtype, parts[1], parts[3])
    else:
        raise bad_request(f"unsupported GET url {url!r} in a Bundle")
    return stored.content or {}


@router.get("/_history", summary="History of the whole server")
async def history_system(request: Request, services: ServicesDep) -> Response:
    return await _history(request, services, None, None, "_history")


# --- type level -----------------------------------------------------------------------------------------------


async def _search(
    request: Request, services: Services, rtype: str, params: list[tuple[str, str]]
) -> Response:
    _check_type(rtype)
    strict = prefer(request).get("handling") == "strict"
    query = parse_search(
        rtype,
        params,
        strict=strict,
        default_count=services.settings.default_page_size,
        max_count=services.settings.max_page_size,
    )
    result = await run_in_threadpool(_repo(request, services).search, query)
    bundle = search_bundle(services.fhir_base, rtype, params, result, query.summary, query.elements)
    return fhir_response(bundle, pretty=_pretty(request))


@router.get("/{rtype}", summary="Search a resource type")
async def search_type(rtype: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    return await _search(request, services, rtype, _query_pairs(request))


@router.post("/{rtype}/_search", summary="Search with form-encoded parameters")
async def search_post(rtype: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype and ctype != "application/x-www-form-urlencoded":
        raise not_supported("POST _search takes application/x-www-form-urlencoded", 415)
    raw = await read_form_body(request, services.settings.max_body_bytes)
    params = _query_pairs(request) + parse_qsl(raw, keep_blank_values=True)
    return await _search(request, services, rtype, params)


@router.post("/{rtype}", summary="Create (conditional with If-None-Exist)")
async def create(rtype: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    _check_type(rtype)
    body = await read_json_body(request, services.settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("resourceType") != rtype:
        raise bad_request(f"the body must be a {rtype} resource", "resourceType")
    if_none_exist = request.headers.get("if-none-exist")
    if if_none_exist is None:
        # Search parameters on the POST URL also make a conditional create: the form some clients (fhirpy's
        # ``resource.create(**criteria)``) send. ``_format``/``_pretty`` are not criteria.
        criteria = [(k, v) for k, v in _query_pairs(request) if k not in ("_format", "_pretty")]
        if criteria:
            if_none_exist = urlencode(criteria)
    result = await run_in_threadpool(_repo(request, services).create, body, if_none_exist=if_none_exist)
    pref = prefer(request).get("return")
    status = 201 if result.created else 200
    info = "created" if result.created else "an existing resource matched If-None-Exist"
    return fhir_response(
        write_body(result.stored, pref, info),
        status,
        resource_headers(result.stored, services.fhir_base, location=True),
        pretty=_pretty(request),
    )


@router.put("/{rtype}", summary="Conditional update")
async def conditional_update(rtype: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    _check_type(rtype)
    params = _query_pairs(request)
    if not params:
        raise bad_request("PUT on a type needs search criteria (conditional update)")
    body = await read_json_body(request, services.settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("resourceType") != rtype:
        raise bad_request(f"the body must be a {rtype} resource", "resourceType")
    expected = parse_etag(request.headers.get("if-match"))
    result = await run_in_threadpool(
        _repo(request, services).conditional_update, rtype, request.url.query, body, expected_version=expected
    )
    status = 201 if result.created else 200
    return fhir_response(
        write_body(result.stored, prefer(request).get("return"), "created" if result.created else "updated"),
        status,
        resource_headers(result.stored, services.fhir_base, location=result.created),
        pretty=_pretty(request),
    )


@router.delete("/{rtype}", summary="Conditional delete (single match)")
async def conditional_delete(rtype: str, request: Request, services: ServicesDep) -> Response:
    _check_type(rtype)
    cascade = _cascade(request)
    criteria = urlencode([(k, v) for k, v in _query_pairs(request) if k != "_cascade"])
    if not criteria:
        raise bad_request("DELETE on a type needs search criteria (conditional delete)")
    await run_in_threadpool(
        partial(_repo(request, services).conditional_delete, cascade=cascade), rtype, criteria
    )
    return Response(status_code=204)


def _cascade(request: Request) -> bool:
    """``_cascade=delete``: delete what refers to the resource too (HAPI FHIR's parameter; fhir_ecr/store/
    references.py). Any other value is refused."""
    value = request.query_params.get("_cascade")
    if value is None:
        return False
    if value != "delete":
        raise bad_request(f"_cascade takes 'delete', not {value!r}", "_cascade")
    return True


@router.get("/{rtype}/_history", summary="History of a resource type")
async def history_type(rtype: str, request: Request, services: ServicesDep) -> Response:
    return await _history(request, services, rtype, None, f"{rtype}/_history")


# --- operations -------------------------------------------------------------------------------------------------


async def _operation(
    request: Request, services: Services, name: str, rtype: str | None, rid: str | None
) -> Response:
    check_format(request)
    if rtype is not None:
        _check_type(rtype)
    if rid is not None:
        check_id(rid)
    op = services.operations.find(name, rtype, instance=rid is not None)
    params: list[tuple[str, Any]] = list(_query_pairs(request))
    body: Any = None
    if request.method == "POST":
        body = await read_json_body(request, services.settings.max_body_bytes)
        if isinstance(body, dict) and body.get("resourceType") == "Parameters":
            params += parameters_to_pairs(body)
    elif op.affects_state:
        raise not_supported(f"operation {name} changes state and must be invoked with POST", 405)
    call = OperationCall(
        request,
        services,
        rtype,
        rid,
        params,
        body,
        repo=_repo(request, services),
        access=current_access(request),
    )
    result = await run_in_threadpool(op.handler, call)
    if isinstance(result, Response):
        return result
    return fhir_response(result, pretty=_pretty(request))


# --- instance level ---------------------------------------------------------------------------------------------


@router.get("/{rtype}/{rid}", summary="Read (or a type-level $operation)")
async def read(rtype: str, rid: str, request: Request, services: ServicesDep) -> Response:
    if rid.startswith("$"):
        return await _operation(request, services, rid, rtype, None)
    check_format(request)
    _check_type(rtype)
    check_id(rid)
    stored = await run_in_threadpool(_repo(request, services).read, rtype, rid)
    etag = request.headers.get("if-none-match")
    if etag and etag.strip() == stored.etag:
        return Response(status_code=304, headers=resource_headers(stored, services.fhir_base))
    body = stored.json()
    summary = request.query_params.get("_summary")
    elements = request.query_params.get("_elements")
    if summary or elements:
        body = summarize(
            stored.content or {},
            summary if summary != "false" else None,
            [e.strip() for e in elements.split(",")] if elements else None,
        )
    return fhir_response(body, headers=resource_headers(stored, services.fhir_base), pretty=_pretty(request))


@router.post("/{rtype}/{rid}", summary="Type-level $operation (POST)")
async def type_operation_post(rtype: str, rid: str, request: Request, services: ServicesDep) -> Response:
    if not rid.startswith("$"):
        raise not_supported("POST to an instance is not an interaction; use PUT to update", 405)
    return await _operation(request, services, rid, rtype, None)


@router.put("/{rtype}/{rid}", summary="Update (or create with this id); If-Match for versioned update")
async def update(rtype: str, rid: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    _check_type(rtype)
    check_id(rid)
    expected = parse_etag(request.headers.get("if-match"))
    body = await read_json_body(request, services.settings.max_body_bytes)
    result = await run_in_threadpool(
        _repo(request, services).update, rtype, rid, body, expected_version=expected
    )
    status = 201 if result.created else 200
    return fhir_response(
        write_body(result.stored, prefer(request).get("return"), "created" if result.created else "updated"),
        status,
        resource_headers(result.stored, services.fhir_base, location=result.created),
        pretty=_pretty(request),
    )


@router.patch("/{rtype}/{rid}", summary="Patch with a JSON Patch document")
async def patch(rtype: str, rid: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    _check_type(rtype)
    check_id(rid)
    expected = parse_etag(request.headers.get("if-match"))
    operations = await read_json_body(request, services.settings.max_body_bytes, patch=True)
    if not isinstance(operations, list):
        raise bad_request("a JSON Patch body is a list of operations")
    result = await run_in_threadpool(
        _repo(request, services).patch, rtype, rid, operations, expected_version=expected
    )
    return fhir_response(
        write_body(result.stored, prefer(request).get("return"), "patched"),
        200,
        resource_headers(result.stored, services.fhir_base),
        pretty=_pretty(request),
    )


@router.delete("/{rtype}/{rid}", summary="Delete")
async def delete(rtype: str, rid: str, request: Request, services: ServicesDep) -> Response:
    _check_type(rtype)
    check_id(rid)
    expected = parse_etag(request.headers.get("if-match"))
    repo = _repo(request, services)

    cascade = _cascade(request)

    def run() -> None:
        try:
            repo.delete(rtype, rid, expected_version=expected, cascade=cascade)
        except Exception as exc:  # deleting what does not exist is not an error (R4 http.html#delete)
            if getattr(exc, "status", None) != 404:
                raise

    await run_in_threadpool(run)
    return Response(status_code=204)


@router.get("/{rtype}/{rid}/_history", summary="History of a resource")
async def history_instance(rtype: str, rid: str, request: Request, services: ServicesDep) -> Response:
    return await _history(request, services, rtype, rid, f"{rtype}/{rid}/_history")


@router.get("/{rtype}/{rid}/_history/{vid}", summary="Read a version (vread)")
async def vread(rtype: str, rid: str, vid: str, request: Request, services: ServicesDep) -> Response:
    check_format(request)
    check_id(rid)
    check_version(rtype, rid, vid)
    stored = await run_in_threadpool(_repo(request, services).vread, rtype, rid, vid)
    return fhir_response(
        stored.json(), headers=resource_headers(stored, services.fhir_base), pretty=_pretty(request)
    )


# Last, so that /{rtype}/{rid}/_history is matched first.
@router.get("/{rtype}/{rid}/{op}", summary="Instance-level $operation (GET)")
async def instance_operation(
    rtype: str, rid: str, op: str, request: Request, services: ServicesDep
) -> Response:
    if not op.startswith("$"):
        raise not_found(f"{rtype}/{rid}/{op}")
    return await _operation(request, services, op, rtype, rid)


@router.post("/{rtype}/{rid}/{op}", summary="Instance-level $operation (POST)")
async def instance_operation_post(
    rtype: str, rid: str, op: str, request: Request, services: ServicesDep
) -> Response:
    return await instance_operation(rtype, rid, op, request, services)
