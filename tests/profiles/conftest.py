"""Shared helpers for the tests of the mECR implementation guide (profiles/ and docs/profiles/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
GENERATED = PROFILES / "generated"
DOCS = REPO / "docs" / "profiles"


def load_tool(name: str) -> ModuleType:
    """Import ``profiles/<name>.py`` (the build scripts are not part of an installed package)."""
    module_name = f"mecr_profiles_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, PROFILES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def index() -> dict[str, Any]:
    return read_json(GENERATED / "index.json")


@pytest.fixture(scope="session")
def generated() -> dict[str, dict[str, Any]]:
    """Index-relative path -> resource, for every committed generated file."""
    return {f"resources/{p.name}": read_json(p) for p in sorted((GENERATED / "resources").glob("*.json"))}


@pytest.fixture(scope="session")
def profiles_by_id(index: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sds = [read_json(GENERATED / path) for path in index["profiles"].values()]
    return {sd["id"]: sd for sd in sds}


@pytest.fixture(scope="session")
def gravity_dir() -> Path:
    return REPO / "tests" / "fixtures" / "fhir" / "gravity-sdoh"
