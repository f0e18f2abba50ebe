#!/usr/bin/env python3
"""Copy SUSHI's output into the committed ``profiles/generated/`` folder and write its index.

SUSHI writes one JSON file per resource under ``fsh-generated/resources/``. This step

* re-serialises every file the same way (2-space indent, UTF-8, keys in SUSHI's order, final newline), so
  the committed output only changes when a definition does;
* writes ``index.json``: canonical URL -> file for every profile, extension, value set and code system,
  and, for each profile, the example instances that claim it in ``meta.profile``. The write-time validator
  loads the StructureDefinitions through this index.

    python collect_generated.py <sushi-out>/fsh-generated/resources <dest>/generated

Errors::

    CollectError            -- the SUSHI output is missing, unreadable, or not what the index needs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["INDEX_NAME", "RESOURCES_DIR", "CollectError", "build_index", "collect", "dump_json", "main"]

INDEX_NAME = "index.json"
RESOURCES_DIR = "resources"


class CollectError(Exception):
    """SUSHI's output cannot be collected."""


def dump_json(data: Any) -> str:
    """The one serialisation used for committed JSON: stable across runs and platforms."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _kind(resource: Mapping[str, Any]) -> str | None:
    resource_type = resource.get("resourceType")
    if resource_type == "StructureDefinition":
        if resource.get("type") == "Extension" and resource.get("derivation") == "constraint":
            return "extensions"
        return "profiles"
    if resource_type == "ValueSet":
        return "valueSets"
    if resource_type == "CodeSystem":
        return "codeSystems"
    return None


def build_index(files: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Index of generated resources, given file path (relative to the index) -> resource.

    Conformance resources are keyed by canonical URL; every other resource is an example. The
    ImplementationGuide resource supplies the package id, version, canonical base and FHIR version.
    """
    index: dict[str, Any] = {
        "packageId": None,
        "version": None,
        "canonical": None,
        "fhirVersion": None,
        "implementationGuide": None,
        "profiles": {},
        "extensions": {},
        "valueSets": {},
        "codeSystems": {},
        "examples": {},
        "examplesByProfile": {},
    }
    for path in sorted(files):
        resource = files[path]
        kind = _kind(resource)
        if kind is not None:
            url = resource.get("url")
            if not isinstance(url, str):
                raise CollectError(f"{path}: {resource.get('resourceType')} has no canonical url")
            if url in index[kind]:
                raise CollectError(f"{path}: {url} is also defined in {index[kind][url]}")
            index[kind][url] = path
        elif resource.get("resourceType") == "ImplementationGuide":
            index["implementationGuide"] = path
            index["packageId"] = resource.get("packageId")
            index["version"] = resource.get("version")
            url = str(resource.get("url", ""))
            index["canonical"] = url.split("/ImplementationGuide/")[0] or None
            versions = resource.get("fhirVersion") or [None]
            index["fhirVersion"] = versions[0]
        else:
            index["examples"][f"{resource['resourceType']}/{resource['id']}"] = path
            for profile in resource.get("meta", {}).get("profile", []):
                index["examplesByProfile"].setdefault(profile, []).append(path)
    if index["implementationGuide"] is None:
        raise CollectError("no ImplementationGuide resource in the SUSHI output")
    for profile in index["examplesByProfile"]:
        index["examplesByProfile"][profile].sort()
    return index


def collect(source: Path, dest: Path) -> dict[str, Any]:
    """Replace ``dest`` with the normalised resources from ``source`` plus ``index.json``; return the index."""
    paths = sorted(source.glob("*.json"))
    if not paths:
        raise CollectError(f"no JSON resources in {source}")
    files: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CollectError(f"cannot read {path}: {exc}") from exc
        files[f"{RESOURCES_DIR}/{path.name}"] = resource
    index = build_index(files)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / RESOURCES_DIR).mkdir(parents=True)
    for relative, resource in files.items():
        (dest / relative).write_text(dump_json(resource), encoding="utf-8")
    (dest / INDEX_NAME).write_text(dump_json(index), encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="SUSHI's fsh-generated/resources folder")
    parser.add_argument("dest", type=Path, help="folder to (re)create, e.g. profiles/generated")
    args = parser.parse_args(argv)
    try:
        index = collect(args.source, args.dest)
    except CollectError as exc:
        print(f"collect_generated: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(
        f"{len(index[key])} {key}"
        for key in ("profiles", "extensions", "valueSets", "codeSystems", "examples")
    )
    print(f"collected {counts} into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
