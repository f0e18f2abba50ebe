"""mECR's own FHIR Bulk Data export (Bulk Data Access 2.0, https://hl7.org/fhir/uv/bulkdata/STU2/export.html):
``$export`` at system level, ``Patient/$export`` and ``Group/{id}/$export``, for backend-services clients.

- **Kick-off** (:func:`kick_off`, the ``$export`` operation): only a system client (``system/`` scopes) may export
  — anyone else gets 403 before anything is read; the export holds the types its scopes let it read
  (``_type`` may narrow them; naming a type it may not read is 403). ``Prefer: respond-async`` is required
  (400 otherwise). Parameters: ``_type``, ``_since`` (resources changed after it), ``_typeFilter`` (a search of
  one of the types, e.g. ``Observation?category=vital-signs``; several for a type are OR-ed), ``_outputFormat``
  (``application/fhir+ndjson``; its abbreviations). Others are refused with ``Prefer: handling=strict`` and
  otherwise ignored. The answer is 202 with the status URL in ``Content-Location``; the job runs on a worker.
- **The job** (:func:`run_export`): reads through the repository as the client (the guard checks its scopes), page
  by page in key order, and writes each resource's stored JSON as one NDJSON line, unparsed (numbers exact, no
  re-serialisation); a type with more than ``MECR_EXPORT_FILE_LINES`` resources gets several files.
  ``Patient/$export``: the Patients and every resource of a Patient-compartment type; ``Group/{id}/$export``: the
  group's member Patients and the resources in their compartments.
- **Status and files** (:mod:`fhir_ecr.bulk.routes`): only the client that started an export sees its status and
  files (anyone else: 404, as for an export that does not exist); finished files are deleted after
  ``MECR_EXPORT_TTL_SECONDS`` (``Expires`` says when), and ``DELETE`` on the status URL cancels or deletes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import Response

from ..auth import Access, Principal
from ..fhir.operations import Operation, OperationCall, OperationRegistry
from ..outcomes import FhirError, bad_request, forbidden, issue, not_supported, outcome
from ..store import jsonexact
from ..store.indexer import date_range, parse_reference
from ..store.search import parse_search
from ..store.searchparams import patient_compartment, search_param, search_params

__all__ = ["register_bulk_operations", "run_export", "housekeeping", "kick_off", "OUTPUT_FORMATS"]

log = logging.getLogger("mecr.bulk")

#: ``_outputFormat`` values meaning NDJSON (the spec lists the abbreviations a server SHOULD accept).
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
_PARAMS = frozenset({"_outputFormat", "_since", "_type", "_typeFilter", "_format", "_pretty"})
#: Types that are no one's data and are not exported unless named in ``_type``.
_NOT_BY_DEFAULT = frozenset({"AuditEvent", "StructureDefinition", "ValueSet", "CodeSystem"})
_PAGE = 1000
#: How often a running export records its progress (and extends its lease, and notices a cancellation): a
#: commit per page of 1,000 was a tenth of the export's time.
_REPORT_SECONDS = 1.0


def _now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _values(call: OperationCall, name: str) -> list[str]:
    return [v.strip() for raw in call.get_all(name) for v in str(raw).split(",") if v.strip()]


def kick_off(call: OperationCall) -> Response:
    """The ``$export`` operation (see the module docstring)."""
    access: Access = call.access
    principal = access.require_login() if access is not None else None
    if principal is None or principal.kind not in ("system", "developer"):
        raise forbidden("Bulk Data export is for backend-services clients (system/ scopes)")
    if call.resource_type == "Group" and call.resource_id is None:
        raise not_supported("$export on Group needs a group: Group/{id}/$export", 400)
    if call.resource_type == "Patient" and call.resource_id is not None:
        raise not_supported("use Patient/$export (all patients) or Group/{id}/$export", 400)
    prefer = call.request.headers.get("prefer", "").lower()
    if "respond-async" not in prefer:
        raise bad_request("Bulk Data kick-off requires the header 'Prefer: respond-async'")
    accept = call.request.headers.get("accept", "application/fhir+json")
    if not any(a in accept for a in ("application/fhir+json", "application/json", "*/*")):
        raise not_supported("the kick-off answers application/fhir+json", 406)
    unknown = sorted({k for k, _ in call.params if k not in _PARAMS})
    if unknown and "handling=strict" in prefer:
        raise not_supported(f"unsupported $export parameters: {', '.join(unknown)}", 400)
    fmt = (_values(call, "_outputFormat") or ["application/fhir+ndjson"])[-1]
    if fmt not in OUTPUT_FORMATS:
        raise not_supported(
            f"_outputFormat {fmt!r} is not supported; use application/fhir+ndjson", 400, "_outputFormat"
        )
    served = set(search_params())
    asked = _values(call, "_type")
    for t in asked:
        if t not in served:
            raise bad_request(f"_type {t!r} is not a resource type this server has", "_type")
        access.require(t, "r")
        access.require(t, "s")
    level = (
        "group"
        if call.resource_type == "Group"
        else "patient"
        if call.resource_type == "Patient"
        else "system"
    )
    candidates = asked or sorted(served - _NOT_BY_DEFAULT)
    if level != "system":
        compartment = {t for t, params in patient_compartment().items() if params} | {"Patient"}
        candidates = [t for t in candidates if t in compartment]
    types = [t for t in candidates if access.can(t, "r") and access.can(t, "s")]
    if not types:
        raise forbidden("the client's scopes let it read none of the requested types")
    since = None
    for value in _values(call, "_since")[-1:]:
        try:
            since = date_range(value)[0]
        except ValueError:
            raise bad_request(f"_since must be an instant, not {value!r}", "_since") from None
    filters: dict[str, list[list[tuple[str, str]]]] = {}
    for text in [str(v) for v in call.get_all("_typeFilter")]:
        ftype, _, query = text.partition("?")
        if ftype not in types:
            raise bad_request(f"_typeFilter {ftype!r} is not one of the exported types", "_typeFilter")
        from urllib.parse import parse_qsl

        pairs = parse_qsl(query, keep_blank_values=True)
        parse_search(ftype, pairs, strict=True)  # 400 for an unknown parameter or a bad value
        filters.setdefault(ftype, []).append(pairs)
    if level == "group":
        call.repo.read(
            "Group", call.instance_id
        )  # 404 for a group that does not exist (after the checks above)
    services = call.services
    job_id = uuid.uuid4().hex
    assert principal is not None
    services.sync_store.add_export(
        id=job_id,
        client_id=principal.client_id or principal.kind,
        scope=str(principal.scopes),
        request=str(call.request.url),
        state="queued",
        transaction_time=_now_instant(),
        created=int(time.time()),
        params=json.dumps(
            {
                "level": level,
                "group": call.resource_id,
                "types": types,
                "since": since,
                "filters": filters,
                "principal": principal.kind,
                "display": principal.display,
            }
        ),
    )
    services.jobs.enqueue("export", job_id)
    log.info("export job=%s kick-off level=%s types=%d", job_id, level, len(types))
    body = jsonexact.dumps(
        outcome(
            [
                issue(
                    "informational",
                    "export started; poll Content-Location for its status",
                    severity="information",
                )
            ]
        )
    )
    return Response(
        body,
        status_code=202,
        media_type="application/fhir+json",
        headers={"Content-Location": f"{services.fhir_base}/$export-status/{job_id}"},
    )


def register_bulk_operations(registry: OperationRegistry) -> None:
    """``$export`` at system level, on Patient (type) and on a Group (instance)."""
    registry.register(
        Operation(
            name="export",
            title="Bulk Data export",
            description="FHIR Bulk Data Access 2.0 kick-off: all data the system client may read (system level), "
            "all patients' data (Patient/$export) or a group's (Group/{id}/$export), as NDJSON files "
            "produced asynchronously (Prefer: respond-async; poll Content-Location).",
            handler=kick_off,
            resource_types=("Patient", "Group"),
            system=True,
            type=True,
            instance=True,
            parameters=[
                {"name": "_outputFormat", "use": "in", "min": 0, "max": "1", "type": "string"},
                {"name": "_since", "use": "in", "min": 0, "max": "1", "type": "instant"},
                {"name": "_type", "use": "in", "min": 0, "max": "*", "type": "string"},
                {"name": "_typeFilter", "use": "in", "min": 0, "max": "*", "type": "string"},
            ],
        )
    )


# -- the job ------------------------------------------------------------------------------------------------------


def _access(job: dict[str, Any], params: dict[str, Any]) -> Access:
    from smart_launch import ScopeSet

    from ..auth.principal import DEVELOPER

    if params.get("principal") == "developer":
        return Access(DEVELOPER)
    principal = Principal(
        kind="system",
        subject=f"client:{job['client_id']}",
        scopes=ScopeSet.parse(job["scope"]),
        client_id=job["client_id"],
        display=params.get("display") or job["client_id"],
    )
    return Access(principal)


def job_dir(services: Any, job_id: str) -> Path:
    root: Path = services.settings.export_path
    return root / job_id


class _Files:
    """The NDJSON files of one type, split every ``limit`` lines."""

    def __init__(self, folder: Path, rtype: str, limit: int, base: str, job_id: str) -> None:
        self.folder, self.rtype, self.limit, self.base, self.job_id = folder, rtype, limit, base, job_id
        self.outputs: list[dict[str, Any]] = []
        self._file: Any = None
        self._lines = 0

    def write(self, lines: list[bytes]) -> None:
        """Append ``lines`` (a page of resources' JSON), each followed by a newline: one write per file they go
        to, nothing kept once written."""
        while lines:
            if self._file is None or self._lines >= self.limit:
                self.close()
                name = f"{self.rtype}-{len(self.outputs) + 1}.ndjson"
                self._file = (self.folder / name).open("wb", buffering=1 << 20)
                self.outputs.append(
                    {"type": self.rtype, "url": f"{self.base}/$export-file/{self.job_id}/{name}", "count": 0}
                )
                self._lines = 0
            room = self.limit - self._lines
            part, lines = lines[:room], lines[room:]
            self._file.write(b"\n".join(part) + b"\n")
            self._lines += len(part)
            self.outputs[-1]["count"] += len(part)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _members(repo: Any, group_id: str, base: str) -> list[str]:
    group = repo.read("Group", group_id).content or {}
    ids = []
    for member in group.get("member") or []:
        ref = (member.get("entity") or {}).get("reference") if isinstance(member, dict) else None
        t, i, _ = parse_reference(ref or "", base)
        if t == "Patient" and i:
            ids.append(i)
    return sorted(set(ids))


def _searches(rtype: str, params: dict[str, Any], members: list[str] | None) -> list[list[tuple[str, str]]]:
    """The searches whose union is what the export holds of ``rtype``."""
    since = params.get("since")
    base: list[tuple[str, str]] = []
    if since is not None:
        from ..store.records import iso_instant

        base.append(("_lastUpdated", f"gt{iso_instant(since)}"))
    filters = params.get("filters", {}).get(rtype) or [[]]
    if members is None:
        return [base + list(f) for f in filters]
    if rtype == "Patient":
        return [
            base + list(f) + [("_id", ",".join(members[n : n + 100]))]
            for f in filters
            for n in range(0, len(members), 100)
        ]
    out = []
    for code in patient_compartment().get(rtype, ()):
        param = search_param(rtype, code)
        if param is None or param.type != "reference":
            continue
        for n in range(0, len(members), 100):
            refs = ",".join(f"Patient/{m}" for m in members[n : n + 100])
            out += [base + list(f) + [(code, refs)] for f in filters]
    return out


def _report(store: Any, job_id: str, rtype: str, total: int, settings: Any) -> bool:
    """Record the progress of a running export and extend its lease; False when it was cancelled meanwhile."""
    return bool(
        store.update_export(
            job_id,
            only_states=["running"],
            progress=f"{rtype}: {total}",
            claimed_until=int(time.time()) + settings.sync_lease_seconds * 10,
        )
    )


def run_export(services: Any, job_id: str) -> None:
    """Produce the files of export ``job_id`` (the ``export`` job); a job another worker runs is left alone."""
    store = services.sync_store
    settings = services.settings
    if not store.claim_export(job_id, settings.sync_lease_seconds * 10):
        return
    job = store.export(job_id)
    if job is None:
        return
    params = json.loads(job["params"])
    folder = job_dir(services, job_id)
    shutil.rmtree(folder, ignore_errors=True)  # a job restarted after a crash starts its files afresh
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    repo = services.repo.guarded(_access(job, params))
    outputs: list[dict[str, Any]] = []
    total = 0
    next_report = time.monotonic() + _REPORT_SECONDS
    try:
        members = _members(repo, params["group"], services.fhir_base) if params["level"] == "group" else None
        for rtype in params["types"]:
            files = _Files(folder, rtype, settings.export_file_lines, services.fhir_base, job_id)
            seen: set[str] | None = (
                set()
                if (members is not None or len(params.get("filters", {}).get(rtype) or []) > 1)
                else None
            )
            try:
                for search in _searches(rtype, params, members):
                    cursor: int | None = None
                    while True:
                        query = parse_search(rtype, search, default_count=_PAGE, max_count=_PAGE)
                        query.total = "none"
                        query.cursor = cursor
                        result = repo.search(query)
                        matches = result.matches
                        if seen is not None:
                            matches = [s for s in matches if s.id not in seen]
                            seen.update(s.id for s in matches)
                        # The stored text as it is: never parsed, never serialised again.
                        files.write(
                            [
                                s.raw.encode() if s.raw is not None else jsonexact.dumps(s.content)
                                for s in matches
                            ]
                        )
                        total += len(matches)
                        cursor = result.next_cursor
                        del result, matches  # no page is held while the next one is read
                        if cursor is None:
                            break
                        if time.monotonic() >= next_report and not _report(
                            store, job_id, rtype, total, settings
                        ):
                            shutil.rmtree(folder, ignore_errors=True)  # cancelled meanwhile
                            return
                        next_report = max(next_report, time.monotonic()) + _REPORT_SECONDS
            finally:
                files.close()
            outputs += files.outputs
    except FhirError as exc:
        store.update_export(
            job_id,
            only_states=["running"],
            state="failed",
            error=str(exc)[:500],
            expires=int(time.time()) + settings.export_ttl_seconds,
        )
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("export job=%s failed: %s", job_id, exc.status)
        return
    now = int(time.time())
    done = store.update_export(
        job_id,
        only_states=["running"],
        state="complete",
        progress=None,
        output=json.dumps(outputs),
        expires=now + settings.export_ttl_seconds,
        claimed_until=None,
    )
    if not done:
        shutil.rmtree(folder, ignore_errors=True)
        return
    log.info(
        "export job=%s complete resources=%d files=%d duration=%.1fs",
        job_id,
        total,
        len(outputs),
        time.monotonic() - started,
    )


def housekeeping(services: Any) -> None:
    """Delete expired exports and their files; resume exports whose worker died (run by ``tick``)."""
    store = services.sync_store
    now = int(time.time())
    for job in store.exports():
        if job["state"] in ("complete", "failed", "cancelled") and (job["expires"] or 0) < now:
            shutil.rmtree(job_dir(services, job["id"]), ignore_errors=True)
            store.delete_export(job["id"])
        elif job["state"] == "queued" or (job["state"] == "running" and (job["claimed_until"] or 0) < now):
            services.jobs.enqueue("export", job["id"])
