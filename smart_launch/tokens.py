"""Token responses: parse what the token endpoint returns, including the SMART launch context.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#response-5 and
https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token

``parse_token_response`` is pure: a decoded JSON body in, a :class:`TokenResponse` out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import TokenError
from .scopes import ScopeSet

__all__ = [
    "FhirContextItem",
    "TokenResponse",
    "merge_refreshed",
    "parse_fhir_context",
    "parse_token_response",
]

logger = logging.getLogger(__name__)

#: Keys with a meaning of their own; everything else lands in ``TokenResponse.extra``.
_KNOWN = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "refresh_token",
        "id_token",
        "patient",
        "encounter",
        "fhirContext",
        "need_patient_banner",
        "smart_style_url",
        "intent",
        "tenant",
        "authorization_details",
    }
)


@dataclass(frozen=True, slots=True)
class FhirContextItem:
    """One ``fhirContext`` entry, in the 2.2 object form whatever form the server sent.

    SMART 2.0 sent strings (``"DiagnosticReport/123"``); 2.1 objects with ``reference`` and ``role``;
    2.2 added ``canonical``, ``identifier`` and ``type``. "The absence of a role property is semantically
    equivalent to a role of ``launch``", so ``role`` defaults to ``"launch"``.
    """

    reference: str | None = None
    canonical: str | None = None
    identifier: Mapping[str, Any] | None = None
    type: str | None = None
    role: str = "launch"

    @property
    def resource_type(self) -> str | None:
        """``type``, or the type named by a relative ``Type/id`` reference."""
        if self.type:
            return self.type
        if self.reference and "/" in self.reference and "://" not in self.reference:
            head = self.reference.split("/", 1)[0]
            return head if head[:1].isupper() else None
        return None


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenError(f"token response field {name!r} must be a string", error="invalid_response")
    return value


def parse_fhir_context(value: Any) -> tuple[FhirContextItem, ...]:
    """Normalise ``fhirContext`` (2.0 strings or 2.1+ objects) to :class:`FhirContextItem` objects.

    An object needs at least one of ``reference``, ``canonical`` or ``identifier``; entries that have
    none, or are neither strings nor objects, are dropped with a warning rather than failing the login.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TokenError("token response field 'fhirContext' must be an array", error="invalid_response")
    items: list[FhirContextItem] = []
    for entry in value:
        if isinstance(entry, str) and entry:
            items.append(FhirContextItem(reference=entry))
            continue
        if isinstance(entry, Mapping):
            reference, canonical = entry.get("reference"), entry.get("canonical")
            identifier, kind, role = entry.get("identifier"), entry.get("type"), entry.get("role")
            if (
                (reference is None or isinstance(reference, str))
                and (canonical is None or isinstance(canonical, str))
                and (identifier is None or isinstance(identifier, Mapping))
                and (kind is None or isinstance(kind, str))
                and (role is None or isinstance(role, str))
                and (reference or canonical or identifier)
            ):
                items.append(
                    FhirContextItem(
                        reference=reference,
                        canonical=canonical,
                        identifier=dict(identifier) if identifier else None,
                        type=kind,
                        role=role or "launch",
                    )
                )
                continue
        # the entry's type and keys only: its values can be identifiers of the patient (no PHI in logs)
        logger.warning(
            "ignoring malformed fhirContext entry (%s with keys %s)",
            type(entry).__name__,
            sorted(map(str, entry))[:10] if isinstance(entry, Mapping) else "-",
        )
    return tuple(items)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response.

    ``scope`` is the *granted* scope, which "may differ from the requested one"; ``requested_scope`` keeps
    what we asked for. ``expires_at`` is ``issued_at + expires_in`` in the caller's clock (epoch seconds).
    """

    access_token: str = field(repr=False)
    token_type: str
    scope: ScopeSet
    requested_scope: ScopeSet
    issued_at: float
    expires_in: int | None = None
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    patient: str | None = None
    encounter: str | None = None
    fhir_context: tuple[FhirContextItem, ...] = ()
    need_patient_banner: bool | None = None
    smart_style_url: str | None = None
    intent: str | None = None
    tenant: str | None = None
    authorization_details: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def expires_at(self) -> float | None:
        return None if self.expires_in is None else self.issued_at + self.expires_in

    def expired(self, now: float, margin: float = 0.0) -> bool:
        """Whether the access token is (or within ``margin`` seconds will be) past its lifetime."""
        expires_at = self.expires_at
        return expires_at is not None and now >= expires_at - margin


def parse_token_response(body: Mapping[str, Any], *, requested_scope: ScopeSet, now: float) -> TokenResponse:
    """Validate and type a token response body (app-launch.md "Response", RFC 6749 §5.1).

    - ``access_token`` is required; ``token_type`` is required and must be ``Bearer``, compared
      case-insensitively (the IG's refresh and backend examples say ``bearer``).
    - ``scope`` is required by SMART; a server that omits it is read per RFC 6749 §5.1 ("if identical to
      the scope requested") as granting the requested scope.
    - ``expires_in`` must be a non-negative integer when present.
    """
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenError("token response has no 'access_token'", error="invalid_response")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(f"token_type must be 'Bearer', got {token_type!r}", error="invalid_response")

    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)  # some servers quote it
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 0
    ):
        raise TokenError(
            f"expires_in must be a non-negative integer, got {expires_in!r}", error="invalid_response"
        )

    scope_text = _optional_str(body, "scope")
    granted = requested_scope if scope_text is None else ScopeSet.parse(scope_text)

    banner = body.get("need_patient_banner")
    if banner is not None and not isinstance(banner, bool):
        raise TokenError("need_patient_banner must be a boolean", error="invalid_response")

    return TokenResponse(
        access_token=access_token,
        token_type="Bearer",
        scope=granted,
        requested_scope=requested_scope,
        issued_at=now,
        expires_in=expires_in,
        refresh_token=_optional_str(body, "refresh_token"),
        id_token=_optional_str(body, "id_token"),
        patient=_optional_str(body, "patient"),
        encounter=_optional_str(body, "encounter"),
        fhir_context=parse_fhir_context(body.get("fhirContext")),
        need_patient_banner=banner,
        smart_style_url=_optional_str(body, "smart_style_url"),
        intent=_optional_str(body, "intent"),
        tenant=_optional_str(body, "tenant"),
        authorization_details=body.get("authorization_details"),
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )


def merge_refreshed(previous: TokenResponse, refreshed: TokenResponse) -> TokenResponse:
    """Combine a refresh response with the token it replaces.

    best-practices.md / app-launch.md "Refresh": when a new ``refresh_token`` is returned it replaces the
    old one (never reuse it); when the server omits it the old one stays valid and is kept. Launch context
    (patient, encounter, fhirContext, banner, style, intent, tenant) belongs to the launch, so a refresh
    response that omits it keeps the original context.
    """
    return replace(
        refreshed,
        refresh_token=refreshed.refresh_token or previous.refresh_token,
        patient=refreshed.patient if refreshed.patient is not None else previous.patient,
        encounter=refreshed.encounter if refreshed.encounter is not None else previous.encounter,
        fhir_context=refreshed.fhir_context or previous.fhir_context,
        need_patient_banner=(
            refreshed.need_patient_banner
            if refreshed.need_patient_banner is not None
            else previous.need_patient_banner
        ),
        smart_style_url=refreshed.smart_style_url or previous.smart_style_url,
        intent=refreshed.intent or previous.intent,
        tenant=refreshed.tenant or previous.tenant,
    )
