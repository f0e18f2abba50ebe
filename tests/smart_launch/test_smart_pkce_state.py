"""PKCE (A-AUTH-6), state (A-AUTH-4, A-CB-1) and the authorization request builder (1.5)."""

from __future__ import annotations

import base64
import hashlib
import math
from urllib.parse import parse_qs, urlsplit

import pytest

from smart_launch import (
    ConfigurationError,
    ExpiredStateError,
    InMemoryStateStore,
    PendingAuthorization,
    ReplayedStateError,
    ScopeSet,
    SessionMismatchError,
    UnknownStateError,
    build_authorization_request,
    code_challenge_s256,
    generate_pkce,
    parse_smart_configuration,
)
from smart_launch.state import STATE_BYTES, consume_state, new_state, save_pending
from tests.smart_launch.conftest import FHIR_BASE, REDIRECT_URI, Clock, smart_configuration

pytestmark = pytest.mark.anyio


def test_rfc7636_appendix_b_vector() -> None:
    assert code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


@pytest.mark.parametrize("length", [43, 64, 128])
def test_generated_verifier_length_charset_and_challenge(length: int) -> None:
    pair = generate_pkce(length)
    assert len(pair.verifier) == length
    assert set(pair.verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    digest = hashlib.sha256(pair.verifier.encode()).digest()
    assert pair.challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert pair.method == "S256"


def test_verifiers_are_fresh_and_bounds_are_enforced() -> None:
    assert len({generate_pkce().verifier for _ in range(50)}) == 50
    for bad in (42, 129):
        with pytest.raises(ConfigurationError):
            generate_pkce(bad)
    with pytest.raises(ConfigurationError):
        code_challenge_s256("short")


def test_state_entropy() -> None:
    assert STATE_BYTES * 8 >= 122
    states = {new_state() for _ in range(200)}
    assert len(states) == 200
    # base64url of 32 random bytes: 43 characters, 6 bits each
    assert all(len(s) * 6 >= 256 for s in states)
    assert math.log2(64) * len(next(iter(states))) >= 122


def pending(
    clock: Clock, *, state: str = "s1", session_id: str = "browser-1", lifetime: float = 600
) -> PendingAuthorization:
    return PendingAuthorization(
        state=state,
        session_id=session_id,
        iss=FHIR_BASE,
        client_id="mecr",
        redirect_uri=REDIRECT_URI,
        code_verifier="v" * 64,
        scope="launch openid",
        created_at=clock(),
        expires_at=clock() + lifetime,
        launch="xyz",
        nonce="n",
    )


async def test_state_is_single_use(clock: Clock) -> None:
    store = InMemoryStateStore(clock)
    await save_pending(store, pending(clock))
    taken = await consume_state(store, "s1", session_id="browser-1", now=clock())
    assert taken.code_verifier == "v" * 64 and taken.launch == "xyz"
    with pytest.raises(ReplayedStateError):
        await consume_state(store, "s1", session_id="browser-1", now=clock())
    with pytest.raises(ReplayedStateError):  # and stays refused
        await consume_state(store, "s1", session_id="browser-1", now=clock())


async def test_unknown_and_missing_state(clock: Clock) -> None:
    store = InMemoryStateStore(clock)
    await save_pending(store, pending(clock))
    with pytest.raises(UnknownStateError):
        await consume_state(store, "forged", session_id="browser-1", now=clock())
    with pytest.raises(UnknownStateError, match="no 'state'"):
        await consume_state(store, None, session_id="browser-1", now=clock())
    with pytest.raises(UnknownStateError):
        await consume_state(store, "", session_id="browser-1", now=clock())


async def test_state_from_another_session_is_refused_and_spent(clock: Clock) -> None:
    store = InMemoryStateStore(clock)
    await save_pending(store, pending(clock))
    with pytest.raises(SessionMismatchError):
        await consume_state(store, "s1", session_id="attacker", now=clock())
    with pytest.raises(ReplayedStateError):
        await consume_state(store, "s1", session_id="browser-1", now=clock())


async def test_expired_state(clock: Clock) -> None:
    store = InMemoryStateStore(clock)
    await save_pending(store, pending(clock, lifetime=600))
    clock.advance(601)
    with pytest.raises(ExpiredStateError):
        await consume_state(store, "s1", session_id="browser-1", now=clock())


async def test_memory_store_forgets_after_its_retention(clock: Clock) -> None:
    store = InMemoryStateStore(clock)
    await save_pending(store, pending(clock, state="old"))
    clock.advance(10 * 3600)
    await save_pending(store, pending(clock, state="new"))
    assert len(store) == 1
    with pytest.raises(UnknownStateError):
        await consume_state(store, "old", session_id="browser-1", now=clock())


def test_authorization_request_parameters() -> None:
    config = parse_smart_configuration(smart_configuration(), FHIR_BASE)
    pair = generate_pkce()
    redirect = build_authorization_request(
        config,
        client_id="mecr",
        redirect_uri=REDIRECT_URI,
        scope=ScopeSet.parse("launch openid fhirUser patient/Goal.cruds"),
        state="st",
        code_verifier=pair.verifier,
        aud=FHIR_BASE,
        launch="opaque+launch/==",
        nonce="nonce-1",
    )
    url = urlsplit(redirect.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://ehr.example.org/auth/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    assert query == {
        "response_type": "code",
        "client_id": "mecr",
        "redirect_uri": REDIRECT_URI,
        "launch": "opaque+launch/==",
        "scope": "launch openid fhirUser patient/Goal.cruds",
        "state": "st",
        "aud": FHIR_BASE,
        "code_challenge": pair.challenge,
        "code_challenge_method": "S256",
        "nonce": "nonce-1",
    }
    assert redirect.method == "GET" and redirect.state == "st"
    assert "max_age" not in redirect.params and "auth_time" not in redirect.params


def test_standalone_request_has_no_launch_and_post_needs_authorize_post() -> None:
    config = parse_smart_configuration(smart_configuration(), FHIR_BASE)
    kwargs = dict(
        client_id="mecr",
        redirect_uri=REDIRECT_URI,
        scope=ScopeSet.parse("launch/patient"),
        state="st",
        code_verifier=generate_pkce().verifier,
        aud=FHIR_BASE,
    )
    redirect = build_authorization_request(config, prefer_post=True, **kwargs)  # type: ignore[arg-type]
    assert "launch" not in redirect.params and redirect.method == "POST"
    no_post = parse_smart_configuration(
        smart_configuration(capabilities=["launch-standalone", "sso-openid-connect"]), FHIR_BASE
    )
    assert build_authorization_request(no_post, prefer_post=True, **kwargs).method == "GET"  # type: ignore[arg-type]


def test_endpoint_with_its_own_query_keeps_it() -> None:
    config = parse_smart_configuration(
        smart_configuration(authorization_endpoint="https://ehr.example.org/auth?tenant=a"), FHIR_BASE
    )
    redirect = build_authorization_request(
        config,
        client_id="mecr",
        redirect_uri=REDIRECT_URI,
        scope=ScopeSet.parse("openid"),
        state="st",
        code_verifier=generate_pkce().verifier,
        aud=FHIR_BASE,
    )
    query = parse_qs(urlsplit(redirect.url).query)
    assert query["tenant"] == ["a"] and query["state"] == ["st"]
