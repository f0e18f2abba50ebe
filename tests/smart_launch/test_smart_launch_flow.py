"""End-to-end launches against a respx-mocked EHR: EHR and standalone launch, the three client types,
callback errors, token-endpoint failures, id_token checks and refresh (checklist 1.2-1.11)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import KeySet

from smart_launch import (
    CLIENT_ASSERTION_TYPE,
    AuthorizationError,
    ClientKeySet,
    ClientRegistration,
    ClientSecretBasic,
    ConfigurationError,
    DiscoveryError,
    EhrUnavailableError,
    IdTokenError,
    InMemoryStateStore,
    LaunchError,
    LaunchResult,
    PrivateKeyJwt,
    PublicClient,
    ReplayedStateError,
    ScopeError,
    SessionMismatchError,
    SmartLaunchClient,
    TokenError,
    UnknownStateError,
    UntrustedIssuerError,
    code_challenge_s256,
    discovery_url,
)
from smart_launch.client_auth import ClientAuthentication
from tests.smart_launch.conftest import (
    FHIR_BASE,
    ISSUER,
    JWKS_URL,
    REDIRECT_URI,
    TOKEN_URL,
    Clock,
    IssuerKeys,
    smart_configuration,
)

pytestmark = pytest.mark.anyio

SCOPE = "openid fhirUser offline_access patient/Goal.cruds patient/Observation.rs"
SESSION = "browser-session-1"


class Ehr:
    """Routes of the fake EHR plus the id_token it will issue."""

    def __init__(self, router: respx.MockRouter, keys: IssuerKeys, clock: Clock, **config: Any) -> None:
        self.keys = keys
        self.clock = clock
        self.discovery = router.get(discovery_url(FHIR_BASE)).respond(json=smart_configuration(**config))
        self.jwks = router.get(JWKS_URL).respond(json=keys.jwks())
        self.token = router.post(TOKEN_URL)
        self.respond_with(self.token_body())

    def id_token(self, sent_nonce: str | None, **overrides: Any) -> str:
        claims = {
            "iss": ISSUER,
            "sub": "u1",
            "aud": "mecr",
            "iat": int(self.clock()),
            "exp": int(self.clock()) + 300,
            "fhirUser": "Practitioner/coach-1",
        }
        if sent_nonce is not None:
            claims["nonce"] = sent_nonce
        claims.update(overrides)
        return self.keys.sign(claims, alg="RS256")

    def token_body(self, **overrides: Any) -> dict[str, Any]:
        doc = {
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": SCOPE,
            "refresh_token": "rt-1",
            "patient": "pat-1",
            "encounter": "enc-1",
            "need_patient_banner": False,
            "smart_style_url": "https://ehr.example.org/style.json",
        }
        doc.update(overrides)
        return doc

    def respond_with(self, body: dict[str, Any] | None = None, status: int = 200, **kwargs: Any) -> None:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if body is None:
            self.token.mock(return_value=httpx.Response(status, headers=headers, **kwargs))
        else:
            self.token.mock(return_value=httpx.Response(status, json=body, headers=headers))

    def issue_id_token(self, **overrides: Any) -> None:
        """Make the token endpoint answer with an id_token carrying the nonce the app sent."""

        def answer(request: httpx.Request) -> httpx.Response:
            body = self.token_body(id_token=self.id_token(self.last_nonce, **overrides))
            return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

        self.token.mock(side_effect=answer)

    last_nonce: str | None = None


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def client_for(
    http: httpx.AsyncClient, clock: Clock, auth: ClientAuthentication, **kwargs: Any
) -> SmartLaunchClient:
    registration = ClientRegistration(
        iss=FHIR_BASE, auth=auth, redirect_uris=(REDIRECT_URI, REDIRECT_URI + "2")
    )
    return SmartLaunchClient(http, [registration], InMemoryStateStore(clock), clock=clock, **kwargs)


async def launch(
    client: SmartLaunchClient, ehr: Ehr, *, scope: str = SCOPE
) -> tuple[dict[str, str], LaunchResult]:
    redirect = await client.begin_ehr_launch(
        {"iss": FHIR_BASE, "launch": "launch-opaque/=="}, session_id=SESSION, scope=scope
    )
    params = dict(redirect.params)
    ehr.last_nonce = params.get("nonce")
    result = await client.handle_callback({"code": "code-1", "state": params["state"]}, session_id=SESSION)
    return params, result


@pytest.fixture
def ehr(router: respx.MockRouter, issuer_keys: IssuerKeys, clock: Clock) -> Ehr:
    return Ehr(router, issuer_keys, clock)


async def test_ehr_launch_public_client(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    ehr.issue_id_token()
    params, result = await launch(client, ehr)

    # Authorization request: launch echoed, launch scope added, aud = iss, PKCE S256, nonce for openid.
    assert params["launch"] == "launch-opaque/=="
    assert params["scope"].split() == SCOPE.split() + ["launch"]
    assert params["aud"] == FHIR_BASE and params["redirect_uri"] == REDIRECT_URI
    assert params["code_challenge_method"] == "S256" and params["response_type"] == "code"
    assert len(params["state"]) >= 43 and params["nonce"]

    # Token request: public client sends client_id in the body, no Authorization header.
    request = ehr.token.calls.last.request
    form = form_of(request)
    assert form["grant_type"] == "authorization_code" and form["code"] == "code-1"
    assert form["redirect_uri"] == REDIRECT_URI and form["client_id"] == "mecr"
    assert code_challenge_s256(form["code_verifier"]) == params["code_challenge"]
    assert "authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"

    assert result.patient == "pat-1" and result.encounter == "enc-1" and result.launch == "launch-opaque/=="
    assert result.token.need_patient_banner is False
    assert result.scope.allows("c", "Goal", "patient")
    assert result.id_token is not None and result.id_token.subject == "u1"
    assert result.fhir_user == f"{FHIR_BASE}/Practitioner/coach-1"


async def test_standalone_launch_and_post_redirect(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    redirect = await client.authorize(
        FHIR_BASE,
        session_id=SESSION,
        scope="launch/patient patient/Goal.rs",
        redirect_uri=REDIRECT_URI + "2",
        prefer_post=True,
    )
    assert redirect.method == "POST" and "launch" not in redirect.params
    assert redirect.params["scope"] == "launch/patient patient/Goal.rs" and "nonce" not in redirect.params
    result = await client.handle_callback({"code": "c", "state": redirect.state}, session_id=SESSION)
    assert form_of(ehr.token.calls.last.request)["redirect_uri"] == REDIRECT_URI + "2"
    assert result.id_token is None  # openid was not requested: an id_token would not be trusted


async def test_confidential_symmetric_uses_http_basic(
    ehr: Ehr, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = client_for(http, clock, ClientSecretBasic("mecr", "s3cr:t/+"))
    await launch(client, ehr, scope="patient/Goal.rs")
    request = ehr.token.calls.last.request
    scheme, encoded = request.headers["Authorization"].split()
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "mecr:s3cr%3At%2F%2B"  # RFC 6749 §2.3.1 form-encoding
    assert "client_id" not in form_of(request)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_confidential_asymmetric_assertion_as_sent(
    ehr: Ehr, http: httpx.AsyncClient, clock: Clock, client_keys: ClientKeySet, alg: str
) -> None:
    client = client_for(http, clock, PrivateKeyJwt("mecr", client_keys, algorithm=alg))
    await launch(client, ehr, scope="patient/Goal.rs")
    first = form_of(ehr.token.calls.last.request)
    await launch(client, ehr, scope="patient/Goal.rs")
    second = form_of(ehr.token.calls.last.request)

    assert "client_id" not in first and "authorization" not in ehr.token.calls.last.request.headers
    assert first["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    public = KeySet.import_key_set(client_keys.public_jwks())  # what the EHR fetched from our JWKS URL
    token = jwt.decode(first["client_assertion"], public, algorithms=[alg])
    assert token.header["alg"] == alg and token.header["typ"] == "JWT"
    assert token.header["kid"] == client_keys.signing_key(alg).kid
    assert token.claims["iss"] == token.claims["sub"] == "mecr"
    assert token.claims["aud"] == TOKEN_URL
    assert clock() < token.claims["exp"] <= clock() + 300
    again = jwt.decode(second["client_assertion"], public, algorithms=[alg])
    assert again.claims["jti"] != token.claims["jti"]


async def test_asymmetric_algorithm_follows_what_the_server_accepts(
    router: respx.MockRouter,
    issuer_keys: IssuerKeys,
    http: httpx.AsyncClient,
    clock: Clock,
    client_keys: ClientKeySet,
) -> None:
    ehr = Ehr(router, issuer_keys, clock, token_endpoint_auth_signing_alg_values_supported=["ES384"])
    client = client_for(http, clock, PrivateKeyJwt("mecr", client_keys))
    await launch(client, ehr, scope="patient/Goal.rs")
    assertion = form_of(ehr.token.calls.last.request)["client_assertion"]
    header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))
    assert header["alg"] == "ES384"


async def test_server_that_refuses_our_auth_method_is_refused_before_redirecting(
    router: respx.MockRouter, issuer_keys: IssuerKeys, http: httpx.AsyncClient, clock: Clock
) -> None:
    Ehr(router, issuer_keys, clock, token_endpoint_auth_methods_supported=["private_key_jwt"])
    client = client_for(http, clock, ClientSecretBasic("mecr", "secret"))
    with pytest.raises(DiscoveryError, match="client_secret_basic"):
        await client.authorize(FHIR_BASE, session_id=SESSION, scope="patient/Goal.rs")


async def test_untrusted_issuer_gets_no_request_at_all(
    router: respx.MockRouter, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = client_for(http, clock, ClientSecretBasic("mecr", "secret"))
    with pytest.raises(UntrustedIssuerError):
        await client.begin_ehr_launch(
            {"iss": "https://evil.example/fhir", "launch": "x"}, session_id=SESSION, scope=SCOPE
        )
    assert len(router.calls) == 0


@pytest.mark.parametrize("query", [{"iss": FHIR_BASE}, {"launch": "x"}, {"iss": "", "launch": "x"}])
async def test_ehr_launch_needs_iss_and_launch(
    http: httpx.AsyncClient, clock: Clock, query: dict[str, str]
) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    with pytest.raises(LaunchError):
        await client.begin_ehr_launch(query, session_id=SESSION, scope=SCOPE)


async def test_unregistered_redirect_uri(http: httpx.AsyncClient, clock: Clock) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    with pytest.raises(ConfigurationError, match="not registered"):
        await client.authorize(
            FHIR_BASE, session_id=SESSION, scope=SCOPE, redirect_uri="https://evil.example/cb"
        )


async def test_callback_state_failures(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    redirect = await client.authorize(FHIR_BASE, session_id=SESSION, scope="patient/Goal.rs")
    with pytest.raises(UnknownStateError):
        await client.handle_callback({"code": "c", "state": "forged"}, session_id=SESSION)
    with pytest.raises(UnknownStateError):
        await client.handle_callback({"code": "c"}, session_id=SESSION)
    with pytest.raises(SessionMismatchError):
        await client.handle_callback({"code": "c", "state": redirect.state}, session_id="other-browser")
    with pytest.raises(ReplayedStateError):
        await client.handle_callback({"code": "c", "state": redirect.state}, session_id=SESSION)
    assert not ehr.token.called  # no code was ever exchanged


async def test_callback_error_response(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    redirect = await client.authorize(FHIR_BASE, session_id=SESSION, scope="patient/Goal.rs")
    with pytest.raises(AuthorizationError) as info:
        await client.handle_callback(
            {"error": "access_denied", "error_description": "user said no", "state": redirect.state},
            session_id=SESSION,
        )
    assert info.value.error == "access_denied" and info.value.error_description == "user said no"
    redirect = await client.authorize(FHIR_BASE, session_id=SESSION, scope="patient/Goal.rs")
    with pytest.raises(AuthorizationError, match="neither"):
        await client.handle_callback({"state": redirect.state}, session_id=SESSION)
    assert not ehr.token.called


async def test_expired_state_through_the_client(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    from smart_launch import ExpiredStateError

    client = client_for(http, clock, PublicClient("mecr"), state_lifetime=60)
    redirect = await client.authorize(FHIR_BASE, session_id=SESSION, scope="patient/Goal.rs")
    clock.advance(61)
    with pytest.raises(ExpiredStateError):
        await client.handle_callback({"code": "c", "state": redirect.state}, session_id=SESSION)


@pytest.mark.parametrize(
    ("status", "body", "content", "error", "match"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "code expired"},
            None,
            "invalid_grant",
            "code expired",
        ),
        (401, {"error": "invalid_client"}, None, "invalid_client", "401"),
        (500, None, b"Internal Server Error", None, "HTTP 500"),
        (502, None, b"<html>bad gateway</html>", None, "HTTP 502"),
        (200, None, b"not json", None, "JSON"),
        (200, {"access_token": "x"}, None, "invalid_response", "token_type"),
    ],
)
async def test_token_endpoint_failures(
    ehr: Ehr,
    http: httpx.AsyncClient,
    clock: Clock,
    status: int,
    body: dict[str, Any] | None,
    content: bytes | None,
    error: str | None,
    match: str,
) -> None:
    if body is None:
        ehr.respond_with(None, status=status, content=content)
    else:
        ehr.respond_with(body, status=status)
    client = client_for(http, clock, PublicClient("mecr"))
    with pytest.raises(TokenError, match=match) as info:
        await launch(client, ehr, scope="patient/Goal.rs")
    assert info.value.status_code == status and info.value.error == error


async def test_ehr_down_at_the_token_endpoint(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    ehr.token.mock(side_effect=httpx.ConnectError("refused"))
    client = client_for(http, clock, PublicClient("mecr"))
    with pytest.raises(EhrUnavailableError) as info:
        await launch(client, ehr, scope="patient/Goal.rs")
    assert info.value.url == TOKEN_URL and isinstance(info.value.__cause__, httpx.ConnectError)


async def test_id_token_checks_in_the_flow(ehr: Ehr, http: httpx.AsyncClient, clock: Clock) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    for overrides, match in (
        ({"aud": "other-app"}, "aud"),
        ({"nonce": "replayed"}, "nonce"),
        ({"exp": int(clock()) - 120}, "expired"),
    ):
        ehr.issue_id_token(**overrides)
        with pytest.raises(IdTokenError, match=match):
            await launch(client, ehr)
    ehr.respond_with(ehr.token_body())  # openid granted, no id_token
    with pytest.raises(IdTokenError, match="no id_token"):
        await launch(client, ehr)


async def test_jwks_is_cached_and_refetched_on_key_rotation(
    ehr: Ehr, http: httpx.AsyncClient, clock: Clock, issuer_keys: IssuerKeys
) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    ehr.issue_id_token()
    await launch(client, ehr)
    await launch(client, ehr)
    assert ehr.jwks.call_count == 1
    from joserfc.jwk import RSAKey

    rotated = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    ehr.jwks.respond(json={"keys": [rotated.as_dict(private=False)]})

    def answer(request: httpx.Request) -> httpx.Response:
        claims = {
            "iss": ISSUER,
            "sub": "u1",
            "aud": "mecr",
            "iat": int(clock()),
            "exp": int(clock()) + 300,
            "nonce": ehr.last_nonce,
        }
        body = ehr.token_body(id_token=issuer_keys.sign(claims, alg="RS256", key=rotated))
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    ehr.token.mock(side_effect=answer)
    _, result = await launch(client, ehr)
    assert ehr.jwks.call_count == 2 and result.id_token is not None


async def test_refresh_rotates_or_keeps_the_refresh_token(
    ehr: Ehr, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = client_for(http, clock, ClientSecretBasic("mecr", "secret"))
    _, result = await launch(client, ehr, scope="offline_access patient/Goal.cruds")

    ehr.respond_with(
        {
            "access_token": "at-2",
            "token_type": "bearer",
            "expires_in": 3600,
            "scope": "offline_access patient/Goal.cruds",
            "refresh_token": "rt-2",
        }
    )
    clock.advance(3000)
    rotated = await client.refresh(result)
    request = ehr.token.calls.last.request
    assert form_of(request) == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    assert request.headers["Authorization"].startswith("Basic ")
    assert (rotated.token.access_token, rotated.token.refresh_token) == ("at-2", "rt-2")
    assert rotated.patient == "pat-1" and rotated.token.issued_at == clock()

    ehr.respond_with(
        {
            "access_token": "at-3",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "offline_access patient/Goal.rs",
        }
    )
    kept = await client.refresh(rotated, scope="offline_access patient/Goal.rs")
    assert form_of(ehr.token.calls.last.request)["refresh_token"] == "rt-2"
    assert form_of(ehr.token.calls.last.request)["scope"] == "offline_access patient/Goal.rs"
    assert (kept.token.access_token, kept.token.refresh_token) == ("at-3", "rt-2")
    assert not kept.scope.allows("c", "Goal", "patient")


async def test_refresh_cannot_widen_scope_or_work_without_a_refresh_token(
    ehr: Ehr, http: httpx.AsyncClient, clock: Clock
) -> None:
    client = client_for(http, clock, PublicClient("mecr"))
    ehr.respond_with(ehr.token_body(scope="offline_access patient/Goal.rs"))
    _, result = await launch(client, ehr, scope="offline_access patient/Goal.rs")
    calls = ehr.token.call_count
    for wider in ("patient/Goal.cruds", "patient/*.rs", "user/Goal.rs", "openid"):
        with pytest.raises(ScopeError, match="exceeds"):
            await client.refresh(result, scope=wider)
    ehr.respond_with({"access_token": "at-9", "token_type": "Bearer", "scope": "patient/Goal.rs"})
    _, no_refresh = await launch(client, ehr, scope="patient/Goal.rs")
    with pytest.raises(TokenError, match="offline_access"):
        await client.refresh(no_refresh)
    assert ehr.token.call_count == calls + 1  # only the second launch reached the server


async def test_bearer_auth_stays_on_the_fhir_server(ehr: Ehr, router: respx.MockRouter, clock: Clock) -> None:
    async with httpx.AsyncClient() as http:
        client = client_for(http, clock, PublicClient("mecr"))
        _, result = await launch(client, ehr, scope="patient/Goal.rs")
    fhir = router.get(f"{FHIR_BASE}/Goal").respond(json={"resourceType": "Bundle"})
    elsewhere = router.get("https://cdn.example.net/file.ndjson").respond(text="")
    sibling = router.get("https://ehr.example.org/r4/fhirx/Goal").respond(text="")
    async with httpx.AsyncClient(auth=result.auth()) as api:
        await api.get(f"{FHIR_BASE}/Goal")
        await api.get("https://cdn.example.net/file.ndjson")
        await api.get("https://ehr.example.org/r4/fhirx/Goal")
    assert fhir.calls.last.request.headers["Authorization"] == "Bearer at-1"
    assert "authorization" not in elsewhere.calls.last.request.headers
    assert "authorization" not in sibling.calls.last.request.headers
