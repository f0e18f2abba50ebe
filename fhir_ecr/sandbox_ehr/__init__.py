"""The sandbox EHR: an embedded EMR stand-in that mECR launches from, for the demo, development and tests.

It is a SMART App Launch 2.2 authorization server (discovery, authorize with pages to pick coach and patient,
token, JWKS, id_token) and a FHIR R4 server — mECR's own engine over a separate database, behind a bearer-token
gate — with its own demo chart. Strict where real EHRs are strict. See ``docs/sandbox-ehr.md``.

    from fhir_ecr.sandbox_ehr import SandboxClient, create_sandbox_ehr
    sandbox = create_sandbox_ehr(
        base_url="http://127.0.0.1:8000/sandbox-ehr", database_url="sqlite:///sandbox-ehr.db",
        clients=[SandboxClient("mecr", redirect_uris=["http://127.0.0.1:8000/smart/callback"],
                               launch_url="http://127.0.0.1:8000/smart/launch")])
    app.mount("/sandbox-ehr", sandbox)
"""

from .app import SandboxHandle, create_sandbox_ehr
from .clients import DEFAULT_CLIENT_SCOPE, AuthMethod, SandboxClient
from .seed import MRN_SYSTEM, NPI_SYSTEM, demo_resources, seed_demo_data

__all__ = [
    "DEFAULT_CLIENT_SCOPE",
    "MRN_SYSTEM",
    "NPI_SYSTEM",
    "AuthMethod",
    "SandboxClient",
    "SandboxHandle",
    "create_sandbox_ehr",
    "demo_resources",
    "seed_demo_data",
]
