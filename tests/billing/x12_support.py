"""Reading an 837P back with pyx12 (its X12ContextReader over the bundled 005010X222A1 map)."""

from __future__ import annotations

import io
from typing import Any

import pyx12.error_handler
import pyx12.params
import pyx12.x12context


def read_claims(text: str) -> list[dict[str, Any]]:
    """Claims as pyx12 parses them: id, total, POS, diagnoses, lines (code, modifiers, charge, units, pointers)."""
    param = pyx12.params.params()
    errh = pyx12.error_handler.errh_null()
    reader = pyx12.x12context.X12ContextReader(param, errh, io.StringIO(text))
    claims = []
    for node in reader.iter_segments("2300"):
        if node.id != "2300":
            continue
        dx = [node.get_value(f"HI{i:02d}-2") for i in range(1, 13)]
        lines = []
        for line in node.select("2400"):
            mods = [line.get_value(f"SV101-{i}") for i in range(3, 7)]
            lines.append(
                {
                    "code": line.get_value("SV101-2"),
                    "modifiers": [m for m in mods if m],
                    "charge": line.get_value("SV102"),
                    "units": line.get_value("SV104"),
                    "pos": line.get_value("SV105"),
                    "pointers": line.get_value("SV107"),
                    "date": line.get_value("DTP03"),
                }
            )
        rendering = [n.get_value("NM109") for n in node.select("2310B")]
        claims.append(
            {
                "id": node.get_value("CLM01"),
                "total": node.get_value("CLM02"),
                "pos": node.get_value("CLM05-1"),
                "dx": [d for d in dx if d],
                "lines": lines,
                "rendering": rendering[0] if rendering else None,
            }
        )
    return claims
