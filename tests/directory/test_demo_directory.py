"""The demo's community directory (examples/demo/directory): up to date with its generator, imported by
``mecr demo`` idempotently, and it has food resources near the demo practice's ZIP code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from fhir_ecr.cli import EXAMPLES_DIR, _load_demo_directory

GENERATOR = EXAMPLES_DIR.parent / "make_demo_directory.py"


def test_the_demo_directory_is_what_its_generator_writes() -> None:
    folder = EXAMPLES_DIR / "directory"
    before = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    subprocess.run([sys.executable, str(GENERATOR)], check=True, cwd=Path(GENERATOR).parent.parent)
    after = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    assert before == after, "examples/demo/directory is stale: run `make demo-data` and commit"
    assert "datapackage.json" in before and "services.csv" in before


def test_the_demo_loads_the_directory_once(settings: Any, services: Any, client: Any) -> None:
    assert _load_demo_directory(settings) == "created: 54, updated: 0, unchanged: 0"
    assert _load_demo_directory(settings) == "created: 0, updated: 0, unchanged: 54"
    found = client.get(
        "/fhir/HealthcareService?category=food-insecurity&location.near-postalcode=62701|10|km"
    ).json()
    assert found["total"] >= 2
    assert all(
        e["resource"]["meta"]["source"] == "urn:mecr:directory:springfield-demo" for e in found["entry"]
    )
