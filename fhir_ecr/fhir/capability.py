"""The CapabilityStatement, generated from what the server really implements.

Nothing here is hand-written per resource: the types and search parameters come from the store's compiled
SearchParameter definitions, the interactions from the routes the FHIR router really has (:func:`interactions`,
each interaction by its method and URL pattern of R4 http.html), and the operations from the operation registry.

Security is described from the one SMART configuration document (:func:`smart_configuration`, served at
``/fhir/.well-known/smart-configuration``), so the two cannot disagree: :func:`security_component` turns its
endpoints into ``rest.security`` -- ``service`` SMART-on-FHIR and the ``oauth-uris`` extension
(http://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html, "Using CapabilityStatement"; SMART 2.0
makes the well-known document the discovery mechanism, and clients of 1.0 still read the extension).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import __version__
from ..auth.discovery import smart_configuration
from ..services import Services
from ..store.searchparams import RESOURCE_LEVEL, search_params
from .operations import OperationRegistry

__all__ = [
    "capability_statement",
    "capability_for",
    "smart_configuration",
    "security_component",
    "interactions",
    "TYPE_INTERACTIONS",
    "SYSTEM_INTERACTIONS",
    "SEARCH_RESULT_PARAMS",
    "OAUTH_URIS",
]

#: Each RESTful interaction and the request that performs it (https://hl7.org/fhir/R4/http.html), in the order
#: the CapabilityStatement lists them.
TYPE_INTERACTIONS: dict[str, tuple[str, str]] = {
    "read": ("GET", "/fhir/{rtype}/{rid}"),
    "vread": ("GET", "/fhir/{rtype}/{rid}/_history/{vid}"),
    "update": ("PUT", "/fhir/{rtype}/{rid}"),
    "patch": ("PATCH", "/fhir/{rtype}/{rid}"),
    "delete": ("DELETE", "/fhir/{rtype}/{rid}"),
    "history-instance": ("GET", "/fhir/{rtype}/{rid}/_history"),
    "history-type": ("GET", "/fhir/{rtype}/_history"),
    "create": ("POST", "/fhir/{rtype}"),
    "search-type": ("GET", "/fhir/{rtype}"),
}
SYSTEM_INTERACTIONS: dict[str, tuple[str, str]] = {
    "transaction": ("POST", "/fhir"),
    "batch": ("POST", "/fhir"),
    "history-system": ("GET", "/fhir/_history"),
}
READ_INTERACTIONS = {"read", "vread", "search-type", "history-instance", "history-type"}
SEARCH_RESULT_PARAMS = ["_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"]

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# smart-configuration field -> oauth-uris sub-extension (SMART App Launch 1.0.0, conformance "oauth-uris")
_OAUTH_URI_FIELDS = (
    ("authorization_endpoint", "authorize"),
    ("token_endpoint", "token"),
    ("revocation_endpoint", "revoke"),
    ("introspection_endpoint", "introspect"),
    ("registration_endpoint", "register"),
    ("management_endpoint", "manage"),
)


def security_component(config: dict[str, Any]) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` for a SMART configuration: the SMART-on-FHIR service and its
    endpoints in the ``oauth-uris`` extension (only those the configuration has)."""
    uris = [
        {"url": name, "valueUri": config[field]} for field, name in _OAUTH_URI_FIELDS if config.get(field)
    ]
    return {
        "extension": [{"url": OAUTH_URIS, "extension": uris}],
        "cors": True,
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "description": "Every call needs a bearer token or a session. Backend services: SMART Backend Services "
        "(client_credentials, private_key_jwt) at the token endpoint; discovery at "
        ".well-known/smart-configuration.",
    }


def interactions(routes: Iterable[Any], table: dict[str, tuple[str, str]]) -> list[str]:
    """The interactions of ``table`` that one of ``routes`` (a router's routes) performs."""
    served = {(method, route.path) for route in routes for method in getattr(route, "methods", None) or ()}
    return [code for code, request in table.items() if request in served]


def capability_statement(
    fhir_base: str,
    operations: OperationRegistry,
    *,
    software_date: str,
    security: dict[str, Any] | None = None,
    supported_profiles: dict[str, list[str]] | None = None,
    read_only_types: frozenset[str] = frozenset(),
    routes: Iterable[Any] = (),
) -> dict[str, Any]:
    """The server's CapabilityStatement; ``routes`` are the FHIR router's (they decide the interactions)."""
    routes = list(routes)
    type_interactions = interactions(routes, TYPE_INTERACTIONS)
    system_interactions = interactions(routes, SYSTEM_INTERACTIONS)
    resources = []
    for rtype, params in sorted(search_params().items()):
        entry: dict[str, Any] = {
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        }
        if supported_profiles and supported_profiles.get(rtype):
            entry["supportedProfile"] = supported_profiles[rtype]
        entry.update(
            {
                "interaction": [
                    {"code": code}
                    for code in type_interactions
                    if rtype not in read_only_types or code in READ_INTERACTIONS
                ],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": rtype not in read_only_types,
                "conditionalCreate": rtype not in read_only_types,
                "conditionalRead": "not-supported",
                "conditionalUpdate": rtype not in read_only_types,
                "conditionalDelete": "single" if rtype not in read_only_types else "not-supported",
                "referencePolicy": ["literal", "local"],
                "searchInclude": sorted(
                    f"{rtype}:{p.code}" for p in params.values() if p.type == "reference"
                ),
                "searchRevInclude": sorted(
                    f"{other}:{p.code}"
                    for other, ps in search_params().items()
                    for p in ps.values()
                    if p.type == "reference" and (not p.targets or rtype in p.targets)
                ),
                "searchParam": [
                    {"name": p.code, "definition": p.url, "type": p.type, "documentation": p.expression}
                    for p in sorted(params.values(), key=lambda p: p.code)
                    if not p.internal
                    and p.code not in RESOURCE_LEVEL
                    or p.code in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
                ],
            }
        )
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
        "interaction": [{"code": code} for code in system_interactions],
        "searchParam": [
            {"name": n, "type": "special" if n != "_count" else "number"} for n in SEARCH_RESULT_PARAMS
        ],
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


def capability_for(services: Services, routes: Iterable[Any]) -> dict[str, Any]:
    """The running server's CapabilityStatement (``routes``: the FHIR router's), built once per
    :class:`~fhir_ecr.services.Services` (it only changes with the code and the settings)."""
    if services._capability is None:
        settings = services.settings
        security = (
            security_component(smart_configuration(settings.base_url)) if settings.auth == "on" else None
        )  # off: nothing to describe; external: the gate's own
        services._capability = capability_statement(
            services.fhir_base,
            services.operations,
            software_date=services.started,
            security=security,
            supported_profiles=services.supported_profiles or None,
            read_only_types=services.read_only_types,
            routes=routes,
        )
    return services._capability
