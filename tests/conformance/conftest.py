"""Helpers for the conformance tests: the IG, its examples, the compiled validator, shared fixtures."""

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


def shared_dir() -> Path:
    """``<repo>/../shared``: CI clones the repo to another folder with a copy of shared/ beside it."""
    path = (REPO / ".." / "shared").resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"shared/ not found beside the repository at {path}")
    return path


def gravity_dir() -> Path:
    return shared_dir() / "fixtures" / "fhir" / "gravity-sdoh"


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
