"""mECR's own SMART configuration (SMART App Launch 2.x, "Conformance": ``/.well-known/smart-configuration``),
served by :mod:`fhir_ecr.auth.routes` and described again in the CapabilityStatement (:mod:`fhir_ecr.fhir.capability`).

https://hl7.org/fhir/smart-app-launch/conformance.html
"""

from __future__ import annotations

from typing import Any

__all__ = ["smart_configuration"]


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
