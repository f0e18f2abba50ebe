"""``mecr import directory``: import an Open Referral HSDS directory (docs/community.md).

Examples::

    mecr import directory examples/directory/
    mecr import directory https://example.org/hsds/services --name county-211
    mecr import directory export.zip --keep-missing --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import Settings
from ..outcomes import FhirError

__all__ = ["add_directory_parser", "run_directory_import"]


def add_directory_parser(kinds: Any) -> None:
    """Add ``import directory`` to the ``mecr import`` kinds."""
    p = kinds.add_parser(
        "directory",
        help="import a community resource directory (Open Referral HSDS 3.0)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Import an Open Referral HSDS 3.0 directory as FHIR Organizations, Locations and "
        "HealthcareServices that coaches search (categories coded with the Gravity SDOH codes). SOURCE is a "
        "folder (a tabular data package: datapackage.json and CSV files, or HSDS JSON files), a file "
        "(datapackage.json, HSDS JSON, a table's CSV, a zip) or an http(s) URL (a JSON document, a "
        "datapackage.json, a zip, or an HSDS API list endpoint, followed page by page). Idempotent: ids come "
        "from the HSDS ids, and importing the same directory again writes nothing. Entries an earlier import "
        "of the same --name had and this one has not are retired (active false), unless --keep-missing. "
        "Exit status 1 when the input cannot be read.",
        epilog="Examples:\n"
        "  mecr import directory examples/directory/\n"
        "  mecr import directory https://example.org/hsds/services --name county-211\n"
        "See docs/community.md for the mapping and the search parameters.",
    )
    p.add_argument("source", metavar="SOURCE", help="folder, file or http(s) URL of the HSDS directory")
    p.add_argument(
        "--name",
        metavar="NAME",
        help="the directory's name (lower-case letters, digits, hyphens; default: from SOURCE); "
        "resources are tagged meta.source urn:mecr:directory:NAME",
    )
    p.add_argument(
        "--keep-missing",
        action="store_true",
        help="do not retire entries an earlier import of this directory had and this one has not",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_directory_import(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``mecr import directory``; returns the exit status (errors are one line on stderr)."""
    from tqdm import tqdm

    from mappings.errors import MappingError

    from ..app import build_services
    from .importer import DirectoryImporter, source_uri
    from .sources import read_directory

    try:
        read = read_directory(args.source, name=args.name)
        source_uri(read.name)
    except (MappingError, ValueError) as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 1
    services = build_services(settings)
    total = len(read.directory) + sum(
        len(s.get("service_areas") or ()) for s in read.directory.services.values()
    )
    bar = tqdm(total=total, unit="res", desc="importing", disable=args.quiet, file=sys.stderr)
    try:
        summary = DirectoryImporter(services.repo).import_directory(
            read.directory, name=read.name, remove_missing=not args.keep_missing, progress=bar.update
        )
    except FhirError as exc:
        bar.close()
        print(f"mecr: error: {args.source}: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        services.engine.dispose()
    summary.orphans = len(read.orphans)
    print(
        json.dumps({"directory": read.name, **summary.to_dict()}, indent=2)
        if args.json
        else f"directory {read.name}\n{summary.text()}"
    )
    return 0
