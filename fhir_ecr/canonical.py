"""Every canonical URL mECR mints (``https://mecr.dev/fhir/...``), defined once.

The mECR implementation guide (``profiles/``) publishes these StructureDefinitions, CodeSystems and NamingSystems
under its canonical base. The wearable mappings' own systems live in :mod:`mappings.systems` (``mappings``
imports nothing from ``fhir_ecr``) and are re-exported here. A test (``tests/test_architecture.py``) fails when
another module spells a ``https://mecr.dev/fhir`` URL itself.

This module imports nothing from ``fhir_ecr``: any package may use it.
"""

from __future__ import annotations

from typing import Final

from mappings.systems import (
    MECR_DATA_QUALITY_SYSTEM,
    MECR_DEVICE_SYSTEM,
    MECR_IDENTIFIER_SYSTEM,
    MECR_METRIC_SYSTEM,
)

#: The IG's canonical base (``profiles/sushi-config.yaml`` ``canonical``).
CANONICAL: Final = "https://mecr.dev/fhir"


def structure_definition(name: str) -> str:
    """``{CANONICAL}/StructureDefinition/{name}``: a profile or extension of the mECR IG."""
    return f"{CANONICAL}/StructureDefinition/{name}"


def code_system(name: str) -> str:
    """``{CANONICAL}/CodeSystem/{name}``."""
    return f"{CANONICAL}/CodeSystem/{name}"


def naming_system(name: str) -> str:
    """``{CANONICAL}/NamingSystem/{name}``: an identifier system of mECR's own records."""
    return f"{CANONICAL}/NamingSystem/{name}"


def value_set(name: str) -> str:
    """``{CANONICAL}/ValueSet/{name}``."""
    return f"{CANONICAL}/ValueSet/{name}"


def operation_definition(name: str) -> str:
    """``{CANONICAL}/OperationDefinition/{name}``: the OperationDefinition of mECR's ``$name``."""
    return f"{CANONICAL}/OperationDefinition/{name}"


def search_parameter(name: str) -> str:
    """``{CANONICAL}/SearchParameter/{name}``: one of mECR's own search parameters."""
    return f"{CANONICAL}/SearchParameter/{name}"


def sid(name: str) -> str:
    """``{CANONICAL}/sid/{name}``: an identifier system mECR assigns outside the IG (billing, payers)."""
    return f"{CANONICAL}/sid/{name}"


#: The base of mECR's own SearchParameter URLs (fhir_ecr/store/mecr_params.py).
SEARCH_PARAMETER_BASE: Final = search_parameter("")

# --- identity and provenance (docs/smart.md, docs/sync.md) -----------------------------------------------------

#: Who set an identifier mECR may link by: ``ehr`` (copied from the EHR at launch or by sync) or ``mecr``
#: (mECR's own loaders). Only mECR's internal writers set it; no API caller can add or alter such an identifier.
IDENTIFIER_SOURCE_URL: Final = structure_definition("identifier-source")
#: The ``meta.tag`` system mECR's sync marks pulled resources with (code ``ehr``): the EMR owns them, they are
#: read-only in mECR for every caller (docs/sync.md).
RECORD_SOURCE_SYSTEM: Final = code_system("record-source")

# --- coaching (docs/coaching.md) ---------------------------------------------------------------------------------

GOAL_PROFILE: Final = structure_definition("mecr-coaching-goal")
PLAN_PROFILE: Final = structure_definition("mecr-habit-plan")
CHECKIN_PROFILE: Final = structure_definition("mecr-habit-check-in")
SESSION_PROFILE: Final = structure_definition("mecr-coaching-session")
COACH_PROFILE: Final = structure_definition("mecr-coach")
REFERRAL_PROFILE: Final = structure_definition("mecr-community-referral")
REFERRAL_TASK_PROFILE: Final = structure_definition("mecr-referral-task")
#: Provenance.activity of a referral Task's status change (docs/referrals.md).
REFERRAL_TRANSITION_SYSTEM: Final = code_system("referral-transition")
HABIT_ID_URL: Final = structure_definition("habit-id")
HABIT_PAUSE_URL: Final = structure_definition("habit-pause")
MODALITY_URL: Final = structure_definition("coaching-session-modality")
DEMO_AS_OF_URL: Final = structure_definition("demo-as-of")
APP_PREFERENCES_URL: Final = structure_definition("app-preferences")
MECR_CODES: Final = code_system("mecr-codes")
GOAL_CATEGORY_SYSTEM: Final = code_system("coaching-goal-category")
CHECKIN_RESULT_SYSTEM: Final = code_system("habit-check-in-result")
PAUSE_REASON_SYSTEM: Final = code_system("habit-pause-reason")
MODALITY_SYSTEM: Final = code_system("session-modality")
CHECKIN_ID_SYSTEM: Final = naming_system("habit-check-in")
TARGET_MEASURE_VALUE_SET: Final = value_set("coaching-target-measure")

# --- billing (docs/billing.md) -----------------------------------------------------------------------------------

CREDENTIAL_URL: Final = structure_definition("coach-credential")
CREDENTIAL_SYSTEM: Final = code_system("coach-credential")
PAYER_ID_SYSTEM: Final = sid("payer-id")
BILLING_LINE_SYSTEM: Final = sid("billing-line")
BILLING_EXPORT_SYSTEM: Final = sid("billing-export")
CLAIM_SYSTEM: Final = sid("claim")  # our claim number (CLM01, the patient control number)
PAYER_CLAIM_NUMBER_SYSTEM: Final = sid("payer-claim-number")  # the payer's claim control number

__all__ = [
    "CANONICAL",
    "structure_definition",
    "code_system",
    "naming_system",
    "value_set",
    "operation_definition",
    "sid",
    "search_parameter",
    "SEARCH_PARAMETER_BASE",
    "IDENTIFIER_SOURCE_URL",
    "RECORD_SOURCE_SYSTEM",
    "GOAL_PROFILE",
    "PLAN_PROFILE",
    "CHECKIN_PROFILE",
    "SESSION_PROFILE",
    "COACH_PROFILE",
    "REFERRAL_PROFILE",
    "REFERRAL_TASK_PROFILE",
    "REFERRAL_TRANSITION_SYSTEM",
    "HABIT_ID_URL",
    "HABIT_PAUSE_URL",
    "MODALITY_URL",
    "DEMO_AS_OF_URL",
    "APP_PREFERENCES_URL",
    "MECR_CODES",
    "GOAL_CATEGORY_SYSTEM",
    "CHECKIN_RESULT_SYSTEM",
    "PAUSE_REASON_SYSTEM",
    "MODALITY_SYSTEM",
    "CHECKIN_ID_SYSTEM",
    "TARGET_MEASURE_VALUE_SET",
    "CREDENTIAL_URL",
    "CREDENTIAL_SYSTEM",
    "PAYER_ID_SYSTEM",
    "BILLING_LINE_SYSTEM",
    "BILLING_EXPORT_SYSTEM",
    "CLAIM_SYSTEM",
    "PAYER_CLAIM_NUMBER_SYSTEM",
    "MECR_METRIC_SYSTEM",
    "MECR_IDENTIFIER_SYSTEM",
    "MECR_DEVICE_SYSTEM",
    "MECR_DATA_QUALITY_SYSTEM",
]
