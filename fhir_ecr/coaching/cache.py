"""Computed coaching views (summaries, run charts, the patient page's series) cached per patient data version.

A view is a pure function of the patient's data, the patient's local date and the service's parameters. The
store keeps a per-patient data version that every committed write in the patient's compartment changes, in the
same transaction (``FhirRepository.patient_version``), so an entry keyed by
``(view, patient id, data version, local today, parameters)`` can never be stale, in this process or after
another process wrote: a write makes a new version, and the next read computes afresh. Old entries are never
hit again and age out of the LRU.

The cache holds results, never permissions: the coaching service still reads the Patient through the caller's
guarded repository and asks the guard about every resource type the view reads before it uses an entry
(:meth:`CoachingService._cached_view`), so a caller who may not see the data gets the same 403 as without
the cache. Entries are stored pickled: each hit returns a private copy that the caller may change.

One cache per database engine (the same patient id in two databases is two patients).
"""

from __future__ import annotations

import pickle
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheStats", "ViewCache", "view_cache", "DEFAULT_SIZE"]

#: Entries per database: a summary is a few kB pickled, a caseload glance about 5 kB, the page's overview about
#: 20 kB. 2,048 hold the glance and the summary of a 1,000-patient practice with room for the pages opened.
DEFAULT_SIZE = 2048


@dataclass
class CacheStats:
    """Counters, for tests and benchmarks."""

    hits: int = 0
    misses: int = 0


class ViewCache:
    """A thread-safe LRU of pickled values."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self.stats = CacheStats()
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """A fresh copy of the value stored under ``key``, or None."""
        with self._lock:
            blob = self._entries.get(key)
            if blob is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
        return pickle.loads(blob)

    def put(self, key: Hashable, value: Any) -> None:
        """Store a copy of ``value`` (taken now, so later changes to ``value`` do not leak in)."""
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._entries[key] = blob
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def put_blob(self, key: Hashable, blob: bytes) -> None:
        """Store an already pickled value (a kept view read back, checked to be plain data)."""
        with self._lock:
            self._entries[key] = bytes(blob)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_caches: weakref.WeakKeyDictionary[Any, ViewCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def view_cache(engine: Any) -> ViewCache:
    """The cache of the database behind ``engine`` (created on first use, dropped with the engine)."""
    found = _caches.get(engine)
    if found is None:
        with _caches_lock:
            found = _caches.get(engine)
            if found is None:
                found = _caches[engine] = ViewCache()
    return found
