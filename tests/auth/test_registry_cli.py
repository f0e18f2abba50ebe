"""``mecr ehr`` and ``mecr client``: the registries from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from smart_launch import ClientKeySet


@pytest.fixture
def env(settings: Any, services: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MECR_BASE_URL", "https://mecr.example")
    get_settings.cache_clear()
    yield services
    get_settings.cache_clear()


def test_ehr_add_list_remove(env: Any, capsys: Any, tmp_path: Path) -> None:
    assert main(["ehr", "list"]) == 0
    assert "no EHRs registered" in capsys.readouterr().out
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert (
        main(
            [
                "ehr",
                "add",
                "epic",
                "--iss",
                "https://epic.example/fhir/",
                "--client-id",
                "abc",
                "--auth",
                "client_secret_basic",
                "--secret-file",
                str(secret),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "redirect URI to register at the EHR: https://mecr.example/smart/callback" in out
    row = env.auth_store.ehr("epic")
    assert row["iss"] == "https://epic.example/fhir"  # normalised
    assert "s3cret" not in row["secret_enc"] and env.vault.decrypt(row["secret_enc"]) == "s3cret"
    assert main(["ehr", "list"]) == 0
    listed = capsys.readouterr().out
    assert "epic\thttps://epic.example/fhir\tclient=abc" in listed and "s3cret" not in listed
    # Mistakes are one-line errors with exit code 2.
    assert main(["ehr", "add", "epic", "--iss", "https://x.example/fhir", "--client-id", "a"]) == 2
    assert "registered already" in capsys.readouterr().err
    assert main(["ehr", "add", "other", "--iss", "https://epic.example/fhir", "--client-id", "a"]) == 2
    assert "already registered as 'epic'" in capsys.readouterr().err
    assert (
        main(
            [
                "ehr",
                "add",
                "x",
                "--iss",
                "https://x.example/fhir",
                "--client-id",
                "a",
                "--auth",
                "client_secret_basic",
            ]
        )
        == 2
    )
    assert "needs --secret" in capsys.readouterr().err
    assert main(["ehr", "add", "Bad Id", "--iss", "https://x.example/fhir", "--client-id", "a"]) == 2
    assert (
        main(
            [
                "ehr",
                "add",
                "y",
                "--iss",
                "https://y.example/fhir",
                "--client-id",
                "a",
                "--launch-scope",
                "launch patient/Observation.dus",
            ]
        )
        == 2
    )
    assert "launch scope" in capsys.readouterr().err
    assert main(["ehr", "remove", "epic"]) == 0
    assert main(["ehr", "remove", "epic"]) == 2


def test_client_add_list_remove(env: Any, capsys: Any, tmp_path: Path) -> None:
    jwks = tmp_path / "bot.jwks.json"
    jwks.write_text(json.dumps(ClientKeySet.generate().public_jwks()))
    assert main(["client", "add", "bot", "--jwks-file", str(jwks), "--scope", "system/*.rs"]) == 0
    assert "token endpoint: https://mecr.example/auth/token" in capsys.readouterr().out
    assert main(["client", "list"]) == 0
    assert "bot\tscope=system/*.rs\tkeys=inline JWKS" in capsys.readouterr().out
    assert (
        main(["client", "add", "bot2", "--jwks-url", "https://bot.example/jwks", "--scope", "user/*.rs"]) == 2
    )
    assert "system/ scopes only" in capsys.readouterr().err
    assert main(["client", "token", "bot", "--scope", "system/Patient.rs", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    principal = env.sessions.resolve_token(token)
    assert principal.kind == "system" and str(principal.scopes) == "system/Patient.rs"
    assert main(["client", "token", "bot", "--scope", "system/*.cruds"]) == 2
    assert "exceeds" in capsys.readouterr().err
    assert main(["client", "token", "nobody"]) == 2
    assert main(["client", "remove", "bot"]) == 0
    assert env.sessions.resolve_token(token) is None  # revoked with the client
    assert main(["client", "remove", "bot"]) == 2


@pytest.mark.parametrize("args", [["ehr"], ["ehr", "add"], ["client"], ["client", "add"]])
def test_help(args: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    assert "usage: mecr" in capsys.readouterr().out
