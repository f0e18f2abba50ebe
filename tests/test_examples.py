"""Every file in examples/ loads, validates, round-trips through the API, and the demo loader is idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import EXAMPLES_DIR, main
from fhir_ecr.coaching.demo import demo_today, rebase_demo_bundle
from fhir_ecr.store.validation import validate_resource

DEMO_FILES = sorted(EXAMPLES_DIR.glob("*.json"))


def test_demo_files_exist() -> None:
    assert len(DEMO_FILES) >= 4


@pytest.mark.parametrize("path", DEMO_FILES, ids=lambda p: p.name)
def test_every_demo_resource_is_valid(path: Path) -> None:
    bundle = json.loads(path.read_text())
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        validate_resource(entry["resource"])
        assert entry["request"]["url"] == f"{entry['resource']['resourceType']}/{entry['resource']['id']}"


def test_demo_generator_is_deterministic(tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in DEMO_FILES}
    subprocess.run(
        [sys.executable, str(EXAMPLES_DIR.parent / "make_demo_data.py")], check=True, capture_output=True
    )
    after = {p.name: p.read_bytes() for p in sorted(EXAMPLES_DIR.glob("*.json"))}
    assert before == after, "examples/demo is stale: run `make demo-data` and commit"


def test_demo_loads_round_trips_and_is_idempotent(
    settings: Any, services: Any, client: Any, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MECR_BASE_URL", settings.base_url)
    from fhir_ecr.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["demo", "--no-serve"]) == 0
        first = capsys.readouterr().out
        assert main(["demo", "--no-serve"]) == 0
        second = capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    resources = sum(len(json.loads(p.read_text())["entry"]) for p in DEMO_FILES)
    assert f"created: {resources}" in first
    assert f"unchanged: {resources}" in second and "created: 0" in second
    # round trip: what the API returns is what the file holds (the coaching demo moved to today, as `mecr demo`
    # moves it), plus id/meta
    for path in DEMO_FILES:
        for entry in rebase_demo_bundle(json.loads(path.read_text()), demo_today())["entry"][:5]:
            res = {k: v for k, v in entry["resource"].items() if k != "meta"}
            got = client.get(f"/fhir/{res['resourceType']}/{res['id']}").json()
            got.pop("meta")
            assert got == res
    # the demo supports the searches the README shows
    # the practice's month of data is moved too: it ends yesterday (30 days: today - 30 .. today - 1)
    since = (demo_today() - timedelta(days=24)).isoformat()
    r = client.get(
        "/fhir/Observation",
        params={
            "patient": "maria-lopez",
            "code": "http://loinc.org|41950-7",
            "date": f"ge{since}",
            "_count": "5",
        },
    ).json()
    assert r["total"] == 24 and len(r["entry"]) == 5
    latest = client.get(
        "/fhir/Observation", params={"patient": "maria-lopez", "_sort": "-date", "_count": "1"}
    ).json()
    newest = latest["entry"][0]["resource"]
    when = newest.get("effectiveDateTime") or newest["effectivePeriod"]["start"]
    assert when[:10] == str(demo_today() - timedelta(days=1))
    everything = client.get("/fhir/Patient/maria-lopez/$everything").json()
    kinds = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert {
        "Patient",
        "Goal",
        "CarePlan",
        "Observation",
        "Encounter",
        "ServiceRequest",
        "Task",
        "Condition",
        "Device",
        "Organization",
    } <= kinds
