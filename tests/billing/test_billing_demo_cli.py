"""The demo bills (issue #16.9): `mecr demo` loads the demo and its practice billing file, `mecr billing export`
on it writes claims, and an 837P export without claims says why and exits non-zero, recording nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import DEMO_BILLING, main
from fhir_ecr.coaching.demo import demo_today


@pytest.fixture
def demo_db(settings: Any, services: Any, monkeypatch: Any, capsys: Any) -> Any:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MECR_BASE_URL", settings.base_url)
    monkeypatch.setenv("MECR_DEFAULT_TIME_ZONE", "America/New_York")
    monkeypatch.delenv("MECR_BILLING_RULES", raising=False)
    from fhir_ecr.config import get_settings

    get_settings.cache_clear()
    assert main(["demo", "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert f"mecr billing export --rules {DEMO_BILLING}" in out  # the demo says how to bill it
    yield
    get_settings.cache_clear()


def _export(tmp_path: Path, name: str, *extra: str) -> tuple[int, Path]:
    today = demo_today()
    out = tmp_path / name
    code = main(
        [
            "billing",
            "export",
            "--rules",
            str(DEMO_BILLING),
            "--from",
            str(today - timedelta(days=60)),
            "--to",
            str(today),
            "-o",
            str(out),
            *extra,
        ]
    )
    return code, out


def test_the_demo_practice_exports_claims(demo_db: Any, tmp_path: Path, capsys: Any, services: Any) -> None:
    code, out = _export(tmp_path, "demo.x12", "--format", "837p", "--validate")
    said = capsys.readouterr()
    assert code == 0, said.err
    x12 = out.read_text()
    claims = [s for s in x12.split("~") if s.strip().startswith("CLM*")]
    # Ana and Brian (group session, a follow-up or an initial one) and Maria and James (a follow-up each)
    assert len(claims) == 6, said.out
    assert "PHP01" in x12 and "LKM22" in x12 and "1144221847" in x12  # payer IDs, the practice's NPI
    assert "export 1: 6 lines, 6 claims, 0 findings" in said.out


def test_an_837p_without_claims_says_why_and_records_nothing(
    demo_db: Any, tmp_path: Path, capsys: Any, services: Any
) -> None:
    code, out = _export(tmp_path, "self-pay.x12", "--format", "837p", "--payer", "self-pay")
    said = capsys.readouterr()
    assert code == 1
    assert "no claims to export, so no 837P was written and nothing was marked" in said.err
    assert (
        "3 lines are self-pay (demo-cara, lin-chen): see `mecr billing superbill --patient demo-cara"
        in said.err
    )
    assert not out.exists() and (tmp_path / "self-pay.findings.csv").exists()
    with services.repo.unit(write=False) as uow:
        assert uow.states("billing.export.") == []  # the export was rolled back: no control number used
    # the superbill the message points to works
    today = demo_today()
    assert (
        main(
            [
                "billing",
                "superbill",
                "--rules",
                str(DEMO_BILLING),
                "--patient",
                "demo-cara",
                "--from",
                str(today - timedelta(days=60)),
                "--to",
                str(today),
                "-o",
                str(tmp_path / "sb.html"),
            ]
        )
        == 0
    )
    assert "Chloe" in (tmp_path / "sb.html").read_text()
    # a range without sessions says so
    code, _ = _export(tmp_path, "empty.x12", "--format", "837p", "--payer", "medicare")
    assert code == 1 and "no coaching session between" in capsys.readouterr().err
