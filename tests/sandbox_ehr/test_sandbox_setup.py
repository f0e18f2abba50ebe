"""The sandbox's own data and keys: seeded once, kept across restarts; client registrations validated."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet

from fhir_ecr.sandbox_ehr import MRN_SYSTEM, NPI_SYSTEM, SandboxClient, create_sandbox_ehr, demo_resources
from tests.sandbox_ehr.conftest import BASE, registered_clients
from tests.sandbox_ehr.flows import FHIR_BASE, PATIENT_SCOPE, approve, launch_client, public

pytestmark = pytest.mark.anyio


def test_demo_chart_has_what_the_coaching_demo_needs() -> None:
    resources = demo_resources()
    by_type: dict[str, list[dict]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    assert len(by_type["Patient"]) == 5 and len(by_type["Practitioner"]) == 2
    assert len(by_type["PractitionerRole"]) == 2 and len(by_type["Organization"]) == 1
    assert all(any(i["system"] == MRN_SYSTEM for i in p["identifier"]) for p in by_type["Patient"])
    assert all(p["identifier"][0]["system"] == NPI_SYSTEM for p in by_type["Practitioner"])
    codes = {c["code"]["coding"][0]["code"] for c in by_type["Condition"]}
    assert {"Z71.3", "E66.9", "R73.03"} <= codes
    loinc = {o["code"]["coding"][0]["code"] for o in by_type["Observation"]}
    assert loinc == {"29463-7", "39156-5", "85354-9"}
    assert len({(r["resourceType"], r["id"]) for r in resources}) == len(resources)


async def test_restart_keeps_keys_tokens_and_data(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    result = await client.handle_callback(await approve(http, redirect, patient="pat-1001"), session_id="s")
    jwks_before = (await http.get(f"{BASE}/.well-known/jwks.json")).json()

    # A second sandbox over the same database, as after a restart (seeding again is a no-op).
    again = create_sandbox_ehr(
        base_url=BASE,
        database_url=sandbox.database_url,
        clients=registered_clients(sandbox.keys),
        clock=sandbox.clock,
    )
    outer = FastAPI()
    outer.mount("/sandbox-ehr", again)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer)) as restarted:
            assert (await restarted.get(f"{BASE}/.well-known/jwks.json")).json() == jwks_before
            bearer = {"Authorization": f"Bearer {result.token.access_token}"}
            assert (await restarted.get(f"{FHIR_BASE}/Patient/pat-1001", headers=bearer)).status_code == 200
    finally:
        again.state.sandbox.dispose()
    services = sandbox.app.state.sandbox.services
    assert services.repo.search_params("Patient", []).total == 5
    assert len(jwks_before["keys"]) == 1 and jwks_before["keys"][0]["alg"] == "RS256"
    assert "d" not in jwks_before["keys"][0]  # public half only


async def test_id_token_is_signed_with_the_published_key(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    result = await client.handle_callback(await approve(http, redirect, patient="pat-1004"), session_id="s")
    keys = KeySet.import_key_set((await http.get(f"{BASE}/.well-known/jwks.json")).json())
    token = jwt.decode(result.token.id_token, keys, algorithms=["RS256"])
    assert token.header["alg"] == "RS256" and token.header["kid"] == keys.keys[0].kid
    claims = token.claims
    assert claims["iss"] == BASE and claims["aud"] == "mecr-public"
    assert claims["fhirUser"] == f"{FHIR_BASE}/Patient/pat-1004" and claims["sub"] == "Patient/pat-1004"
    assert claims["nonce"] == result.id_token.nonce and claims["exp"] > claims["iat"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auth_method": "client_secret_basic"}, "needs a client_secret"),
        ({"auth_method": "private_key_jwt"}, "needs a jwks_url or a jwks"),
        ({"auth_method": "client_secret_post", "client_secret": "x"}, "unknown auth method"),
        ({"client_id": ""}, "needs a client_id"),
    ],
)
def test_client_registration_is_checked(kwargs: dict, message: str) -> None:
    options = {"client_id": "app", "redirect_uris": ["https://app.example/cb"], **kwargs}
    with pytest.raises(ValueError, match=message):
        SandboxClient(**options)
