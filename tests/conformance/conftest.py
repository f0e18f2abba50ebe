"""Helpers for the conformance tests: the IG, its examples, the compiled validator, the Gravity fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.conformance import ProfileValidator, default_validator, load_ig

REPO = Path(__file__).resolve().parents[2]
IG_ROOT = REPO / "profiles" / "generated"
MECR = "https://mecr.dev/fhir/StructureDefinition/"


def gravity_dir() -> Path:
    """The Gravity SDOH Clinical Care IG examples in tests/fixtures (sources in tests/fixtures/SOURCES.tsv)."""
    return REPO / "tests" / "fixtures" / "fhir" / "gravity-sdoh"


def example(name: str) -> dict[str, Any]:
    """A fresh copy of ``profiles/generated/resources/<name>``."""
    return copy.deepcopy(json.loads((IG_ROOT / "resources" / name).read_text(encoding="utf-8")))


def errors(issues: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(code, expression) of the error issues, sorted."""
    return sorted((i["code"], i["expression"][0]) for i in issues if i["severity"] == "error")


@pytest.fixture(scope="session")
def validator() -> ProfileValidator:
    return default_validator(IG_ROOT)


@pytest.fixture(scope="session")
def ig() -> Any:
    return load_ig(IG_ROOT)
