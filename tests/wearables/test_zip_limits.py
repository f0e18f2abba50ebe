"""Zip archives are imported under limits: a zip bomb is refused fast, from the central directory and, when the
directory lies, while decompressing (fhir_ecr/wearables/ziplimits.py)."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_ecr.app import create_app
from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from fhir_ecr.wearables.formats import ReaderOptions, open_readings
from fhir_ecr.wearables.ziplimits import ArchiveTooLarge, CountingFile, LimitedMember, ZipLimits
from mappings.errors import SkipLog
from tests.helpers import assert_outcome
from tests.wearables.support import apple_export, hours, make_patient, observations

MiB = 1024 * 1024


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _claim(data: bytes, *, file_size: int | None = None, compress_size: int | None = None) -> bytes:
    """``data`` (a one-member zip) with the sizes in its headers rewritten: a lying directory."""
    raw = bytearray(data)
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    for offset, value in ((18, compress_size), (22, file_size)):
        if value is not None:
            struct.pack_into("<I", raw, local + offset, value)
    for offset, value in ((20, compress_size), (24, file_size)):
        if value is not None:
            struct.pack_into("<I", raw, central + offset, value)
    return bytes(raw)


def _bomb_xml(size: int) -> bytes:
    """An Apple Health export.xml padded with ``size`` spaces: compresses about 1000 times."""
    head = apple_export(hours("2026-03-10", 8, 9, 500))
    return head.replace(b"<HealthData", b" " * size + b"<HealthData", 1)


def _read_all(data: bytes, fmt: str, limits: ZipLimits) -> list[Any]:
    options = ReaderOptions(ZoneInfo("UTC"), zip_limits=limits)
    return list(open_readings(fmt, io.BytesIO(data), "export.zip", options, SkipLog()))


def test_an_ordinary_export_zip_imports_within_the_limits() -> None:
    data = _zip({"apple_health_export/export.xml": apple_export(hours("2026-03-10", 8, 12, 500))})
    assert len(_read_all(data, "apple-health", ZipLimits())) == 5  # 8..12 o'clock


def test_a_zip_bomb_is_refused_from_the_directory_before_decompressing() -> None:
    bomb = _zip({"apple_health_export/export.xml": _bomb_xml(64 * MiB)})
    assert len(bomb) < MiB  # 64 MiB of spaces compress to ~64 KB
    started = time.perf_counter()
    with pytest.raises(ArchiveTooLarge, match="zip bomb"):
        _read_all(bomb, "apple-health", ZipLimits(max_ratio=200))
    assert time.perf_counter() - started < 0.5  # the directory alone decided; nothing was inflated


def test_the_brief_s_bomb_claiming_1_gb_from_1_mb_is_refused_at_once() -> None:
    small = _zip({"apple_health_export/export.xml": apple_export(hours("2026-03-10", 8, 9, 500))})
    lying = _claim(small, file_size=1024 * MiB, compress_size=MiB)  # what 1 GB of zeros in 1 MB declares
    with pytest.raises(ArchiveTooLarge, match="zip bomb"):
        _read_all(lying, "apple-health", ZipLimits())


def test_a_directory_that_lies_about_the_ratio_is_caught_while_streaming() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("apple_health_export/export.xml", _bomb_xml(32 * MiB), zipfile.ZIP_DEFLATED)
        archive.writestr("padding.bin", os.urandom(4 * MiB + 1024), zipfile.ZIP_STORED)
    info = zipfile.ZipFile(io.BytesIO(out.getvalue())).infolist()[0]
    # The directory claims a compressed size that makes the ratio look harmless (8), and the file really has
    # that many bytes after the member (the padding), so nothing ends early.
    lying = _claim(out.getvalue(), compress_size=info.file_size // 8)
    assert zipfile.ZipFile(io.BytesIO(lying)).infolist()[0].compress_size == info.file_size // 8
    with pytest.raises(ArchiveTooLarge, match="times its compressed size"):
        _read_all(lying, "apple-health", ZipLimits(max_ratio=200))


def test_a_member_that_inflates_past_its_declared_size_is_stopped() -> None:
    """For a reader that does not stop at the declared size itself: the count is on the bytes that come out."""
    info = zipfile.ZipInfo("export.xml")
    info.file_size, info.compress_size = 100_000, 50_000
    counted = CountingFile(io.BytesIO(b""))
    member = io.BufferedReader(
        LimitedMember(io.BytesIO(b"x" * 300_000), info, "a.zip!export.xml", ZipLimits(), counted)
    )
    with pytest.raises(ArchiveTooLarge, match="declares"):
        member.read()
    assert counted.unzipped <= 100_000 + 64 * 1024  # stopped at the first step past the declared size


def test_the_total_uncompressed_size_is_limited() -> None:
    data = _zip({"apple_health_export/export.xml": apple_export(hours("2026-03-10", 0, 23, 500))})
    with pytest.raises(ArchiveTooLarge, match="the limit is 2,000"):
        _read_all(data, "apple-health", ZipLimits(max_bytes=2_000))


def test_fitbit_export_members_share_the_archive_s_total() -> None:
    day = b'[{"dateTime": "03/10/26 00:00:00", "value": "500"}]' + b" " * 3_000
    data = _zip({f"MyFitbitData/Physical Activity/steps-2026-03-{d:02d}.json": day for d in range(10, 15)})
    # Each member is small; together they pass the limit, which counts what was really read.
    with pytest.raises(ArchiveTooLarge):
        _read_all(data, "fitbit-export", ZipLimits(max_bytes=10_000))
    bomb = _zip({"MyFitbitData/Physical Activity/steps-2026-03-10.json": b" " * (16 * MiB) + day})
    with pytest.raises(ArchiveTooLarge, match="zip bomb"):
        _read_all(bomb, "fitbit-export", ZipLimits())


def test_upload_of_a_zip_bomb_is_413_and_writes_nothing(
    settings: Any, services: Any, monkeypatch: Any
) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setattr(services, "settings", settings.model_copy(update={"max_zip_ratio": 100}))
    app = create_app(services.settings, services=services)
    patient = make_patient(services.repo)
    bomb = _zip({"apple_health_export/export.xml": _bomb_xml(16 * MiB)})
    with TestClient(app, raise_server_exceptions=False) as client:
        started = time.perf_counter()
        r = client.post(f"/api/patients/{patient}/wearable-imports", files={"file": ("export.zip", bomb)})
        assert time.perf_counter() - started < 5
    body = assert_outcome(r, 413, "too-long")
    assert "zip bomb" in body["issue"][0]["diagnostics"]
    assert observations(services.repo, patient) == []


def test_upload_past_max_unzipped_bytes_is_413(settings: Any, services: Any, monkeypatch: Any) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setattr(services, "settings", settings.model_copy(update={"max_unzipped_bytes": 1_000}))
    app = create_app(services.settings, services=services)
    patient = make_patient(services.repo)
    data = _zip({"apple_health_export/export.xml": apple_export(hours("2026-03-10", 8, 20, 500))})
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(f"/api/patients/{patient}/wearable-imports", files={"file": ("export.zip", data)})
    assert "the limit is 1,000" in assert_outcome(r, 413, "too-long")["issue"][0]["diagnostics"]


def test_cli_refuses_a_zip_bomb_with_exit_1(
    settings: Any, services: Any, monkeypatch: Any, capsys: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MECR_MAX_ZIP_RATIO", "100")
    get_settings.cache_clear()
    try:
        patient = make_patient(services.repo)
        path = tmp_path / "export.zip"
        path.write_bytes(_zip({"apple_health_export/export.xml": _bomb_xml(16 * MiB)}))
        assert main(["import", "wearable", "--patient", patient, "--quiet", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"mecr: error: {path}") and "zip bomb" in err and "Traceback" not in err
        assert observations(services.repo, patient) == []
    finally:
        get_settings.cache_clear()
