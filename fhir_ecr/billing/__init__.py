"""Billing: coaching sessions -> claim lines by a rule table (data), exported as CSV, FHIR Claims or X12 837P.

Layers: :mod:`.rules` (the rule table: services and payers, from YAML), :mod:`.source` (sessions read through
the repository), :mod:`.engine` (pure: sessions -> lines + findings; frequency limits and daily caps in
:mod:`.limits`), :mod:`.resubmit` (which claim a rebilled line replaces), :mod:`.claims` (lines -> claims, checks),
the exporters :mod:`.csv_export`, :mod:`.fhir_export`, :mod:`.x12`, :mod:`.superbill`, and :mod:`.service`
(export + marking in one unit of work). Errors: :mod:`.errors`. See docs/billing.md.
"""

from .claims import build_claims, check_claims
from .csv_export import findings_csv, lines_csv
from .engine import FINDING_CODES, Evaluation, evaluate, npi_valid, units_for
from .errors import BillingError, ExportCheckError, RuleTableError, X12ValidationError
from .fhir_export import claims_bundle
from .model import BilledItem, Claim, Credential, Finding, Insurance, Line, Person, Provider, Session
from .rules import Payer, Practice, RuleTable, Service, load_rules
from .service import ExportRequest, ExportResult, preview, run_export, superbill_for
from .source import load_billed, load_sessions
from .superbill import render_superbill
from .x12 import Envelope, check_837p, render_837p, validate_837p

__all__ = [
    "BillingError",
    "ExportCheckError",
    "RuleTableError",
    "X12ValidationError",
    "RuleTable",
    "Service",
    "Payer",
    "Practice",
    "load_rules",
    "Session",
    "Person",
    "Provider",
    "Credential",
    "Insurance",
    "Line",
    "Finding",
    "Claim",
    "BilledItem",
    "evaluate",
    "Evaluation",
    "FINDING_CODES",
    "npi_valid",
    "units_for",
    "build_claims",
    "check_claims",
    "lines_csv",
    "findings_csv",
    "claims_bundle",
    "render_837p",
    "check_837p",
    "validate_837p",
    "Envelope",
    "render_superbill",
    "load_sessions",
    "load_billed",
    "ExportRequest",
    "ExportResult",
    "run_export",
    "preview",
    "superbill_for",
]
