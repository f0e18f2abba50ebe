"""Profile conformance: the mECR implementation guide enforced on every write, ``$validate``, and the IG's
conformance resources served read-only.

The IG (``profiles/generated/``, compiled by SUSHI) is loaded once (:mod:`.ig`); its ValueSets are expanded
from its CodeSystems and explicit concepts (:mod:`.terminology`); each profile's snapshot is compiled once
into a tree of element rules (:mod:`.compiler`) plus its FHIRPath invariants (:mod:`.fhirpath`); the
:class:`~.validator.ProfileValidator` walks a resource over that tree (:mod:`.checker`). Nothing here
hand-copies a constraint: every rule comes from a StructureDefinition.

Errors. Validation problems are answered, like every other error, with
:class:`fhir_ecr.outcomes.FhirError` (422, one issue per problem). Problems with the IG itself (a missing
file, a snapshot this compiler cannot read) are start-up errors::

    Exception
     └── ConformanceError          the IG cannot be loaded or compiled
          ├── IgLoadError          a file of profiles/generated/ is missing or is not JSON
          └── ProfileCompileError  a StructureDefinition uses a feature the compiler does not support
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConformanceError, IgLoadError, ProfileCompileError
from .ig import ImplementationGuide, default_ig_path, load_ig
from .terminology import ValueSetIndex
from .validator import ProfileValidator, compose_validators, default_validator, standard_validator

__all__ = [
    "ConformanceError",
    "IgLoadError",
    "ProfileCompileError",
    "ImplementationGuide",
    "default_ig_path",
    "load_ig",
    "ValueSetIndex",
    "ProfileValidator",
    "compose_validators",
    "standard_validator",
    "default_validator",
    "register_validate_operation",
    "READ_ONLY_TYPES",
    "install_read_only_guard",
    "load_conformance_resources",
]

if TYPE_CHECKING:
    from .operation import register_validate_operation
    from .store import READ_ONLY_TYPES, install_read_only_guard, load_conformance_resources

# The web side ($validate, the read-only guard) is imported on first use: a validation worker process
# (fhir_ecr/store/validation_pool.py) needs only the validator, without the web framework and the database layer.
_LAZY = {
    "register_validate_operation": ".operation",
    "READ_ONLY_TYPES": ".store",
    "install_read_only_guard": ".store",
    "load_conformance_resources": ".store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
