"""The Loader's existence check (``pull._existing``: the resource table's key) finds what the search by ``_id``
it replaced finds (``pull._lookup``): current, not deleted, of the asked type — on both databases."""

from __future__ import annotations

from typing import Any

from fhir_ecr.store.searchparams import search_params
from fhir_ecr.sync.pull import _existing, _lookup


def test_existing_finds_what_the_search_by_id_finds(repo: Any) -> None:
    repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    repo.update("Patient", "p2", {"resourceType": "Patient", "id": "p2"})
    ids = [f"o{i}" for i in range(1205)]  # more than two chunks of 500
    with repo.unit() as uow:
        for i in ids:
            uow.create(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "steps"},
                    "subject": {"reference": "Patient/p1"},
                },
                resource_id=i,
                method="PUT",
            )
    repo.delete("Observation", "o7")
    repo.delete("Patient", "p2")
    repo.update(
        "Observation",
        "o8",
        {
            "resourceType": "Observation",
            "id": "o8",
            "status": "amended",
            "code": {"text": "steps"},
            "subject": {"reference": "Patient/p1"},
        },
    )
    types = frozenset(search_params())
    keys = {("Observation", i) for i in ids} | {
        ("Observation", "nope"),
        ("Observation", "p1"),  # another type's id
        ("Patient", "p1"),
        ("Patient", "p2"),  # deleted
        ("Patient", "o1"),
        ("NotAType", "o1"),  # not a type the store holds
    }
    with repo.unit(write=False) as uow:
        found = _existing(uow, keys, types)
        assert found == set(_lookup(uow, keys, types))
    assert ("Observation", "o7") not in found and ("Patient", "p2") not in found
    assert ("Observation", "o8") in found and ("Patient", "p1") in found
    assert len(found) == 1205 - 1 + 1
    with repo.unit() as uow:  # inside a write unit too, as the Loader's _write asks
        assert _existing(uow, keys, types) == found
