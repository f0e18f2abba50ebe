"""The kept views are refreshed soon after a write: one ``refresh_views`` run enqueued per second at most, for
writes of what a view is computed from, never with the immediate job store (fhir_ecr/sync/refresh.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.sync import refresh
from fhir_ecr.sync.refresh import refresh_hook


class _Jobs:
    def __init__(self, immediate: bool = False) -> None:
        self.immediate = immediate
        self.enqueued: list[tuple[str, float | None]] = []

    def enqueue(self, name: str, *args: Any, delay: float | None = None) -> None:
        self.enqueued.append((name, delay))


def _services_with(services: Any, jobs: _Jobs) -> Any:
    services.repo.write_hooks.append(refresh_hook(jobs))
    return services


def test_a_coaching_write_enqueues_one_refresh_a_second(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(refresh.time, "monotonic", lambda: clock[0])
    jobs = _Jobs()
    repo = _services_with(services, jobs).repo
    pid = repo.create({"resourceType": "Patient", "name": [{"family": "Hook"}]}).stored.id
    assert jobs.enqueued == [("refresh_views", refresh.DEBOUNCE_SECONDS)]
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "41950-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2026-03-01",
        "valueQuantity": {"value": 8000, "unit": "/d", "system": "http://unitsofmeasure.org", "code": "/d"},
    }
    repo.create(obs)
    assert len(jobs.enqueued) == 1  # within the second: the run already enqueued starts after this commit
    clock[0] += refresh.DEBOUNCE_SECONDS
    repo.create(obs)
    assert len(jobs.enqueued) == 2
    clock[0] += 10
    repo.create({"resourceType": "Practitioner", "name": [{"family": "Coach"}]})
    assert len(jobs.enqueued) == 2  # nothing a coaching view reads


def test_a_rolled_back_write_or_the_immediate_store_enqueues_nothing(services: Any) -> None:
    jobs = _Jobs()
    repo = _services_with(services, jobs).repo
    with pytest.raises(RuntimeError), repo.unit() as uow:
        uow.create({"resourceType": "Patient", "name": [{"family": "Gone"}]})
        raise RuntimeError("abort")
    assert jobs.enqueued == []
    immediate = _Jobs(immediate=True)
    services.repo.write_hooks[-1] = refresh_hook(immediate)
    services.repo.create({"resourceType": "Patient", "name": [{"family": "Inline"}]})
    assert immediate.enqueued == []
