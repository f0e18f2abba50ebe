"""Derived data of the coaching views, kept at write time (issue #19; docs/architecture.md, "Derived data").

- :mod:`.rows`: what is kept of an Observation (pure, from its search-index rows);
- :mod:`.maintain`: the write hook that keeps it in the writes' transaction, the rebuild, the readiness flag;
- :mod:`.reads`: the two sources of a view's Observations (search index, derived tables) behind one interface.
"""

from fhir_ecr.coaching.derived.maintain import DerivedHook, derived_ready, install_derived, rebuild

__all__ = ["DerivedHook", "derived_ready", "install_derived", "rebuild"]
