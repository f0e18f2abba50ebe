"""The `mecr` command: help, migrations, loading files, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import build_parser, main
from fhir_ecr.config import get_settings


@pytest.fixture
def env(settings: Any, services: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield services
    get_settings.cache_clear()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_ecr.cli", *args], capture_output=True, text=True, timeout=60
    )


def _commands(parser: Any, prefix: list[str]) -> list[list[str]]:
    import argparse

    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, [*prefix, name])
    return found


@pytest.mark.parametrize("args", _commands(build_parser(), []), ids=lambda a: " ".join(a) or "mecr")
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Every command and sub-command answers --help (in-process: argparse exits 0 after printing it)."""
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mecr {' '.join(args)}".rstrip()) and "-h, --help" in out


def test_the_module_runs_as_a_program() -> None:
    """``python -m fhir_ecr.cli`` is the console script (one subprocess: the entry point itself)."""
    out = run("--help")
    assert out.returncode == 0 and "usage: mecr" in out.stdout


def test_db_upgrade_and_current(env: Any, capsys: Any) -> None:
    assert main(["db", "upgrade"]) == 0
    from fhir_ecr.store.db import head_revision

    newest = head_revision()
    assert newest == "0017"  # the newest migration file (update with each new migration)
    assert f"revision {newest}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert f"current: {newest}; newest: {newest}" in capsys.readouterr().out


def test_load_resources_and_bundles(env: Any, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"resourceType": "Patient", "id": "cli-p"}))
    (tmp_path / "b.json").write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Goal",
                            "lifecycleStatus": "active",
                            "description": {"text": "x"},
                            "subject": {"reference": "Patient/cli-p"},
                        },
                        "request": {"method": "POST", "url": "Goal"},
                    }
                ],
            }
        )
    )
    assert main(["load", "--quiet", str(tmp_path / "p.json"), str(tmp_path / "b.json")]) == 0
    assert "files: 2, created: 2" in capsys.readouterr().out
    assert env.repo.search_params("Goal", [("patient", "cli-p")]).total == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"resourceType": "Patient", "gender": 3}', "Patient.gender"),
        ('["a list"]', "not a FHIR resource"),
    ],
)
def test_load_bad_file_is_a_clear_error(
    env: Any, tmp_path: Path, capsys: Any, content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["load", "--quiet", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mecr: error: ") and str(bad) in err and message in err
    assert "Traceback" not in err


def test_load_missing_file(env: Any, capsys: Any) -> None:
    assert main(["load", "--quiet", "/nonexistent/file.json"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_database_error_is_one_line_without_row_values(env: Any, capsys: Any, monkeypatch: Any) -> None:
    """PostgreSQL's DETAIL lines quote row values: the command prints the driver's first line only."""
    import sqlalchemy as sa

    class Orig(Exception):
        pass

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.IntegrityError(
            "INSERT …",
            {"name": "Maria Lopez"},
            Orig(
                'duplicate key value violates unique constraint "ix"\nDETAIL:  Key (family)=(Lopez) already exists.'
            ),
        )

    monkeypatch.setattr("fhir_ecr.cli._load_files", boom)
    assert main(["load", "x.json"]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        == 'mecr: error: database error (Orig): duplicate key value violates unique constraint "ix"'
    )
    assert "Lopez" not in err and "Maria" not in err
