"""`mecr import directory`: every HSDS input form (folder, datapackage.json, JSON, zip, URL with pages), idempotence,
retired entries and errors, over the real store on both backends."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fhir_ecr.cli import main
from fhir_ecr.directory.generate import generate_directory
from fhir_ecr.directory.importer import DirectoryImporter
from fhir_ecr.directory.sources import DirectoryReadError, read_directory
from mappings.community import csv_text, datapackage, directory_to_fhir, services_json, write_tabular

HSDS = Path(__file__).resolve().parents[1] / "fixtures" / "community" / "hsds-3.0" / "examples"
SERVICE = "hsds-ac148810-d857-441c-9679-408f346de14b"


def _versions(repo: Any, rtype: str) -> dict[str, str]:
    found = repo.search_params(rtype, [("_count", "1000")])
    return {s.id: s.content["meta"]["versionId"] for s in found.matches}


def test_the_csv_package_imports_and_a_second_import_writes_nothing(cli_env: Any, capsys: Any) -> None:
    assert main(["import", "directory", "--quiet", str(HSDS / "csv")]) == 0
    out = capsys.readouterr().out
    assert "directory csv" in out and "created: 4 (1 HealthcareService, 2 Location, 1 Organization)" in out
    assert "rows whose parent is in no table (not imported): 1" in out
    assert "location coordinates out of range" in out
    before = {t: _versions(cli_env.repo, t) for t in ("Organization", "Location", "HealthcareService")}
    history = cli_env.repo.history("HealthcareService", SERVICE)
    assert main(["import", "directory", "--quiet", "--json", str(HSDS / "csv")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["created"] == {} and report["updated"] == {} and report["removed"] == {}
    assert report["unchanged"] == {"HealthcareService": 1, "Location": 2, "Organization": 1}
    assert {t: _versions(cli_env.repo, t) for t in before} == before
    assert len(cli_env.repo.history("HealthcareService", SERVICE).entries) == len(history.entries) == 1
    svc = cli_env.repo.read("HealthcareService", SERVICE).content
    assert svc["meta"]["source"] == "urn:mecr:directory:csv"
    assert svc["meta"]["tag"][0]["code"] == "directory"


def test_every_file_form_gives_the_same_service(cli_env: Any, tmp_path: Path) -> None:
    forms: dict[str, Any] = {}
    package = tmp_path / "pkg"
    shutil.copytree(HSDS / "csv", package)
    forms["datapackage.json"] = package / "datapackage.json"
    forms["json"] = HSDS / "service_full.json"
    forms["page"] = HSDS / "service_at_location_list.json"
    archive = tmp_path / "hsds.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((HSDS / "csv").glob("*")):
            zf.write(p, f"export/{p.name}")
        zf.writestr("__MACOSX/export/._services.csv", b"junk")
    forms["zip"] = archive
    names = set()
    for label, path in forms.items():
        read = read_directory(path)
        names.add(read.name)
        svc = read.directory.services["ac148810-d857-441c-9679-408f346de14b"]
        assert svc["name"] == "Community Counselling", label
        assert svc["service_at_locations"][0]["location_id"] == "3a19ff88-4620-4d17-9830-ac1d859eb5d5", label
    assert names == {"pkg", "service-full", "service-at-location-list", "hsds"}


@respx.mock
def test_a_url_of_an_hsds_api_is_read_page_by_page(cli_env: Any) -> None:
    d = generate_directory(6, seed=3)
    items = services_json(d)
    pages = [items[:3], items[3:]]
    route = respx.get(url__startswith="https://hsds.example.org/services").mock(
        side_effect=lambda req: httpx.Response(
            200,
            json={
                "total_items": len(items),
                "total_pages": 2,
                "page_number": int(req.url.params.get("page", 1)),
                "size": 3,
                "first_page": req.url.params.get("page", "1") == "1",
                "last_page": req.url.params.get("page") == "2",
                "empty": False,
                "contents": pages[int(req.url.params.get("page", 1)) - 1],
            },
        )
    )
    read = read_directory("https://hsds.example.org/services")
    assert route.call_count == 2
    assert read.name == "services" and read.directory.services.keys() == d.services.keys()
    summary = DirectoryImporter(cli_env.repo).import_directory(read.directory, name=read.name)
    assert summary.created["HealthcareService"] == 6


@respx.mock
def test_a_url_of_a_datapackage_fetches_its_tables(cli_env: Any) -> None:
    d = generate_directory(3, seed=5)
    tables = write_tabular(d)
    respx.get("https://data.example.org/hsds/datapackage.json").mock(
        return_value=httpx.Response(200, json=datapackage("springfield", tables))
    )
    for table, rows in tables.items():
        respx.get(f"https://data.example.org/hsds/{table}.csv").mock(
            return_value=httpx.Response(200, text=csv_text(table, rows))
        )
    read = read_directory("https://data.example.org/hsds/datapackage.json")
    assert read.name == "hsds" and directory_to_fhir(read.directory) == directory_to_fhir(d)
    respx.get("https://data.example.org/missing.json").mock(return_value=httpx.Response(404))
    with pytest.raises(DirectoryReadError, match="answered 404"):
        read_directory("https://data.example.org/missing.json")


def test_entries_gone_from_the_directory_are_retired_not_deleted(cli_env: Any) -> None:
    importer = DirectoryImporter(cli_env.repo)
    full = generate_directory(9, seed=11)
    importer.import_directory(full, name="county")
    other = generate_directory(3, seed=12)
    importer.import_directory(other, name="elsewhere")
    smaller = generate_directory(9, seed=11)
    gone = sorted(smaller.services)[:2]
    for sid in gone:
        del smaller.services[sid]
    summary = importer.import_directory(smaller, name="county")
    assert summary.removed == {"HealthcareService": 2}
    assert summary.unchanged["HealthcareService"] == 7
    from mappings.community import fhir_id

    for sid in gone:
        assert cli_env.repo.read("HealthcareService", fhir_id(sid)).content["active"] is False
    # the other directory is untouched, and a re-import of the smaller one retires nothing more
    assert all(
        s.content["active"]
        for s in cli_env.repo.search_params(
            "HealthcareService", [("_source", "urn:mecr:directory:elsewhere")]
        ).matches
    )
    assert importer.import_directory(smaller, name="county").removed == {}
    # --keep-missing leaves them as they are
    assert (
        importer.import_directory(generate_directory(1, seed=11), name="county", remove_missing=False).removed
        == {}
    )


def test_bad_inputs_exit_1_with_one_line(cli_env: Any, capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["import", "directory", "--quiet", str(tmp_path / "bad.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mecr: error:") and "not JSON" in err and "Traceback" not in err
    assert main(["import", "directory", "--quiet", str(tmp_path / "none")]) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["import", "directory", "--quiet", str(tmp_path / "empty")]) == 1
    assert "no HSDS files" in capsys.readouterr().err
    assert main(["import", "directory", "--quiet", "--name", "Bad Name!", str(HSDS / "csv")]) == 1
    assert "directory name" in capsys.readouterr().err
    (tmp_path / "locations.csv").write_text("id,name,latitude\nl1,Hall,north\n")
    assert main(["import", "directory", "--quiet", str(tmp_path / "locations.csv")]) == 1
    assert "latitude must be a number" in capsys.readouterr().err
    assert cli_env.repo.search_params("Location", []).matches == []
    with pytest.raises(SystemExit) as exc:
        main(["import", "directory", "--help"])
    assert exc.value.code == 0
    assert "HSDS" in capsys.readouterr().out


def test_zip_that_is_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DirectoryReadError, match="not a zip"):
        read_directory(bad)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    (tmp_path / "y.zip").write_bytes(buf.getvalue())
    with pytest.raises(DirectoryReadError, match="no HSDS files"):
        read_directory(tmp_path / "y.zip")


def test_a_re_import_writes_nothing_and_looks_up_each_batch_once(cli_env: Any) -> None:
    """Issue #17: what exists is found with one key lookup per type and batch (not one per resource, not a search
    that orders by key), and a re-import of the same directory issues no write at all."""
    import sqlalchemy as sa

    directory = generate_directory(40, seed=5)
    importer = DirectoryImporter(cli_env.repo, batch=25)
    first = importer.import_directory(directory, name="county")
    resources = sum(first.created.values())
    batches = -(-resources // 25)
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    sa.event.listen(cli_env.repo.engine, "before_cursor_execute", note)
    try:
        again = importer.import_directory(directory, name="county")
    finally:
        sa.event.remove(cli_env.repo.engine, "before_cursor_execute", note)
    assert sum(again.unchanged.values()) == resources and not again.created and not again.updated
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE", "DELETE", "COPY"))]
    assert writes == []
    lookups = [
        s for s in statements if s.startswith("SELECT RESOURCE.PK") and "RES_ID" in s.split("WHERE")[1]
    ]
    assert batches <= len(lookups) <= 3 * batches  # one per type present in a batch
    assert not any("ORDER BY" in s or "LIMIT" in s for s in lookups)  # key lookups, not searches
    # the rest: the scan for entries to retire (one page per 1,000 of a type) and transaction control
    assert len(statements) - len(lookups) <= 3 * batches + 12


def test_a_deleted_entry_is_written_again_by_the_next_import(cli_env: Any) -> None:
    directory = generate_directory(3, seed=7)
    importer = DirectoryImporter(cli_env.repo)
    importer.import_directory(directory, name="county")
    service = sorted(
        s.id for s in cli_env.repo.search_params("HealthcareService", [("_count", "10")]).matches
    )[0]
    cli_env.repo.delete("HealthcareService", service)
    summary = importer.import_directory(directory, name="county")
    assert summary.updated == {"HealthcareService": 1} and not summary.created
    assert cli_env.repo.read("HealthcareService", service).content["meta"]["versionId"] == "3"
