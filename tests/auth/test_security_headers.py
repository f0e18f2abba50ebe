"""Security headers: nosniff on every response; on every HTML response a Content-Security-Policy that runs only
mECR's own scripts and styles, may be framed only by mECR and the registered EHRs, and a Referrer-Policy.
(In a browser, with no violations: tests/web/browser/test_csp.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_ecr.auth.registry import add_ehr
from fhir_ecr.headers import EhrOrigins, origin_of, page_policy
from fhir_ecr.server import serve_app
from tests.auth.support import coach, login, patient

REPO = Path(__file__).resolve().parents[2]


def directives(response: Any) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        assert name not in out, f"{name} twice in {policy}"
        out[name] = values
    return out


def assert_page_headers(response: Any, *, frame_ancestors: list[str] | None = None) -> dict[str, list[str]]:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")
    assert len(response.headers.get_list("content-security-policy")) == 1
    d = directives(response)
    assert d["script-src"] == ["'self'"] and d["style-src"] == ["'self'"]
    assert d["object-src"] == ["'none'"] and d["base-uri"] == ["'none'"]
    assert d["img-src"] == ["'self'", "data:"] and d["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert d["frame-ancestors"][0] == "'self'"
    assert sorted(d["frame-ancestors"]) == sorted(frame_ancestors or ["'self'"])
    return d


@pytest.fixture
def app(sandbox_settings: Any, secure_services: Any) -> Any:
    secure_services.settings = sandbox_settings
    app = serve_app(sandbox_settings, services=secure_services)
    yield app
    app.state.sandbox_ehr.state.sandbox.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        yield c


def test_every_page_carries_the_headers(client: TestClient, secure_services: Any) -> None:
    ehr = add_ehr(
        secure_services, ehr_id="epic", iss="https://fhir.hospital.example:8443/api/FHIR/R4", client_id="mecr"
    )
    client.app.state.ehr_origins.invalidate()
    framers = ["'self'", "http://127.0.0.1:8000", "https://fhir.hospital.example:8443"]
    anonymous = {
        "/": 200,
        "/app/signin": 200,
        "/app/caseload": 401,
        "/smart/login?ehr=nope": 404,
        "/smart/launch?iss=https://x.example/fhir&launch=1": 400,
        "/smart/callback?code=x": 400,
    }
    for path, status in anonymous.items():
        r = client.get(path)
        assert r.status_code == status, (path, r.status_code)
        d = assert_page_headers(r, frame_ancestors=framers)
        assert sorted(d["connect-src"]) == sorted(framers)  # smart_style_url lives at the EHR
    login(client, secure_services, coach())
    for path, status in {"/app/caseload": 200, "/app/patients/nobody": 404}.items():
        r = client.get(path)
        assert r.status_code == status, (path, r.text[:300])
        assert_page_headers(r, frame_ancestors=framers)
    pid = secure_services.repo.create({"resourceType": "Patient", "name": [{"family": "Ng"}]}).stored.id
    login(client, secure_services, patient(pid))
    r = client.get("/app/me")
    assert r.status_code == 200
    assert_page_headers(r, frame_ancestors=framers)
    assert ehr.iss not in r.headers["content-security-policy"]  # the origin only, never the path


def test_the_sandbox_pages_may_be_framed_by_the_sandbox_only(client: TestClient) -> None:
    for path in ("/sandbox-ehr/", "/sandbox-ehr/authorize?client_id=nobody"):
        r = client.get(path)
        assert r.status_code in (200, 400), r.text
        assert_page_headers(r)
        assert r.headers["x-frame-options"] == "SAMEORIGIN"


def test_json_fhir_and_static_responses_get_nosniff(client: TestClient, secure_services: Any) -> None:
    for path in (
        "/fhir/metadata",
        "/fhir/Patient",
        "/healthz",
        "/app/static/app.css",
        "/.well-known/jwks.json",
        "/sandbox-ehr/fhir/metadata",
        "/sandbox-ehr/static/sandbox.css",
        "/nowhere",
    ):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in r.headers or r.headers["content-type"].startswith("text/html")
        assert len(r.headers.get_list("x-content-type-options")) == 1


def test_an_unexpected_error_gets_nosniff_too(app: Any) -> None:
    """The wrapper sits outside Starlette's ServerErrorMiddleware, which answers unexpected errors."""

    async def boom() -> None:
        raise RuntimeError("unexpected")

    app.add_api_route("/boom-for-test", boom)
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        r = client.get("/boom-for-test")
    assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_api_explorer_keeps_working(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    d = directives(r)
    assert d["object-src"] == ["'none'"] and d["frame-ancestors"] == ["'self'"]
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.S)
    assert inline and "'unsafe-inline'" in d["script-src"]  # FastAPI's page starts Swagger UI inline


def test_the_superbill_page(app: Any, secure_services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.billing.factories import (
        EXAMPLE_PRACTICE,
        encounter,
        load,
        patient_resources,
        practice_resources,
    )

    monkeypatch.setattr(secure_services.settings, "billing_rules", str(EXAMPLE_PRACTICE))
    load(
        secure_services.repo,
        [
            *practice_resources(),
            *patient_resources("dee", payer=None),
            encounter("dee-self", "dee", "follow-up", "2026-03-12T10:00:00-05:00", 40),
        ],
    )
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        from tests.auth.support import SystemClient

        headers = SystemClient(secure_services, scope="system/*.rs system/Claim.c system/ChargeItem.c").token(
            client, "system/*.rs"
        )
        r = client.get("/fhir/Encounter/dee-self/$superbill", headers=headers)
        assert r.status_code == 200, r.text
        assert_page_headers(r, frame_ancestors=["'self'", "http://127.0.0.1:8000"])
        assert '<link rel="stylesheet" href="/app/static/superbill.css">' in r.text
        assert client.get("/app/static/superbill.css").status_code == 200


# -- no inline script or style anywhere a page is made ---------------------------------------------------------

_INLINE = [
    (re.compile(r"<style", re.I), "a <style> block"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on…= handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


@pytest.mark.parametrize(
    "template", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "fhir_ecr").rglob("templates/*.html"))
)
def test_templates_have_no_inline_script_or_style(template: str) -> None:
    text = (REPO / template).read_text()
    for pattern, what in _INLINE:
        assert not pattern.search(text), f"{template} has {what}"


def test_python_made_pages_have_no_inline_script_or_style() -> None:
    from fhir_ecr.auth.routes import page
    from fhir_ecr.web import charts

    html = page("Title", "Message", 200, links=[("Home", "/")]).body.decode()
    sources = [
        html,
        *(p.read_text() for p in (REPO / "fhir_ecr" / "web").glob("*.py")),
        (REPO / "fhir_ecr" / "auth" / "routes.py").read_text(),
        (REPO / "fhir_ecr" / "app.py").read_text(),
    ]
    for text in sources:
        for pattern, what in _INLINE[:4]:
            assert not pattern.search(text), what
    assert charts  # the SVG charts are made in web/charts.py, scanned above


# -- the EHR origins: cached, and a new registration takes effect ---------------------------------------------


def test_ehr_origins_are_cached_and_refreshed() -> None:
    rows = [{"iss": "https://a.example/fhir"}]
    reads: list[int] = []
    now = [0.0]

    def load() -> list[dict[str, str]]:
        reads.append(1)
        return list(rows)

    import asyncio

    origins = EhrOrigins(load, ttl=10, clock=lambda: now[0])
    assert asyncio.run(origins.get()) == ("https://a.example",)
    rows.append({"iss": "https://b.example:9443/r4"})
    for _ in range(50):  # many pages within the ttl: one read
        assert asyncio.run(origins.get()) == ("https://a.example",)
    assert len(reads) == 1
    now[0] = 10.0
    assert asyncio.run(origins.get()) == ("https://a.example", "https://b.example:9443")
    rows.append({"iss": "https://c.example/fhir"})
    origins.invalidate()  # what mounting the sandbox (a registration in this process) does
    assert "https://c.example" in asyncio.run(origins.get())


def test_a_newly_registered_ehr_may_frame_mecr(client: TestClient, secure_services: Any) -> None:
    origins = client.app.state.ehr_origins
    now = [1000.0]
    origins.clock = lambda: now[0]
    origins.invalidate()
    before = directives(client.get("/"))["frame-ancestors"]
    add_ehr(
        secure_services, ehr_id="later", iss="https://later.example/fhir", client_id="mecr"
    )  # e.g. the CLI
    assert directives(client.get("/"))["frame-ancestors"] == before  # cached
    now[0] += origins.ttl
    assert "https://later.example" in directives(client.get("/"))["frame-ancestors"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://EHR.example/fhir", "https://ehr.example"),
        ("http://127.0.0.1:8000/sandbox-ehr/fhir", "http://127.0.0.1:8000"),
        ("https://[2001:db8::1]:8443/fhir", "https://[2001:db8::1]:8443"),
        ("https://ehr.example;script-src *", None),
        ("https://ehr.example fhir", None),
        ("ftp://ehr.example", None),
        ("https://user@ehr.example/", None),
        ("", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_page_policy_lists_each_origin_once() -> None:
    assert (
        page_policy(["https://a.example", "https://a.example"]).count("https://a.example") == 2
    )  # two directives
