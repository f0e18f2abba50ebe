"""MECR_PORT / MECR_HOST without MECR_BASE_URL: the base URL (links, SMART URLs, the FHIR base) follows them, and
`mecr serve --host/--port` too; a configured MECR_BASE_URL is never replaced. (Served for real: test_serve.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.config import Settings, settings_markdown


@pytest.fixture(autouse=True)
def no_mecr_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("MECR_")]:
        monkeypatch.delenv(key)


def test_default_base_url() -> None:
    assert Settings().base_url == "http://127.0.0.1:8000"


def test_mecr_port_alone_sets_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MECR_PORT", "9123")
    s = Settings()
    assert s.base_url == "http://127.0.0.1:9123" and s.fhir_base == "http://127.0.0.1:9123/fhir"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8100"),
        ("::", "http://127.0.0.1:8100"),
        ("192.0.2.5", "http://192.0.2.5:8100"),
        ("::1", "http://[::1]:8100"),
        ("localhost", "http://localhost:8100"),
    ],
)
def test_mecr_host_and_port(monkeypatch: pytest.MonkeyPatch, host: str, url: str) -> None:
    monkeypatch.setenv("MECR_HOST", host)
    monkeypatch.setenv("MECR_PORT", "8100")
    assert Settings().base_url == url


def test_serve_flags_move_a_derived_base_url() -> None:
    bound = Settings().bound_to(None, 9300)
    assert (bound.port, bound.base_url) == (9300, "http://127.0.0.1:9300")
    again = bound.bound_to("0.0.0.0", 9400)
    assert (again.host, again.base_url) == ("0.0.0.0", "http://127.0.0.1:9400")
    assert Settings().bound_to(None, None).base_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize("configured", [{"base_url": "https://ecr.example.org/"}, {}])
def test_a_configured_base_url_stays(monkeypatch: pytest.MonkeyPatch, configured: dict[str, Any]) -> None:
    if not configured:
        monkeypatch.setenv("MECR_BASE_URL", "https://ecr.example.org")
    s = Settings(**configured)
    assert s.base_url == "https://ecr.example.org"
    assert s.bound_to("0.0.0.0", 9000).base_url == "https://ecr.example.org"
    # A copy that replaced the derived URL keeps it too (the tests' settings are such copies).
    copy = Settings().model_copy(update={"base_url": "http://testserver"})
    assert copy.bound_to(None, 9000).base_url == "http://testserver"


def test_configuration_page_names_the_derived_default() -> None:
    row = next(line for line in settings_markdown().splitlines() if line.startswith("| `MECR_BASE_URL`"))
    assert "`http://{MECR_HOST}:{MECR_PORT}`" in row
