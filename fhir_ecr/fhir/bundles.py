"""Bundles: searchset and history pages, and batch/transaction processing.

Transactions follow https://hl7.org/fhir/R4/http.html#transaction: entries are processed DELETE, POST, PUT/PATCH,
then GET; ``urn:uuid:`` fullUrls of created resources are rewritten to the ids the server assigns, everywhere
they are referenced in the Bundle; conditional references (``Patient?identifier=…``) are resolved to the one
match; and the whole Bundle succeeds or fails as one database transaction. A batch runs each entry on its own
and reports each entry's outcome.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..outcomes import (
    FhirError,
    NotFound,
    TooLarge,
    bad_request,
    issue,
    not_supported,
    outcome,
    precondition_failed,
)
from ..store import jsonexact
from ..store.repository import (
    FhirRepository,
    HistoryResult,
    SearchResult,
    Stored,
    UnitOfWork,
    iso_instant,
    new_id,
)
from ..store.search import parse_search
from ..store.searchparams import search_params
from ..store.validation_pool import MIN_RESOURCES, DeferredValidation
from .http import parse_etag
from .summary import summarize

__all__ = ["search_bundle", "history_bundle", "process_bundle", "paging_link"]

_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


def paging_link(fhir_base: str, path: str, params: list[tuple[str, str]], **override: Any) -> str:
    """An absolute URL for ``path`` with ``params``, minus paging parameters, plus ``override``."""
    kept = [(k, v) for k, v in params if k not in ("_cursor", "_offset")]
    kept += [(k, str(v)) for k, v in override.items()]
    query = urlencode(kept)
    return f"{fhir_base}/{path}" + (f"?{query}" if query else "")


def _entry(
    fhir_base: str, stored: Stored, mode: str, summary: str | None = None, elements: list[str] | None = None
) -> dict[str, Any]:
    content = summarize(stored.content or {}, summary, elements) if (summary or elements) else stored.json()
    return {
        "fullUrl": f"{fhir_base}/{stored.resource_type}/{stored.id}",
        "resource": content,
        "search": {"mode": mode},
    }


def search_bundle(
    fhir_base: str,
    path: str,
    params: list[tuple[str, str]],
    result: SearchResult,
    summary: str | None = None,
    elements: list[str] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle for one page of results."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    links = [{"relation": "self", "url": paging_link(fhir_base, path, params)}]
    if result.next_cursor is not None:
        links.append(
            {
                "relation": "next",
                "url": paging_link(fhir_base, path, params, _cursor=_base36(result.next_cursor)),
            }
        )
    elif result.next_offset is not None:
        links.append(
            {"relation": "next", "url": paging_link(fhir_base, path, params, _offset=result.next_offset)}
        )
    bundle["link"] = links
    entries = [_entry(fhir_base, s, "match", summary, elements) for s in result.matches]
    entries += [_entry(fhir_base, s, "include", summary, elements) for s in result.included]
    if result.warnings:
        entries.append({"resource": outcome(result.warnings), "search": {"mode": "outcome"}})
    if summary != "count":
        bundle["entry"] = entries
    elif result.warnings:
        bundle["entry"] = entries[-1:]
    return bundle


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def history_bundle(
    fhir_base: str, path: str, params: list[tuple[str, str]], result: HistoryResult
) -> dict[str, Any]:
    """A history Bundle, newest version first."""
    links = [{"relation": "self", "url": paging_link(fhir_base, path, params)}]
    if result.next_offset is not None:
        links.append(
            {"relation": "next", "url": paging_link(fhir_base, path, params, _offset=result.next_offset)}
        )
    entries = []
    for stored, method in result.entries:
        url = f"{stored.resource_type}/{stored.id}"
        entry: dict[str, Any] = {"fullUrl": f"{fhir_base}/{url}"}
        if not stored.deleted:
            entry["resource"] = stored.json()
        entry["request"] = {
            "method": method,
            "url": url if method in ("PUT", "DELETE", "PATCH") else stored.resource_type,
        }
        status = (
            "201 Created"
            if method == "POST" or stored.version_id == 1
            else ("204 No Content" if method == "DELETE" else "200 OK")
        )
        entry["response"] = {
            "status": status,
            "etag": stored.etag,
            "lastModified": iso_instant(stored.last_updated),
        }
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": result.total,
        "link": links,
        "entry": entries,
    }


# --- batch / transaction ----------------------------------------------------------------------------------------

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


class _Entry:
    def __init__(self, index: int, raw: dict[str, Any]) -> None:
        self.index = index
        self.where = f"Bundle.entry[{index}]"
        request = raw.get("request")
        if not isinstance(request, dict):
            raise bad_request("each entry needs a request", f"{self.where}.request")
        self.method = str(request.get("method", "")).upper()
        if self.method not in _ORDER:
            raise bad_request(
                f"unsupported request.method {request.get('method')!r}", f"{self.where}.request.method"
            )
        url = request.get("url")
        if not isinstance(url, str) or not url:
            raise bad_request("request.url is required", f"{self.where}.request.url")
        self.full_url = raw.get("fullUrl")
        self.resource: Any = raw.get("resource")
        self.if_match = parse_etag(request.get("ifMatch"), "ifMatch")
        self.if_none_exist = request.get("ifNoneExist")
        if "://" in url:
            parsed = urlsplit(url)
            path, self.query = parsed.path.strip("/"), parsed.query
        else:  # the usual relative form, "Type", "Type/id" or "Type?criteria": no need for urlsplit
            path, _, self.query = url.partition("?")
            path = path.strip("/")
        self.parts = path.split("/") if path else []
        if not self.parts or self.parts[0] not in search_params():
            raise bad_request(
                f"request.url {url!r} does not name a supported resource type", f"{self.where}.request.url"
            )
        self.rtype = self.parts[0]
        self.cascade = False  # DELETE …?_cascade=delete (fhir_ecr/store/references.py)
        if self.method == "DELETE" and "_cascade" in self.query:
            pairs = parse_qsl(self.query, keep_blank_values=True)
            if any(k == "_cascade" and v != "delete" for k, v in pairs):
                raise bad_request("_cascade takes 'delete'", f"{self.where}.request.url")
            self.cascade = ("_cascade", "delete") in pairs
            self.query = urlencode([(k, v) for k, v in pairs if k != "_cascade"])
        self.assigned_id: str | None = None
        self.server_id = False  # assigned_id was made up here (no match, no id in the body)
        self._put_body: dict[str, Any] | None = None
        if self.method in ("POST", "PUT"):
            if not isinstance(self.resource, dict):
                raise bad_request("this entry needs a resource", f"{self.where}.resource")
            if self.resource.get("resourceType") != self.rtype:
                raise bad_request(
                    f"the resource is not a {self.rtype}", f"{self.where}.resource.resourceType"
                )

    @property
    def put_id(self) -> str | None:
        """The id a PUT writes to: its URL's, else the one its conditional URL resolved to (:func:`_assign`)."""
        return self.parts[1] if len(self.parts) == 2 else self.assigned_id

    def put_body(self) -> dict[str, Any]:
        """The resource a PUT writes: a copy of the entry's, given :attr:`put_id` when it has no id (a conditional
        PUT). Made once, so the object validated (:func:`_defer_validation`) is the one written."""
        if self._put_body is None:
            self._put_body = dict(self.resource)
            if "id" not in self._put_body and len(self.parts) == 1:
                self._put_body["id"] = self.put_id
        return self._put_body

    def written(self) -> dict[str, Any] | None:
        """The object this entry's write validates (a POST's or PUT's resource), or None."""
        if self.method == "POST":
            return self.resource if isinstance(self.resource, dict) else None
        if self.method == "PUT" and isinstance(self.resource, dict) and self.put_id is not None:
            return self.put_body()
        return None


def _rewrite_references(node: Any, mapping: dict[str, str], resolve: Callable[[str], str | None]) -> None:
    """Rewrite, in place, every ``reference`` that names a Bundle entry's fullUrl or is a conditional one."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                if v in mapping:
                    node[k] = mapping[v]
                elif "?" in v and not v.startswith(("http:", "https:", "urn:")):
                    node[k] = resolve(v) or v
            elif isinstance(v, (dict, list)):
                _rewrite_references(v, mapping, resolve)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _rewrite_references(v, mapping, resolve)


def _patch_operations(entry: _Entry) -> Any:
    res = entry.resource
    if isinstance(res, dict) and res.get("resourceType") == "Binary":
        try:
            return jsonexact.loads(base64.b64decode(res.get("data", "")))
        except ValueError as exc:  # binascii.Error and jsonexact.JSONDecodeError are ValueErrors
            raise bad_request(
                f"the Binary patch body is not JSON: {exc}", f"{entry.where}.resource.data"
            ) from None
    raise not_supported("PATCH in a Bundle takes a Binary holding a JSON Patch", 400)


def process_bundle(
    repo: FhirRepository,
    bundle: Any,
    *,
    fhir_base: str,
    max_entries: int,
    return_pref: str | None = None,
    strict: bool = False,
    run_get: Callable[[UnitOfWork, str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Process a batch or transaction Bundle and return the response Bundle."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad_request("POST to the base URL takes a Bundle", "Bundle")
    btype = bundle.get("type")
    if btype not in ("batch", "transaction"):
        raise bad_request(f"Bundle.type must be batch or transaction, not {btype!r}", "Bundle.type")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise bad_request("Bundle.entry must be a list", "Bundle.entry")
    if len(raw_entries) > max_entries:
        raise TooLarge(
            issue("too-costly", f"the Bundle has {len(raw_entries)} entries; the limit is {max_entries}"), 413
        )
    if btype == "transaction":
        entries = [_Entry(i, e if isinstance(e, dict) else {}) for i, e in enumerate(raw_entries)]
        return _transaction(repo, entries, fhir_base, return_pref, strict, run_get)
    return _batch(repo, raw_entries, fhir_base, return_pref, strict, run_get)


def _response(
    status: int,
    stored: Stored | None,
    fhir_base: str,
    return_pref: str | None,
    location: bool = False,
    body: Any = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"status": _STATUS_TEXT.get(status, str(status))}
    entry: dict[str, Any] = {}
    if stored is not None:
        if location:
            response["location"] = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        response["etag"] = stored.etag
        response["lastModified"] = iso_instant(stored.last_updated)
        entry["fullUrl"] = f"{fhir_base}/{stored.resource_type}/{stored.id}"
        if return_pref != "minimal" and not stored.deleted:
            entry["resource"] = stored.json()
    if body is not None:
        entry["resource"] = body
    entry["response"] = response
    return entry


def _execute(
    uow: UnitOfWork,
    e: _Entry,
    fhir_base: str,
    return_pref: str | None,
    strict: bool,
    run_get: Callable[[UnitOfWork, str, str], dict[str, Any]] | None,
) -> dict[str, Any]:
    if e.method == "POST":
        result = uow.create(e.resource, resource_id=e.assigned_id, if_none_exist=None)
        return _response(201, result.stored, fhir_base, return_pref, location=True)
    if e.method == "PUT":
        rid = e.put_id
        if rid is None:
            raise bad_request("PUT needs Type/id or conditional criteria", f"{e.where}.request.url")
        resource = e.put_body()
        result = uow.update(e.rtype, rid, resource, expected_version=e.if_match, server_chosen_id=e.server_id)
        entry = _response(
            201 if result.created else 200, result.stored, fhir_base, return_pref, location=result.created
        )
        if not result.changed:
            entry["response"]["outcome"] = outcome(
                [
                    issue(
                        "informational",
                        "unchanged: the resource already had this content",
                        severity="information",
                    )
                ]
            )
        return entry
    if e.method == "PATCH":
        if len(e.parts) != 2:
            raise bad_request("PATCH needs Type/id", f"{e.where}.request.url")
        result = uow.patch(e.rtype, e.parts[1], _patch_operations(e), expected_version=e.if_match)
        return _response(200, result.stored, fhir_base, return_pref)
    if e.method == "DELETE":
        if len(e.parts) == 2:
            with contextlib.suppress(
                NotFound
            ):  # deleting what is not there answers 204 (docs/architecture.md)
                uow.delete(e.rtype, e.parts[1], expected_version=e.if_match, cascade=e.cascade)
        elif e.query:
            found = uow.search(
                parse_search(
                    e.rtype, parse_qsl(e.query, keep_blank_values=True), strict=True, default_count=2
                )
            ).matches
            if len(found) > 1:
                raise precondition_failed(
                    f"{e.rtype}?{e.query} matches more than one resource", "multiple-matches"
                )
            for s in found:
                uow.delete(s.resource_type, s.id, cascade=e.cascade)
        else:
            raise bad_request("DELETE needs Type/id or conditional criteria", f"{e.where}.request.url")
        return {"response": {"status": "204 No Content"}}
    # GET / HEAD
    if run_get is None:
        raise not_supported("GET entries are not supported here", 400)
    body = run_get(uow, e.rtype, "/".join(e.parts) + (f"?{e.query}" if e.query else ""))
    return {"resource": body, "response": {"status": "200 OK"}}


def _assign(e: _Entry, existing: Stored | None) -> None:
    """The id a conditional PUT writes: the match's, else the body's, else a new one (made up here)."""
    body_id = e.resource.get("id") if isinstance(e.resource, dict) else None
    e.assigned_id = existing.id if existing else (body_id or new_id())
    e.server_id = existing is None and not body_id


def _check_distinct(entries: list[_Entry], uow: UnitOfWork) -> None:
    """A transaction names each resource at most once among its writes (R4 http.html#trules: "If any resource
    identities (including resolved identities from conditional update/delete) overlap in steps 1-3, then the
    transaction SHALL fail")."""
    seen: dict[tuple[str, str], int] = {}
    for e in entries:
        ids: list[str] = []
        if e.method in ("PUT", "PATCH", "DELETE") and len(e.parts) == 2:
            ids = [e.parts[1]]
        elif e.method == "PUT" and e.assigned_id is not None:
            ids = [e.assigned_id]
        elif e.method == "DELETE" and e.query:
            found = uow.search(
                parse_search(
                    e.rtype, parse_qsl(e.query, keep_blank_values=True), strict=True, default_count=2
                )
            ).matches
            ids = [s.id for s in found]
        for rid in ids:
            first = seen.setdefault((e.rtype, rid), e.index)
            if first != e.index:
                raise bad_request(
                    f"Bundle.entry[{first}] and Bundle.entry[{e.index}] both change "
                    f"{e.rtype}/{rid}; a transaction may name each resource once",
                    f"{e.where}.request.url",
                )


def _transaction(
    repo: FhirRepository,
    entries: list[_Entry],
    fhir_base: str,
    return_pref: str | None,
    strict: bool,
    run_get: Callable[[UnitOfWork, str, str], dict[str, Any]] | None,
) -> dict[str, Any]:
    seen_urls: set[str] = set()
    for e in entries:
        if e.full_url:
            if e.full_url in seen_urls:
                raise bad_request(f"fullUrl {e.full_url} appears twice", f"{e.where}.fullUrl")
            seen_urls.add(e.full_url)
    responses: list[dict[str, Any] | None] = [None] * len(entries)
    with repo.unit() as uow:
        mapping: dict[str, str] = {}
        # Conditional creates/updates first decide which resource they are, so references can point at it.
        for e in entries:
            target: str | None
            if e.method == "POST":
                existing = uow.match_conditional(e.rtype, e.if_none_exist) if e.if_none_exist else None
                if existing is not None:
                    responses[e.index] = _response(200, existing, fhir_base, return_pref)
                    target = existing.id
                else:
                    e.assigned_id = new_id()
                    target = e.assigned_id
            elif e.method == "PUT" and len(e.parts) == 1:
                if not e.query:
                    raise bad_request("PUT needs Type/id or conditional criteria", f"{e.where}.request.url")
                existing = uow.match_conditional(e.rtype, e.query)
                body_id = e.resource.get("id")
                if existing is not None and body_id and body_id != existing.id:
                    raise bad_request("the resource id does not match the conditional match", f"{e.where}")
                _assign(e, existing)
                target = e.assigned_id
            elif e.method == "PUT":
                target = e.parts[1]
            else:
                continue
            ref = f"{e.rtype}/{target}"
            if e.full_url:
                mapping[e.full_url] = ref
                if e.full_url.startswith(fhir_base + "/"):
                    mapping[e.full_url[len(fhir_base) + 1 :]] = ref

        def resolve(conditional: str) -> str | None:
            rtype, _, query = conditional.partition("?")
            if rtype not in search_params():
                raise bad_request(f"conditional reference {conditional} names an unknown type")
            found = uow.match_conditional(rtype, query)
            if found is None:
                raise NotFound(
                    issue("not-found", f"conditional reference {conditional} matches nothing"), 404
                )
            return found.reference

        _check_distinct(entries, uow)
        for e in entries:  # the Bundle is ours (parsed from the request): rewrite in place
            if isinstance(e.resource, dict):
                _rewrite_references(e.resource, mapping, resolve)
        deferred = _defer_validation(repo, uow, [e for e in entries if responses[e.index] is None])
        failure: Exception | None = None
        try:
            for e in sorted(entries, key=lambda x: (_ORDER[x.method], x.index)):
                if responses[e.index] is not None:
                    continue
                try:
                    responses[e.index] = _execute(uow, e, fhir_base, return_pref, strict, run_get)
                except FhirError as exc:
                    _locate(exc, e)
                    raise
            if deferred is not None:
                uow.flush()  # the buffered creates' statements run while the worker still validates
        except Exception as exc:  # noqa: BLE001 - raised below, unless a deferred validation comes first
            failure = exc
        if deferred is not None:  # before the unit ends: nothing commits that the validator refused
            uow.deferred = None
            validations, written = deferred
            validations.settle(lambda i, resource: _validate_in_line(uow, written[i], resource))
        if failure is not None:
            raise failure
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": responses,
    }


def _locate(exc: FhirError, e: _Entry) -> None:
    """Prefix each issue's expression with the entry it is about."""
    for item in exc.issues:
        item["expression"] = [e.where, *item.get("expression", [])]


def _defer_validation(
    repo: FhirRepository, uow: UnitOfWork, entries: list[_Entry]
) -> tuple[DeferredValidation, list[_Entry]] | None:
    """Hand the resources ``entries`` write to the repository's validation pool, when it takes them (a large
    transaction, the pool up and idle: fhir_ecr/store/validation_pool.py); the unit then skips validating them."""
    pool = repo.validation_pool
    if pool is None:
        return None
    written: list[_Entry] = []
    bodies: list[dict[str, Any]] = []
    seen: set[int] = set()
    for e in entries:
        body = e.written()
        if body is not None and id(body) not in seen:  # the same object twice: in line
            seen.add(id(body))
            written.append(e)
            bodies.append(body)
    if len(written) < MIN_RESOURCES:
        return None
    validations = pool.defer(bodies)
    if validations is None:
        return None
    uow.deferred = validations
    return validations, written


def _validate_in_line(uow: UnitOfWork, e: _Entry, resource: dict[str, Any]) -> None:
    """Validate what the pool refused, as the unit would have, raising its error about the entry."""
    try:
        uow.repo.validator(resource)
    except FhirError as exc:
        _locate(exc, e)
        raise


def _batch(
    repo: FhirRepository,
    raw_entries: list[Any],
    fhir_base: str,
    return_pref: str | None,
    strict: bool,
    run_get: Callable[[UnitOfWork, str, str], dict[str, Any]] | None,
) -> dict[str, Any]:
    responses = []
    for i, raw in enumerate(raw_entries):
        try:
            e = _Entry(i, raw if isinstance(raw, dict) else {})
            if e.method == "PUT" and len(e.parts) == 1:
                with repo.unit() as uow:
                    existing = uow.match_conditional(e.rtype, e.query) if e.query else None
                    if not e.query:
                        raise bad_request(
                            "PUT needs Type/id or conditional criteria", f"{e.where}.request.url"
                        )
                    _assign(e, existing)
                    responses.append(_execute(uow, e, fhir_base, return_pref, strict, run_get))
                continue
            with repo.unit(write=e.method != "GET") as uow:
                if e.method == "POST" and e.if_none_exist:
                    existing = uow.match_conditional(e.rtype, e.if_none_exist)
                    if existing is not None:
                        responses.append(_response(200, existing, fhir_base, return_pref))
                        continue
                responses.append(_execute(uow, e, fhir_base, return_pref, strict, run_get))
        except FhirError as exc:
            responses.append(
                {"resource": exc.outcome, "response": {"status": str(exc.status), "outcome": exc.outcome}}
            )
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}
