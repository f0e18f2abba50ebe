"""Every path that reads a body shares the body limit (issue #12 item 9): ``MECR_MAX_BODY_BYTES`` -> 413
OperationOutcome, whether the size is declared (Content-Length) or only seen while streaming (chunked). The
wearable upload has its own, larger limit (``MECR_MAX_UPLOAD_BYTES``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fhir_ecr.app import create_app
from fhir_ecr.server import serve_app
from tests.auth.support import SystemClient, login, patient
from tests.helpers import assert_outcome

LIMIT = 64 * 1024
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _chunks(size: int) -> Iterator[bytes]:
    """A streamed (chunked, no Content-Length) body of ``size`` bytes of a form value."""
    yield b"name="
    for _ in range(size // 8192):
        yield b"a" * 8192


@pytest.fixture
def small(secure_settings: Any, secure_services: Any, monkeypatch: Any) -> Iterator[Any]:
    """The app with authorization on, a 64 KiB body limit and a 256 KiB upload limit."""
    from fastapi.testclient import TestClient

    settings = secure_settings.model_copy(update={"max_body_bytes": LIMIT, "max_upload_bytes": 4 * LIMIT})
    monkeypatch.setattr(secure_services, "settings", settings)
    with TestClient(
        create_app(settings, services=secure_services),
        raise_server_exceptions=False,
        base_url="http://127.0.0.1:8000",
    ) as client:
        yield client


def _system(client: Any) -> dict[str, str]:
    services = client.app.state.services
    return SystemClient(services, scope="system/*.cruds").token(client, scope="system/*.cruds")


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_post_search_form_bodies_share_the_limit(small: Any, streamed: bool) -> None:
    auth = _system(small)
    body: Any = _chunks(2 * LIMIT) if streamed else b"name=" + b"a" * (2 * LIMIT)
    assert_outcome(
        small.post("/fhir/Patient/_search", content=body, headers={**FORM, **auth}), 413, "too-long"
    )
    ok = small.post("/fhir/Patient/_search", content=b"name=" + b"a" * 100, headers={**FORM, **auth})
    assert ok.status_code == 200


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
@pytest.mark.parametrize(
    "path",
    ["/fhir/Patient", "/fhir", "/fhir/Patient/p1/$everything", "/fhir/Observation/$validate", "/auth/token"],
)
def test_every_other_body_path_shares_the_limit(small: Any, path: str, streamed: bool) -> None:
    auth = {} if path == "/auth/token" else _system(small)
    body: Any = _chunks(2 * LIMIT) if streamed else b"{" + b" " * (2 * LIMIT) + b"}"
    headers = {
        **auth,
        "Content-Type": FORM["Content-Type"] if path == "/auth/token" else "application/fhir+json",
    }
    assert_outcome(small.post(path, content=body, headers=headers), 413, "too-long")


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_page_forms_share_the_limit(small: Any, secure_services: Any, streamed: bool) -> None:
    secure_services.repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    csrf = login(small, secure_services, patient("p1"))
    body: Any = _chunks(2 * LIMIT) if streamed else b"text=" + b"a" * (2 * LIMIT)
    r = small.post("/app/me/messages", content=body, headers={**FORM, "X-CSRF-Token": csrf})
    assert r.status_code == 413  # a page: an OperationOutcome when refused up front, the error page once read


def test_the_upload_has_its_own_larger_limit(small: Any, secure_services: Any) -> None:
    secure_services.repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    auth = _system(small)
    # Above the body limit but below the upload limit: read, and refused only as a file (422), not as a size.
    mid = small.post(
        "/api/patients/p1/wearable-imports",
        headers=auth,
        files={"file": ("steps.json", b"[" + b" " * (2 * LIMIT) + b"]")},
    )
    assert mid.status_code == 422, mid.text[:300]
    big = small.post(
        "/api/patients/p1/wearable-imports",
        headers=auth,
        files={"file": ("steps.json", b"[" + b" " * (5 * LIMIT) + b"]")},
    )
    assert_outcome(big, 413, "too-long")


def test_the_sandbox_ehr_shares_the_limit(sandbox_settings: Any, secure_services: Any) -> None:
    from fastapi.testclient import TestClient

    settings = sandbox_settings.model_copy(update={"max_body_bytes": LIMIT})
    secure_services.settings = settings
    with TestClient(
        serve_app(settings, services=secure_services),
        raise_server_exceptions=False,
        base_url="http://127.0.0.1:8000",
    ) as client:
        for path in ("/sandbox-ehr/token", "/sandbox-ehr/authorize", "/sandbox-ehr/authorize/decision"):
            r = client.post(path, content=_chunks(2 * LIMIT), headers=FORM)
            assert_outcome(r, 413, "too-long")
