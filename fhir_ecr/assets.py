"""The pages' static files (``fhir_ecr/web/static``, served at ``/app/static``) and their fingerprinted URLs.

Its own module so that the SMART launch pages (:mod:`fhir_ecr.auth.routes`) and the coach's pages
(:mod:`fhir_ecr.web`) share one stylesheet without importing each other."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["STATIC_DIR", "static_url"]

STATIC_DIR = Path(__file__).parent / "web" / "static"


def _fingerprint(name: str) -> str:
    try:
        return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    except FileNotFoundError:
        return "0"


_VERSIONS: dict[str, str] = {}


def static_url(name: str) -> str:
    """``/app/static/{name}?v=<content hash>``: cached for long, refreshed when the file changes."""
    if name not in _VERSIONS:
        _VERSIONS[name] = _fingerprint(name)
    return f"/app/static/{name}?v={_VERSIONS[name]}"
