"""HSDS taxonomy terms and service words -> Gravity SDOH category codes.

A coach searches the directory by the need a patient has, and the Gravity SDOH Clinical Care IG codes that need
with ``SDOHCC-ValueSetSDOHCategory`` (system :data:`~mappings.community.systems.SDOHCC_CATEGORY`; the codes
below are that value set's, IG 2.3.0, http://hl7.org/fhir/us/sdoh-clinicalcare/ValueSet-SDOHCC-ValueSetSDOHCategory.html).
HSDS 3.0 leaves taxonomies open (AIRS/211 LA, Open Eligibility, local lists), so a service's categories are
found from:

1. an attribute whose taxonomy term is already an SDOH code (taxonomy ``SDOHCC`` or the Gravity code system
   URI): taken as is -- this is what :func:`~mappings.community.from_fhir.directory_from_fhir` writes, so the
   categories round-trip;
2. otherwise whole-word keyword rules over the taxonomy terms' names and codes, the service's name, alternate
   name and description, and its program's name (:data:`KEYWORDS`). A service may get several categories; one
   that matches none gets none (it stays findable by keyword).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from .systems import SDOHCC_CATEGORY

__all__ = ["CATEGORIES", "KEYWORDS", "categorize", "category_coding", "is_sdoh_taxonomy"]

#: Gravity SDOH category code -> display (SDOHCC-CodeSystemTemporaryCodes, IG 2.3.0).
CATEGORIES: Final = {
    "food-insecurity": "Food Insecurity",
    "housing-instability": "Housing Instability",
    "homelessness": "Homelessness",
    "inadequate-housing": "Inadequate Housing",
    "transportation-insecurity": "Transportation Insecurity",
    "financial-insecurity": "Financial Insecurity",
    "material-hardship": "Material Hardship",
    "educational-attainment": "Educational Attainment",
    "employment-status": "Employment Status",
    "veteran-status": "Veteran Status",
    "stress": "Stress",
    "social-connection": "Social Connection",
    "intimate-partner-violence": "Intimate Partner Violence",
    "elder-abuse": "Elder Abuse",
    "personal-health-literacy": "Personal Health Literacy",
    "health-insurance-coverage-status": "Health Insurance Coverage Status",
    "medical-cost-burden": "Medical Cost Burden",
    "digital-literacy": "Digital Literacy",
    "digital-access": "Digital Access",
    "utility-insecurity": "Utility Insecurity",
    "incarceration-status": "Incarceration Status",
    "language-access": "Language Access",
    "sdoh-category-unspecified": "SDOH Category Unspecified",
}

#: Category -> whole words or phrases (case-insensitive) that put a service in it.
KEYWORDS: Final = {
    "food-insecurity": (
        "food",
        "foods",
        "pantry",
        "pantries",
        "meal",
        "meals",
        "grocery",
        "groceries",
        "nutrition",
        "snap",
        "wic",
        "soup kitchen",
        "hunger",
        "food bank",
    ),
    "housing-instability": ("housing", "rent", "rental", "eviction", "tenant", "tenants"),
    "homelessness": ("homeless", "homelessness", "shelter", "shelters"),
    "inadequate-housing": ("home repair", "home repairs", "weatherization", "lead abatement"),
    "transportation-insecurity": (
        "transport",
        "transportation",
        "ride",
        "rides",
        "transit",
        "paratransit",
        "bus pass",
        "bus passes",
    ),
    "financial-insecurity": (
        "financial",
        "cash assistance",
        "tax preparation",
        "budgeting",
        "debt",
        "financial coaching",
    ),
    "material-hardship": ("clothing", "diapers", "furniture", "household goods"),
    "educational-attainment": ("ged", "adult education", "tutoring", "literacy"),
    "employment-status": ("job", "jobs", "employment", "career", "workforce", "resume"),
    "veteran-status": ("veteran", "veterans"),
    "stress": ("counselling", "counseling", "mental health", "stress", "anxiety", "depression"),
    "social-connection": (
        "support group",
        "peer support",
        "walking group",
        "exercise group",
        "exercise class",
        "senior center",
        "companionship",
        "social club",
        "befriending",
    ),
    "intimate-partner-violence": ("domestic violence", "intimate partner"),
    "elder-abuse": ("elder abuse",),
    "personal-health-literacy": ("health education", "health literacy"),
    "health-insurance-coverage-status": ("health insurance", "medicaid", "medicare"),
    "medical-cost-burden": ("medical bills", "prescription assistance", "medical debt"),
    "digital-literacy": ("computer class", "computer classes", "digital skills"),
    "digital-access": ("internet", "broadband", "wifi", "computer access"),
    "utility-insecurity": ("utility", "utilities", "energy assistance", "heating assistance", "water bill"),
    "incarceration-status": ("reentry", "re-entry", "incarceration"),
    "language-access": ("interpreter", "interpreting", "esl", "english classes"),
}

_CATEGORY_OF: Final = {w: code for code, words in KEYWORDS.items() for w in words}
# One pass over the lower-cased text: the longest phrases first, so "food bank" is found before "food". (Matched
# against ``text.lower()`` rather than with re.IGNORECASE, which made this scan a tenth of a directory import.)
_PATTERN: Final = re.compile(
    r"\b(?:" + "|".join(re.escape(w) for w in sorted(_CATEGORY_OF, key=len, reverse=True)) + r")\b"
)


def is_sdoh_taxonomy(taxonomy: str | None) -> bool:
    """True when an HSDS taxonomy name or URI stands for the Gravity SDOH category codes."""
    return bool(taxonomy) and (taxonomy == SDOHCC_CATEGORY or str(taxonomy).casefold() == "sdohcc")


def categorize(texts: Iterable[str | None], coded: Iterable[str] = ()) -> list[str]:
    """The SDOH category codes of a service: ``coded`` (terms already SDOH codes) when there are any, else the
    categories whose keywords occur in ``texts``; in :data:`CATEGORIES` order, without repeats."""
    known = [c for c in coded if c in CATEGORIES]
    if known:
        return [c for c in CATEGORIES if c in known]
    text = "\n".join(t for t in texts if t).lower()
    found = {_CATEGORY_OF[m.group(0)] for m in _PATTERN.finditer(text)}
    return [c for c in CATEGORIES if c in found]


def category_coding(code: str) -> dict[str, str]:
    """The Coding of an SDOH category code."""
    return {"system": SDOHCC_CATEGORY, "code": code, "display": CATEGORIES[code]}
