"""The CapabilityStatement's interactions come from the FHIR router: an interaction is listed when a route
performs it (R4 http.html), and only then."""

from __future__ import annotations

from typing import Any

from fhir_ecr.fhir.capability import SYSTEM_INTERACTIONS, TYPE_INTERACTIONS, interactions
from fhir_ecr.fhir.routes import router


def test_the_router_performs_every_listed_interaction() -> None:
    assert interactions(router.routes, TYPE_INTERACTIONS) == list(TYPE_INTERACTIONS)
    assert interactions(router.routes, SYSTEM_INTERACTIONS) == list(SYSTEM_INTERACTIONS)


def test_an_interaction_without_its_route_is_not_listed() -> None:
    without_patch = [r for r in router.routes if "PATCH" not in (getattr(r, "methods", None) or ())]
    listed = interactions(without_patch, TYPE_INTERACTIONS)
    assert "patch" not in listed and "read" in listed and "update" in listed


def test_the_metadata_lists_the_router_interactions(client: Any) -> None:
    cs = client.get("/fhir/metadata").json()
    rest = cs["rest"][0]
    assert [i["code"] for i in rest["interaction"]] == list(SYSTEM_INTERACTIONS)
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert [i["code"] for i in patient["interaction"]] == list(TYPE_INTERACTIONS)
