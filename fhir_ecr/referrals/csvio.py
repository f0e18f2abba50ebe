"""Referral status as CSV, for platforms that exchange spreadsheets (``mecr referrals export|import``).

Columns (header row, UTF-8): ``task_id, service_request_id, organization, need, status, status_reason,
last_modified, note, provided``. No names, contacts or chart data: the platform knows the person from the
referral it received; the spreadsheet carries ids and status only.

Export writes the referral Tasks (optionally of one organisation) as mECR has them. Import applies each row as
**the organisation** (an ``Access`` bound to ``--organization``): the guard confines it to the Tasks it owns and
the write hook enforces the workflow, so a row can only do what the organisation could do through its link —
accept, reject with a reason, start, complete with what was provided (a ``Procedure``), add a note. Each row is
reported: changed, unchanged, or refused with the reason (one bad row does not stop the others; each applied
row is its own unit of work).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from ..outcomes import FhirError
from ..store.repository import FhirRepository
from .service import Referral, _resolve, organisation_act
from .workflow import MECR_TASK_PROFILE

__all__ = ["COLUMNS", "RowResult", "export_rows", "import_rows", "write_csv"]

COLUMNS = (
    "task_id",
    "service_request_id",
    "organization",
    "need",
    "status",
    "status_reason",
    "last_modified",
    "note",
    "provided",
)
_STATUS_ACTION = {"accepted": "accept", "rejected": "reject", "in-progress": "start", "completed": "complete"}


@dataclass(frozen=True)
class RowResult:
    line: int
    task_id: str
    result: str  # "changed", "unchanged" or "refused"
    detail: str = ""


def export_rows(repo: FhirRepository, organization: str | None = None) -> list[dict[str, str]]:
    """One row per referral Task (of ``organization`` when given), in Task id order."""
    params = [("_count", "1000")]
    if organization:
        params.append(("owner", f"Organization/{organization}"))
    tasks: list[dict[str, Any]] = []
    result = repo.search_params("Task", params)
    while True:
        tasks += [
            s.content
            for s in result.matches
            if s.content and MECR_TASK_PROFILE in ((s.content.get("meta") or {}).get("profile") or ())
        ]
        if result.next_cursor is None:
            break
        from ..store.search import parse_search

        query = parse_search("Task", params)
        query.cursor = result.next_cursor
        result = repo.search(query)
    refs: list[Referral] = _resolve(repo, tasks)
    rows = [
        {
            "task_id": r.task_id,
            "service_request_id": r.sr_id,
            "organization": r.organization or "",
            "need": r.need,
            "status": r.status,
            "status_reason": r.reason or "",
            "last_modified": r.last_modified,
            "note": r.notes[-1]["text"] if r.notes else "",
            "provided": r.outcome or "",
        }
        for r in refs
    ]
    return sorted(rows, key=lambda row: row["task_id"])


def write_csv(rows: Iterable[dict[str, str]], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


def import_rows(repo: FhirRepository, text: str, *, organization: str, org_name: str) -> list[RowResult]:
    """Apply the rows of ``text`` as ``organization`` (``repo`` guarded by that organisation's access)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"task_id", "status"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"the CSV needs the columns {', '.join(sorted(missing))} (header row)")
    out: list[RowResult] = []
    for line, row in enumerate(reader, start=2):
        tid = (row.get("task_id") or "").strip()
        want = (row.get("status") or "").strip()
        note = (row.get("note") or "").strip()
        try:
            current = repo.read("Task", tid).content or {}
            done = []
            if want and want != current.get("status"):
                action = _STATUS_ACTION.get(want)
                if action is None:
                    raise ValueError(
                        f"status {want!r} is not one an organisation sets ({', '.join(_STATUS_ACTION)})"
                    )
                seen = {n.get("text") for n in current.get("note") or ()}
                organisation_act(
                    repo,
                    tid,
                    action,
                    organization=organization,
                    org_name=org_name,
                    reason=row.get("status_reason") or "",
                    provided=row.get("provided") or "",
                    note=note if note and note not in seen else "",
                )
                done.append(want)
            elif note and note not in {n.get("text") for n in current.get("note") or ()}:
                organisation_act(repo, tid, "note", organization=organization, org_name=org_name, note=note)
                done.append("note")
            out.append(RowResult(line, tid, "changed" if done else "unchanged", ", ".join(done)))
        except FhirError as exc:
            why = "; ".join(str(i.get("diagnostics", "")) for i in exc.issues if i.get("diagnostics"))
            out.append(
                RowResult(
                    line,
                    tid,
                    "refused",
                    why if exc.status != 404 else f"no such referral for Organization/{organization}",
                )
            )
        except ValueError as exc:
            out.append(RowResult(line, tid, "refused", str(exc)))
    return out
