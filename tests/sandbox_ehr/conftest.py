"""The sandbox EHR mounted at /sandbox-ehr on an outer app (as mECR mounts it), driven through httpx.

One sandbox per backend and test session (creating one migrates a database and compiles validators);
the tests share it, which is safe because every launch, code and token is independent. Keys are generated at
test time. The sandbox and the SMART client library share one settable clock.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from fhir_ecr.sandbox_ehr import SandboxClient, create_sandbox_ehr
from smart_launch import ClientKeySet

BACKENDS = [b for b in os.environ.get("MECR_TEST_BACKENDS", "sqlite,postgres").split(",") if b]
ORIGIN = "http://127.0.0.1:8000"
BASE = f"{ORIGIN}/sandbox-ehr"
FHIR_BASE = f"{BASE}/fhir"
REDIRECT_URI = f"{ORIGIN}/smart/callback"
LAUNCH_URL = f"{ORIGIN}/smart/launch"
APP_JWKS_URL = f"{ORIGIN}/app/jwks.json"
SECRET = "s3cret with spaces & symbols:/"


class Clock:
    """Epoch seconds, settable; starts at (and can be reset to) the real time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Keys:
    """The apps' signing keys (private) made once per test session."""

    def __init__(self) -> None:
        self.app = ClientKeySet.generate()  # RS384 + ES384, served at APP_JWKS_URL
        self.inline = ClientKeySet.generate(["ES384"])  # registered inline
        self.backend = ClientKeySet.generate(["RS384"])
        self.stranger = ClientKeySet.generate(["RS384"])  # registered nowhere


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


def registered_clients(keys: Keys) -> list[SandboxClient]:
    return [
        SandboxClient(
            "mecr-public",
            [REDIRECT_URI],
            launch_url=LAUNCH_URL,
            name="mECR (public)",
            login_url=f"{ORIGIN}/smart/login?ehr=sandbox",
        ),
        SandboxClient(
            "mecr-basic",
            [REDIRECT_URI],
            launch_url=LAUNCH_URL,
            auth_method="client_secret_basic",
            client_secret=SECRET,
            name="mECR (secret)",
        ),
        SandboxClient(
            "mecr-jwt",
            [REDIRECT_URI],
            launch_url=LAUNCH_URL,
            auth_method="private_key_jwt",
            jwks_url=APP_JWKS_URL,
            name="mECR (JWKS URL)",
        ),
        SandboxClient(
            "mecr-inline", [REDIRECT_URI], auth_method="private_key_jwt", jwks=keys.inline.public_jwks()
        ),
        SandboxClient(
            "narrow", [REDIRECT_URI], scope="launch launch/patient openid fhirUser patient/Patient.rs"
        ),
        SandboxClient(
            "sync-backend",
            [],
            auth_method="private_key_jwt",
            jwks=keys.backend.public_jwks(),
            scope="system/Patient.rs system/Observation.rs",
        ),
    ]


@pytest.fixture(scope="session", params=BACKENDS)
def sandbox_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database for the sandbox (SQLite file, or a PostgreSQL database of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sandbox') / 'sandbox-ehr.db'}"
        return
    session_db = str(request.getfixturevalue("pg_database"))  # skips (or fails in CI) without PostgreSQL
    name = f"mecr_sbx_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(session_db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield session_db.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


class Sandbox:
    """The outer app with the sandbox mounted, and what tests need to reach it."""

    def __init__(self, database_url: str, keys: Keys) -> None:
        self.clock = Clock()
        self.keys = keys
        self.outer = FastAPI()

        @self.outer.get("/app/jwks.json")
        async def app_jwks() -> dict[str, Any]:
            return keys.app.public_jwks()

        # The sandbox fetches the app's JWKS URL through this client, straight into the outer app.
        self.jwks_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.outer))
        self.app = create_sandbox_ehr(
            base_url=BASE,
            database_url=database_url,
            clients=registered_clients(keys),
            clock=self.clock,
            http=self.jwks_http,
        )
        self.outer.mount("/sandbox-ehr", self.app)
        self.database_url = database_url

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.outer), base_url=ORIGIN)


@pytest.fixture(scope="session")
def sandbox(sandbox_database: str, keys: Keys) -> Iterator[Sandbox]:
    box = Sandbox(sandbox_database, keys)
    yield box
    box.app.state.sandbox.dispose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    sandbox.clock.offset = 0.0  # every test starts at the real time
    async with sandbox.http() as client:
        yield client
