"""make_core_package.py: assembling hl7.fhir.r4.core#4.0.1 from definition Bundles, on small Bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import load_tool

core = load_tool("make_core_package")


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


OBSERVATION_SD = {
    "resourceType": "StructureDefinition",
    "id": "Observation",
    "url": "http://hl7.org/fhir/StructureDefinition/Observation",
    "version": "4.0.1",
    "fhirVersion": "4.0.1",
    "kind": "resource",
    "type": "Observation",
    "derivation": "specialization",
}
LATER_SD = {
    "resourceType": "StructureDefinition",
    "id": "SubscriptionStatus",
    "version": "4.3.0",
    "fhirVersion": "4.3.0",
    "url": "http://hl7.org/fhir/StructureDefinition/SubscriptionStatus",
    "kind": "resource",
    "type": "SubscriptionStatus",
}
R5_CODESYSTEM = {
    "resourceType": "CodeSystem",
    "id": "detectedissue-status",
    "version": "5.0.0",
    "url": "http://hl7.org/fhir/detectedissue-status",
    "content": "complete",
}
V3_CODESYSTEM = {
    "resourceType": "CodeSystem",
    "id": "v3-ActCode",
    "version": "2018-08-12",
    "url": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "content": "complete",
}


def _source(
    tmp_path: Path, overrides: dict[str, dict[str, Any]] | None = None, version: str = "4.0.1"
) -> Path:
    source = tmp_path / "r4"
    source.mkdir()
    (source / "version.info").write_text(f"[FHIR]\nFhirVersion={version}-abc\nversion={version}\n")
    bundles = {name: _bundle() for name in core.SOURCE_BUNDLES}
    bundles["profiles-resources.json"] = _bundle(OBSERVATION_SD, LATER_SD)
    bundles["valuesets.json"] = _bundle(R5_CODESYSTEM, V3_CODESYSTEM)
    bundles["v3-codesystems.json"] = _bundle(V3_CODESYSTEM)  # identical duplicate, as in the real Bundles
    bundles.update(overrides or {})
    for name, bundle in bundles.items():
        (source / name).write_text(json.dumps(bundle))
    return source


def test_splits_bundles_into_a_package_sushi_can_load(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build = core.assemble_core_package(_source(tmp_path), cache)
    package = cache / "hl7.fhir.r4.core#4.0.1" / "package"
    assert build.package_dir == package and build.rebuilt
    names = sorted(p.name for p in package.glob("*.json"))
    assert names == [
        ".index.json",
        "CodeSystem-v3-ActCode.json",
        "StructureDefinition-Observation.json",
        "package.json",
    ]
    assert json.loads((package / "StructureDefinition-Observation.json").read_text()) == OBSERVATION_SD
    manifest = json.loads((package / "package.json").read_text())
    assert (manifest["name"], manifest["version"], manifest["fhirVersions"]) == (
        "hl7.fhir.r4.core",
        "4.0.1",
        ["4.0.1"],
    )
    index = json.loads((package / ".index.json").read_text())
    assert index["index-version"] == 2
    by_file = {entry["filename"]: entry for entry in index["files"]}
    assert by_file["StructureDefinition-Observation.json"]["url"] == OBSERVATION_SD["url"]
    assert by_file["StructureDefinition-Observation.json"]["type"] == "Observation"
    assert by_file["CodeSystem-v3-ActCode.json"]["content"] == "complete"


def test_leaves_out_definitions_from_later_fhir_releases(tmp_path: Path) -> None:
    build = core.assemble_core_package(_source(tmp_path), tmp_path / "cache")
    assert build.excluded == ("CodeSystem/detectedissue-status", "StructureDefinition/SubscriptionStatus")
    assert build.resource_count == 2
    assert core.is_r4_definition(V3_CODESYSTEM)
    assert not core.is_r4_definition(LATER_SD)


def test_second_run_is_skipped_unless_forced(tmp_path: Path) -> None:
    source, cache = _source(tmp_path), tmp_path / "cache"
    core.assemble_core_package(source, cache)
    again = core.assemble_core_package(source, cache)
    assert not again.rebuilt and again.resource_count == 2
    assert core.assemble_core_package(source, cache, force=True).rebuilt


def test_refuses_definitions_of_another_fhir_version(tmp_path: Path) -> None:
    with pytest.raises(core.SourceVersionError):
        core.assemble_core_package(_source(tmp_path, version="4.3.0"), tmp_path / "cache")


def test_refuses_conflicting_copies_of_one_resource(tmp_path: Path) -> None:
    changed = dict(V3_CODESYSTEM, content="fragment")
    source = _source(tmp_path, {"v3-codesystems.json": _bundle(changed)})
    with pytest.raises(core.SourceContentError, match="differs"):
        core.assemble_core_package(source, tmp_path / "cache")
    assert not (tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1").exists()


def test_refuses_a_missing_or_malformed_bundle(tmp_path: Path) -> None:
    source = _source(tmp_path)
    (source / "v2-tables.json").unlink()
    with pytest.raises(core.SourceContentError, match="missing"):
        core.assemble_core_package(source, tmp_path / "cache")
    (source / "v2-tables.json").write_text(
        json.dumps({"resourceType": "Bundle", "entry": [{"resource": {"id": "x"}}]})
    )
    with pytest.raises(core.SourceContentError, match="entry 0"):
        core.assemble_core_package(source, tmp_path / "cache")


def test_cli_reports_errors_with_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _source(tmp_path, version="5.0.0")
    assert core.main(["--source", str(source), "--cache", str(tmp_path / "cache")]) == 1
    assert "not 4.0.1" in capsys.readouterr().err
