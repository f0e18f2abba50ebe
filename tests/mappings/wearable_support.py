"""Helpers for the mapping tests: where the wearable fixtures are, and golden-file comparison."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("MECR_REGEN_GOLDEN") == "1"


WEARABLES = (
    Path(__file__).resolve().parents[1] / "fixtures" / "wearables"
)  # sources: tests/fixtures/SOURCES.tsv
OMH_SCHEMAS = WEARABLES / "open-mhealth" / "schema" / "omh"
OMH_TEST_DATA = WEARABLES / "open-mhealth" / "test-data" / "omh"


def validate_fhir(resources: list[dict[str, Any]]) -> None:
    """Every dict must be a valid R4 Observation or Device."""
    for resource in resources:
        model = {"Observation": Observation, "Device": Device}[resource["resourceType"]]
        model.model_validate(resource)


def _compact(payload: dict[str, Any]) -> str:
    """Pretty at the top level, one line per list item: small files that still diff line by line."""
    parts = []
    for key in sorted(payload):
        value = payload[key]
        if isinstance(value, list) and value:
            items = ",\n".join("  " + json.dumps(v, sort_keys=True, ensure_ascii=False) for v in value)
            parts.append(f' "{key}": [\n{items}\n ]')
        else:
            parts.append(f' "{key}": {json.dumps(value, sort_keys=True, ensure_ascii=False)}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def check_golden(case: str, payload: dict[str, Any]) -> None:
    """Compare with ``golden/<case>.fhir.json``; rewrite it only when MECR_REGEN_GOLDEN=1."""
    path = GOLDEN_DIR / f"{case}.fhir.json"
    text = _compact(payload)
    if REGEN:
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path.name} is missing: run with MECR_REGEN_GOLDEN=1 and review it")
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), (
        f"output differs from {path.name}"
    )
