"""An EHR launch inside a cross-site https iframe, in Chromium with third-party cookies blocked.

The EHR (the sandbox, reached as https://localhost:PORT) shows mECR (https://127.0.0.1:PORT: another site) in
a frame of its chart page. With MECR_COOKIE_SAMESITE=none mECR's cookies are Partitioned (CHIPS), so the launch
completes inside the frame although the browser refuses ordinary third-party cookies; with the default `lax` the
browser drops the launch cookie and mECR says exactly that. One uvicorn server with a certificate made here
serves both names; Chromium ignores that the certificate is self-signed."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_ecr.app import create_app
from fhir_ecr.config import Settings
from fhir_ecr.sandbox_ehr.mount import mount_sandbox_ehr
from tests.conftest import CHROMIUM, free_port

pytestmark = pytest.mark.slow


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, valid for two days (key and certificate PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium that refuses third-party cookies (as its incognito profile and the 3PC phase-out do) and accepts
    the test's certificate. Skipped, loudly, only without Chromium and without MECR_REQUIRE_BROWSER."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"Chromium not found at {CHROMIUM}: the framed launch test NOT run"
        if os.environ.get("MECR_REQUIRE_BROWSER"):
            pytest.fail(reason + " (MECR_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--ignore-certificate-errors", "--test-third-party-cookie-phaseout"],
        )
        yield browser
        browser.close()


@pytest.fixture
def framed_server(sandbox_settings: Settings, secure_services: Any, tmp_path: Path) -> Iterator[str]:
    """mECR on https://127.0.0.1:PORT with the sandbox EHR, whose own address is https://localhost:PORT."""
    import uvicorn

    port = free_port()
    settings = sandbox_settings.model_copy(
        update={"base_url": f"https://127.0.0.1:{port}", "sandbox_ehr": False, "cookie_samesite": "none"}
    )
    secure_services.settings = settings
    secure_services.repo.fhir_base = settings.fhir_base
    secure_services.http = httpx.AsyncClient(verify=False, timeout=15)  # mECR -> the EHR, same certificate
    app = create_app(settings, services=secure_services)
    mount_sandbox_ehr(
        app, settings, secure_services, sandbox_base_url=f"https://localhost:{port}/sandbox-ehr"
    )
    key, cert = self_signed(tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ssl_keyfile=str(key),
            ssl_certfile=str(cert),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield str(port)
    finally:
        # the browser keeps its TLS connections open: a graceful shutdown would wait for them (10 s, in every test)
        server.should_exit = server.force_exit = True
        thread.join(10)
        assert not thread.is_alive(), "uvicorn did not stop"
        app.state.sandbox_ehr.state.sandbox.dispose()


def frame_at(page: Any, pattern: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in page.frames[1:]:
            if re.search(pattern, frame.url):
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no frame at {pattern}: {[f.url for f in page.frames]}")


def launch_in_frame(browser: Any, port: str) -> tuple[Any, Any]:
    """The coach opens Ana Lopez's chart in the EHR with mECR embedded, and allows mECR in the frame."""
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(f"https://localhost:{port}/sandbox-ehr/")
    page.get_by_label("Signed-in coach").first.select_option("coach-dana")
    page.get_by_label("Patient chart").first.select_option("pat-1001")
    page.get_by_label(re.compile("inside the EHR's page")).first.check()
    page.get_by_role("button", name=re.compile("launch", re.I)).first.click()
    page.wait_for_url(re.compile(r"/sandbox-ehr/launch$"))
    app = page.frame_locator("iframe.app")
    app.get_by_role("button", name="Allow").click()
    return context, page


def test_ehr_launch_in_a_cross_site_https_frame_with_third_party_cookies_blocked(
    chromium: Any, framed_server: str, secure_services: Any
) -> None:
    port = framed_server
    context, page = launch_in_frame(chromium, port)
    frame = frame_at(page, rf"^https://127\.0\.0\.1:{port}/app/patients/[^/]+$")
    frame.wait_for_selector("main")
    assert "Lopez" in frame.content()
    assert page.url.startswith(f"https://localhost:{port}/")  # the EHR's page is still the top one
    # The browser really blocks third-party cookies here; only the partitioned kind survives in the frame.
    frame.evaluate("document.cookie = 'probe_plain=1; SameSite=None; Secure; Path=/'")
    frame.evaluate("document.cookie = 'probe_partitioned=1; SameSite=None; Secure; Path=/; Partitioned'")
    cookies = frame.evaluate("document.cookie")
    assert "probe_partitioned=1" in cookies and "probe_plain" not in cookies
    # mECR's session cookie lives in the EHR site's partition, not in mECR's own top-level jar.
    jar = {c["name"]: c for c in context.cookies(f"https://127.0.0.1:{port}/")}
    assert jar["mecr_session"]["sameSite"] == "None" and jar["mecr_session"]["secure"]
    assert jar["mecr_session"].get("partitionKey", "").startswith("https://localhost")
    context.close()


def test_without_samesite_none_the_frame_says_the_browser_blocked_the_cookie(
    chromium: Any, framed_server: str, secure_services: Any
) -> None:
    port = framed_server
    secure_services.settings = secure_services.settings.model_copy(update={"cookie_samesite": "lax"})
    context, page = launch_in_frame(chromium, port)
    frame = frame_at(page, rf"^https://127\.0\.0\.1:{port}/smart/callback")
    frame.wait_for_selector("h1")
    assert frame.inner_text("h1") == "The browser blocked mECR's cookie in this frame"
    assert "MECR_COOKIE_SAMESITE=none" in frame.inner_text("main")
    assert "Sign-in expired" not in frame.content()
    context.close()
