"""Shared fixtures: a real database per backend (SQLite file, PostgreSQL), the app, a live HTTP server.

Every test that takes ``backend`` (directly or through ``repo``, ``client``, ``live_server``) runs once on
SQLite and once on PostgreSQL. PostgreSQL tests skip, with the reason shown, when no server is reachable —
unless ``MECR_REQUIRE_POSTGRES=1`` (CI), which makes that an error. ``MECR_TEST_BACKENDS=sqlite`` limits the run.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_ecr.app import create_app
from fhir_ecr.composition import build_services
from fhir_ecr.config import Settings
from fhir_ecr.server import serve_app
from fhir_ecr.store.tables import metadata

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"  # real public samples, sources in SOURCES.tsv
PG_ADMIN_URL = os.environ.get("MECR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("MECR_TEST_BACKENDS", "sqlite,postgres").split(",") if b]
# A transaction validates in line unless a test hands its repository a validation pool
# (tests/fhir/test_parallel_validation.py): whether a shared pool is up yet must not change what a test runs.
os.environ.setdefault("MECR_VALIDATION_WORKERS", "0")


def pytest_report_header(config: pytest.Config) -> str:
    return f"mecr test backends: {', '.join(BACKENDS)}; fixtures: {FIXTURES}"


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means "not available"
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    reason = _pg_available()
    if reason:
        if os.environ.get("MECR_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (MECR_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    name = f"mecr_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("db") / "mecr-test.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, sqlite_path: Path) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return f"sqlite:///{sqlite_path}"


_migrated: set[str] = set()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Test settings. ``auth="off"``: the store/API tests act as the developer principal; authorization itself
    is tested with the ``secure_*`` fixtures (``auth="on"``) in tests/auth/. ``$export`` files go to the test's
    own folder (the default with PostgreSQL is ``./mecr-exports``, which would be the checkout's)."""
    return Settings(
        database_url=database_url,
        base_url="http://testserver",
        environment="test",
        max_body_bytes=2 * 1024 * 1024,
        auth="off",
        export_dir=str(tmp_path / "mecr-exports"),
    )


def fresh_services(settings: Settings) -> Any:
    """Services on a clean database (every table emptied)."""
    svc = build_services(settings, migrate=settings.database_url not in _migrated)
    _migrated.add(settings.database_url)
    with svc.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "alembic_version":
                conn.execute(table.delete())
    return svc


@pytest.fixture
def services(settings: Settings) -> Iterator[Any]:
    """The app's services on a clean database (tables emptied before each test)."""
    svc = fresh_services(settings)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def secure_settings(settings: Settings) -> Settings:
    """Settings with authorization on (``MECR_AUTH=on``), as in production."""
    return settings.model_copy(update={"auth": "on", "base_url": "http://127.0.0.1:8000"})


@pytest.fixture
def secure_services(secure_settings: Settings) -> Iterator[Any]:
    svc = fresh_services(secure_settings)
    yield svc
    if svc.audit is not None:
        svc.audit.close()
    svc.engine.dispose()


@pytest.fixture
def secure_app(secure_settings: Settings, secure_services: Any) -> Any:
    return create_app(secure_settings, services=secure_services)


@pytest.fixture
def secure_client(secure_app: Any) -> Iterator[Any]:
    """A TestClient of the app with authorization on; it carries no credentials of its own."""
    from fastapi.testclient import TestClient

    with TestClient(secure_app, raise_server_exceptions=False, base_url="http://127.0.0.1:8000") as c:
        yield c


@pytest.fixture
def cli_env(settings: Settings, services: Any, monkeypatch: Any) -> Iterator[Any]:
    """The services of a test database that ``fhir_ecr.cli.main`` also uses (``MECR_DATABASE_URL``)."""
    from fhir_ecr.config import get_settings

    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield services
    get_settings.cache_clear()


@pytest.fixture
def repo(services: Any) -> Any:
    return services.repo


@pytest.fixture
def app(settings: Settings, services: Any) -> Any:
    return create_app(settings, services=services)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving the app on a free local port, in a background thread."""

    def __init__(self, app_factory: Any, settings: Settings) -> None:
        import uvicorn

        self.port = free_port()
        self.settings = settings.model_copy(update={"base_url": f"http://127.0.0.1:{self.port}"})
        app = app_factory(self.settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _live(settings: Settings, services: Any) -> LiveServer:
    def factory(live_settings: Settings) -> Any:
        services.settings = live_settings
        services.repo.fhir_base = live_settings.fhir_base
        services._capability = None
        return serve_app(live_settings, services=services)

    return LiveServer(factory, settings)


@pytest.fixture
def live_server(settings: Settings, services: Any) -> Iterator[LiveServer]:
    """The app served over real HTTP (uvicorn) on a free port (authorization off)."""
    with _live(settings, services) as server:
        yield server


CHROMIUM = os.environ.get("MECR_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright. Skipped -- loudly -- only when Chromium is missing and
    ``MECR_REQUIRE_BROWSER`` is not set (CI sets it, so there a missing browser is a failure).

    Module scope: Playwright's sync API runs an event loop in this thread while it is open, which would break
    any later test that calls ``asyncio.run``; closing it with the module keeps the rest of the run clean."""
    import shutil

    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"Chromium not found at {CHROMIUM}: browser tests NOT run"
        if os.environ.get("MECR_REQUIRE_BROWSER"):
            pytest.fail(reason + " (MECR_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def sandbox_settings(secure_settings: Settings, tmp_path: Path) -> Settings:
    """Authorization on, with the embedded sandbox EHR mounted at /sandbox-ehr (its own SQLite database)."""
    return secure_settings.model_copy(
        update={"sandbox_ehr": True, "sandbox_database_url": f"sqlite:///{tmp_path / 'sandbox-ehr.db'}"}
    )


@pytest.fixture
def sandbox_live_server(sandbox_settings: Settings, secure_services: Any) -> Iterator[LiveServer]:
    """mECR with authorization on and the sandbox EHR, over real HTTP: launches go through real redirects
    and mECR calls the sandbox's discovery, token and FHIR endpoints over the network."""
    secure_services.settings = sandbox_settings
    with _live(sandbox_settings, secure_services) as server:
        yield server


@pytest.fixture
def secure_live_server(secure_settings: Settings, secure_services: Any) -> Iterator[LiveServer]:
    """The app with authorization on, served over real HTTP on a free port."""
    with _live(secure_settings, secure_services) as server:
        yield server
