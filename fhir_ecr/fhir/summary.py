"""``_summary`` and ``_elements``: the subset of a resource a read or search returns (R4 search.html#summary).

Rendering, so it lives in the FHIR layer; the store only tells which elements are summary elements
(:func:`~fhir_ecr.store.searchparams.summary_elements`, from the vendored R4 definitions)."""

from __future__ import annotations

from typing import Any

from ..store.searchparams import summary_elements

__all__ = ["summarize"]


def summarize(content: dict[str, Any], mode: str | None, elements: list[str] | None) -> dict[str, Any]:
    """Apply ``_summary`` (true/text/data) or ``_elements`` to a resource (R4 search.html#summary)."""
    if not mode and not elements:
        return content
    rtype = content.get("resourceType", "")
    keep_always = {"resourceType", "id", "meta"}
    if elements:
        wanted = keep_always | set(elements)
        out = {k: v for k, v in content.items() if k in wanted or _choice_match(k, elements)}
    elif mode == "true":
        names = summary_elements().get(rtype, frozenset())
        out = {k: v for k, v in content.items() if k in keep_always or k in names or _choice_match(k, names)}
    elif mode == "text":
        out = {k: v for k, v in content.items() if k in keep_always | {"text"}}
    elif mode == "data":
        out = {k: v for k, v in content.items() if k != "text"}
    else:
        return content
    meta = dict(out.get("meta") or {})
    tag = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
    meta["tag"] = [*meta.get("tag", []), tag]
    out["meta"] = meta
    return out


def _choice_match(key: str, names: Any) -> bool:
    return any(key.startswith(n) and len(key) > len(n) and key[len(n)].isupper() for n in names)
