"""Population loads from an EMR with FHIR Bulk Data Access 2.0 (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

1. **Kick-off** (:func:`kick_off`): ``GET [base]/$export`` (or ``Patient/$export``, ``Group/{id}/$export``) with
   ``_type`` (the pulled types), ``_since`` (the last export's ``transactionTime``) and ``_typeFilter`` (the pull
   filters, e.g. ``Observation?category=laboratory``), ``Accept: application/fhir+json`` and
   ``Prefer: respond-async``; the EMR answers 202 with the status URL in ``Content-Location``.
2. **Polling** (:func:`poll`): while the EMR answers 202 the next poll comes after its ``Retry-After`` (the
   client "SHOULD use this information to inform the timing of future polling requests"), never sooner; without
   one, after a quarter of the time the export has taken so far (:func:`next_poll`: 1 s at least, a minute at
   most) — the spec's exponential backoff, at a factor of 1.25 a poll rather than 2, so a poll comes at most a
   quarter of the export's time after it was ready, where doubling could wait as long again. The job
   (:func:`fhir_ecr.sync.tasks.bulk_poll`) sleeps through short waits itself and leaves longer ones to the
   scheduler.
3. **Download**: the manifest's files, Patients first, each streamed line by line (never a whole file in memory),
   parsed with exact numbers (:mod:`fhir_ecr.store.jsonexact`) and written through the same path as paged pulls
   (:class:`~fhir_ecr.sync.pull.Loader`) in batches; each batch commits with the count of lines done in its file,
   so a dropped connection or a killed worker resumes at the next line. Then the high-water marks become the
   manifest's ``transactionTime`` (the spec's ``_since`` for the next export), and the status URL is deleted.
   Resources the manifest lists as ``deleted`` (Bulk Data 2.0, with ``_since``) have their copies deleted in mECR.

The state of an export under way is kept in the ``*`` mark of the EMR (status URL, polls, files done).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from ..store import jsonexact
from .client import EmrRefused, EmrUnavailable, retry_after_seconds
from .config import SyncConfig
from .pull import Loader, PullCounts

__all__ = ["kick_off", "poll", "next_poll", "BULK_MARK"]

log = logging.getLogger("mecr.sync")

#: The mark (``sync_mark.res_type``) of an EMR's Bulk Data pulls.
BULK_MARK = "*"

#: Without a ``Retry-After``, the next status poll comes after this share of the export's time so far.
BACKOFF_SHARE = 0.25


def next_poll(retry_after: str | None, elapsed: float) -> float:
    """Seconds until the next status poll: the EMR's ``Retry-After`` when it gave one (never sooner); else
    ``BACKOFF_SHARE`` of the ``elapsed`` seconds since the kick-off, 1 s at least and a minute at most."""
    asked = retry_after_seconds(retry_after)
    if asked is not None:
        return asked
    return min(60.0, max(1.0, elapsed * BACKOFF_SHARE))


def _path(level: str) -> str:
    if level == "patient":
        return "Patient/$export"
    if level.startswith("group/"):
        return f"Group/{level[6:]}/$export"
    return "$export"


def _state(services: Any, ehr_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    mark = services.sync_store.mark(ehr_id, BULK_MARK) or {}
    return mark, json.loads(mark["state"]) if mark.get("state") else {}


async def kick_off(loader: Loader, config: SyncConfig, *, full: bool = False) -> float:
    """Start an export at the EMR (unless one is under way); the seconds to wait before the first poll."""
    services, ehr_id = loader.services, loader.ehr_id
    mark, state = _state(services, ehr_id)
    if state.get("status"):
        return 0.0
    params: list[tuple[str, str]] = [("_type", ",".join(config.pull_types))]
    since = None if full else mark.get("high_water")
    if since:
        params.append(("_since", since))
    filters = [str(s) for s in config.pull if s.query]
    if filters:
        params.append(("_typeFilter", ",".join(filters)))
    what = f"EHR {ehr_id}: Bulk Data kick-off"
    response = await loader.emr.send(
        "GET", _path(config.bulk_level), what=what, params=params, headers={"Prefer": "respond-async"}
    )
    status_url = response.headers.get("content-location")
    if response.status_code != 202 or not status_url:
        raise EmrRefused(
            f"{what}: expected 202 with Content-Location, got {response.status_code}", response.status_code
        )
    state = {"status": status_url, "kicked": time.time(), "polls": 0, "files": {}, "since": since}
    services.sync_store.put_mark(
        ehr_id, BULK_MARK, state=json.dumps(state), last_started=int(time.time()), last_error=None
    )
    log.info("pull ehr=%s mode=bulk kick-off types=%d", ehr_id, len(config.pull_types))
    return next_poll(response.headers.get("retry-after"), 0.0)


async def poll(loader: Loader, config: SyncConfig, *, batch_size: int) -> tuple[float | None, PullCounts]:
    """One poll of the export under way: ``(seconds until the next poll, counts)`` while the EMR is still at
    work; ``(None, counts)`` when it was downloaded and loaded (or there was none)."""
    services, ehr_id = loader.services, loader.ehr_id
    store = services.sync_store
    _, state = _state(services, ehr_id)
    counts = PullCounts()
    if not state.get("status"):
        return None, counts
    what = f"EHR {ehr_id}: Bulk Data status"
    manifest = state.get("manifest")
    if manifest is None:
        response = await loader.emr.send(
            "GET", state["status"], what=what, headers={"Accept": "application/json"}
        )
        if response.status_code == 202:
            state["polls"] = int(state.get("polls", 0)) + 1
            store.put_mark(ehr_id, BULK_MARK, state=json.dumps(state))
            elapsed = time.time() - float(state.get("kicked") or time.time())
            return next_poll(response.headers.get("retry-after"), elapsed), counts
        if response.status_code != 200:
            raise EmrUnavailable(f"{what}: unexpected {response.status_code}")
        try:
            manifest = jsonexact.loads(response.content)
        except ValueError as exc:
            raise EmrUnavailable(f"{what}: the manifest is not JSON") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
            raise EmrRefused(f"{what}: the manifest has no output list", 200)
        state["manifest"] = {
            "transactionTime": manifest.get("transactionTime"),
            "requiresAccessToken": manifest.get("requiresAccessToken", True),
            "output": [
                {"type": o.get("type"), "url": o.get("url")}
                for o in manifest["output"]
                if isinstance(o, dict) and o.get("url")
            ],
            "deleted": [
                o["url"] for o in manifest.get("deleted") or [] if isinstance(o, dict) and o.get("url")
            ],
            "errors": len(manifest.get("error") or []),
        }
        store.put_mark(ehr_id, BULK_MARK, state=json.dumps(state))
        manifest = state["manifest"]
    order = {t: n for n, t in enumerate(["Patient", *config.pull_types])}
    files = sorted(manifest["output"], key=lambda o: (order.get(o["type"], len(order)), o["url"]))
    with_token = bool(manifest.get("requiresAccessToken", True))
    for item in files:
        url = item["url"]
        done = int(state["files"].get(url, 0))
        if done < 0:
            continue  # finished
        batch: list[dict[str, Any]] = []
        async for line in loader.emr.lines(
            url, what=f"EHR {ehr_id}: Bulk Data file", skip=done, with_token=with_token
        ):
            try:
                batch.append(jsonexact.loads(line))
            except ValueError as exc:  # a line cut off by a dropped connection, or a broken file: try again
                raise EmrUnavailable(f"EHR {ehr_id}: a Bulk Data line is not JSON") from exc
            if len(batch) >= batch_size:
                done += len(batch)
                state["files"][url] = done
                await loader.load(batch, mark=(BULK_MARK, {"state": json.dumps(state)}), counts=counts)
                batch = []
        done += len(batch)
        state["files"][url] = -1
        await loader.load(batch, mark=(BULK_MARK, {"state": json.dumps(state)}), counts=counts)
        counts.pages += 1
    for url in manifest.get("deleted") or []:
        if int(state["files"].get(url, 0)) < 0:
            continue
        await _deleted_file(loader, url, with_token, counts)
        state["files"][url] = -1
        store.put_mark(ehr_id, BULK_MARK, state=json.dumps(state))
    when = manifest.get("transactionTime")
    now = int(time.time())
    for rtype in {*config.pull_types, BULK_MARK}:
        store.put_mark(
            ehr_id,
            rtype,
            high_water=when,
            last_finished=now,
            **(
                {
                    "state": None,
                    "last_count": counts.fetched,
                    "last_error": ("; ".join(counts.reasons) if counts.rejected else None),
                }
                if rtype == BULK_MARK
                else {}
            ),
        )
    with contextlib.suppress(EmrUnavailable, EmrRefused):  # the EMR cleans up after its expiry anyway
        await loader.emr.send("DELETE", state["status"], what=f"EHR {ehr_id}: Bulk Data delete")
    log.info(
        "pull ehr=%s mode=bulk %s files=%d error_files=%d",
        ehr_id,
        counts.line(),
        len(files),
        manifest.get("errors", 0),
    )
    return None, counts


async def _deleted_file(loader: Loader, url: str, with_token: bool, counts: PullCounts) -> None:
    """One of the manifest's ``deleted`` files (Bulk Data 2.0: resources deleted since ``_since``, each line a
    Bundle whose entries' ``request`` is ``DELETE Type/id``): their copies are deleted in mECR, as a paged pull's
    history does (:meth:`~fhir_ecr.sync.pull.Loader.delete`). Deleting again what is gone changes nothing, so a
    file read twice (a dropped connection) does no harm."""
    gone: dict[str, list[str]] = {}
    async for line in loader.emr.lines(
        url, what=f"EHR {loader.ehr_id}: Bulk Data deleted file", with_token=with_token
    ):
        try:
            bundle = jsonexact.loads(line)
        except ValueError as exc:
            raise EmrUnavailable(f"EHR {loader.ehr_id}: a Bulk Data line is not JSON") from exc
        for entry in (bundle.get("entry") or []) if isinstance(bundle, dict) else []:
            request = entry.get("request") if isinstance(entry, dict) else None
            if isinstance(request, dict) and str(request.get("method") or "").upper() == "DELETE":
                rtype, _, rid = str(request.get("url") or "").strip("/").rpartition("/")
                if rtype and rid:
                    gone.setdefault(rtype.rsplit("/", 1)[-1], []).append(rid)
    for rtype, ids in gone.items():
        loader.delete(rtype, sorted(set(ids)), counts)
