"""Errors of the billing package.

Domain code raises only :class:`fhir_ecr.outcomes.FhirError`s; billing's own are subclasses, so the FHIR
layer's one exception handler answers them with an OperationOutcome. Hierarchy::

    FhirError                       (fhir_ecr.outcomes)
     └── BillingError               any billing failure
          ├── RuleTableError        a rule table or practice file is unreadable or breaks its schema (400)
          ├── ExportCheckError      a claim fails a check X12 validators do not make (422): balancing,
          │                         NPI check digit, ICD-10 without dots, pointer range, line/diagnosis limits
          └── X12ValidationError    pyx12 rejected an interchange (422); carries its 999 acknowledgement
"""

from __future__ import annotations

from collections.abc import Sequence

from ..outcomes import FhirError, Issue, issue

__all__ = ["BillingError", "RuleTableError", "ExportCheckError", "X12ValidationError"]


class BillingError(FhirError):
    """Any billing failure; answered as an OperationOutcome."""


class RuleTableError(BillingError):
    """A rule table or practice file cannot be used: unreadable YAML, unknown keys, wrong types."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__([issue("invalid", f"{source}: {p}") for p in self.problems], 400)


class ExportCheckError(BillingError):
    """An exported claim fails one of the exporter's own checks (things X12 syntax validators miss)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__([issue("processing", p) for p in self.problems], 422)


class X12ValidationError(BillingError):
    """pyx12 found errors in an 837P interchange; ``ack`` is its 999 acknowledgement."""

    def __init__(self, issues: Sequence[Issue], ack: str) -> None:
        self.ack = ack
        super().__init__(list(issues) or [issue("processing", "pyx12 rejected the interchange")], 422)
