"""SMART discovery: ``GET {fhir_base}/.well-known/smart-configuration``.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/conformance.html

``parse_smart_configuration`` is a pure function (document in, :class:`SmartConfiguration` out);
``fetch_smart_configuration`` adds the one HTTP call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from . import _http
from .errors import ConfigurationError, DiscoveryError

__all__ = [
    "SmartConfiguration",
    "discovery_url",
    "fetch_smart_configuration",
    "parse_smart_configuration",
    "resolve_endpoint",
]

WELL_KNOWN_PATH = "/.well-known/smart-configuration"

#: Endpoint fields that hold URLs and are resolved against the FHIR base when relative.
_URL_FIELDS = (
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "management_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "user_access_brand_bundle",
)

Purpose = Literal["launch", "backend"]


def discovery_url(fhir_base: str) -> str:
    """The discovery URL for ``fhir_base``.

    conformance.md: "the URL is constructed by appending ``/.well-known/smart-configuration`` to the FHIR
    Base URL" -- appended, so a base with a path (``https://ehr/r4/fhir``) keeps it.
    """
    return fhir_base.rstrip("/") + WELL_KNOWN_PATH


def resolve_endpoint(fhir_base: str, url: str) -> str:
    """Resolve a (possibly relative) endpoint URL against the FHIR base.

    conformance.md: "Clients encountering relative endpoint URLs ... SHOULD evaluate them relative to the
    FHIR Server Base URL following the process described in RFC1808". The base is treated as a
    directory (as FHIR does for relative references), so ``auth/token`` under ``https://ehr/fhir`` is
    ``https://ehr/fhir/auth/token`` while ``/auth/token`` is ``https://ehr/auth/token``.
    """
    directory = httpx.URL(fhir_base.rstrip("/") + "/")
    return str(directory.join(url))


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    """A parsed ``.well-known/smart-configuration`` document, endpoints absolute.

    ``raw`` keeps the document as served, so it can be stored and parsed again later.
    """

    fhir_base: str
    token_endpoint: str
    capabilities: frozenset[str]
    grant_types_supported: frozenset[str]
    code_challenge_methods_supported: frozenset[str]
    authorization_endpoint: str | None = None
    issuer: str | None = None
    jwks_uri: str | None = None
    token_endpoint_auth_methods_supported: frozenset[str] | None = None
    token_endpoint_auth_signing_alg_values_supported: frozenset[str] | None = None
    scopes_supported: frozenset[str] | None = None
    response_types_supported: frozenset[str] | None = None
    registration_endpoint: str | None = None
    management_endpoint: str | None = None
    introspection_endpoint: str | None = None
    revocation_endpoint: str | None = None
    user_access_brand_bundle: str | None = None
    user_access_brand_identifier: Any = None
    authorization_response_iss_parameter_supported: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def supports(self, capability: str) -> bool:
        """Whether the server advertises ``capability`` (e.g. ``"launch-ehr"``, ``"permission-v2"``)."""
        return capability in self.capabilities

    def supports_auth_method(self, method: str) -> bool:
        """Whether ``method`` may be used at the token endpoint (unknown when the server is silent)."""
        methods = self.token_endpoint_auth_methods_supported
        return methods is None or method in methods


def _string_set(doc: Mapping[str, Any], name: str, *, required: bool) -> frozenset[str] | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise DiscoveryError(f"smart-configuration lacks the required field {name!r}")
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryError(f"smart-configuration field {name!r} must be an array of strings")
    return frozenset(value)


def _url(doc: Mapping[str, Any], name: str, fhir_base: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"smart-configuration field {name!r} must be a non-empty string URL")
    try:
        return resolve_endpoint(fhir_base, value)
    except httpx.InvalidURL as exc:
        raise DiscoveryError(f"smart-configuration field {name!r} is not a URL: {value!r}") from exc


def parse_smart_configuration(
    doc: Mapping[str, Any], fhir_base: str, *, purpose: Purpose = "launch"
) -> SmartConfiguration:
    """Validate a smart-configuration document and return it typed, with absolute endpoints.

    Checks (conformance.md "Metadata"):

    - ``token_endpoint``, ``capabilities`` and ``grant_types_supported`` are REQUIRED.
    - ``code_challenge_methods_supported`` is REQUIRED, "SHALL include S256" and "SHALL NOT include
      plain"; our policy is to refuse such a server for any user launch (``purpose="launch"``). A
      Backend Services client never uses PKCE, so for ``purpose="backend"`` the field is not required
      (real servers, e.g. sekmet-fhir, omit it) but ``plain`` is still refused when listed.
    - ``authorization_endpoint`` is required when ``launch-ehr`` or ``launch-standalone`` is advertised,
      and always for a user launch.
    - ``issuer`` and ``jwks_uri`` are required when ``sso-openid-connect`` is advertised.
    - A launch needs ``authorization_code`` in ``grant_types_supported``; a backend client needs
      ``client_credentials``.
    """
    _http_base_check(fhir_base)
    capabilities = _string_set(doc, "capabilities", required=True) or frozenset()
    grants = _string_set(doc, "grant_types_supported", required=True) or frozenset()
    pkce = _string_set(doc, "code_challenge_methods_supported", required=purpose == "launch")
    if pkce is not None and "plain" in pkce:
        raise DiscoveryError("server offers PKCE 'plain'; SMART 2.x servers SHALL NOT (S256 only)")
    if purpose == "launch" and (pkce is None or "S256" not in pkce):
        raise DiscoveryError("server does not support PKCE S256, which SMART App Launch 2.x requires")

    urls = {name: _url(doc, name, fhir_base) for name in _URL_FIELDS}
    token_endpoint = urls["token_endpoint"]
    if token_endpoint is None:
        raise DiscoveryError("smart-configuration lacks the required field 'token_endpoint'")
    launches = {"launch-ehr", "launch-standalone"} & capabilities
    if (launches or purpose == "launch") and urls["authorization_endpoint"] is None:
        raise DiscoveryError("smart-configuration lacks 'authorization_endpoint', required for a launch")
    if "sso-openid-connect" in capabilities and (urls["issuer"] is None or urls["jwks_uri"] is None):
        raise DiscoveryError("'sso-openid-connect' is advertised without 'issuer' and 'jwks_uri'")
    needed_grant = "authorization_code" if purpose == "launch" else "client_credentials"
    if needed_grant not in grants:
        raise DiscoveryError(f"server does not list the {needed_grant!r} grant in 'grant_types_supported'")

    return SmartConfiguration(
        fhir_base=fhir_base,
        token_endpoint=token_endpoint,
        capabilities=capabilities,
        grant_types_supported=grants,
        code_challenge_methods_supported=pkce or frozenset(),
        authorization_endpoint=urls["authorization_endpoint"],
        issuer=urls["issuer"],
        jwks_uri=urls["jwks_uri"],
        token_endpoint_auth_methods_supported=_string_set(
            doc, "token_endpoint_auth_methods_supported", required=False
        ),
        token_endpoint_auth_signing_alg_values_supported=_string_set(
            doc, "token_endpoint_auth_signing_alg_values_supported", required=False
        ),
        scopes_supported=_string_set(doc, "scopes_supported", required=False),
        response_types_supported=_string_set(doc, "response_types_supported", required=False),
        registration_endpoint=urls["registration_endpoint"],
        management_endpoint=urls["management_endpoint"],
        introspection_endpoint=urls["introspection_endpoint"],
        revocation_endpoint=urls["revocation_endpoint"],
        user_access_brand_bundle=urls["user_access_brand_bundle"],
        user_access_brand_identifier=doc.get("user_access_brand_identifier"),
        authorization_response_iss_parameter_supported=(
            doc.get("authorization_response_iss_parameter_supported") is True
        ),
        raw=dict(doc),
    )


def _http_base_check(fhir_base: str) -> None:
    try:
        url = httpx.URL(fhir_base)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"FHIR base {fhir_base!r} is not a valid URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"FHIR base {fhir_base!r} must be an absolute http(s) URL")


async def fetch_smart_configuration(
    http: httpx.AsyncClient,
    fhir_base: str,
    *,
    purpose: Purpose = "launch",
    allow_insecure_http: bool = False,
) -> SmartConfiguration:
    """Fetch and validate ``{fhir_base}/.well-known/smart-configuration``.

    Sends ``Accept: application/json`` (conformance.md) and parses the body as JSON whatever its
    Content-Type. Raises :class:`DiscoveryError`, or :class:`EhrUnavailableError` when the EHR is down.
    """
    url = discovery_url(fhir_base)
    _http.ensure_secure_url(url, allow_insecure_http=allow_insecure_http, what="FHIR base")
    response = await _http.get(http, url)
    if response.status_code != 200:
        raise DiscoveryError(f"GET {url} answered HTTP {response.status_code}; expected 200")
    doc = _http.parse_json_object(response)
    if doc is None:
        raise DiscoveryError(f"GET {url} did not return a JSON object")
    config = parse_smart_configuration(doc, fhir_base, purpose=purpose)
    for name in ("token_endpoint", "authorization_endpoint", "jwks_uri"):
        endpoint = getattr(config, name)
        if endpoint is not None:
            try:
                _http.ensure_secure_url(endpoint, allow_insecure_http=allow_insecure_http, what=name)
            except ConfigurationError as exc:
                raise DiscoveryError(str(exc)) from exc
    return config
