"""Loading the compiled mECR implementation guide from ``profiles/generated/`` through its ``index.json``.

``index.json`` maps canonical URLs to files for ``profiles``, ``extensions``, ``valueSets`` and
``codeSystems``, and ``Type/id`` to files for ``examples`` (see ``profiles/README.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..canonical import CANONICAL
from .errors import IgLoadError

__all__ = ["ImplementationGuide", "default_ig_path", "load_ig", "MECR_CANONICAL"]

MECR_CANONICAL = CANONICAL


def default_ig_path() -> Path:
    """``<repo>/profiles/generated``, the committed SUSHI output, through the link ``fhir_ecr/_bundled/ig`` (an
    installed wheel holds a copy there)."""
    return (Path(__file__).resolve().parents[1] / "_bundled" / "ig").resolve()


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IgLoadError(f"the implementation guide file {path} is missing") from exc
    except json.JSONDecodeError as exc:
        raise IgLoadError(f"{path} is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class ImplementationGuide:
    """The IG's artifacts, parsed: canonical URL -> resource (examples by ``Type/id``)."""

    root: Path
    canonical: str
    profiles: dict[str, dict[str, Any]]
    extensions: dict[str, dict[str, Any]]
    value_sets: dict[str, dict[str, Any]]
    code_systems: dict[str, dict[str, Any]]
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples_by_profile: dict[str, list[str]] = field(default_factory=dict)

    def structure_definitions(self) -> dict[str, dict[str, Any]]:
        """Profiles and extensions together, by canonical URL."""
        return {**self.profiles, **self.extensions}

    def conformance_resources(self) -> list[dict[str, Any]]:
        """Every StructureDefinition, ValueSet and CodeSystem of the IG (what the server serves read-only)."""
        return [
            *self.structure_definitions().values(),
            *self.value_sets.values(),
            *self.code_systems.values(),
        ]

    def is_mecr_canonical(self, url: str) -> bool:
        """Whether ``url`` lies under the IG's canonical base (``https://mecr.dev/fhir/...``)."""
        return url.startswith(self.canonical.rstrip("/") + "/")


def load_ig(path: Path | None = None) -> ImplementationGuide:
    """Read the IG at ``path`` (default :func:`default_ig_path`); the default one is read once per process."""
    return _load(Path(path) if path is not None else default_ig_path())


@cache
def _load(root: Path) -> ImplementationGuide:
    index = _read(root / "index.json")
    if not isinstance(index, dict) or "profiles" not in index:
        raise IgLoadError(f"{root / 'index.json'} is not an IG index (no 'profiles')")

    def section(name: str) -> dict[str, dict[str, Any]]:
        return {key: _read(root / rel) for key, rel in (index.get(name) or {}).items()}

    return ImplementationGuide(
        root=root,
        canonical=str(index.get("canonical") or MECR_CANONICAL),
        profiles=section("profiles"),
        extensions=section("extensions"),
        value_sets=section("valueSets"),
        code_systems=section("codeSystems"),
        examples=section("examples"),
        examples_by_profile={
            url: list(paths) for url, paths in (index.get("examplesByProfile") or {}).items()
        },
    )
