"""Labels for the pages: measures, goal categories, pause reasons — read from the mECR IG, not copied.

The code lists come from the IG's CodeSystems and ValueSets (:func:`fhir_ecr.conformance.ig.load_ig`); this
module adds only what the IG does not say: short labels and the unit each measure is shown in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..canonical import GOAL_CATEGORY_SYSTEM, PAUSE_REASON_SYSTEM, TARGET_MEASURE_VALUE_SET
from ..conformance.ig import load_ig

__all__ = [
    "LOINC",
    "Measure",
    "WEARABLE_TRENDS",
    "goal_categories",
    "measure",
    "pause_reasons",
    "target_measures",
]

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Measure:
    """A LOINC-coded measure and how the pages show it."""

    code: str
    label: str
    unit: str  # UCUM code the values are shown in ("" = as recorded)
    sensitive: bool = False  # hidden in the patient app's "hide weight/calories" mode

    @property
    def system(self) -> str:
        return LOINC

    @property
    def token(self) -> str:
        return f"{LOINC}|{self.code}"

    @property
    def convert_to(self) -> str | None:
        """The unit to convert readings to, or None to take them as recorded (no conversion rule known)."""
        return self.unit if self.unit in _CONVERTIBLE else None


# Units the coaching core converts between (coaching.resources: time, mass, per-day counts).
_CONVERTIBLE = {"s", "min", "h", "g", "kg", "[lb_av]", "/d"}

# Short labels and display units; anything else in the IG value set keeps its LOINC display and unit "1".
_KNOWN = {
    "41950-7": Measure("41950-7", "Steps", "/d"),
    "93832-4": Measure("93832-4", "Sleep", "h"),
    "40443-4": Measure("40443-4", "Resting heart rate", "/min"),
    "29463-7": Measure("29463-7", "Weight", "kg", sensitive=True),
    "41981-2": Measure("41981-2", "Calories burned", "kcal", sensitive=True),
    "39156-5": Measure("39156-5", "BMI", "kg/m2", sensitive=True),
    "8480-6": Measure("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "8462-4": Measure("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    "4548-4": Measure("4548-4", "HbA1c", "%"),
    "68516-4": Measure("68516-4", "Exercise minutes", "min"),
    "82290-8": Measure("82290-8", "Aerobic activity", "min/wk"),
}

# The wearable trends shown on the patient page, in this order.
WEARABLE_TRENDS = ("41950-7", "93832-4", "40443-4", "29463-7")


def measure(code: str, display: str | None = None) -> Measure:
    """The :class:`Measure` for a LOINC code (a generic one for codes the pages have no label for)."""
    return _KNOWN.get(code) or Measure(code, display or code, "")


@cache
def target_measures() -> tuple[Measure, ...]:
    """The IG's coaching-target-measure value set, as measures (what a SMART goal can be measured by)."""
    vs = load_ig().value_sets.get(TARGET_MEASURE_VALUE_SET) or {}
    out = []
    for inc in (vs.get("compose") or {}).get("include") or []:
        for c in inc.get("concept") or []:
            out.append(measure(c["code"], c.get("display")))
    return tuple(out) or tuple(_KNOWN.values())


def _concepts(url: str) -> tuple[tuple[str, str], ...]:
    cs = load_ig().code_systems.get(url) or {}
    return tuple((c["code"], c.get("display") or c["code"]) for c in cs.get("concept") or [])


@cache
def goal_categories() -> tuple[tuple[str, str], ...]:
    """(code, display) of the IG's coaching-goal-category CodeSystem."""
    return _concepts(GOAL_CATEGORY_SYSTEM)


@cache
def pause_reasons() -> tuple[tuple[str, str], ...]:
    """(code, display) of the IG's habit-pause-reason CodeSystem."""
    return _concepts(PAUSE_REASON_SYSTEM)
