"""Operation results as ``Parameters`` resources <-> plain nested dicts; UCUM Quantities."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from .common import _num

# --- Parameters -------------------------------------------------------------------------------------------


def _param(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    if isinstance(value, float):
        return {"name": name, "valueDecimal": round(value, 4) if math.isfinite(value) else None}
    if isinstance(value, datetime):
        return {"name": name, "valueDateTime": value.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    if isinstance(value, date):
        return {"name": name, "valueDate": value.isoformat()}
    if isinstance(value, str):
        return {"name": name, "valueString": value}
    if isinstance(value, Mapping):
        keys = set(value)
        if "reference" in keys and keys <= {"reference", "display"}:
            return {"name": name, "valueReference": dict(value)}
        if {"system", "code"} <= keys and keys <= {"system", "code", "display"}:
            return {"name": name, "valueCoding": dict(value)}
        if "value" in keys and keys <= {"value", "unit", "system", "code", "comparator"}:
            return {"name": name, "valueQuantity": dict(value)}
        if value.get("resourceType"):
            return {"name": name, "resource": dict(value)}
        return {"name": name, "part": _params(value)}
    raise TypeError(f"cannot put {type(value).__name__} into Parameters")


def _params(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            p = _param(key, item)
            if p is not None:
                out.append(p)
    return out


def to_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """A ``Parameters`` resource from a nested dict: lists repeat a parameter, dicts become parts.

    References (``{"reference": …}``), codings (``{"system", "code"}``) and quantities (``{"value", "unit"}``)
    become ``valueReference`` / ``valueCoding`` / ``valueQuantity``; None values are left out.
    """
    return {"resourceType": "Parameters", "parameter": _params(values)}


def parameters_to_dict(
    parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]], repeated: Iterable[str] = ()
) -> dict[str, Any]:
    """The inverse of :func:`to_parameters`: a name seen once is a value, more often a list.

    Names in ``repeated`` are always lists (so "one goal" and "two goals" have the same shape).
    """
    items = parameters.get("parameter", []) if isinstance(parameters, Mapping) else parameters
    always = set(repeated)
    out: dict[str, Any] = {}
    multi: set[str] = set()
    for p in items:
        if "part" in p:
            value: Any = parameters_to_dict(p["part"], always)
        elif "resource" in p:
            value = p["resource"]
        else:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
        name = p["name"]
        if name in always or name in multi:
            out.setdefault(name, []).append(value)
        elif name in out:
            out[name] = [out[name], value]
            multi.add(name)
        else:
            out[name] = value
    return out


def quantity(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    """A UCUM Quantity."""
    return {"value": _num(value), "unit": unit or code, "system": "http://unitsofmeasure.org", "code": code}
