"""Billing tests: the example practice file for the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_ecr.billing.operations import RULES_ENV
from tests.billing.factories import EXAMPLE_PRACTICE


@pytest.fixture
def practice_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """MECR_BILLING_RULES pointing at the example practice file: in the environment (what the CLI reads) and
    in the app's settings when the test has an app (what the API reads)."""
    monkeypatch.setenv(RULES_ENV, str(EXAMPLE_PRACTICE))
    if "settings" in request.fixturenames:
        monkeypatch.setattr(request.getfixturevalue("settings"), "billing_rules", str(EXAMPLE_PRACTICE))
    yield
