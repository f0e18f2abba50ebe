"""Start-up guards in the process: MECR_AUTH=off refused per request on a non-loopback local address, and the
sandbox EHR mounted exactly once whatever MECR_SANDBOX_EHR says. (`mecr serve` itself: tests/cli/test_serve.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from fhir_ecr.app import check_auth_mode, create_app
from fhir_ecr.config import Settings, get_settings, is_loopback_host
from fhir_ecr.server import serve_app
from tests.helpers import assert_outcome


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "192.0.2.7",
        "10.0.0.1",
        "mecr.example.org",
        "",
        None,
        "/run/mecr.sock",
        "127.0.0.1.example.org",
    ],
)
def test_not_loopback_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_auth_off_refused_at_start_on_a_non_loopback_bind(host: str) -> None:
    with pytest.raises(SystemExit, match="MECR_AUTH=off"):
        check_auth_mode(Settings(auth="off", host=host))
    with pytest.raises(SystemExit, match="MECR_AUTH=off"):  # what `mecr serve --host` does
        check_auth_mode(Settings(auth="off").bound_to(host, None))


def test_auth_off_refused_per_request_on_a_network_address(
    settings: Settings, services: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A server bound some other way (uvicorn --host 0.0.0.0): the local address of each request decides."""
    app = create_app(settings, services=services)
    with (
        TestClient(app, base_url="http://192.0.2.7:8000", raise_server_exceptions=False) as net,
        caplog.at_level(logging.ERROR, logger="mecr.auth"),
    ):
        r = net.get("/fhir/Patient?family=Lovelace")
        assert_outcome(r, 403, "forbidden")
        assert "MECR_AUTH=off" in r.json()["issue"][0]["diagnostics"]
        assert_outcome(net.post("/fhir/Patient", json={"resourceType": "Patient"}), 403, "forbidden")
        assert net.get("/app/caseload").status_code == 403
        assert net.get("/sandbox-ehr/").status_code == 403  # before any path is let through
    assert services.repo.search_params("Patient", []).total == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "mecr.auth" and r.levelno == logging.ERROR]
    assert lines and all("192.0.2.7" in line for line in lines)
    assert not any("Lovelace" in line for line in lines)
    for base in ("http://127.0.0.1:8000", "http://[::1]:8000"):
        with TestClient(app, base_url=base) as local:
            assert local.get("/fhir/Patient").status_code == 200


def test_auth_off_refused_on_a_unix_socket(settings: Settings, services: Any) -> None:
    app = create_app(settings, services=services)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/fhir/Patient",
        "raw_path": b"/fhir/Patient",
        "query_string": b"",
        "headers": [],
        "server": ("/run/mecr.sock", None),
        "client": None,
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 403


def test_auth_on_serves_any_address(secure_settings: Settings, secure_services: Any) -> None:
    with TestClient(
        create_app(secure_settings, services=secure_services), base_url="http://192.0.2.7:8000"
    ) as c:
        assert c.get("/fhir/metadata").status_code == 200


def test_sandbox_is_mounted_once_with_mecr_sandbox_ehr_in_the_environment(
    sandbox_settings: Settings, secure_services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mecr serve` with MECR_SANDBOX_EHR=true: the sandbox's own engine reads the same environment and used to
    mount a sandbox inside the sandbox, without end."""
    monkeypatch.setenv("MECR_SANDBOX_EHR", "true")
    get_settings.cache_clear()
    try:
        app = serve_app(sandbox_settings, services=secure_services)
    finally:
        get_settings.cache_clear()
    mounts = [r for r in app.routes if isinstance(r, Mount) and r.path == "/sandbox-ehr"]
    assert len(mounts) == 1
    sandbox = app.state.sandbox_ehr
    inner = [r for r in sandbox.routes if isinstance(r, Mount) and r.path == ""]  # the FHIR gate at "/"
    engine_app = inner[0].app.app
    assert not engine_app.state.services.settings.sandbox_ehr
    assert not any(isinstance(r, Mount) and r.path == "/sandbox-ehr" for r in engine_app.routes)
    from fhir_ecr.sandbox_ehr.mount import mount_sandbox_ehr

    mount_sandbox_ehr(app, sandbox_settings, secure_services)  # a second call changes nothing
    assert len([r for r in app.routes if isinstance(r, Mount) and r.path == "/sandbox-ehr"]) == 1
    sandbox.state.sandbox.dispose()
