"""Kept views: the caseload's glance and the coaching summary of each patient, kept in the ``kept_view`` table.

A coaching view is a pure function of the patient's data, the patient's local day and the service's parameters
(:mod:`fhir_ecr.coaching.cache`). The in-process LRU holds views for the process that computed them; this table
holds the latest one of each patient for every process, stamped with what it was computed from — the data
version, the local day, the time zone and a digest of the parameters. A reader uses a kept view only when the
stamp is exactly what it would compute now (the version it read in the same unit of work, today in that zone, the
same parameters), so a kept view is never stale: a write bumps the version and the next read computes afresh.

What keeps the table warm:

- every computed glance or summary is kept (the coach's first view of a patient keeps it for every process);
- :func:`refresh` recomputes the views whose stamp no longer holds — after a nightly import, after the local day
  changed — in the background (the ``refresh_views`` job on the job runner's minute tick, and right after an
  import; :mod:`fhir_ecr.jobs`), so the coach's first view in the morning reads one row per patient.

Values are pickled and read back by an unpickler that admits only plain data (containers, numbers, strings,
dates): a row that holds anything else is treated as missing, never executed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fhir_ecr.store.db import WRITE
from fhir_ecr.store.tables import KeptView, PatientVersion, ResourceRow

__all__ = [
    "KEPT_VIEWS",
    "Stamp",
    "encode",
    "decode",
    "params_digest",
    "load",
    "keep",
    "stale",
    "forget",
    "forget_gone",
    "ALL_PATIENTS",
]

log = logging.getLogger("mecr.coaching")

KEPT = KeptView.__table__  # type: ignore[attr-defined]
PV = PatientVersion.__table__  # type: ignore[attr-defined]
R = ResourceRow.__table__  # type: ignore[attr-defined]

#: The views kept in the table: the caseload's row, the ``$coaching-summary`` and the patient page's overview (one
#: per patient: its arguments are part of the stamp's parameters).
KEPT_VIEWS = frozenset({"glance", "summary", "overview"})
#: The ``patient_id`` of a kept value about many patients (a coach's list of patients); never a Patient id (ids
#: are ``[A-Za-z0-9\-\.]``), and kept when patients are deleted.
ALL_PATIENTS = "*"
_CHUNK = 500
_BUSY_MS = 200

#: What a kept value may hold besides the builtin containers and scalars (which pickle writes without globals).
_PLAIN = frozenset(
    {
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
    }
)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def encode(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def decode(blob: bytes) -> Any | None:
    """The value of a kept row, or None when it holds anything but plain data (or is damaged)."""
    try:
        return _PlainUnpickler(io.BytesIO(bytes(blob))).load()
    except Exception:  # noqa: BLE001 - a damaged or foreign row is a miss, computed afresh
        log.warning("kept view ignored: not plain data")
        return None


def params_digest(key: Hashable) -> str:
    """A short digest of the service's parameters (their repr names every setting)."""
    return hashlib.sha256(repr(key).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Stamp:
    """What a view was computed from."""

    version: int
    local_day: date
    tz: str
    params: str


def load(conn: sa.Connection, view: str, patient_ids: Sequence[str]) -> dict[str, tuple[Stamp, bytes]]:
    """The kept rows of ``view`` for these patients: patient id -> (stamp, pickled value)."""
    out: dict[str, tuple[Stamp, bytes]] = {}
    ids = list(dict.fromkeys(patient_ids))
    for i in range(0, len(ids), _CHUNK):
        stmt = sa.select(
            KEPT.c.patient_id, KEPT.c.version, KEPT.c.local_day, KEPT.c.tz, KEPT.c.params, KEPT.c.value
        ).where(KEPT.c.view == view, KEPT.c.patient_id.in_(ids[i : i + _CHUNK]))
        for row in conn.execute(stmt):
            try:
                day = date.fromisoformat(row.local_day)
            except ValueError:
                continue
            out[row.patient_id] = (Stamp(int(row.version), day, row.tz, row.params), row.value)
    return out


def keep(engine: sa.Engine, rows: Iterable[tuple[str, str, Stamp, Any]]) -> int:
    """Keep ``(patient id, view, stamp, value)`` rows, replacing each patient's older row of that view (a row of a
    newer data version is never replaced by an older one). Best effort: a busy database (another writer holding
    SQLite's lock) keeps nothing this time and the view is simply computed again. Returns the rows written."""
    now = int(time.time())
    values = [
        {
            "patient_id": pid,
            "view": view,
            "version": stamp.version,
            "local_day": stamp.local_day.isoformat(),
            "tz": stamp.tz,
            "params": stamp.params,
            "computed_at": now,
            "value": encode(value),
        }
        for pid, view, stamp, value in rows
    ]
    if not values:
        return 0
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(KEPT)
    stmt = stmt.on_conflict_do_update(
        index_elements=[KEPT.c.patient_id, KEPT.c.view],
        set_={c: stmt.excluded[c] for c in ("version", "local_day", "tz", "params", "computed_at", "value")},
        where=KEPT.c.version <= stmt.excluded.version,
    )
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{WRITE: True})
            if sqlite:  # wait briefly for another writer, never the store's 30 s: a view is not worth a wait
                raw: Any = (
                    conn.connection.driver_connection
                )  # the sqlite3 connection, outside any transaction
                busy = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            try:
                with conn.begin():
                    for i in range(0, len(values), _CHUNK):
                        conn.execute(stmt, values[i : i + _CHUNK])
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout={int(busy or 0)}")
    except sa.exc.OperationalError as exc:  # SQLite busy: the next view computes it again
        log.info("kept views not written: %s", type(exc.orig).__name__ if exc.orig is not None else "error")
        return 0
    return len(values)


def stale(
    conn: sa.Connection, view: str, today: Callable[[str], date], params: str, limit: int | None = None
) -> list[str]:
    """The patients whose kept ``view`` does not hold for today: none kept, or kept at an older data version, for
    another local day (``today(tz)``) or other parameters — those whose data changed first, then the rest (a new
    day). Only current Patients with a data version (anything of theirs was ever written) are candidates."""
    stmt = sa.select(
        PV.c.patient_id, PV.c.version, KEPT.c.version, KEPT.c.local_day, KEPT.c.tz, KEPT.c.params
    ).select_from(
        PV.join(
            R, sa.and_(R.c.res_type == "Patient", R.c.res_id == PV.c.patient_id, R.c.deleted.is_(False))
        ).outerjoin(KEPT, sa.and_(KEPT.c.patient_id == PV.c.patient_id, KEPT.c.view == view))
    )
    changed: list[str] = []
    rolled: list[str] = []
    days: dict[str, str] = {}
    for pid, version, kept_version, local_day, tz, kept_params in conn.execute(stmt):
        if kept_version is None or int(kept_version) != int(version) or kept_params != params:
            changed.append(pid)
            continue
        if tz not in days:
            days[tz] = today(tz).isoformat()
        if local_day != days[tz]:
            rolled.append(pid)
    out = changed + rolled
    return out if limit is None else out[:limit]


def forget(conn: sa.Connection, patient_id: str | None = None) -> int:
    """Drop the kept views (of one patient); they are computed again on their next read or refresh."""
    stmt = KEPT.delete()
    if patient_id is not None:
        stmt = stmt.where(KEPT.c.patient_id == patient_id)
    return int(conn.execute(stmt).rowcount or 0)


def forget_gone(engine: sa.Engine) -> int:
    """Drop the kept views of patients who are no longer current (deleted): nothing derived outlives its record."""
    current = sa.select(R.c.res_id).where(R.c.res_type == "Patient", R.c.deleted.is_(False))
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE: True})
        with conn.begin():
            gone = sa.and_(KEPT.c.patient_id != ALL_PATIENTS, KEPT.c.patient_id.not_in(current))
            return int(conn.execute(KEPT.delete().where(gone)).rowcount or 0)
