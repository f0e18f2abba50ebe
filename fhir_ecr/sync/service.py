"""The sync service of one process: the registered EMRs and their sync configuration, and the connections to them.

Each worker thread keeps one event loop (``asyncio.Runner``) and, per EMR, one ``httpx.AsyncClient`` with its
Backend Services token cache, for the life of the thread: jobs reuse the connections and the token until it
expires, instead of signing in again for every job.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from .client import EmrClient
from .config import SyncConfig

__all__ = ["SyncService", "SyncSetupError"]

T = TypeVar("T")


class SyncSetupError(ValueError):
    """An EMR that is not registered, or has no sync configured (shown to the operator)."""


class SyncService:
    """Registered EMRs, their sync configuration, connections to them (see the module docstring)."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._local = threading.local()
        self._configs: tuple[float, list[tuple[dict[str, Any], SyncConfig]]] | None = None
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------------------------------

    def configured(self, max_age: float = 0.0) -> list[tuple[dict[str, Any], SyncConfig]]:
        """Every registered EMR with sync configured (read again when older than ``max_age`` seconds)."""
        with self._lock:
            cached = self._configs
            if cached is not None and time.monotonic() - cached[0] < max_age:
                return cached[1]
        found = []
        for row in self.services.auth_store.ehrs():
            config = SyncConfig.from_json(row.get("sync_config"))
            if config is not None:
                found.append((row, config))
        with self._lock:
            self._configs = (time.monotonic(), found)
        return found

    def forget(self) -> None:
        """Drop the cached configuration (after ``mecr sync configure`` in this process)."""
        with self._lock:
            self._configs = None

    def ehr(self, ehr_id: str) -> tuple[dict[str, Any], SyncConfig]:
        row = self.services.auth_store.ehr(ehr_id)
        if row is None:
            raise SyncSetupError(f"no EHR {ehr_id!r} is registered (mecr ehr list)")
        config = SyncConfig.from_json(row.get("sync_config"))
        if config is None:
            raise SyncSetupError(
                f"EHR {ehr_id!r} has no sync configured (mecr sync configure --ehr {ehr_id})"
            )
        return row, config

    # -- connections -------------------------------------------------------------------------------------------

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on this thread's event loop (kept for the thread's life)."""
        runner = getattr(self._local, "runner", None)
        if runner is None:
            runner = asyncio.Runner()
            self._local.runner = runner
            self._local.clients = {}
        return runner.run(make())  # type: ignore[arg-type,no-any-return]

    async def emr(self, row: dict[str, Any], config: SyncConfig) -> EmrClient:
        """This thread's client of the EMR of ``row`` (created, and signed in, on first use)."""
        clients: dict[str, tuple[str, EmrClient]] = self._local.__dict__.setdefault("clients", {})
        key = f"{row['iss']}|{row.get('backend_client_id') or row['client_id']}|{config.token_scope()}"
        cached = clients.get(row["id"])
        if cached is not None and cached[0] == key:
            return cached[1]
        timeout = self.services.settings.sync_timeout_seconds
        http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        token_http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        client = await EmrClient.connect(
            http,
            ehr_id=row["id"],
            base=row["iss"],
            client_id=row.get("backend_client_id") or row["client_id"],
            keys=self.services.vault.signing_keys,
            scope=config.token_scope(),
            token_http=token_http,
        )
        client.token_http = token_http  # type: ignore[attr-defined]
        clients[row["id"]] = (key, client)
        return client

    def close(self) -> None:
        """Close this thread's connections and loop."""
        runner = getattr(self._local, "runner", None)
        if runner is None:
            return
        clients = self._local.__dict__.get("clients", {})

        async def shut() -> None:
            for _, client in clients.values():
                await client.http.aclose()
                await client.token_http.aclose()

        runner.run(shut())
        runner.close()
        self._local.runner = None
        self._local.clients = {}
