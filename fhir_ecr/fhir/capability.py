"""The CapabilityStatement, generated from what the server really implements.

Nothing here is hand-written per resource: the types and search parameters come from the store's compiled
SearchParameter definitions, the interactions from the route table (:data:`TYPE_INTERACTIONS`, which the
routes module defines next to the routes themselves), and the operations from the operation registry.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..store.searchparams import RESOURCE_LEVEL, search_params
from .operations import OperationRegistry

__all__ = ["capability_statement", "TYPE_INTERACTIONS", "SYSTEM_INTERACTIONS", "SEARCH_RESULT_PARAMS"]

# Filled by the routes module when it declares its routes; read here.
TYPE_INTERACTIONS: list[str] = []
SYSTEM_INTERACTIONS: list[str] = []
READ_INTERACTIONS = {"read", "vread", "search-type", "history-instance", "history-type"}
SEARCH_RESULT_PARAMS = ["_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"]


def capability_statement(fhir_base: str, operations: OperationRegistry, *, software_date: str,
                         security: dict[str, Any] | None = None,
                         supported_profiles: dict[str, list[str]] | None = None,
                         read_only_types: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The server's CapabilityStatement."""
    resources = []
    for rtype, params in sorted(search_params().items()):
        entry: dict[str, Any] = {
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        }
        if supported_profiles and supported_profiles.get(rtype):
            entry["supportedProfile"] = supported_profiles[rtype]
        entry.update({
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS
                            if rtype not in read_only_types or code in READ_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": rtype not in read_only_types,
            "conditionalCreate": rtype not in read_only_types,
            "conditionalRead": "not-supported",
            "conditionalUpdate": rtype not in read_only_types,
            "conditionalDelete": "single" if rtype not in read_only_types else "not-supported",
            "referencePolicy": ["literal", "local"],
            "searchInclude": sorted(f"{rtype}:{p.code}" for p in params.values() if p.type == "reference"),
            "searchRevInclude": sorted(
                f"{other}:{p.code}"
                for other, ps in search_params().items()
                for p in ps.values()
                if p.type == "reference" and (not p.targets or rtype in p.targets)
            ),
            "searchParam": [
                {"name": p.code, "definition": p.url, "type": p.type, "documentation": p.expression}
                for p in sorted(params.values(), key=lambda p: p.code)
                if p.code not in RESOURCE_LEVEL or p.code in ("_id", "_lastUpdated", "_tag", "_profile",
                                                              "_security", "_source")
            ],
        })
        ops = [
            {"name": op.code, "definition": op.canonical}
            for op in operations.all()
            if (op.type or op.instance) and (not op.resource_types or rtype in op.resource_types)
        ]
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "mECR FHIR R4 API: coaching records as FHIR resources.",
        "resource": resources,
        "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
        "searchParam": [{"name": n, "type": "special" if n != "_count" else "number"} for n in SEARCH_RESULT_PARAMS],
        "operation": [{"name": op.code, "definition": op.canonical} for op in operations.all() if op.system],
    }
    if security:
        rest["security"] = security
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": software_date,
        "publisher": "mECR",
        "kind": "instance",
        "software": {"name": "mECR", "version": __version__},
        "implementation": {"description": "mECR FHIR server", "url": fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }
