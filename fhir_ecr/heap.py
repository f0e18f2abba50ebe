"""The garbage collector set for a long-running server process (once, after start-up) and for a bulk job.

A coaching view builds tens of thousands of small objects (two years of check-ins), so with CPython's defaults
(a young collection every 700 allocations) a view runs several young collections, and every so often a full
collection that walks the whole heap — the ≈ 230,000 objects of the loaded application (the FHIR models, the
routes, the profiles) — and stops the request for 300–400 ms (measured on the coaching summary: the two slowest
of 40 first views after a check-in were exactly those with a full collection). That is the p95 a coach sees.

At start-up, once the application is loaded, :func:`settle` collects what start-up left behind and then
freezes every surviving object into the permanent generation (:func:`gc.freeze`, meant for this: objects that
live as long as the process), so later collections never walk them; and it raises the young generation's
threshold so that one view triggers a few young collections instead of dozens. Garbage is still collected:
reference counting frees almost everything at once, and cycles are found by the same collector, over a heap
that holds only what requests made.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

__all__ = ["settle", "collector_aside", "bulk_collector_aside", "YOUNG_THRESHOLD", "BULK_YOUNG_THRESHOLD"]

#: Allocations (less deallocations) between young collections; CPython's default is 700.
YOUNG_THRESHOLD = 10_000

_done = False
_lock = threading.Lock()


def settle() -> bool:
    """Freeze the loaded application's objects and raise the young threshold, once per process (later calls,
    such as a second app built in the same process, do nothing: what they made is collected as usual).
    True when this call did it."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return True


@contextmanager
def collector_aside(young: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """While a bulk job runs (a wearable import, an EMR pull: fhir_ecr/sync/tasks.py), keep the cyclic garbage
    collector off the objects that were there before it (the loaded application: :func:`gc.freeze`) and let it
    run every ``young`` allocations instead of 700, then put both back (:func:`gc.unfreeze`: they go to the
    oldest generation).

    An import allocates millions of short-lived objects (records, resources, index rows); with the defaults the
    young collections, and the full ones that walk the whole application every so often, took a fifth of the
    import's CPU (docs/benchmarks.md). Reference counting still frees almost everything at once, and cycles
    made during the import are still collected. A process whose heap is already settled (a server,
    :func:`settle`) is left as it is, and so is one where another import has set it aside."""
    if gc.get_freeze_count():
        yield
        return
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(young, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


#: The young threshold of :func:`bulk_collector_aside` (the wearable import).
BULK_YOUNG_THRESHOLD = 100_000


def bulk_collector_aside(young: int = BULK_YOUNG_THRESHOLD) -> AbstractContextManager[None]:
    """:func:`collector_aside` with young collections every ``young`` allocations, for a job whose batches keep a
    few hundred thousand objects alive until they are written (the wearable import: at 10,000, each of them was
    walked by a young and then a middle collection first, about 100 collections and 7 % of a 100 MB import's
    CPU; docs/benchmarks.md). Everything is put back afterwards; a settled heap is left alone, as there."""
    return collector_aside(young)
