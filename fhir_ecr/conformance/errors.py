"""The conformance package's own errors (see the hierarchy in the package docstring)."""

from __future__ import annotations

__all__ = ["ConformanceError", "IgLoadError", "ProfileCompileError"]


class ConformanceError(Exception):
    """The implementation guide cannot be loaded or compiled."""


class IgLoadError(ConformanceError):
    """A file of the generated IG is missing or is not valid JSON."""


class ProfileCompileError(ConformanceError):
    """A StructureDefinition uses a feature the profile compiler does not support."""
