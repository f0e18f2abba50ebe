"""The EHR registry (which EHRs may launch mECR) and the API-client registry (who may call mECR's API as a
backend service). Managed with ``mecr ehr add|list|remove`` and ``mecr client add|list|remove``."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smart_launch import (
    ClientKeySet,
    ClientRegistration,
    ClientSecretBasic,
    PrivateKeyJwt,
    PublicClient,
    ScopeSet,
)
from smart_launch.errors import ScopeError

__all__ = [
    "AUTH_METHODS",
    "EhrRecord",
    "RegistryError",
    "add_ehr",
    "add_client",
    "add_client_with_new_key",
    "default_key_file",
    "ehr_registration",
    "PATIENT_APP_SCOPES",
    "COACH_APP_SCOPES",
]

AUTH_METHODS = ("none", "client_secret_basic", "private_key_jwt")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

#: What a coach's session may do in mECR's own store: they are on the practice's care team.
COACH_APP_SCOPES = "user/*.cruds"
#: What a patient's session may do in mECR's own store (always within their own compartment): read everything
#: of theirs; record check-ins, wearable data, goals they set, messages and their settings.
#: A patient also accepts or declines a referral the coach prepared (records their Consent, moves the referral
#: Task: the workflow lets a patient do only that; docs/referrals.md).
PATIENT_APP_SCOPES = (
    "patient/*.rs patient/Observation.cu patient/Device.cu patient/Communication.cu "
    "patient/Goal.cu patient/QuestionnaireResponse.cu patient/Patient.u patient/Consent.c "
    "patient/Task.u"
)


class RegistryError(ValueError):
    """A registration is invalid (shown to the operator as a CLI error)."""


@dataclass(frozen=True)
class EhrRecord:
    id: str
    iss: str
    client_id: str
    auth_method: str
    launch_scope: str
    patient_scope: str
    name: str
    has_secret: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EhrRecord:
        return cls(
            row["id"],
            row["iss"],
            row["client_id"],
            row["auth_method"],
            row["launch_scope"],
            row["patient_scope"],
            row["name"],
            bool(row.get("secret_enc")),
        )


def _check_scope(text: str, what: str) -> str:
    try:
        ScopeSet.parse(text, strict=True)
    except ScopeError as exc:
        raise RegistryError(f"{what}: {exc}") from exc
    return " ".join(text.split())


def add_ehr(
    services: Any,
    *,
    ehr_id: str,
    iss: str,
    client_id: str,
    auth_method: str = "none",
    secret: str | None = None,
    launch_scope: str | None = None,
    patient_scope: str | None = None,
    name: str | None = None,
    replace: bool = False,
) -> EhrRecord:
    """Register an EHR (validated); ``replace`` updates an existing registration with the same id."""
    if not _ID.match(ehr_id):
        raise RegistryError("the EHR id must be 1-64 lowercase letters, digits, '-' or '_'")
    iss = iss.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", iss):
        raise RegistryError(f"iss must be the EHR's absolute FHIR base URL, not {iss!r}")
    if iss.startswith("http://") and services.settings.environment == "production":
        raise RegistryError("iss must be https in production")
    if auth_method not in AUTH_METHODS:
        raise RegistryError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    if auth_method == "client_secret_basic" and not secret:
        raise RegistryError("client_secret_basic needs --secret (or --secret-file)")
    if auth_method != "client_secret_basic" and secret:
        raise RegistryError("a secret only goes with --auth client_secret_basic")
    values = {
        "iss": iss,
        "client_id": client_id,
        "auth_method": auth_method,
        "secret_enc": services.vault.encrypt(secret) if secret else None,
        "launch_scope": _check_scope(launch_scope or services.settings.launch_scope, "launch scope"),
        "patient_scope": _check_scope(patient_scope or services.settings.patient_scope, "patient scope"),
        "name": name or ehr_id,
    }
    store = services.auth_store
    existing = store.ehr(ehr_id)
    other = store.ehr_by_iss(iss)
    if other is not None and other["id"] != ehr_id:
        raise RegistryError(f"{iss} is already registered as {other['id']!r}")
    if existing is not None:
        if not replace:
            raise RegistryError(f"an EHR with id {ehr_id!r} is registered already (use --replace)")
        store.update_ehr(ehr_id, **values)
    else:
        store.add_ehr(id=ehr_id, **values)
    return EhrRecord.from_row(store.ehr(ehr_id))


def ehr_registration(services: Any, row: dict[str, Any]) -> ClientRegistration:
    """The smart_launch ClientRegistration for a registry row (secret decrypted, mECR's keys for JWT)."""
    method = row["auth_method"]
    if method == "client_secret_basic":
        auth: Any = ClientSecretBasic(row["client_id"], services.vault.decrypt(row["secret_enc"]))
    elif method == "private_key_jwt":
        auth = PrivateKeyJwt(row["client_id"], services.vault.signing_keys)
    else:
        auth = PublicClient(row["client_id"])
    return ClientRegistration(
        iss=row["iss"], auth=auth, redirect_uris=(f"{services.settings.base_url}/smart/callback",)
    )


def add_client(
    services: Any,
    *,
    client_id: str,
    scope: str,
    jwks_url: str | None = None,
    jwks: dict[str, Any] | None = None,
    name: str | None = None,
    organization: str | None = None,
) -> dict[str, Any]:
    """Register a backend-services client of mECR's API (``system/`` scopes only; keys by URL or inline).
    ``organization``: the community organisation it acts for (an ``Organization`` id; docs/referrals.md)."""
    if organization is not None and not re.match(r"^[A-Za-z0-9\-.]{1,64}$", organization):
        raise RegistryError("--organization must be an Organization id (1-64 letters, digits, '-' or '.')")
    if not client_id or len(client_id) > 256:
        raise RegistryError("client id must be 1-256 characters")
    if bool(jwks_url) == bool(jwks):
        raise RegistryError("give exactly one of --jwks-url or --jwks-file")
    scopes = ScopeSet.parse(_check_scope(scope, "scope"))
    if not scopes.resource_scopes or any(s.context != "system" for s in scopes.resource_scopes):
        raise RegistryError("a backend-services client gets system/ scopes only, e.g. system/*.rs")
    if jwks is not None:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys:
            raise RegistryError("the JWKS must be a JSON object with a non-empty 'keys' list")
        if any("d" in k for k in keys if isinstance(k, dict)):
            raise RegistryError("that JWKS holds private keys; register the public keys only")
    if jwks_url and not re.match(r"^https://|^http://(127\.0\.0\.1|localhost)[:/]", jwks_url):
        raise RegistryError("--jwks-url must be https (or http on localhost)")
    store = services.auth_store
    if store.client(client_id) is not None:
        raise RegistryError(f"client {client_id!r} is registered already")
    store.add_client(
        client_id=client_id,
        name=name or client_id,
        jwks_url=jwks_url,
        jwks=json.dumps(jwks) if jwks else None,
        scope=str(scopes),
        organization=organization,
    )
    return store.client(client_id)  # type: ignore[no-any-return]


def default_key_file(client_id: str) -> Path:
    """Where ``--generate-key`` writes a client's private key by default: ``./<client id>.private-jwks.json``."""
    return Path(f"{re.sub(r'[^A-Za-z0-9._-]', '_', client_id)}.private-jwks.json")


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600), refusing to replace any existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RegistryError(
            f"{path} exists; refusing to overwrite a key file (choose another --key-file)"
        ) from None
    except OSError as exc:
        raise RegistryError(f"{path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise RegistryError(f"{path}: {exc.strerror}") from None


def add_client_with_new_key(
    services: Any,
    *,
    client_id: str,
    scope: str,
    key_file: Path,
    name: str | None = None,
    organization: str | None = None,
) -> dict[str, Any]:
    """Register a client with a fresh key pair (RS384 and ES384): the private JWK set goes to ``key_file``
    (created 0600, never overwritten), mECR keeps only the public one. Nothing is left behind on failure."""
    if services.auth_store.client(client_id) is not None:
        raise RegistryError(f"client {client_id!r} is registered already")
    keys = ClientKeySet.generate()
    _write_private(key_file, json.dumps(keys.private_jwks(), indent=1) + "\n")
    try:
        return add_client(
            services,
            client_id=client_id,
            scope=scope,
            jwks=keys.public_jwks(),
            name=name,
            organization=organization,
        )
    except BaseException:
        key_file.unlink(missing_ok=True)
        raise
