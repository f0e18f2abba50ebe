"""A pull loads with the garbage collector set aside (``heap.collector_aside``: the loaded application frozen out
of its way, a young collection every 10,000 allocations), as a wearable import does, and puts it back after:
``mecr sync pull`` in the foreground as well as a worker (whose heap is settled at start anyway)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from fhir_ecr.heap import YOUNG_THRESHOLD
from fhir_ecr.sync import tasks
from fhir_ecr.sync.pull import Loader
from tests.sync.support import Sekmet, local, patient, register, weight


@pytest.mark.parametrize("mode", ["paged", "bulk"])
def test_a_pull_loads_with_the_collector_aside_and_puts_it_back(
    services: Any, sekmet: Sekmet, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    for i in range(5):
        sekmet.put(weight(f"w{i}", "p1", f"{70 + i}.10"))
    register(services, sekmet.base, pull="Patient, Observation", push="", mode=mode)
    states: list[tuple[int, int]] = []
    load = Loader.load

    async def recording(self: Loader, *args: Any, **kwargs: Any) -> Any:
        states.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return await load(self, *args, **kwargs)

    monkeypatch.setattr(Loader, "load", recording)
    # As in `mecr sync pull`: a heap nobody settled (this test process may have settled it when it started an
    # app; a settled heap is left as it is, and its frozen objects may be freed meanwhile, so its count moves).
    settled, threshold = gc.get_freeze_count(), gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, *threshold[1:])
    try:
        counts = tasks.pull_now(services, "emr")
        assert counts is not None and counts.rejected == 0 and len(local(services, "Observation")) == 5
        assert states and all(t == YOUNG_THRESHOLD and frozen > 1000 for t, frozen in states)
        assert gc.get_threshold()[0] == 700 and gc.get_freeze_count() == 0  # put back
    finally:
        gc.set_threshold(*threshold)
        if settled:
            gc.freeze()
