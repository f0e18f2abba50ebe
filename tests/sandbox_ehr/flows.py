"""Browser steps against the sandbox EHR, done with httpx (no JavaScript is needed on its pages)."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from smart_launch import (
    AuthorizationRedirect,
    ClientRegistration,
    ClientSecretBasic,
    InMemoryStateStore,
    PrivateKeyJwt,
    PublicClient,
    SmartLaunchClient,
    generate_pkce,
)

ORIGIN = "http://127.0.0.1:8000"
BASE = f"{ORIGIN}/sandbox-ehr"
FHIR_BASE = f"{BASE}/fhir"
REDIRECT_URI = f"{ORIGIN}/smart/callback"
COACH_LAUNCH_SCOPE = (
    "launch openid fhirUser online_access user/Patient.rs user/Observation.rs user/Condition.rs"
)
PATIENT_SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs"

_TX = re.compile(r'name="tx" value="([^"]+)"')
_CHECKED_SCOPE = re.compile(r'name="scope" value="([^"]+)" checked')


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def launch_client(http: httpx.AsyncClient, auth: Any, clock: Any) -> SmartLaunchClient:
    """A SMART client registered with the sandbox as ``auth`` describes (public, Basic or private_key_jwt)."""
    return SmartLaunchClient(
        http, [ClientRegistration(FHIR_BASE, auth, (REDIRECT_URI,))], InMemoryStateStore(clock), clock=clock
    )


def public(client_id: str = "mecr-public") -> PublicClient:
    return PublicClient(client_id)


def basic(secret: str, client_id: str = "mecr-basic") -> ClientSecretBasic:
    return ClientSecretBasic(client_id, secret)


def jwt_auth(keys: Any, client_id: str = "mecr-jwt", algorithm: str | None = None) -> PrivateKeyJwt:
    return PrivateKeyJwt(client_id, keys, algorithm=algorithm)


async def front_page_launch(
    http: httpx.AsyncClient,
    client_id: str = "mecr-public",
    coach: str = "coach-dana",
    patient: str = "pat-1001",
) -> dict[str, str]:
    """Pick a coach and a patient on the EHR's front page and press Launch: the app's launch URL query."""
    response = await http.post(
        f"{BASE}/launch", data={"client_id": client_id, "practitioner": coach, "patient": patient}
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(f"{ORIGIN}/smart/launch?"), location
    return query_of(location)


async def open_authorize(http: httpx.AsyncClient, redirect: AuthorizationRedirect) -> httpx.Response:
    if redirect.method == "POST":
        return await http.post(redirect.endpoint, data=dict(redirect.params))
    return await http.get(redirect.url)


async def approve(
    http: httpx.AsyncClient,
    redirect: AuthorizationRedirect,
    *,
    decision: str = "allow",
    patient: str | None = None,
    scopes: list[str] | None = None,
    expect: tuple[str, ...] = (),
) -> dict[str, str]:
    """Open the authorization page (checking it shows ``expect``), answer it, and return the query the EHR
    redirects the browser back with."""
    page = await open_authorize(http, redirect)
    assert page.status_code == 200, page.text
    for text in expect:
        assert text in page.text, (text, page.text)
    match = _TX.search(page.text)
    assert match, page.text
    form: dict[str, Any] = {"tx": match.group(1), "decision": decision}
    if patient is not None:
        form["patient"] = patient
    # Like a browser: the ticked scope boxes are sent (all are ticked unless the test unticks some).
    form["scope"] = (
        scopes if scopes is not None else [html.unescape(v) for v in _CHECKED_SCOPE.findall(page.text)]
    )
    answer = await http.post(f"{BASE}/authorize/decision", data=form)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return query_of(location)


async def authorize_by_hand(
    http: httpx.AsyncClient,
    *,
    client_id: str = "mecr-public",
    scope: str = PATIENT_SCOPE,
    patient: str = "pat-1001",
    overrides: dict[str, str | None] | None = None,
) -> tuple[httpx.Response, str]:
    """An authorization request built by hand (to break its rules), answered like a browser when the sandbox
    shows its page. Returns the final response (a redirect, or an error page) and the PKCE verifier used."""
    pkce = generate_pkce()
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "state-" + pkce.verifier[:16],
        "aud": FHIR_BASE,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides or {})
    response = await http.get(f"{BASE}/authorize", params={k: v for k, v in params.items() if v is not None})
    if response.status_code == 200 and (match := _TX.search(response.text)):
        response = await http.post(
            f"{BASE}/authorize/decision",
            data={
                "tx": match.group(1),
                "decision": "allow",
                "patient": patient,
                "scope": [html.unescape(v) for v in _CHECKED_SCOPE.findall(response.text)],
            },
        )
    return response, pkce.verifier


async def token_request(http: httpx.AsyncClient, form: dict[str, str], **kwargs: Any) -> httpx.Response:
    return await http.post(f"{BASE}/token", data=form, **kwargs)
