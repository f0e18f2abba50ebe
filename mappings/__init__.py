"""Pure translators between outside data formats and FHIR R4 resources (no I/O, no clock, no database).

Sub-packages: :mod:`mappings.wearables`. Shared: :mod:`mappings.systems` (codes and units) and
:mod:`mappings.errors` (the error hierarchy).
"""

__all__ = ["errors", "systems"]
