"""Client keys and JWKS (A-REG-2), Backend Services (1.13), and the package boundary."""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import KeySet

import smart_launch
from smart_launch import (
    CLIENT_ASSERTION_TYPE,
    BackendServicesClient,
    ClientKeySet,
    ConfigurationError,
    EhrUnavailableError,
    ScopeError,
    TokenError,
    discovery_url,
    generate_private_jwks,
)
from tests.smart_launch.conftest import FHIR_BASE, TOKEN_URL, Clock, smart_configuration

pytestmark = pytest.mark.anyio
SYSTEM_SCOPE = "system/Patient.rs system/Observation.rs"


def test_public_jwks_has_required_members_and_no_private_parts(client_keys: ClientKeySet) -> None:
    public = client_keys.public_jwks()
    by_kty = {key["kty"]: key for key in public["keys"]}
    assert set(by_kty) == {"RSA", "EC"}
    assert {"kid", "n", "e"} <= set(by_kty["RSA"]) and by_kty["RSA"]["alg"] == "RS384"
    assert {"kid", "crv", "x", "y"} <= set(by_kty["EC"]) and by_kty["EC"]["crv"] == "P-384"
    assert by_kty["EC"]["alg"] == "ES384"
    for key in public["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
        assert key["use"] == "sig"
    for private in client_keys.private_jwks()["keys"]:
        assert private["d"] not in repr(client_keys)


def test_private_jwks_round_trips(client_keys: ClientKeySet) -> None:
    reloaded = ClientKeySet.from_jwks(client_keys.private_jwks())
    assert reloaded.kids == client_keys.kids and reloaded.public_jwks() == client_keys.public_jwks()
    assert len(generate_private_jwks(["ES384"])["keys"]) == 1


def test_pem_loading_assigns_algorithm_and_thumbprint_kid() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    loaded = ClientKeySet.from_pem(rsa_pem)
    assert loaded.algorithms == ("RS384",) and loaded.kids[0]
    ec_pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert ClientKeySet.from_pem(ec_pem, kid="k1").kids == ("k1",)


def test_unusable_keys_are_refused(client_keys: ClientKeySet) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigurationError, match="P-384"):
        ClientKeySet.from_pem(p256)
    with pytest.raises(ConfigurationError, match="private"):
        ClientKeySet.from_jwks(client_keys.public_jwks())
    with pytest.raises(ConfigurationError):
        ClientKeySet.from_jwks("{not json")
    with pytest.raises(ConfigurationError, match="RS384 or ES384"):
        ClientKeySet.generate(["RS256"])
    only_ec = ClientKeySet.generate(["ES384"])
    with pytest.raises(ConfigurationError, match="RS384"):
        only_ec.choose_algorithm(["RS384"])


def backend(
    http: httpx.AsyncClient, keys: ClientKeySet, clock: Clock, **kwargs: object
) -> BackendServicesClient:
    return BackendServicesClient(
        http,
        token_url=TOKEN_URL,
        client_id="mecr-sync",
        keys=keys,
        scope=SYSTEM_SCOPE,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def token_reply(access_token: str, expires_in: int | None = 300) -> httpx.Response:
    body: dict[str, object] = {"access_token": access_token, "token_type": "bearer", "scope": SYSTEM_SCOPE}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_client_credentials_request_and_assertion(
    router: respx.MockRouter, http: httpx.AsyncClient, client_keys: ClientKeySet, clock: Clock, alg: str
) -> None:
    route = router.post(TOKEN_URL).mock(return_value=token_reply("sys-1"))
    client = backend(http, client_keys, clock, algorithm=alg)
    assert await client.get_access_token() == "sys-1"
    form = {k: v[0] for k, v in parse_qs(route.calls.last.request.content.decode()).items()}
    assert form["grant_type"] == "client_credentials" and form["scope"] == SYSTEM_SCOPE
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE and "client_id" not in form
    token = jwt.decode(
        form["client_assertion"], KeySet.import_key_set(client_keys.public_jwks()), algorithms=[alg]
    )
    assert token.header == {"alg": alg, "kid": client_keys.signing_key(alg).kid, "typ": "JWT"}
    assert token.claims["iss"] == token.claims["sub"] == "mecr-sync" and token.claims["aud"] == TOKEN_URL
    assert 0 < token.claims["exp"] - clock() <= 300 and token.claims["jti"]


async def test_token_is_cached_until_shortly_before_expiry(
    router: respx.MockRouter, http: httpx.AsyncClient, client_keys: ClientKeySet, clock: Clock
) -> None:
    route = router.post(TOKEN_URL).mock(
        side_effect=[token_reply("t1"), token_reply("t2"), token_reply("t3", None)]
    )
    client = backend(http, client_keys, clock, refresh_margin=30)
    assert await client.get_access_token() == "t1"
    clock.advance(269)
    assert await client.get_access_token() == "t1"
    clock.advance(1)  # 30 s before expiry
    assert await client.get_access_token() == "t2"
    assert route.call_count == 2
    client.invalidate("not-current")
    assert await client.get_access_token() == "t2"
    client.invalidate()
    assert (await client.get_token()).expires_in == 300  # assumed when the server leaves it out
    assert route.call_count == 3


async def test_auth_attaches_token_retries_a_401_once_and_stays_on_its_server(
    router: respx.MockRouter, client_keys: ClientKeySet, clock: Clock
) -> None:
    router.post(TOKEN_URL).mock(side_effect=[token_reply("old"), token_reply("new")])
    fhir = router.get(f"{FHIR_BASE}/Patient").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"resourceType": "Bundle"})]
    )
    files = router.get("https://bulk.example.net/out/1.ndjson").respond(text="{}")
    async with httpx.AsyncClient() as token_http:
        client = backend(token_http, client_keys, clock)
        async with httpx.AsyncClient(auth=client.auth(FHIR_BASE)) as api:
            response = await api.get(f"{FHIR_BASE}/Patient")
            await api.get("https://bulk.example.net/out/1.ndjson")
    assert response.status_code == 200
    assert [c.request.headers["Authorization"] for c in fhir.calls] == ["Bearer old", "Bearer new"]
    assert "authorization" not in files.calls.last.request.headers


async def test_backend_errors(
    router: respx.MockRouter, http: httpx.AsyncClient, client_keys: ClientKeySet, clock: Clock
) -> None:
    route = router.post(TOKEN_URL).respond(
        400, json={"error": "invalid_client", "error_description": "jti replay"}
    )
    client = backend(http, client_keys, clock)
    with pytest.raises(TokenError) as info:
        await client.get_token()
    assert info.value.error == "invalid_client" and info.value.status_code == 400
    route.mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(EhrUnavailableError):
        await client.get_token()
    for scope in ("patient/Observation.rs", "system/Observation.rs offline_access", "openid"):
        with pytest.raises(ScopeError):
            BackendServicesClient(http, token_url=TOKEN_URL, client_id="x", keys=client_keys, scope=scope)
    with pytest.raises(ConfigurationError, match="https"):
        BackendServicesClient(
            http,
            token_url="http://emr.example.org/token",
            client_id="x",
            keys=client_keys,
            scope=SYSTEM_SCOPE,
        )
    with pytest.raises(ConfigurationError):
        backend(http, ClientKeySet.generate(["ES384"]), clock, server_algorithms=["RS384"])


async def test_from_discovery(
    router: respx.MockRouter, http: httpx.AsyncClient, client_keys: ClientKeySet, clock: Clock
) -> None:
    base = "https://emr.example.org/fhir"
    router.get(discovery_url(base)).respond(
        json={
            "token_endpoint": "https://emr.example.org/auth/token",
            "grant_types_supported": ["client_credentials"],
            "capabilities": ["client-confidential-asymmetric"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES384"],
        }
    )
    route = router.post("https://emr.example.org/auth/token").mock(return_value=token_reply("sys"))
    client = await BackendServicesClient.from_discovery(
        http, base, client_id="mecr-sync", keys=client_keys, scope=SYSTEM_SCOPE, clock=clock
    )
    await client.get_token()
    assertion = parse_qs(route.calls.last.request.content.decode())["client_assertion"][0]
    assert (
        jwt.decode(assertion, KeySet.import_key_set(client_keys.public_jwks()), algorithms=["ES384"]).claims[
            "aud"
        ]
        == "https://emr.example.org/auth/token"
    )
    router.get(discovery_url(FHIR_BASE)).respond(
        json=smart_configuration(token_endpoint_auth_methods_supported=["client_secret_basic"])
    )
    with pytest.raises(ConfigurationError, match="private_key_jwt"):
        await BackendServicesClient.from_discovery(
            http, FHIR_BASE, client_id="x", keys=client_keys, scope=SYSTEM_SCOPE
        )


def test_package_imports_no_web_framework_and_exports_what_it_lists() -> None:
    package = Path(smart_launch.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & {"fastapi", "starlette", "fhir_ecr"}, source.name
        assert "authlib" not in imported, f"{source.name}: authlib.jose is deprecated; use joserfc"
    for name in smart_launch.__all__:
        assert hasattr(smart_launch, name), name
