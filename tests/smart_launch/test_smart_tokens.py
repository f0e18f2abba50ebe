"""Token responses (1.8), fhirContext in both forms, refresh merging, and id_token validation (1.9)."""

from __future__ import annotations

from typing import Any

import pytest

from smart_launch import IdTokenError, ScopeSet, TokenError, parse_token_response, validate_id_token
from smart_launch.tokens import FhirContextItem, merge_refreshed
from tests.smart_launch.conftest import ISSUER, Clock, IssuerKeys

REQUESTED = ScopeSet.parse("launch openid fhirUser offline_access patient/Goal.cruds patient/Observation.rs")


def body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "access_token": "at-1",
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "launch openid fhirUser offline_access patient/Goal.rs patient/Observation.rs",
        "refresh_token": "rt-1",
        "patient": "123",
        "encounter": "enc-9",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def test_full_response_with_granted_scope_narrower_than_requested() -> None:
    token = parse_token_response(
        body(
            need_patient_banner=True,
            smart_style_url="https://ehr/style.json",
            intent="reconcile",
            tenant="t1",
            **{"https://ehr.example.org/ext": 1, "__x": 2},
        ),
        requested_scope=REQUESTED,
        now=1000,
    )
    assert token.access_token == "at-1" and token.refresh_token == "rt-1"
    assert (
        token.expires_at == 4600
        and not token.expired(4599)
        and token.expired(4600)
        and token.expired(4570, 30)
    )
    assert token.requested_scope is REQUESTED
    assert token.scope.allows("r", "Goal", "patient") and not token.scope.allows("c", "Goal", "patient")
    assert REQUESTED.allows("c", "Goal", "patient")
    assert (token.patient, token.encounter) == ("123", "enc-9")
    assert token.need_patient_banner is True and token.smart_style_url == "https://ehr/style.json"
    assert (token.intent, token.tenant) == ("reconcile", "t1")
    assert token.extra == {"https://ehr.example.org/ext": 1, "__x": 2}
    assert "at-1" not in repr(token) and "rt-1" not in repr(token)


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
def test_token_type_is_case_insensitive(token_type: str) -> None:
    assert (
        parse_token_response(body(token_type=token_type), requested_scope=REQUESTED, now=0).token_type
        == "Bearer"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"access_token": None},
        {"access_token": ""},
        {"token_type": "MAC"},
        {"token_type": None},
        {"expires_in": -1},
        {"expires_in": "soon"},
        {"scope": 42},
        {"need_patient_banner": "yes"},
        {"fhirContext": "Patient/1"},
    ],
)
def test_invalid_responses(overrides: dict[str, Any]) -> None:
    with pytest.raises(TokenError):
        parse_token_response(body(**overrides), requested_scope=REQUESTED, now=0)


def test_missing_scope_means_the_requested_scope() -> None:
    token = parse_token_response(body(scope=None), requested_scope=REQUESTED, now=0)
    assert token.scope == REQUESTED


def test_fhir_context_2_0_string_form() -> None:
    token = parse_token_response(
        body(fhirContext=["DiagnosticReport/123", "https://other/fhir/List/9"]),
        requested_scope=REQUESTED,
        now=0,
    )
    assert token.fhir_context == (
        FhirContextItem(reference="DiagnosticReport/123"),
        FhirContextItem(reference="https://other/fhir/List/9"),
    )
    assert token.fhir_context[0].role == "launch"
    assert token.fhir_context[0].resource_type == "DiagnosticReport"
    assert token.fhir_context[1].resource_type is None


def test_fhir_context_2_1_and_2_2_object_form() -> None:
    identifier = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}
    token = parse_token_response(
        body(
            fhirContext=[
                {"reference": "Patient/456", "role": "https://example.org/role/referral-source"},
                {"canonical": "http://example.org/Questionnaire/phq9|1.0", "type": "Questionnaire"},
                {"identifier": identifier, "type": "Encounter"},
                {"role": "launch"},  # none of reference/canonical/identifier: dropped
                7,  # neither string nor object: dropped
            ]
        ),
        requested_scope=REQUESTED,
        now=0,
    )
    first, second, third = token.fhir_context
    assert first.reference == "Patient/456" and first.role == "https://example.org/role/referral-source"
    assert first.resource_type == "Patient"
    assert second.canonical == "http://example.org/Questionnaire/phq9|1.0" and second.role == "launch"
    assert second.resource_type == "Questionnaire"
    assert third.identifier == identifier and third.reference is None


def test_refresh_merge_rotates_or_keeps_the_refresh_token() -> None:
    original = parse_token_response(body(fhirContext=["Goal/1"]), requested_scope=REQUESTED, now=0)
    rotated = parse_token_response(
        {
            "access_token": "at-2",
            "token_type": "bearer",
            "expires_in": 300,
            "refresh_token": "rt-2",
            "scope": "openid",
        },
        requested_scope=original.scope,
        now=100,
    )
    merged = merge_refreshed(original, rotated)
    assert (merged.access_token, merged.refresh_token) == ("at-2", "rt-2")
    assert merged.patient == "123" and merged.fhir_context == original.fhir_context
    kept = merge_refreshed(
        original,
        parse_token_response(
            {"access_token": "at-3", "token_type": "Bearer", "expires_in": 300},
            requested_scope=original.scope,
            now=200,
        ),
    )
    assert (kept.access_token, kept.refresh_token) == ("at-3", "rt-1")
    assert kept.scope == original.scope


# --- id_token -------------------------------------------------------------------------------------


def claims(clock: Clock, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": "mecr",
        "exp": int(clock()) + 300,
        "iat": int(clock()),
        "nonce": "n-1",
        "fhirUser": "Practitioner/abc",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize("alg", ["RS256", "RS384", "ES256"])
def test_valid_id_token(issuer_keys: IssuerKeys, clock: Clock, alg: str) -> None:
    token = issuer_keys.sign(claims(clock), alg=alg)
    result = validate_id_token(
        token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock(), nonce="n-1"
    )
    assert result.subject == "user-1" and result.fhir_user == "Practitioner/abc"
    assert result.fhir_user_type == "Practitioner"
    assert (
        result.fhir_user_url("https://ehr.example.org/r4/fhir")
        == "https://ehr.example.org/r4/fhir/Practitioner/abc"
    )


def test_absolute_fhir_user_and_audience_list(issuer_keys: IssuerKeys, clock: Clock) -> None:
    token = issuer_keys.sign(
        claims(clock, aud=["mecr", "other"], azp="mecr", fhirUser="https://ehr/fhir/PractitionerRole/7")
    )
    result = validate_id_token(token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())
    assert result.fhir_user_url("https://x/fhir") == "https://ehr/fhir/PractitionerRole/7"
    assert result.fhir_user_type == "PractitionerRole"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["a", "b"]}, "aud"),
        ({"azp": "someone-else", "aud": ["mecr", "x"]}, "azp"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"nonce": "n-2"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "sub"),
        ({"iat": None}, "iat"),
    ],
)
def test_claim_failures(
    issuer_keys: IssuerKeys, clock: Clock, overrides: dict[str, Any], message: str
) -> None:
    token = issuer_keys.sign(claims(clock, **overrides))
    with pytest.raises(IdTokenError, match=message):
        validate_id_token(
            token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock(), nonce="n-1"
        )


def test_expiry_and_future_iat_with_leeway(issuer_keys: IssuerKeys, clock: Clock) -> None:
    token = issuer_keys.sign(claims(clock))
    validate_id_token(
        token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock() + 330
    )  # within leeway
    with pytest.raises(IdTokenError, match="expired"):
        validate_id_token(token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock() + 361)
    future = issuer_keys.sign(claims(clock, iat=int(clock()) + 600, exp=int(clock()) + 900))
    with pytest.raises(IdTokenError, match="future"):
        validate_id_token(future, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())


def test_tampered_and_wrongly_signed_tokens(issuer_keys: IssuerKeys, clock: Clock) -> None:
    token = issuer_keys.sign(claims(clock))
    header, payload, signature = token.split(".")
    import base64
    import json

    forged_claims = claims(clock, sub="admin")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("=")
    with pytest.raises(IdTokenError, match="signature"):
        validate_id_token(
            f"{header}.{forged_payload}.{signature}",
            issuer_keys.jwks(),
            issuer=ISSUER,
            client_id="mecr",
            now=clock(),
        )

    from joserfc.jwk import RSAKey

    stranger = RSAKey.generate_key(2048, auto_kid=True)
    impostor = issuer_keys.sign(claims(clock), alg="RS256", key=stranger, kid=issuer_keys.rs256.kid)
    with pytest.raises(IdTokenError, match="signature"):
        validate_id_token(impostor, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())
    unknown_kid = issuer_keys.sign(claims(clock), kid="not-there")
    with pytest.raises(IdTokenError, match="kid"):
        validate_id_token(unknown_kid, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())


def test_unsigned_and_hmac_tokens_are_refused(issuer_keys: IssuerKeys, clock: Clock) -> None:
    import base64
    import json

    def seg(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    none_token = f"{seg({'alg': 'none'})}.{seg(claims(clock))}."
    with pytest.raises(IdTokenError, match="alg"):
        validate_id_token(none_token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())
    hs_token = f"{seg({'alg': 'HS256'})}.{seg(claims(clock))}.abc"
    with pytest.raises(IdTokenError, match="alg"):
        validate_id_token(hs_token, issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())
    with pytest.raises(IdTokenError, match="compact"):
        validate_id_token("garbage", issuer_keys.jwks(), issuer=ISSUER, client_id="mecr", now=clock())
