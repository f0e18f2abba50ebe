"""Test helpers shared by the test modules."""

from __future__ import annotations

from typing import Any

__all__ = ["assert_outcome"]


def assert_outcome(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an error response: ``status``, a FHIR JSON OperationOutcome, and an issue with ``code``."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/fhir+json"), response.headers
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    for item in body["issue"]:
        assert item["severity"] in ("fatal", "error", "warning", "information")
        assert item["code"]
    if code is not None:
        assert code in [i["code"] for i in body["issue"]], body
    assert "Traceback" not in response.text
    return body
