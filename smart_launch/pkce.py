"""PKCE (RFC 7636) with the S256 method only.

app-launch.md: "All SMART apps SHALL support Proof Key for Code Exchange (PKCE)" and servers "SHALL NOT
support the plain method", so there is no ``plain`` here at all.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["PkcePair", "code_challenge_s256", "generate_pkce"]

#: RFC 7636 §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass(frozen=True, slots=True)
class PkcePair:
    """A fresh code verifier and its S256 challenge."""

    verifier: str
    challenge: str
    method: str = "S256"


def code_challenge_s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding (RFC 7636 §4.2)."""
    if not _VERIFIER.match(verifier):
        raise ConfigurationError(
            "a PKCE code_verifier is 43-128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1)"
        )
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_pkce(length: int = 64) -> PkcePair:
    """A new verifier of ``length`` characters (43-128) from ``secrets``, and its challenge.

    The default 64 characters of base64url carry 384 bits of entropy, well above RFC 7636's 256.
    """
    if not 43 <= length <= 128:
        raise ConfigurationError("a PKCE code_verifier must be 43-128 characters long (RFC 7636 §4.1)")
    # token_urlsafe(n) yields ceil(4n/3) characters; over-produce and cut to the exact length.
    verifier = secrets.token_urlsafe(length)[:length]
    return PkcePair(verifier=verifier, challenge=code_challenge_s256(verifier))
