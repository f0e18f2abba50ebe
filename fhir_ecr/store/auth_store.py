"""Persistence of the authorization layer: EHR registrations, API clients, sessions/tokens and single-use
values. Only this module touches those tables; ``fhir_ecr.auth`` decides what the rows mean.

Secret values (session cookies, access tokens) are never stored: rows are keyed by their SHA-256. Times are
epoch seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .tables import ApiClient, AuthCredential, AuthOnce, EhrRegistration

__all__ = ["AuthStore", "CredentialRow", "secret_hash"]

EHR = EhrRegistration.__table__  # type: ignore[attr-defined]
CLIENT = ApiClient.__table__  # type: ignore[attr-defined]
CRED = AuthCredential.__table__  # type: ignore[attr-defined]
ONCE = AuthOnce.__table__  # type: ignore[attr-defined]


def secret_hash(value: str) -> str:
    """The key under which a secret value is stored."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class CredentialRow:
    kind: str
    data: str
    secret_enc: str | None
    created: int
    expires: int


class AuthStore:
    """CRUD over the authorization tables of one engine."""

    def __init__(self, engine: sa.Engine, clock: Any = time.time) -> None:
        self.engine = engine
        self.clock = clock

    # -- EHR registrations ---------------------------------------------------------------------------------

    def add_ehr(self, **values: Any) -> None:
        values.setdefault("created", int(self.clock()))
        with self.engine.begin() as conn:
            conn.execute(EHR.insert().values(**values))

    def update_ehr(self, ehr_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(EHR.update().where(EHR.c.id == ehr_id).values(**values))

    def ehrs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(EHR).order_by(EHR.c.id))]

    def ehr(self, ehr_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(EHR).where(EHR.c.id == ehr_id)).first()
        return dict(row._mapping) if row else None

    def ehr_by_iss(self, iss: str) -> dict[str, Any] | None:
        iss = iss.rstrip("/")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(EHR).where(EHR.c.iss == iss)).first()
        return dict(row._mapping) if row else None

    def remove_ehr(self, ehr_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(EHR.delete().where(EHR.c.id == ehr_id)).rowcount)

    # -- API clients -----------------------------------------------------------------------------------------

    def add_client(self, **values: Any) -> None:
        values.setdefault("created", int(self.clock()))
        with self.engine.begin() as conn:
            conn.execute(CLIENT.insert().values(**values))

    def clients(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(CLIENT).order_by(CLIENT.c.client_id))]

    def client(self, client_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(CLIENT).where(CLIENT.c.client_id == client_id)).first()
        return dict(row._mapping) if row else None

    def remove_client(self, client_id: str) -> bool:
        with self.engine.begin() as conn:
            conn.execute(
                CRED.delete().where(
                    CRED.c.kind == "token", CRED.c.data.contains(f'"client_id": {json.dumps(client_id)}')
                )
            )
            return bool(conn.execute(CLIENT.delete().where(CLIENT.c.client_id == client_id)).rowcount)

    # -- sessions and tokens ---------------------------------------------------------------------------------

    def put_credential(
        self, secret: str, kind: str, data: str, expires: int, secret_enc: str | None = None
    ) -> None:
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(CRED.delete().where(CRED.c.expires < now))  # purge as we go: the table stays small
            conn.execute(
                CRED.insert().values(
                    key_hash=secret_hash(secret),
                    kind=kind,
                    data=data,
                    secret_enc=secret_enc,
                    created=now,
                    expires=expires,
                )
            )

    def credential(self, secret: str, kind: str) -> CredentialRow | None:
        """The live credential for ``secret`` of ``kind`` (None when unknown or expired).

        Every authorized request asks this once; on PostgreSQL its one statement runs in autocommit, without the
        ROLLBACK round trip a connection returned to the pool with an open transaction costs."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            row = conn.execute(
                sa.select(CRED).where(CRED.c.key_hash == secret_hash(secret), CRED.c.kind == kind)
            ).first()
        if row is None or row.expires <= self.clock():
            return None
        return CredentialRow(row.kind, row.data, row.secret_enc, row.created, row.expires)

    def delete_credential(self, secret: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(CRED.delete().where(CRED.c.key_hash == secret_hash(secret)))

    def live_credentials(self, kind: str, contains: str) -> list[CredentialRow]:
        """The live credentials of ``kind`` whose data contains ``contains`` (e.g. a referral's links)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(CRED).where(
                    CRED.c.kind == kind, CRED.c.data.contains(contains), CRED.c.expires > int(self.clock())
                )
            ).all()
        return [CredentialRow(r.kind, r.data, r.secret_enc, r.created, r.expires) for r in rows]

    def delete_credentials(self, kind: str, contains: str) -> int:
        """Delete every credential of ``kind`` whose data contains ``contains``; how many there were."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    CRED.delete().where(CRED.c.kind == kind, CRED.c.data.contains(contains))
                ).rowcount
            )

    # -- single-use values -------------------------------------------------------------------------------------

    def put_once(self, key: str, value: str, expires: float) -> None:
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(ONCE.delete().where(sa.or_(ONCE.c.expires < now, ONCE.c.key == key)))
            conn.execute(ONCE.insert().values(key=key, value=value, expires=int(expires)))

    def add_once(self, key: str, expires: float) -> bool:
        """Record ``key`` once; False when it was already recorded (a replay)."""
        now = int(self.clock())
        try:
            with self.engine.begin() as conn:
                conn.execute(ONCE.delete().where(ONCE.c.expires < now))
                conn.execute(ONCE.insert().values(key=key, value="", expires=int(expires)))
        except sa.exc.IntegrityError:
            return False
        return True

    def peek_once(self, key: str) -> str | None:
        """The value under ``key`` without consuming it (None when absent)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ONCE.c.value).where(ONCE.c.key == key)).first()
        return None if row is None else str(row.value)

    def pop_once(self, key: str) -> str | None:
        """Remove and return the value under ``key``, atomically (DELETE … RETURNING)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                ONCE.delete().where(ONCE.c.key == key).returning(ONCE.c.value, ONCE.c.expires)
            ).first()
        if row is None or row.expires <= self.clock():
            return None
        return str(row.value)
