"""`mecr sync pull|push|status|retry` against a real EMR (sekmet-fhir), in the foreground: what each prints, and
what it did on both sides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from tests.sync.support import Sekmet, local, patient, register, store_keys, weight


@pytest.fixture
def mecr(services: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``mecr(*args)`` runs the CLI on the test's store (its own services, keys read from the store)."""
    settings = services.settings
    for name, value in {
        "MECR_DATABASE_URL": settings.database_url,
        "MECR_JOB_STORE": settings.jobs_url,
        "MECR_BASE_URL": settings.base_url,
        "MECR_ENVIRONMENT": "test",
        "MECR_AUTH": "off",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield lambda *args: main(list(args))
    get_settings.cache_clear()


def test_sync_pull_push_status(services: Any, sekmet: Sekmet, mecr: Any, capsys: Any) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    sekmet.put(weight("w1", "p1", "80.5"))
    register(services, sekmet.base, pull="Patient, Observation", push="Goal")
    store_keys(services)
    assert mecr("sync", "pull", "--ehr", "emr") == 0
    out = capsys.readouterr().out
    assert out.startswith("pull emr: fetched=2 created=2 ") and "rejected=0" in out
    assert len(local(services, "Observation")) == 1
    pid = local(services, "Patient")[0]["id"]
    services.repo.create(
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "walk"},
            "subject": {"reference": f"Patient/{pid}"},
        }
    )
    assert mecr("sync", "push", "--ehr", "emr") == 0
    assert capsys.readouterr().out.startswith("push emr: delivered=1 ")
    assert len(sekmet.search("Goal")) == 1
    assert mecr("sync", "status", "--ehr", "emr", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert (
        status[0]["ehr"] == "emr" and status[0]["outbox"]["done"] == 1 and status[0]["outbox"]["parked"] == 0
    )
    assert {t["type"] for t in status[0]["types"]} >= {"Patient", "Observation"}
    assert mecr("sync", "status") == 0
    text = capsys.readouterr().out
    assert "pull Observation: up to 20" in text and "push: 0 waiting, 1 delivered" in text
    assert mecr("sync", "retry", "--ehr", "emr") == 0
    assert capsys.readouterr().out.startswith("0 parked rows queued again")


def test_sync_of_an_unknown_emr_is_an_error(services: Any, mecr: Any, capsys: Any) -> None:
    assert mecr("sync", "pull", "--ehr", "nowhere") == 2
    assert "no EHR 'nowhere' is registered" in capsys.readouterr().err
