"""ValueSet expansion from the IG's own CodeSystems and explicit concepts (no terminology server).

Expansion follows https://hl7.org/fhir/R4/valueset.html#compositions: a ``compose.include`` lists concepts
explicitly, takes every concept of a ``system`` (which must then be one of the IG's CodeSystems, with
``content = complete``), or imports other ValueSets; ``compose.exclude`` removes. A ValueSet that cannot be
expanded offline (an include of an external system without a concept list, or a ``filter``) has no
expansion here, and bindings to it are not checked (the validator records why).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .ig import ImplementationGuide

__all__ = ["ValueSetIndex", "Code", "canonical_url"]

Code = tuple[str, str]  # (system, code)


def canonical_url(url: str) -> str:
    """A canonical without its ``|version`` suffix."""
    return url.split("|", 1)[0]


def _concepts(concepts: Iterable[dict[str, Any]]) -> Iterable[str]:
    for concept in concepts:
        yield concept["code"]
        yield from _concepts(concept.get("concept") or [])


class ValueSetIndex:
    """The IG's ValueSets, expanded once: ``codes(url)`` is the set of (system, code) or None."""

    def __init__(self, ig: ImplementationGuide) -> None:
        self._ig = ig
        self._expansions: dict[str, frozenset[Code] | None] = {}
        self.unexpandable: dict[str, str] = {}  # url -> why
        for url in ig.value_sets:
            self._expand(url, ())

    def knows(self, url: str) -> bool:
        """Whether ``url`` is one of the IG's ValueSets."""
        return canonical_url(url) in self._ig.value_sets

    def codes(self, url: str) -> frozenset[Code] | None:
        """The expansion of ``url``; None when it is not an IG ValueSet or cannot be expanded offline."""
        return self._expansions.get(canonical_url(url))

    def _expand(self, url: str, seen: tuple[str, ...]) -> frozenset[Code] | None:
        url = canonical_url(url)
        if url in self._expansions:
            return self._expansions[url]
        vs = self._ig.value_sets.get(url)
        if vs is None or url in seen:
            return None
        compose = vs.get("compose") or {}
        included: set[Code] = set()
        result: frozenset[Code] | None
        try:
            for inc in compose.get("include") or []:
                included |= self._part(inc, (*seen, url))
            for exc in compose.get("exclude") or []:
                included -= self._part(exc, (*seen, url))
            result = frozenset(included)
        except LookupError as why:
            self.unexpandable[url] = str(why)
            result = None
        self._expansions[url] = result
        return result

    def _part(self, part: dict[str, Any], seen: tuple[str, ...]) -> set[Code]:
        if part.get("filter"):
            raise LookupError("filters need a terminology server")
        system = part.get("system")
        codes: set[Code] = set()
        if system is not None:
            if part.get("concept"):
                codes = {(system, c["code"]) for c in part["concept"]}
            else:
                cs = self._ig.code_systems.get(canonical_url(system))
                if cs is None or cs.get("content", "complete") != "complete":
                    raise LookupError(f"all of {system} is included, and it is not a complete IG CodeSystem")
                codes = {(system, code) for code in _concepts(cs.get("concept") or [])}
        for imported in part.get("valueSet") or []:
            expansion = self._expand(imported, seen)
            if expansion is None:
                raise LookupError(f"the imported ValueSet {imported} cannot be expanded")
            codes = (codes & set(expansion)) if system is not None else (codes | set(expansion))
        return codes
