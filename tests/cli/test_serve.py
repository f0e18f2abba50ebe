"""`mecr serve` and `mecr demo` as real processes: start-up guards (MECR_AUTH=off only on loopback, from every
place the bind address can come from), the sandbox EHR mounted once, and the port every link names.

Each test starts the command in an empty folder with a clean MECR_* environment and stops it again; a refused
start exits before it touches the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import pytest

from tests.conftest import free_port
from tests.helpers import assert_outcome

pytestmark = pytest.mark.slow


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECR_")}
    env["MECR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'mecr.db'}"
    env.update(values)
    return env


def mecr(*args: str) -> list[str]:
    return [sys.executable, "-m", "fhir_ecr.cli", *args]


@contextmanager
def serving(command: list[str], env: dict[str, str], cwd: Path, url: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``command`` until ``url``/healthz answers; stop it (and read its output) afterwards."""
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"exited {proc.returncode}: {proc.stdout.read()} {proc.stderr.read()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not start within 60 s")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def refused(command: list[str], env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, (out.stdout, out.stderr)
    assert "refusing to start: MECR_AUTH=off" in out.stderr, out.stderr
    assert not (cwd / "mecr.db").exists()  # refused before migrating anything
    return out.stderr


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (the network side of a 0.0.0.0 bind)."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family.name == "AF_INET" and not a.address.startswith("127."):
                return str(a.address)
    return None


# -- MECR_AUTH=off is refused wherever a non-loopback bind comes from -------------------------------------------


def test_auth_off_refused_with_serve_host_flag(tmp_path: Path) -> None:
    refused(
        mecr("serve", "--host", "0.0.0.0", "--port", str(free_port())),
        clean_env(tmp_path, MECR_AUTH="off"),
        tmp_path,
    )


def test_auth_off_refused_with_workers_and_host_flag(tmp_path: Path) -> None:
    refused(
        mecr("serve", "--workers", "2", "--host", "0.0.0.0", "--port", str(free_port())),
        clean_env(tmp_path, MECR_AUTH="off"),
        tmp_path,
    )


def test_auth_off_refused_with_mecr_host(tmp_path: Path) -> None:
    refused(
        mecr("serve", "--port", str(free_port())),
        clean_env(tmp_path, MECR_AUTH="off", MECR_HOST="192.0.2.10"),
        tmp_path,
    )


def test_auth_off_refused_for_the_demo_on_the_network(tmp_path: Path) -> None:
    refused(
        mecr("demo", "--host", "::", "--port", str(free_port())),
        clean_env(tmp_path, MECR_AUTH="off"),
        tmp_path,
    )


def test_auth_off_with_uvicorn_host_flag_refuses_requests_from_the_network(tmp_path: Path) -> None:
    """uvicorn's own --host is invisible to mECR's settings: each request is checked against the local address
    it arrived on. Loopback is served; the machine's network address gets a 403 OperationOutcome."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to reach a 0.0.0.0 bind from")
    env = clean_env(tmp_path, MECR_AUTH="off")
    subprocess.run(mecr("db", "upgrade"), env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "fhir_ecr.server:worker_app",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
    ]
    with serving(command, env, tmp_path, f"http://127.0.0.1:{port}") as proc:
        assert httpx.get(f"http://127.0.0.1:{port}/fhir/Patient").status_code == 200
        r = httpx.get(f"http://{address}:{port}/fhir/Patient?name=Lovelace")
        assert_outcome(r, 403, "forbidden")
        assert "MECR_AUTH=off" in r.json()["issue"][0]["diagnostics"]
        assert httpx.get(f"http://{address}:{port}/app/caseload").status_code == 403
        assert httpx.get(f"http://{address}:{port}/").status_code == 403
    err = proc.stderr.read()
    assert "refused a request: MECR_AUTH=off" in err and address in err
    assert "Lovelace" not in err


# -- the sandbox EHR, once; the port in every link -------------------------------------------------------------


def test_serve_with_sandbox_env_and_mecr_port_alone(tmp_path: Path) -> None:
    """MECR_SANDBOX_EHR=true works with `mecr serve` (the sandbox mounted once, not inside itself), and
    MECR_PORT without MECR_BASE_URL makes the printed URL, the sandbox's registration and the SMART redirect
    URI all name that port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(tmp_path, MECR_SANDBOX_EHR="true", MECR_PORT=str(port))
    with serving(mecr("serve"), env, tmp_path, base) as proc:
        sandbox = httpx.get(f"{base}/sandbox-ehr/")
        assert sandbox.status_code == 200 and "Sandbox EHR" in sandbox.text
        assert f"{base}/smart/login?ehr=sandbox" in sandbox.text  # the sandbox's registration of mECR
        assert httpx.get(f"{base}/sandbox-ehr/sandbox-ehr/").status_code == 404  # not mounted in itself
        config = httpx.get(f"{base}/sandbox-ehr/fhir/.well-known/smart-configuration").json()
        assert config["authorization_endpoint"] == f"{base}/sandbox-ehr/authorize"
        login = httpx.get(f"{base}/smart/login?ehr=sandbox")
        assert login.status_code == 302
        query = parse_qs(urlsplit(login.headers["location"]).query)
        assert query["redirect_uri"] == [f"{base}/smart/callback"]
        assert query["aud"] == [f"{base}/sandbox-ehr/fhir"]
    out = proc.stdout.read()
    assert f"mECR serving on {base}/" in out
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["mecr-sandbox-ehr.db", "mecr.db"]


def test_demo_with_port_flag_prints_and_serves_that_port(tmp_path: Path) -> None:
    """`mecr demo --port P` (with MECR_SANDBOX_EHR=true as well: still one sandbox) prints the URL it serves."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(tmp_path, MECR_SANDBOX_EHR="true")
    with serving(mecr("demo", "--port", str(port)), env, tmp_path, base) as proc:
        home = httpx.get(f"{base}/")
        assert home.status_code == 200 and 'href="/sandbox-ehr/"' in home.text
        assert f"{base}/smart/login?ehr=sandbox" in httpx.get(f"{base}/sandbox-ehr/").text
    out = proc.stdout.read()
    assert re.search(
        rf"mECR demo: {re.escape(base)}/ \(launch from the sandbox EHR at {re.escape(base)}/sandbox-ehr/\)",
        out,
    ), out
    assert "8000" not in out
