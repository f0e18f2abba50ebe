"""The sandbox authorization server's one error type: an OAuth 2.0 error (RFC 6749 §4.1.2.1 and §5.2)."""

from __future__ import annotations

__all__ = ["OAuthError"]


class OAuthError(Exception):
    """``error`` / ``error_description`` as RFC 6749 defines them; ``status`` for the token endpoint (400, or
    401 for ``invalid_client``)."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
