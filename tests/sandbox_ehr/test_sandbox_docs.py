"""docs/sandbox-ehr.md names every route of the sandbox EHR."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox-ehr.md"


def test_every_sandbox_route_is_documented(sandbox) -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    routes: list[APIRoute] = []
    for r in sandbox.app.routes:  # FastAPI keeps an included router as one entry holding the original router
        inner = getattr(r, "original_router", None)
        routes.extend(x for x in (inner.routes if inner is not None else [r]) if isinstance(x, APIRoute))
    assert len(routes) >= 10
    for route in routes:
        path = re.compile(r"`" + re.escape(route.path) + r"`")
        for method in route.methods:
            assert any(path.search(row) and method in row.split("|")[1] for row in rows), (
                f"{method} {route.path} is not in the route table of docs/sandbox-ehr.md"
            )
