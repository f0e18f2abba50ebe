"""`mecr referrals export|import|link`: status as CSV, applied as the organisation through the workflow."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from tests.referrals.world import consent, seed, task


@pytest.fixture
def env(settings: Any, services: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    seed(services.repo)
    with services.repo.unit() as uow:  # both referrals sent with consent
        uow.create(consent("p1"))
        uow.create(consent("p2", org="housing-help"))
        uow.update("Task", "t1", task("t1", "sr1", "p1", "requested"))
        uow.update("Task", "t2", task("t2", "sr2", "p2", "requested", org="housing-help"))
    yield services
    get_settings.cache_clear()


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_has_ids_and_status_only(env: Any, capsys: Any) -> None:
    assert main(["referrals", "export"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert [(r["task_id"], r["organization"], r["status"]) for r in rows] == [
        ("t1", "food-bank", "requested"),
        ("t2", "housing-help", "requested"),
    ]
    assert rows[0]["need"] == "Food pantry enrolment"
    assert "Ada" not in out and "555-0100" not in out and "1970" not in out
    assert main(["referrals", "export", "--organization", "housing-help"]) == 0
    assert [r["task_id"] for r in _rows(capsys.readouterr().out)] == ["t2"]


def test_import_applies_rows_as_the_organisation(env: Any, capsys: Any, tmp_path: Path) -> None:
    sheet = tmp_path / "status.csv"
    sheet.write_text(
        "task_id,status,status_reason,note,provided\n"
        "t1,accepted,,We will call Monday,\n"
        "t2,accepted,,,\n"  # another organisation's referral: refused
        "t1,draft,,,\n"  # not an organisation's status: refused
        "nope,accepted,,,\n"
    )
    assert main(["referrals", "import", str(sheet), "--organization", "food-bank"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("line 2\tt1\tchanged\taccepted")
    assert "line 3\tt2\trefused\tno such referral for Organization/food-bank" in out[1]
    assert "refused" in out[2] and "refused" in out[3]
    assert env.repo.read("Task", "t1").content["status"] == "accepted"
    assert env.repo.read("Task", "t1").content["note"][0]["text"] == "We will call Monday"
    assert env.repo.read("Task", "t2").content["status"] == "requested"
    # the same sheet again changes nothing more; completing needs what was provided
    sheet.write_text(
        "task_id,status,status_reason,note,provided\nt1,accepted,,We will call Monday,\nt1,completed,,,\n"
    )
    assert main(["referrals", "import", str(sheet), "--organization", "food-bank"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "unchanged" in out[0] and "refused" in out[1] and "what was provided" in out[1]
    sheet.write_text("task_id,status,provided\nt1,completed,Food pantry enrolled\n")
    assert main(["referrals", "import", str(sheet), "--organization", "food-bank"]) == 0
    t = env.repo.read("Task", "t1").content
    assert t["status"] == "completed" and t["output"]
    provs = env.repo.search_params("Provenance", [("target", "Task/t1")]).matches
    assert [p.content["activity"]["text"] for p in provs] == ["requested → accepted", "accepted → completed"]


def test_link_command_prints_a_link_and_revokes(env: Any, capsys: Any) -> None:
    assert main(["referrals", "link", "t1", "--days", "3"]) == 0
    url = capsys.readouterr().out.split("\t")[0]
    assert "/r/" in url and len(url.rsplit("/", 1)[1]) >= 40
    assert main(["referrals", "link", "t1", "--revoke"]) == 0
    assert "revoked 1 link" in capsys.readouterr().out


def test_client_add_binds_an_organisation(env: Any, capsys: Any, tmp_path: Path) -> None:
    key = tmp_path / "fb.json"
    assert (
        main(
            [
                "client",
                "add",
                "fb-platform",
                "--generate-key",
                "--key-file",
                str(key),
                "--scope",
                "system/Task.rus system/Patient.r",
                "--organization",
                "food-bank",
            ]
        )
        == 0
    )
    assert main(["client", "list"]) == 0
    assert "organization=food-bank" in capsys.readouterr().out
