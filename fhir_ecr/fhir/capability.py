"""The CapabilityStatement, generated from what the server really implements.

Nothing here is hand-written per resource: the types and search parameters come from the store's compiled
SearchParameter definitions, the interactions from the route table (:data:`TYPE_INTERACTIONS`, which the
routes module defines next to the routes themselves), and the operations from the operation registry.

Security is described from the one SMART configuration document (:func:`smart_configuration`, served at
``/fhir/.well-known/smart-configuration``), so the two cannot disagree: :func:`security_component` turns its
endpoints into ``rest.security`` -- ``service`` SMART-on-FHIR and the ``oauth-uris`` extension
(http://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html, "Using CapabilityStatement"; SMART 2.0
makes the well-known document the discovery mechanism, and clients of 1.0 still read the extension).
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..store.searchparams import RESOURCE_LEVEL, search_params
from .operations import OperationRegistry

__all__ = ["capability_statement", "smart_configuration", "security_component", "TYPE_INTERACTIONS",
           "SYSTEM_INTERACTIONS", "SEARCH_RESULT_PARAMS", "OAUTH_URIS"]

# Filled by the routes module when it declares its routes; read here.
TYPE_INTERACTIONS: list[str] = []
SYSTEM_INTERACTIONS: list[str] = []
READ_INTERACTIONS = {"read", "vread", "search-type", "history-instance", "history-type"}
SEARCH_RESULT_PARAMS = ["_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"]

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# smart-configuration field -> oauth-uris sub-extension (SMART App Launch 1.0.0, conformance "oauth-uris")
_OAUTH_URI_FIELDS = (("authorization_endpoint", "authorize"), ("token_endpoint", "token"),
                     ("revocation_endpoint", "revoke"), ("introspection_endpoint", "introspect"),
                     ("registration_endpoint", "register"), ("management_endpoint", "manage"))


def smart_configuration(base_url: str) -> dict[str, Any]:
    """mECR's SMART configuration (``/fhir/.well-known/smart-configuration``): backend-services clients get
    tokens from ``/auth/token`` with ``private_key_jwt`` (docs/smart.md). mECR has no authorization endpoint of
    its own (people reach it through an EHR launch) and no revocation endpoint (``mecr client remove`` revokes)."""
    return {
        "token_endpoint": f"{base_url}/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.rs", "system/*.cruds", "system/*.read", "system/*.write"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }


def security_component(config: dict[str, Any]) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` for a SMART configuration: the SMART-on-FHIR service and its
    endpoints in the ``oauth-uris`` extension (only those the configuration has)."""
    uris = [{"url": name, "valueUri": config[field]} for field, name in _OAUTH_URI_FIELDS if config.get(field)]
    return {
        "extension": [{"url": OAUTH_URIS, "extension": uris}],
        "cors": True,
        "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                     "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}],
        "description": "Every call needs a bearer token or a session. Backend services: SMART Backend Services "
                       "(client_credentials, private_key_jwt) at the token endpoint; discovery at "
                       ".well-known/smart-configuration.",
    }


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
                if not p.internal and p.code not in RESOURCE_LEVEL or p.code in ("_id", "_lastUpdated", "_tag", "_profile",
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
