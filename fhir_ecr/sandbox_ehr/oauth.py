"""The sandbox's SMART authorization server: discovery, the authorization request, the token endpoint.

Specs: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html (EHR and standalone launch),
conformance.md (discovery), backend-services.md (``client_credentials``), scopes-and-launch-context.md
(scopes, launch context, ``openid fhirUser``), RFC 6749 (OAuth 2.0), RFC 7636 (PKCE), RFC 9207 (``iss`` on the
redirect), RFC 9068 (JWT access tokens).

Strict where real EHRs are strict: ``client_id`` and ``redirect_uri`` must match a registration exactly (or no
redirect happens at all); ``aud`` must be this FHIR base; PKCE S256 is required; ``state`` is required and
returned; a launch token is single-use and bound to one client; codes are single-use, live 60 s, and a replay
revokes what they issued; ``redirect_uri`` and ``code_verifier`` are checked at the token endpoint; refresh
tokens rotate; a client authenticates exactly the way it was registered.

No web framework here: :mod:`.routes` parses HTTP and renders pages, this module decides.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from smart_launch import LaunchScope, ResourceScope, ScopeSet
from smart_launch.scopes import parse_scope

from ..auth import Principal
from .clients import ClientAuthenticator, SandboxClient
from .errors import OAuthError
from .grants import Grant, GrantStore, PendingAuthorization, new_token
from .keys import ACCESS_TOKEN_TYP, TokenSigner

__all__ = ["AuthorizeError", "AuthorizationServer", "grantable_scopes"]

ACCESS_TOKEN_LIFETIME = 3600  # app-launch.md: access tokens SHOULD live no longer than an hour
BACKEND_TOKEN_LIFETIME = 300  # backend-services.md: "SHOULD NOT exceed 300"
ID_TOKEN_LIFETIME = 3600
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # BASE64URL(SHA256) without padding

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]
SCOPES_SUPPORTED = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.rs",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
]


class AuthorizeError(OAuthError):
    """An authorization-request error. ``redirect`` False: the client or redirect URI cannot be trusted, so the
    user sees an error page and nothing is sent anywhere (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str, *, redirect: bool = True) -> None:
        super().__init__(error, description)
        self.redirect = redirect


def grantable_scopes(
    requested: ScopeSet, allowed: ScopeSet, *, user_kind: str, ehr_launch: bool
) -> tuple[str, ...]:
    """The requested scopes this client may be granted for this kind of user (the grant may be narrower).

    A resource scope must be covered by the client's registration; ``system/`` scopes are never granted to a
    user, and a patient gets ``patient/`` scopes only. ``launch`` is kept only in an EHR launch and
    ``launch/patient`` only in a standalone one (other ``launch/x`` contexts are not offered). Unrecognized
    tokens grant nothing and are dropped.
    """
    out: list[str] = []
    for token in requested:
        scope = parse_scope(token)
        if scope is None:
            continue
        if isinstance(scope, ResourceScope):
            if scope.context == "system" or (user_kind == "patient" and scope.context != "patient"):
                continue
            if allowed.covers(ScopeSet([token])):
                out.append(token)
        elif isinstance(scope, LaunchScope):
            # bare "launch" only in an EHR launch; "launch/patient" only in a standalone one
            offered = ehr_launch if scope.context is None else (scope.context == "patient" and not ehr_launch)
            if offered and token in allowed:
                out.append(token)
        elif token in allowed:
            out.append(token)
    return tuple(out)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def with_query(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


@dataclass(frozen=True)
class Person:
    """A coach or patient of the sandbox chart as the pages and tokens need them."""

    reference: str  # "Practitioner/coach-dana"
    display: str


class AuthorizationServer:
    """The sandbox's authorization server for the FHIR base ``{base_url}/fhir``.

    ``people`` looks a ``Practitioner/x`` or ``Patient/x`` reference up in the sandbox chart (None if absent).
    """

    def __init__(
        self,
        *,
        base_url: str,
        clients: list[SandboxClient],
        signer: TokenSigner,
        people: Callable[[str], Person | None],
        clock: Callable[[], float] = time.time,
        authenticator: ClientAuthenticator,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.fhir_base = f"{self.base_url}/fhir"
        self.issuer = self.base_url
        self.authorize_url = f"{self.base_url}/authorize"
        self.token_url = f"{self.base_url}/token"
        self.jwks_url = f"{self.base_url}/.well-known/jwks.json"
        self.style_url = f"{self.base_url}/smart-style.json"
        self.signer = signer
        self.people = people
        self.clock = clock
        self.grants = GrantStore(clock)
        self.clients = authenticator
        self._client_list = clients

    # -- discovery --------------------------------------------------------------------------------------------

    def smart_configuration(self) -> dict[str, Any]:
        """``{fhir_base}/.well-known/smart-configuration`` (conformance.md "Metadata"); absolute URLs only."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "capabilities": CAPABILITIES,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def openid_configuration(self) -> dict[str, Any]:
        """``{issuer}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §3)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "fhirUser", "profile"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "name"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }

    # -- EHR launch from the front page ----------------------------------------------------------------------

    def launch_url(
        self, client_id: str, practitioner_id: str | None, patient_id: str, *, framed: bool = False
    ) -> str:
        """Where the front page sends the browser: ``{launch_url}?iss={fhir_base}&launch={opaque}``.

        ``practitioner_id`` None: a patient launches the app from the patient portal (an EHR launch whose user,
        ``fhirUser``, is the Patient). ``framed``: the EHR shows the app in a frame of its own page."""
        client = self.clients.get(client_id)
        if client is None or not client.launch_url:
            raise OAuthError("invalid_request", "that app has no registered launch URL")
        if self.people(f"Patient/{patient_id}") is None or (
            practitioner_id is not None and self.people(f"Practitioner/{practitioner_id}") is None
        ):
            raise OAuthError("invalid_request", "pick a coach and a patient of this EHR")
        launch = self.grants.add_launch(client_id, practitioner_id, patient_id, framed=framed)
        return with_query(client.launch_url, {"iss": self.fhir_base, "launch": launch})

    # -- the authorization request ----------------------------------------------------------------------------

    def begin(self, params: Mapping[str, str]) -> tuple[str, PendingAuthorization, SandboxClient]:
        """Validate an authorization request; returns the transaction id for the decision page.

        Order (RFC 6749 §4.1.2.1): without a registered ``client_id`` and one of its exact ``redirect_uri``
        values nothing is redirected; everything else is reported to the app on its redirect URI.
        """
        client = self.clients.get(params.get("client_id"))
        if client is None:
            raise AuthorizeError("invalid_request", "unknown client_id", redirect=False)
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            raise AuthorizeError(
                "invalid_request", "redirect_uri is not registered for this client", redirect=False
            )
        if params.get("response_type") != "code":
            raise AuthorizeError("unsupported_response_type", "response_type must be 'code'")
        state = params.get("state")
        if not state:
            raise AuthorizeError("invalid_request", "state is required")
        aud = params.get("aud")
        if aud is None or aud.rstrip("/") != self.fhir_base:
            # app-launch.md: "aud ... the EHR SHALL confirm that this value matches its FHIR base URL".
            raise AuthorizeError("invalid_request", f"aud must be this EHR's FHIR base URL {self.fhir_base}")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if not challenge or not method:
            raise AuthorizeError(
                "invalid_request", "PKCE is required: send code_challenge and code_challenge_method"
            )
        if method != "S256":
            raise AuthorizeError("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.match(challenge):
            raise AuthorizeError("invalid_request", "code_challenge is not a BASE64URL SHA-256 value")
        requested = ScopeSet.parse(params.get("scope"))
        if not len(requested):
            raise AuthorizeError("invalid_scope", "scope is required")

        launch_value = params.get("launch")
        launch = None
        if launch_value is not None:
            launch = self.grants.take_launch(launch_value)
            if launch is None or launch.client_id != client.client_id:
                raise AuthorizeError(
                    "invalid_request", "launch is unknown, expired, already used or not for this app"
                )
            if not requested.ehr_launch:
                raise AuthorizeError("invalid_scope", "an EHR launch must request the 'launch' scope")
        elif requested.ehr_launch:
            raise AuthorizeError(
                "invalid_request", "the 'launch' scope needs the launch parameter of an EHR launch"
            )
        kind: Literal["ehr", "standalone"] = "ehr" if launch else "standalone"
        portal_user = launch is None or launch.practitioner_id is None
        grantable = grantable_scopes(
            requested,
            client.allowed_scope,
            user_kind="patient" if portal_user else "practitioner",
            ehr_launch=bool(launch),
        )
        if not grantable:
            raise AuthorizeError("invalid_scope", "none of the requested scopes can be granted to this app")
        pending = PendingAuthorization(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=challenge,
            requested_scope=str(requested),
            grantable=grantable,
            kind=kind,
            expires_at=self.clock() + 600,
            nonce=params.get("nonce") or None,
            launch=launch,
        )
        return self.grants.add_pending(pending), pending, client

    def error_redirect(self, redirect_uri: str, error: OAuthError, state: str | None) -> str:
        params = {"error": error.error, "error_description": error.description}
        if state:
            params["state"] = state
        params["iss"] = self.issuer
        return with_query(redirect_uri, params)

    def decide(
        self, tx: str, *, allow: bool, patient_id: str | None = None, scopes: list[str] | None = None
    ) -> str:
        """The user's decision on the sandbox page; returns the redirect to the app (code or error)."""
        pending = self.grants.take_pending(tx)
        if pending is None:
            raise AuthorizeError(
                "invalid_request",
                "this authorization request expired or was already answered",
                redirect=False,
            )
        if not allow:
            return self.error_redirect(
                pending.redirect_uri, OAuthError("access_denied", "the user denied access"), pending.state
            )
        if pending.launch is not None:
            user = self.people(pending.launch.user)
            context_patient: str | None = pending.launch.patient_id
            granted = pending.grantable
            user_kind: Literal["practitioner", "patient"] = (
                "practitioner" if pending.launch.practitioner_id else "patient"
            )
        else:
            user = self.people(f"Patient/{patient_id}") if patient_id else None
            if user is None:
                raise AuthorizeError("invalid_request", "pick the patient who is signing in", redirect=False)
            # The user may untick scopes; never add any.
            granted = tuple(s for s in pending.grantable if scopes is None or s in scopes)
            set_ = ScopeSet(granted)
            wants_context = "patient" in set_.launch_contexts or any(
                s.context == "patient" for s in set_.resource_scopes
            )
            context_patient = patient_id if wants_context else None
            user_kind = "patient"
        if user is None:
            raise AuthorizeError(
                "invalid_request", "the launch's user is no longer in the EHR", redirect=False
            )
        fhir_context: tuple[dict[str, Any], ...] = ()
        if pending.launch is not None and pending.launch.practitioner_id:
            fhir_context = (
                {
                    "reference": f"PractitionerRole/role-{pending.launch.practitioner_id}",
                    "type": "PractitionerRole",
                },
            )
        grant = Grant(
            gid=new_token(),
            client_id=pending.client_id,
            scope=" ".join(granted),
            user_kind=user_kind,
            user_id=user.reference,
            patient_id=context_patient,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            nonce=pending.nonce,
            display=user.display,
            fhir_context=fhir_context,
            framed=pending.launch is not None and pending.launch.framed,
        )
        code = self.grants.add_code(grant)
        return with_query(pending.redirect_uri, {"code": code, "state": pending.state, "iss": self.issuer})

    # -- the token endpoint -----------------------------------------------------------------------------------

    async def token(self, headers: Mapping[str, str], form: Mapping[str, str]) -> dict[str, Any]:
        """Answer a token request (form already checked for duplicates), or raise :class:`OAuthError`."""
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        client = await self.clients.authenticate(headers, form, token_url=self.token_url)
        if grant_type == "authorization_code":
            return self._authorization_code(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form)
        return self._client_credentials(client, form)

    def _authorization_code(self, client: SandboxClient, form: Mapping[str, str]) -> dict[str, Any]:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        grant = self.grants.redeem_code(code)
        if grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if not verifier or not _VERIFIER.match(verifier):
            raise OAuthError("invalid_grant", "code_verifier is missing or malformed (RFC 7636)")
        if not hmac.compare_digest(_s256(verifier), grant.code_challenge or ""):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return self._issue(grant, nonce=grant.nonce, refresh=True)

    def _refresh(self, client: SandboxClient, form: Mapping[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        grant = self.grants.spend_refresh(token, client.client_id)
        access_grant = grant
        if form.get("scope"):
            narrower = ScopeSet.parse(form["scope"])
            if not ScopeSet.parse(grant.scope).covers(narrower):
                raise OAuthError("invalid_scope", "a refresh may only narrow the granted scope")
            access_grant = dataclasses.replace(grant, scope=str(narrower))
        # RFC 6749 §6: the new refresh token keeps the scope of the old one; only this access token narrows.
        body = self._issue(access_grant, nonce=None, refresh=False)
        body["refresh_token"] = self.grants.add_refresh(grant)
        return body

    def _client_credentials(self, client: SandboxClient, form: Mapping[str, str]) -> dict[str, Any]:
        if client.auth_method != "private_key_jwt":
            raise OAuthError("unauthorized_client", "client_credentials needs private_key_jwt authentication")
        requested = ScopeSet.parse(form.get("scope"))
        allowed = client.allowed_scope
        granted = [
            s.raw
            for s in requested.resource_scopes
            if s.context == "system" and allowed.covers(ScopeSet([s.raw]))
        ]
        if not granted:
            raise OAuthError("invalid_scope", "request system/ scopes this client is registered for")
        grant = Grant(
            gid=new_token(),
            client_id=client.client_id,
            scope=" ".join(granted),
            user_kind="system",
            user_id=f"client:{client.client_id}",
            display=client.display_name,
        )
        return self._issue(grant, nonce=None, refresh=False)

    def _issue(self, grant: Grant, *, nonce: str | None, refresh: bool) -> dict[str, Any]:
        now = int(self.clock())
        scopes = ScopeSet.parse(grant.scope)
        system = grant.user_kind == "system"
        lifetime = BACKEND_TOKEN_LIFETIME if system else ACCESS_TOKEN_LIFETIME
        principal_patient = grant.patient_id
        if grant.user_kind == "patient":
            principal_patient = grant.user_id.split("/", 1)[1]
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.fhir_base,
            "sub": grant.user_id,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "kind": grant.user_kind,
            "gid": grant.gid,
            "iat": now,
            "exp": now + lifetime,
            "jti": new_token(),
            "name": grant.display,
        }
        if principal_patient:
            claims["patient"] = principal_patient
        if not system:
            claims["fhirUser"] = grant.user_id
        body: dict[str, Any] = {
            "access_token": self.signer.sign(claims, typ=ACCESS_TOKEN_TYP),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": grant.scope,
        }
        if system:
            return body
        if grant.patient_id:
            body["patient"] = grant.patient_id
        if grant.fhir_context:
            body["fhirContext"] = [dict(item) for item in grant.fhir_context]
        body["need_patient_banner"] = not grant.framed  # in a frame, the EHR's own page shows the patient
        body["smart_style_url"] = self.style_url
        if scopes.openid:
            body["id_token"] = self._id_token(grant, scopes, nonce, now)
        if refresh and (scopes.offline_access or scopes.online_access):
            body["refresh_token"] = self.grants.add_refresh(grant)
        return body

    def _id_token(self, grant: Grant, scopes: ScopeSet, nonce: str | None, now: int) -> str:
        """OIDC Core §2 claims; ``fhirUser`` is the user's absolute FHIR URL (scopes-and-launch-context.md)."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.user_id,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME,
            "auth_time": now,
        }
        if scopes.fhir_user or "profile" in scopes:
            claims["fhirUser"] = f"{self.fhir_base}/{grant.user_id}"
            claims["name"] = grant.display
        if nonce:
            claims["nonce"] = nonce
        return self.signer.sign(claims)

    # -- the resource server's view of a token ----------------------------------------------------------------

    def principal(self, access_token: str) -> Principal:
        """The :class:`~fhir_ecr.auth.Principal` of a valid access token; :class:`~.keys.InvalidJwt` otherwise."""
        from .keys import InvalidJwt

        claims = self.signer.verify_access_token(
            access_token, issuer=self.issuer, audience=self.fhir_base, now=self.clock()
        )
        if self.grants.is_revoked(claims.get("gid")):
            raise InvalidJwt("the token was revoked")
        kind = claims.get("kind")
        if kind not in ("practitioner", "patient", "system"):
            raise InvalidJwt("the token has no user kind")
        return Principal(
            kind=kind,
            subject=str(claims.get("sub")),
            scopes=ScopeSet.parse(claims.get("scope")),
            patient_id=claims.get("patient"),
            fhir_user=claims.get("fhirUser"),
            client_id=claims.get("client_id"),
            display=str(claims.get("name") or ""),
        )
