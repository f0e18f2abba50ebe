"""``mecr client add NAME --generate-key``: a private key file (0600, never overwritten) and its public JWKS
registered, so that an integrator gets a write token in two commands."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from smart_launch import ClientKeySet, build_client_assertion
from tests.helpers import assert_outcome

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def env(secure_settings: Any, secure_services: Any, monkeypatch: Any, tmp_path: Path) -> Any:
    """The CLI on the database of the app with authorization on; the current folder is a temporary one."""
    monkeypatch.setenv("MECR_DATABASE_URL", secure_settings.database_url)
    monkeypatch.setenv("MECR_BASE_URL", secure_settings.base_url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield secure_services
    get_settings.cache_clear()


def test_the_key_file_is_private_and_its_public_half_is_registered(
    env: Any, capsys: Any, tmp_path: Path
) -> None:
    assert main(["client", "add", "integrator", "--generate-key", "--scope", "system/*.cruds"]) == 0
    key_file = tmp_path / "integrator.private-jwks.json"
    out = capsys.readouterr().out
    assert str(key_file) in out and "mecr client token integrator" in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = json.loads(key_file.read_text())
    assert {k["alg"] for k in private["keys"]} == {"RS384", "ES384"} and all(
        "d" in k for k in private["keys"]
    )
    registered = json.loads(env.auth_store.client("integrator")["jwks"])
    assert [k["kid"] for k in registered["keys"]] == [k["kid"] for k in private["keys"]]
    assert not any("d" in k for k in registered["keys"])
    assert env.auth_store.client("integrator")["scope"] == "system/*.cruds"


def test_the_generated_key_gets_a_write_token_at_the_token_endpoint(
    env: Any, secure_client: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "bot.json"
    key_file.parent.mkdir()
    assert (
        main(
            [
                "client",
                "add",
                "bot",
                "--generate-key",
                "--key-file",
                str(key_file),
                "--scope",
                "system/*.cruds",
            ]
        )
        == 0
    )
    keys = ClientKeySet.from_jwks(key_file.read_text())
    assertion = build_client_assertion(
        keys, client_id="bot", token_url=f"{env.settings.base_url}/auth/token", now=time.time()
    )
    resp = secure_client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.cruds",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    assert resp.status_code == 200, resp.text
    headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    created = secure_client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=headers
    )
    assert created.status_code == 201, created.text


def test_two_commands_give_curl_a_write_token(env: Any, secure_client: Any, capsys: Any) -> None:
    assert main(["client", "add", "curl", "--generate-key", "--scope", "system/*.cruds"]) == 0
    capsys.readouterr()
    assert main(["client", "token", "curl"]) == 0
    token = capsys.readouterr().out.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        secure_client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=headers).status_code
        == 201
    )
    assert_outcome(secure_client.post("/fhir/Patient", json={"resourceType": "Patient"}), 401)


def test_an_existing_file_is_never_overwritten(env: Any, capsys: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "integrator.private-jwks.json"
    key_file.write_text("precious")
    assert main(["client", "add", "integrator", "--generate-key", "--scope", "system/*.rs"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert key_file.read_text() == "precious"
    assert env.auth_store.client("integrator") is None


def test_a_refused_registration_leaves_no_key_behind(env: Any, capsys: Any, tmp_path: Path) -> None:
    """The scope is checked when registering, after the key file was made: the file goes again."""
    assert main(["client", "add", "bot", "--generate-key", "--scope", "user/*.rs"]) == 2
    assert "system/ scopes only" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [] and env.auth_store.client("bot") is None


def test_a_registered_name_writes_no_key(env: Any, capsys: Any, tmp_path: Path) -> None:
    assert main(["client", "add", "bot", "--generate-key", "--scope", "system/*.rs"]) == 0
    (tmp_path / "bot.private-jwks.json").rename(tmp_path / "first.json")
    assert main(["client", "add", "bot", "--generate-key", "--scope", "system/*.rs"]) == 2
    assert "registered already" in capsys.readouterr().err
    assert not (tmp_path / "bot.private-jwks.json").exists()


def test_the_mode_is_0600_whatever_the_umask(env: Any, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert main(["client", "add", "bot", "--generate-key", "--scope", "system/*.rs"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "bot.private-jwks.json").stat().st_mode) == 0o600


def test_key_file_goes_with_generate_key(env: Any, capsys: Any, tmp_path: Path) -> None:
    jwks = tmp_path / "public.json"
    jwks.write_text(json.dumps(ClientKeySet.generate().public_jwks()))
    assert (
        main(
            [
                "client",
                "add",
                "bot",
                "--jwks-file",
                str(jwks),
                "--key-file",
                "k.json",
                "--scope",
                "system/*.rs",
            ]
        )
        == 2
    )
    assert "--key-file goes with --generate-key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["client", "add", "bot", "--generate-key", "--jwks-file", str(jwks), "--scope", "system/*.rs"])
