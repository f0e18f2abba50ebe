"""The sandbox is strict where real EHRs are strict: each rule broken once, each refusal checked."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import JWKRegistry

from smart_launch import CLIENT_ASSERTION_TYPE, TokenError, build_client_assertion
from tests.sandbox_ehr.conftest import SECRET
from tests.sandbox_ehr.flows import (
    BASE,
    FHIR_BASE,
    PATIENT_SCOPE,
    REDIRECT_URI,
    approve,
    authorize_by_hand,
    front_page_launch,
    jwt_auth,
    launch_client,
    public,
    query_of,
    token_request,
)

pytestmark = pytest.mark.anyio
TOKEN_URL = f"{BASE}/token"


def redirected_error(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    query = query_of(location)
    assert "code" not in query
    return query


def refused_page(response: httpx.Response, text: str) -> None:
    """No redirect at all (the client or redirect URI cannot be trusted): an error page for the user."""
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "Request refused" in response.text and text in response.text


async def code_for(http: httpx.AsyncClient, **kwargs: Any) -> tuple[str, str]:
    response, verifier = await authorize_by_hand(http, **kwargs)
    assert response.status_code == 303, response.text
    query = query_of(response.headers["location"])
    assert "code" in query, query
    return query["code"], verifier


def exchange(code: str, verifier: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": "mecr-public",
        **extra,
    }


def oauth_error(response: httpx.Response, status: int, error: str, why: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.json()
    assert why in response.json()["error_description"], response.json()
    assert response.headers["cache-control"] == "no-store"


# -- the authorization request --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error", "why"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request", "PKCE is required"),
        ({"code_challenge_method": "plain"}, "invalid_request", "must be S256"),
        ({"code_challenge": "too-short"}, "invalid_request", "not a BASE64URL SHA-256"),
        ({"aud": "https://attacker.example/fhir"}, "invalid_request", "aud must be"),
        ({"aud": None}, "invalid_request", "aud must be"),
        ({"response_type": "token"}, "unsupported_response_type", "must be 'code'"),
        ({"scope": "launch openid"}, "invalid_request", "needs the launch parameter"),
        ({"scope": "system/*.rs"}, "invalid_scope", "can be granted"),  # nothing grantable to a user
        ({"scope": None}, "invalid_scope", "scope is required"),
        ({"launch": "not-a-launch-token", "scope": "launch openid"}, "invalid_request", "launch is unknown"),
    ],
)
async def test_bad_authorization_requests_are_reported_to_the_app(
    http: httpx.AsyncClient, overrides: dict[str, str | None], error: str, why: str
) -> None:
    response, _ = await authorize_by_hand(http, overrides=overrides)
    query = redirected_error(response)
    assert query["error"] == error and why in query["error_description"], query
    assert query["state"].startswith("state-") and query["iss"] == BASE


async def test_missing_state_is_refused(http: httpx.AsyncClient) -> None:
    response, _ = await authorize_by_hand(http, overrides={"state": None})
    query = redirected_error(response)
    assert query["error"] == "invalid_request" and "state" not in query


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"client_id": "no-such-app"}, "unknown client_id"),
        ({"redirect_uri": "https://attacker.example/callback"}, "redirect_uri is not registered"),
        ({"redirect_uri": REDIRECT_URI + "/"}, "redirect_uri is not registered"),  # exact match only
        ({"redirect_uri": None}, "redirect_uri is not registered"),
    ],
)
async def test_untrusted_client_or_redirect_uri_gets_no_redirect(
    http: httpx.AsyncClient, overrides: dict[str, str | None], text: str
) -> None:
    response, _ = await authorize_by_hand(http, overrides=overrides)
    refused_page(response, text)


async def test_repeated_parameters_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/authorize?client_id=mecr-public&client_id=narrow")
    refused_page(response, "more than once")


async def test_user_denies(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    callback = await approve(http, redirect, decision="deny", patient="pat-1001")
    assert callback["error"] == "access_denied" and callback["state"] == redirect.state


async def test_launch_token_is_single_use_and_bound_to_its_client(sandbox, http: httpx.AsyncClient) -> None:
    launch = await front_page_launch(http, "mecr-public")
    response, _ = await authorize_by_hand(
        http, client_id="mecr-basic", scope="launch openid", overrides={"launch": launch["launch"]}
    )
    assert redirected_error(response)["error"] == "invalid_request"  # another app's launch (and now used)
    launch = await front_page_launch(http, "mecr-public")
    first, _ = await authorize_by_hand(http, scope="launch openid", overrides={"launch": launch["launch"]})
    assert "code" in query_of(first.headers["location"])
    again, _ = await authorize_by_hand(http, scope="launch openid", overrides={"launch": launch["launch"]})
    assert redirected_error(again)["error"] == "invalid_request"


async def test_expired_launch_token(sandbox, http: httpx.AsyncClient) -> None:
    launch = await front_page_launch(http, "mecr-public")
    sandbox.clock.advance(301)
    response, _ = await authorize_by_hand(http, scope="launch openid", overrides={"launch": launch["launch"]})
    assert redirected_error(response)["error"] == "invalid_request"


async def test_front_page_refuses_unknown_patient(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{BASE}/launch", data={"client_id": "mecr-public", "practitioner": "coach-dana", "patient": "nobody"}
    )
    assert response.status_code == 400 and "location" not in response.headers


# -- the token endpoint ---------------------------------------------------------------------------------------


async def test_code_exchange_checks_the_pkce_verifier(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    wrong = verifier[:-1] + ("A" if verifier[-1] != "A" else "B")
    oauth_error(await token_request(http, exchange(code, wrong)), 400, "invalid_grant")
    # The code is spent by the failed attempt.
    oauth_error(await token_request(http, exchange(code, verifier)), 400, "invalid_grant")


async def test_code_exchange_needs_the_verifier(http: httpx.AsyncClient) -> None:
    code, _ = await code_for(http)
    form = exchange(code, "")
    del form["code_verifier"]
    oauth_error(await token_request(http, form), 400, "invalid_grant")


async def test_code_replay_is_refused_and_revokes_what_the_code_issued(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    first = await token_request(http, exchange(code, verifier))
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store" and first.headers["pragma"] == "no-cache"
    body = first.json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=bearer)).status_code == 200
    oauth_error(await token_request(http, exchange(code, verifier)), 400, "invalid_grant")
    revoked = await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=bearer)
    assert revoked.status_code == 401 and revoked.json()["resourceType"] == "OperationOutcome"
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": "mecr-public",
    }
    oauth_error(await token_request(http, refresh), 400, "invalid_grant")


async def test_code_expires_after_a_minute(sandbox, http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    sandbox.clock.advance(61)
    oauth_error(await token_request(http, exchange(code, verifier)), 400, "invalid_grant")


async def test_code_exchange_needs_the_same_redirect_uri(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    oauth_error(
        await token_request(http, exchange(code, verifier, redirect_uri=REDIRECT_URI + "/other")),
        400,
        "invalid_grant",
    )


async def test_code_is_bound_to_its_client(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    form = exchange(code, verifier)
    del form["client_id"]
    response = await token_request(http, form, auth=("mecr-basic", SECRET))
    oauth_error(response, 400, "invalid_grant")


async def test_token_endpoint_client_authentication(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http, client_id="mecr-basic")
    form = exchange(code, verifier, client_id="no-such-app")
    oauth_error(await token_request(http, form), 401, "invalid_client")  # unknown client
    form["client_id"] = "mecr-basic"
    oauth_error(
        await token_request(http, form), 401, "invalid_client"
    )  # confidential client without a secret
    del form["client_id"]
    response = await token_request(http, form, auth=("mecr-basic", "wrong"))
    oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    form["client_secret"] = SECRET
    oauth_error(await token_request(http, form), 401, "invalid_client")  # client_secret_post is not offered


async def test_token_endpoint_wants_a_form_without_repeats(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    oauth_error(await http.post(TOKEN_URL, json=exchange(code, verifier)), 400, "invalid_request")
    body = "grant_type=authorization_code&grant_type=authorization_code&client_id=mecr-public"
    oauth_error(
        await http.post(
            TOKEN_URL, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
        400,
        "invalid_request",
    )
    oauth_error(
        await token_request(http, {"grant_type": "password", "client_id": "mecr-public"}),
        400,
        "unsupported_grant_type",
    )


async def test_client_credentials_needs_a_registered_backend_and_system_scopes(sandbox, http) -> None:
    oauth_error(
        await token_request(
            http,
            {"grant_type": "client_credentials", "client_id": "mecr-public", "scope": "system/Patient.rs"},
        ),
        400,
        "unauthorized_client",
    )
    assertion = build_client_assertion(
        sandbox.keys.backend, client_id="sync-backend", token_url=TOKEN_URL, now=time.time()
    )
    form = {
        "grant_type": "client_credentials",
        "scope": "user/Patient.rs system/Condition.rs",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    oauth_error(await token_request(http, form), 400, "invalid_scope")


# -- private_key_jwt assertions -------------------------------------------------------------------------------


def _assertion(keys: Any, *, alg: str = "RS384", header: dict[str, Any] | None = None, **claims: Any) -> str:
    key = keys.signing_key(alg)
    now = int(time.time())
    body = {
        "iss": "sync-backend",
        "sub": "sync-backend",
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": f"jti-{time.monotonic_ns()}",
        **claims,
    }
    head = {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}
    if head["alg"] != alg:  # sign with another algorithm: the same key material without its "alg"
        key = JWKRegistry.import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
        alg = head["alg"]
    payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    # jws, not jwt: joserfc's jwt.encode would add the typ header the "no-typ" case leaves out.
    return jws.serialize_compact(
        {k: v for k, v in head.items() if v is not None}, payload, key, algorithms=[alg]
    )


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("stranger-key", "no RSA key with kid"),
        ("wrong-aud", "aud must be the token endpoint"),
        ("exp-too-far", "more than five minutes"),
        ("expired", "has expired"),
        ("no-jti", "no jti"),
        ("iss-not-sub", "iss and sub"),
        ("no-kid", "no kid"),
        ("no-typ", "typ must be"),
        ("unknown-iss", "not a client registered"),
        ("wrong-type", "not a compact JWS"),
        ("rs256", "alg must be"),
    ],
)
async def test_bad_client_assertions_are_refused(
    sandbox, http: httpx.AsyncClient, case: str, why: str
) -> None:
    keys = sandbox.keys.backend
    now = int(time.time())
    assertion = {
        "stranger-key": lambda: _assertion(sandbox.keys.stranger),
        "wrong-aud": lambda: _assertion(keys, aud=f"{BASE}/other-token"),
        "exp-too-far": lambda: _assertion(keys, exp=now + 600),
        "expired": lambda: _assertion(keys, exp=now - 30),
        "no-jti": lambda: _assertion(keys, jti=None),
        "iss-not-sub": lambda: _assertion(keys, sub="someone-else"),
        "no-kid": lambda: _assertion(keys, header={"kid": None}),
        "no-typ": lambda: _assertion(keys, header={"typ": None}),
        "unknown-iss": lambda: _assertion(keys, iss="nobody", sub="nobody"),
        "wrong-type": lambda: "not-a-jwt",
        "rs256": lambda: _assertion(keys, header={"alg": "RS256"}),
    }[case]()
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    oauth_error(await token_request(http, form), 401, "invalid_client", why)


async def test_client_assertion_jti_is_single_use(sandbox, http: httpx.AsyncClient) -> None:
    assertion = _assertion(sandbox.keys.backend)
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    assert (await token_request(http, form)).status_code == 200
    oauth_error(await token_request(http, form), 401, "invalid_client", "jti was already used")
    form["client_assertion_type"] = "urn:example:other"
    oauth_error(await token_request(http, form), 401, "invalid_client", "client_assertion_type must be")


async def test_assertion_signed_with_an_unregistered_key_fails_the_launch(sandbox, http) -> None:
    client = launch_client(http, jwt_auth(sandbox.keys.stranger), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    callback = await approve(http, redirect, patient="pat-1001")
    with pytest.raises(TokenError) as refused:
        await client.handle_callback(callback, session_id="s")
    assert refused.value.error == "invalid_client" and refused.value.status_code == 401
