"""Persistence of EMR sync and Bulk Data export: the outbox, local-to-EMR links, pull high-water marks, export jobs.

Only this module touches those tables; ``fhir_ecr.sync`` and ``fhir_ecr.bulk`` decide what the rows mean
(docs/sync.md). Methods that take a ``conn`` run inside a caller's unit of work (``uow.conn``), so what they record
commits or rolls back with the resources written beside it: a page of pulled resources and its high-water mark,
a pushed resource's link and its outbox row. Times are epoch seconds.

Claiming outbox rows: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` (several workers take disjoint rows without
waiting for each other); on SQLite the write transaction (``BEGIN IMMEDIATE``) serialises claimers. A claim is a
lease: a worker killed mid-push leaves its rows ``claimed`` until ``claimed_until``, after which any worker claims
them again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .db import WRITE
from .tables import BulkExport, SyncLink, SyncMark, SyncOutbox

__all__ = ["SyncStore", "OutboxRow", "OUTBOX", "LINK", "MARK", "EXPORT"]

OUTBOX = SyncOutbox.__table__  # type: ignore[attr-defined]
LINK = SyncLink.__table__  # type: ignore[attr-defined]
MARK = SyncMark.__table__  # type: ignore[attr-defined]
EXPORT = BulkExport.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    ehr_id: str
    res_type: str
    res_id: str
    version_id: int
    state: str
    attempts: int
    created: int
    next_attempt: int
    last_status: int | None = None
    detail: str | None = None
    outcome: str | None = None
    finished: int | None = None

    @classmethod
    def of(cls, row: Any) -> OutboxRow:
        m = row._mapping
        return cls(
            m["id"],
            m["ehr_id"],
            m["res_type"],
            m["res_id"],
            m["version_id"],
            m["state"],
            m["attempts"],
            m["created"],
            m["next_attempt"],
            m.get("last_status"),
            m.get("detail"),
            m.get("outcome"),
            m.get("finished"),
        )


def _now() -> int:
    return int(time.time())


class SyncStore:
    """The sync and export tables of one engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def _write(self) -> Any:
        return self.engine.connect().execution_options(**{WRITE: True})

    # -- the outbox ----------------------------------------------------------------------------------------------

    def claim(self, ehr_id: str, limit: int, lease_seconds: int, now: int | None = None) -> list[OutboxRow]:
        """Take up to ``limit`` due rows of ``ehr_id`` (pending and due, or claimed with an expired lease), oldest
        first, and lease them for ``lease_seconds``."""
        now = _now() if now is None else now
        due = sa.or_(
            sa.and_(OUTBOX.c.state == "pending", OUTBOX.c.next_attempt <= now),
            sa.and_(OUTBOX.c.state == "claimed", OUTBOX.c.claimed_until < now),
        )
        pick = sa.select(OUTBOX.c.id).where(OUTBOX.c.ehr_id == ehr_id, due).order_by(OUTBOX.c.id).limit(limit)
        if self.is_postgres:
            pick = pick.with_for_update(skip_locked=True)
        with self._write() as conn, conn.begin():
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return []
            rows = conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.id.in_(ids))
                .values(state="claimed", claimed_until=now + lease_seconds)
                .returning(*OUTBOX.c)
            ).all()
        return sorted((OutboxRow.of(r) for r in rows), key=lambda r: r.id)

    def finish(
        self,
        row_id: int,
        state: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        outcome: str | None = None,
        attempts: int | None = None,
    ) -> None:
        """End a claimed row: ``done``, ``skipped`` or ``parked`` (with the EMR's status and OperationOutcome)."""
        values: dict[str, Any] = {
            "state": state,
            "claimed_until": None,
            "finished": _now(),
            "last_status": status,
            "detail": detail,
            "outcome": outcome,
        }
        if attempts is not None:
            values["attempts"] = attempts
        with self._write() as conn, conn.begin():
            conn.execute(OUTBOX.update().where(OUTBOX.c.id == row_id).values(**values))

    def reschedule(
        self,
        row_id: int,
        next_attempt: int,
        attempts: int,
        *,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Put a claimed row back as pending, due at ``next_attempt`` (a transient failure). When a newer pending row
        of the same resource exists already, that one pushes the current version: this one ends as superseded."""
        with self._write() as conn, conn.begin():
            row = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.id == row_id)).first()
            if row is None:
                return
            newer = conn.execute(
                sa.select(OUTBOX.c.id).where(
                    OUTBOX.c.ehr_id == row.ehr_id,
                    OUTBOX.c.res_type == row.res_type,
                    OUTBOX.c.res_id == row.res_id,
                    OUTBOX.c.state == "pending",
                    OUTBOX.c.id != row_id,
                )
            ).first()
            if newer is not None:
                conn.execute(
                    OUTBOX.update()
                    .where(OUTBOX.c.id == row_id)
                    .values(
                        state="done",
                        claimed_until=None,
                        finished=_now(),
                        detail="superseded by a later write",
                    )
                )
                return
            conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.id == row_id)
                .values(
                    state="pending",
                    claimed_until=None,
                    next_attempt=next_attempt,
                    attempts=attempts,
                    last_status=status,
                    detail=detail,
                )
            )

    def retry(self, row_ids: Iterable[int] | None = None, ehr_id: str | None = None) -> int:
        """An administrator's retry: parked rows (these, or all of ``ehr_id``'s, or all) become pending and due now,
        with their attempts counted afresh. Returns how many."""
        where = [OUTBOX.c.state == "parked"]
        if row_ids is not None:
            where.append(OUTBOX.c.id.in_(list(row_ids)))
        if ehr_id is not None:
            where.append(OUTBOX.c.ehr_id == ehr_id)
        n = 0
        with self._write() as conn, conn.begin():
            for row in conn.execute(sa.select(OUTBOX).where(*where).order_by(OUTBOX.c.id)).all():
                newer = conn.execute(
                    sa.select(OUTBOX.c.id).where(
                        OUTBOX.c.ehr_id == row.ehr_id,
                        OUTBOX.c.res_type == row.res_type,
                        OUTBOX.c.res_id == row.res_id,
                        OUTBOX.c.state == "pending",
                    )
                ).first()
                values: dict[str, Any] = (
                    {"state": "done", "detail": "superseded by a later write"}
                    if newer is not None
                    else {
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt": _now(),
                        "detail": "retried by an administrator",
                        "outcome": None,
                        "finished": None,
                    }
                )
                conn.execute(OUTBOX.update().where(OUTBOX.c.id == row.id).values(**values))
                n += newer is None
        return n

    def outbox(
        self, ehr_id: str | None = None, states: Iterable[str] | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        where = []
        if ehr_id is not None:
            where.append(OUTBOX.c.ehr_id == ehr_id)
        if states is not None:
            where.append(OUTBOX.c.state.in_(list(states)))
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(OUTBOX).where(*where).order_by(OUTBOX.c.id).limit(limit)).all()
        return [OutboxRow.of(r) for r in rows]

    def outbox_counts(self, ehr_id: str | None = None) -> dict[str, dict[str, int]]:
        """``{ehr id: {state: count}}``."""
        stmt = sa.select(OUTBOX.c.ehr_id, OUTBOX.c.state, sa.func.count()).group_by(
            OUTBOX.c.ehr_id, OUTBOX.c.state
        )
        if ehr_id is not None:
            stmt = stmt.where(OUTBOX.c.ehr_id == ehr_id)
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for e, state, n in conn.execute(stmt):
                out.setdefault(e, {})[state] = int(n)
        return out

    def oldest_pending(self, ehr_id: str) -> int | None:
        """When the oldest undelivered write (pending or claimed) was recorded."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(OUTBOX.c.created)).where(
                    OUTBOX.c.ehr_id == ehr_id, OUTBOX.c.state.in_(["pending", "claimed"])
                )
            ).scalar()
        return int(value) if value is not None else None

    def next_due(self, ehr_id: str) -> int | None:
        """When the next pending row of ``ehr_id`` falls due (or a claim expires), or None."""
        with self.engine.connect() as conn:
            a = conn.execute(
                sa.select(sa.func.min(OUTBOX.c.next_attempt)).where(
                    OUTBOX.c.ehr_id == ehr_id, OUTBOX.c.state == "pending"
                )
            ).scalar()
            b = conn.execute(
                sa.select(sa.func.min(OUTBOX.c.claimed_until)).where(
                    OUTBOX.c.ehr_id == ehr_id, OUTBOX.c.state == "claimed"
                )
            ).scalar()
        found = [int(v) for v in (a, b) if v is not None]
        return min(found) if found else None

    def due_ehrs(self, now: int | None = None) -> list[str]:
        """The EMRs with a due outbox row (or an expired claim)."""
        now = _now() if now is None else now
        due = sa.or_(
            sa.and_(OUTBOX.c.state == "pending", OUTBOX.c.next_attempt <= now),
            sa.and_(OUTBOX.c.state == "claimed", OUTBOX.c.claimed_until < now),
        )
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(OUTBOX.c.ehr_id).where(due).distinct()).scalars())

    def purge_outbox(self, before: int) -> int:
        """Forget delivered and skipped rows finished before ``before`` (parked rows stay until handled)."""
        with self._write() as conn, conn.begin():
            return int(
                conn.execute(
                    OUTBOX.delete().where(OUTBOX.c.state.in_(["done", "skipped"]), OUTBOX.c.finished < before)
                ).rowcount
            )

    # -- links ---------------------------------------------------------------------------------------------------

    def links(self, ehr_id: str, res_type: str, res_ids: Iterable[str], conn: Any = None) -> dict[str, Any]:
        """``{local id: link row}`` of these local resources."""
        ids = sorted(set(res_ids))
        out: dict[str, Any] = {}
        if not ids:
            return out

        def run(c: Any) -> None:
            for i in range(0, len(ids), 500):
                for row in c.execute(
                    sa.select(LINK).where(
                        LINK.c.ehr_id == ehr_id,
                        LINK.c.res_type == res_type,
                        LINK.c.res_id.in_(ids[i : i + 500]),
                    )
                ):
                    out[row.res_id] = row

        if conn is not None:
            run(conn)
        else:
            with self.engine.connect() as c:
                run(c)
        return out

    def by_remote(self, ehr_id: str, res_type: str, remote_ids: Iterable[str]) -> dict[str, str]:
        """``{EMR id: local id}`` of the links of these EMR resources."""
        ids = sorted(set(remote_ids))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                for row in conn.execute(
                    sa.select(LINK.c.remote_id, LINK.c.res_id).where(
                        LINK.c.ehr_id == ehr_id,
                        LINK.c.res_type == res_type,
                        LINK.c.remote_id.in_(ids[i : i + 500]),
                    )
                ):
                    out[row.remote_id] = row.res_id
        return out

    def put_link(
        self,
        ehr_id: str,
        res_type: str,
        res_id: str,
        *,
        direction: str,
        remote_id: str,
        remote_version: str | None,
        pushed_hash: str | None = None,
        conn: Any = None,
    ) -> None:
        values = {
            "direction": direction,
            "remote_id": remote_id,
            "remote_version": remote_version,
            "pushed_hash": pushed_hash,
            "updated": _now(),
        }

        def run(c: Any) -> None:
            done = c.execute(
                LINK.update()
                .where(LINK.c.ehr_id == ehr_id, LINK.c.res_type == res_type, LINK.c.res_id == res_id)
                .values(**values)
            )
            if done.rowcount == 0:
                c.execute(LINK.insert().values(ehr_id=ehr_id, res_type=res_type, res_id=res_id, **values))

        if conn is not None:
            run(conn)
        else:
            with self._write() as c, c.begin():
                run(c)

    def drop_links(self, conn: Any, ehr_id: str, res_type: str, res_ids: list[str]) -> None:
        """Forget the links of these local resources (their copies were deleted), in the caller's unit of work."""
        conn.execute(
            LINK.delete().where(
                LINK.c.ehr_id == ehr_id, LINK.c.res_type == res_type, LINK.c.res_id.in_(res_ids)
            )
        )

    def record_pushes(
        self,
        ehr_id: str,
        links: list[tuple[str, str, str, str | None, str | None]],
        finished: list[tuple[int, str, int | None, str | None]],
    ) -> None:
        """In one transaction: the links ``(type, local id, EMR id, EMR version, pushed hash)`` of resources a
        batch pushed, and the outbox rows it ended ``(row id, state, status, detail)``."""
        if not links and not finished:
            return
        now = _now()
        with self._write() as conn, conn.begin():
            by_type: dict[str, list[str]] = {}
            for t, i, *_ in links:
                by_type.setdefault(t, []).append(i)
            for t, ids in by_type.items():
                for n in range(0, len(ids), 500):
                    conn.execute(
                        LINK.delete().where(
                            LINK.c.ehr_id == ehr_id, LINK.c.res_type == t, LINK.c.res_id.in_(ids[n : n + 500])
                        )
                    )
            if links:
                latest = {
                    (t, i): (t, i, r, v, h) for t, i, r, v, h in links
                }  # a resource twice: the last one
                conn.execute(
                    LINK.insert(),
                    [
                        {
                            "ehr_id": ehr_id,
                            "res_type": t,
                            "res_id": i,
                            "direction": "push",
                            "remote_id": r,
                            "remote_version": v,
                            "pushed_hash": h,
                            "updated": now,
                        }
                        for t, i, r, v, h in latest.values()
                    ],
                )
            if finished:
                conn.execute(
                    OUTBOX.update()
                    .where(OUTBOX.c.id == sa.bindparam("row_id"))
                    .values(
                        state=sa.bindparam("new_state"),
                        claimed_until=None,
                        finished=now,
                        last_status=sa.bindparam("status"),
                        detail=sa.bindparam("new_detail"),
                        outcome=None,
                    ),
                    [
                        {"row_id": r, "new_state": st, "status": code, "new_detail": d}
                        for r, st, code, d in finished
                    ],
                )

    def claimed(self, row_ids: Iterable[int]) -> set[int]:
        """Which of these outbox rows are still claimed (not finished or rescheduled meanwhile)."""
        ids = sorted(set(row_ids))
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(OUTBOX.c.id).where(OUTBOX.c.id.in_(ids), OUTBOX.c.state == "claimed")
                ).scalars()
            )

    def put_pull_links(self, conn: Any, ehr_id: str, rows: list[tuple[str, str, str, str | None]]) -> None:
        """Record ``(type, local id, EMR id, EMR version)`` of pulled resources, in the caller's unit of work."""
        if not rows:
            return
        by_type: dict[str, list[tuple[str, str, str | None]]] = {}
        for t, i, remote, version in rows:
            by_type.setdefault(t, []).append((i, remote, version))
        now = _now()
        for t, items in by_type.items():
            ids = [i for i, _, _ in items]
            for n in range(0, len(ids), 500):
                conn.execute(
                    LINK.delete().where(
                        LINK.c.ehr_id == ehr_id, LINK.c.res_type == t, LINK.c.res_id.in_(ids[n : n + 500])
                    )
                )
            conn.execute(
                LINK.insert(),
                [
                    {
                        "ehr_id": ehr_id,
                        "res_type": t,
                        "res_id": i,
                        "direction": "pull",
                        "remote_id": remote,
                        "remote_version": version,
                        "pushed_hash": None,
                        "updated": now,
                    }
                    for i, remote, version in items
                ],
            )

    # -- high-water marks --------------------------------------------------------------------------------------

    def mark(self, ehr_id: str, res_type: str, conn: Any = None) -> dict[str, Any] | None:
        stmt = sa.select(MARK).where(MARK.c.ehr_id == ehr_id, MARK.c.res_type == res_type)
        if conn is not None:
            row = conn.execute(stmt).first()
        else:
            with self.engine.connect() as c:
                row = c.execute(stmt).first()
        return dict(row._mapping) if row is not None else None

    def marks(self, ehr_id: str | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(MARK).order_by(MARK.c.ehr_id, MARK.c.res_type)
        if ehr_id is not None:
            stmt = stmt.where(MARK.c.ehr_id == ehr_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def put_mark(self, ehr_id: str, res_type: str, conn: Any = None, **values: Any) -> None:
        """Set fields of the mark of ``ehr_id``/``res_type`` (created when absent); in ``conn``'s transaction if
        given (a page and its high-water mark commit together)."""

        def run(c: Any) -> None:
            done = c.execute(
                MARK.update().where(MARK.c.ehr_id == ehr_id, MARK.c.res_type == res_type).values(**values)
            )
            if done.rowcount == 0:
                c.execute(MARK.insert().values(ehr_id=ehr_id, res_type=res_type, **values))

        if conn is not None:
            run(conn)
        else:
            with self._write() as c, c.begin():
                run(c)

    # -- leases ---------------------------------------------------------------------------------------------------

    def lease(self, name: str, holder: str, seconds: int) -> bool:
        """Take (or renew, for the same ``holder``) the lease ``name`` for ``seconds``: False while another holder's
        lease runs. A holder that dies simply lets it run out."""
        from .records import KV

        key, now = f"lease:{name}", _now()
        try:
            with self._write() as conn, conn.begin():
                row = conn.execute(sa.select(KV.c.value).where(KV.c.key == key).with_for_update()).first()
                if row is not None:
                    other, _, until = row.value.rpartition("@")
                    if other != holder and until.isdigit() and int(until) > now:
                        return False
                    conn.execute(KV.delete().where(KV.c.key == key))
                conn.execute(KV.insert().values(key=key, value=f"{holder}@{now + seconds}"))
        except sa.exc.IntegrityError:  # another holder took it at the same moment (PostgreSQL)
            return False
        return True

    def release(self, name: str, holder: str) -> None:
        from .records import KV

        key = f"lease:{name}"
        with self._write() as conn, conn.begin():
            row = conn.execute(sa.select(KV.c.value).where(KV.c.key == key)).first()
            if row is not None and row.value.rpartition("@")[0] == holder:
                conn.execute(KV.delete().where(KV.c.key == key))

    # -- Bulk Data export jobs ----------------------------------------------------------------------------------

    def add_export(self, **values: Any) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(EXPORT.insert().values(**values))

    def export(self, job_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(EXPORT).where(EXPORT.c.id == job_id)).first()
        return dict(row._mapping) if row is not None else None

    def update_export(self, job_id: str, *, only_states: Iterable[str] | None = None, **values: Any) -> bool:
        """Change a job (only while it is in ``only_states``, when given); False when nothing changed."""
        where = [EXPORT.c.id == job_id]
        if only_states is not None:
            where.append(EXPORT.c.state.in_(list(only_states)))
        with self._write() as conn, conn.begin():
            return bool(conn.execute(EXPORT.update().where(*where).values(**values)).rowcount)

    def claim_export(self, job_id: str, lease_seconds: int) -> bool:
        """Take a queued job (or a running one whose worker's lease ran out): True when this caller runs it."""
        now = _now()
        with self._write() as conn, conn.begin():
            done = conn.execute(
                EXPORT.update()
                .where(
                    EXPORT.c.id == job_id,
                    sa.or_(
                        EXPORT.c.state == "queued",
                        sa.and_(EXPORT.c.state == "running", EXPORT.c.claimed_until < now),
                    ),
                )
                .values(state="running", claimed_until=now + lease_seconds)
            )
            return bool(done.rowcount)

    def exports(self, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(EXPORT).order_by(EXPORT.c.created)
        if states is not None:
            stmt = stmt.where(EXPORT.c.state.in_(list(states)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def delete_export(self, job_id: str) -> bool:
        with self._write() as conn, conn.begin():
            return bool(conn.execute(EXPORT.delete().where(EXPORT.c.id == job_id)).rowcount)
