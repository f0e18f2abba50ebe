"""Secrets at rest: Fernet encryption keyed by ``MECR_SECRET_KEY``, and mECR's own signing keys.

- EHR access/refresh tokens in sessions and EHR client secrets are stored encrypted (AES-128-CBC + HMAC,
  ``cryptography``'s Fernet), so a copy of the database does not hand out live tokens.
- mECR's private signing keys (RS384 and ES384, for ``private_key_jwt`` at EHR token endpoints; their public
  half is served at ``/.well-known/jwks.json``) are generated once and kept encrypted in the store.

Without ``MECR_SECRET_KEY`` a development or test server generates a key and keeps it in the database (which
defeats encryption at rest, so it logs a warning); production refuses to start.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from smart_launch.keys import ClientKeySet

from ..config import Settings
from ..store.repository import FhirRepository

__all__ = ["Vault", "VaultError"]

log = logging.getLogger("mecr.auth")

_DEV_KEY = "auth.dev_secret_key"
_SIGNING_KEYS = "auth.signing_jwks"


class VaultError(RuntimeError):
    """The vault cannot work with this configuration or this ciphertext."""


class Vault:
    """Encrypts and decrypts small secrets; holds mECR's signing keys."""

    def __init__(self, settings: Settings, repo: FhirRepository) -> None:
        self._repo = repo
        self._secret = settings.secret_key.get_secret_value()
        if not self._secret and settings.environment == "production":
            raise VaultError("MECR_SECRET_KEY is required in production (it encrypts tokens at rest)")
        self._fernet_: Fernet | None = None
        self._keys: ClientKeySet | None = None
        self._lock = threading.Lock()

    @property
    def _fernet(self) -> Fernet:
        if self._fernet_ is None:  # lazily: the development key lives in the store, read it when first needed
            secret = self._secret or self._dev_secret()
            digest = hashlib.sha256(b"mecr-vault-v1:" + secret.encode()).digest()
            self._fernet_ = Fernet(base64.urlsafe_b64encode(digest))
        return self._fernet_

    def _dev_secret(self) -> str:
        with self._repo.unit() as uow:
            value = uow.get_state(_DEV_KEY)
            if value is None:
                value = secrets.token_urlsafe(48)
                uow.set_state(_DEV_KEY, value)
        log.warning(
            "MECR_SECRET_KEY is not set: using a development key stored in the database; "
            "tokens at rest are not protected. Set MECR_SECRET_KEY outside development."
        )
        return value

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise VaultError(
                "cannot decrypt: MECR_SECRET_KEY changed or the value was tampered with"
            ) from exc

    @property
    def signing_keys(self) -> ClientKeySet:
        """mECR's private signing keys (generated and stored on first use)."""
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    self._keys = self._load_keys()
        return self._keys

    def _load_keys(self) -> ClientKeySet:
        fernet = self._fernet  # before the transaction: the development key may need its own
        with self._repo.unit() as uow:
            stored = uow.get_state(_SIGNING_KEYS)
            if stored is not None:
                return ClientKeySet.from_jwks(self.decrypt(stored))
            keys = ClientKeySet.generate()
            uow.set_state(_SIGNING_KEYS, fernet.encrypt(_dumps(keys.private_jwks()).encode()).decode())
            return keys

    def public_jwks(self) -> dict[str, Any]:
        return self.signing_keys.public_jwks()


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
