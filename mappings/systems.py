"""Code systems, codes and units shared by every mapping in :mod:`mappings`.

Nothing else in the package spells a URL, a LOINC code or a UCUM unit: it imports it from here, so a
code can be checked (and corrected) in one place. Sources:

* FHIR R4 vital signs value set (https://hl7.org/fhir/R4/valueset-observation-vitalsignresult.html):
  heart rate, SpO2, body weight, BMI, blood pressure panel and components, height, body temperature.
* HL7 Physical Activity IG 1.0.0 (http://hl7.org/fhir/us/physical-activity, ``Vocabulary.fsh`` and
  ``measures.xml``): daily steps ``41950-7 /d``, resting heart rate ``40443-4``, calories per day
  ``41979-6 kcal/d``, exercise vital sign ``68516-4 min/d`` and ``82290-8 min/wk``, per-activity measures
  (``55411-3``, ``55424-6``, ``55425-3``), and the category pair ``observation-category#activity`` +
  ``pa-temporary-codes#PhysicalActivity``.
* HL7 Personal Health Record IG value set ``pcd-sleep-observation-code``: sleep duration ``93832-4`` and
  the stage durations ``93831-6`` deep, ``93830-8`` light, ``93829-0`` REM.
* Open mHealth ``step-count-3.0`` (references LOINC ``55423-8``, steps in an unspecified time by pedometer)
  and HealthKitOnFHIR for ``41981-2`` (calories burned), ``59408-5`` (SpO2 by pulse oximetry).

Where no verified LOINC exists (time in bed, time awake, device-measured active minutes of one interval,
distance) the mappings use :data:`MECR_METRIC_SYSTEM`, a local code system, rather than guess a LOINC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACTIVE_ENERGY",
    "ACTIVE_MINUTES_DAY",
    "ACTIVE_MINUTES_WEEK",
    "AVG_HEART_RATE_ACTIVITY",
    "BLOOD_GLUCOSE_MASS",
    "BLOOD_GLUCOSE_MOLES",
    "BLOOD_PRESSURE_PANEL",
    "BMI",
    "BODY_FAT",
    "BODY_HEIGHT",
    "BODY_TEMPERATURE",
    "BODY_WEIGHT",
    "CALORIES_ACTIVITY",
    "CATEGORY_ACTIVITY",
    "CATEGORY_PHYSICAL_ACTIVITY",
    "CATEGORY_VITAL_SIGNS",
    "DAILY_STEPS",
    "DIASTOLIC_BP",
    "EXERCISE_DURATION",
    "HEART_RATE",
    "LOINC",
    "MECR_DATA_QUALITY_SYSTEM",
    "MECR_DEVICE_SYSTEM",
    "MECR_IDENTIFIER_SYSTEM",
    "MECR_METRIC_SYSTEM",
    "OBSERVATION_CATEGORY",
    "PA_TEMPORARY_CODES",
    "RESTING_HEART_RATE",
    "SLEEP_DEEP",
    "SLEEP_DURATION",
    "SLEEP_LIGHT",
    "SLEEP_REM",
    "SPO2_ARTERIAL",
    "SPO2_PULSE_OXIMETRY",
    "STEPS_INTERVAL",
    "SYSTOLIC_BP",
    "UCUM",
    "Code",
    "UNIT_DISPLAY",
]

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
#: The Physical Activity IG's temporary code system (``Vocabulary.fsh``, CodeSystem ``pa-temporary-codes``).
PA_TEMPORARY_CODES: Final = "http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes"

#: Local code system for measures that have no verified LOINC code (see the module docstring).
MECR_METRIC_SYSTEM: Final = "https://mecr.dev/fhir/CodeSystem/wearable-metric"
#: Identifier system of the deterministic ``Observation.identifier`` built by the mappers.
MECR_IDENTIFIER_SYSTEM: Final = "https://mecr.dev/fhir/NamingSystem/wearable-observation"
#: Identifier system of the deterministic ``Device.identifier`` (one Device per source).
MECR_DEVICE_SYSTEM: Final = "https://mecr.dev/fhir/NamingSystem/wearable-source"
#: ``meta.tag`` system used to flag readings outside plausibility limits.
MECR_DATA_QUALITY_SYSTEM: Final = "https://mecr.dev/fhir/CodeSystem/data-quality"


@dataclass(frozen=True, slots=True)
class Code:
    """One coding: system, code and display text."""

    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        """The FHIR ``Coding`` dict."""
        return {"system": self.system, "code": self.code, "display": self.display}


# -- categories --------------------------------------------------------------------------------------
CATEGORY_VITAL_SIGNS: Final = Code(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
CATEGORY_ACTIVITY: Final = Code(OBSERVATION_CATEGORY, "activity", "Activity")
CATEGORY_PHYSICAL_ACTIVITY: Final = Code(PA_TEMPORARY_CODES, "PhysicalActivity", "Physical Activity")

# -- activity (Physical Activity IG) -----------------------------------------------------------------
DAILY_STEPS: Final = Code(LOINC, "41950-7", "Number of steps in 24 hour Measured")
STEPS_INTERVAL: Final = Code(LOINC, "55423-8", "Number of steps in unspecified time Pedometer")
RESTING_HEART_RATE: Final = Code(LOINC, "40443-4", "Heart rate --resting")
ACTIVE_ENERGY: Final = Code(LOINC, "41981-2", "Calories burned")
CALORIES_ACTIVITY: Final = Code(LOINC, "55424-6", "Calories burned in unspecified time Pedometer")
EXERCISE_DURATION: Final = Code(LOINC, "55411-3", "Exercise duration")
AVG_HEART_RATE_ACTIVITY: Final = Code(LOINC, "55425-3", "Heart rate unspecified time mean by Pedometer")
ACTIVE_MINUTES_DAY: Final = Code(
    LOINC,
    "68516-4",
    "On those days that you engage in moderate to strenuous exercise, how many minutes, on average, do you exercise",
)
ACTIVE_MINUTES_WEEK: Final = Code(
    LOINC, "82290-8", "Frequency of moderate to vigorous aerobic physical activity"
)

# -- sleep (PHR IG pcd-sleep-observation-code) -------------------------------------------------------
SLEEP_DURATION: Final = Code(LOINC, "93832-4", "Sleep duration")
SLEEP_DEEP: Final = Code(LOINC, "93831-6", "Deep sleep duration")
SLEEP_LIGHT: Final = Code(LOINC, "93830-8", "Light sleep duration")
SLEEP_REM: Final = Code(LOINC, "93829-0", "REM sleep duration")

# -- vital signs (FHIR R4 core) ----------------------------------------------------------------------
HEART_RATE: Final = Code(LOINC, "8867-4", "Heart rate")
BODY_WEIGHT: Final = Code(LOINC, "29463-7", "Body weight")
BODY_HEIGHT: Final = Code(LOINC, "8302-2", "Body height")
BMI: Final = Code(LOINC, "39156-5", "Body mass index (BMI) [Ratio]")
BODY_TEMPERATURE: Final = Code(LOINC, "8310-5", "Body temperature")
BODY_FAT: Final = Code(LOINC, "41982-0", "Percentage of body fat Measured")
BLOOD_PRESSURE_PANEL: Final = Code(LOINC, "85354-9", "Blood pressure panel with all children optional")
SYSTOLIC_BP: Final = Code(LOINC, "8480-6", "Systolic blood pressure")
DIASTOLIC_BP: Final = Code(LOINC, "8462-4", "Diastolic blood pressure")
#: The R4 vital-signs profile requires 2708-6; US Core pulse oximetry adds 59408-5: both are sent.
SPO2_ARTERIAL: Final = Code(LOINC, "2708-6", "Oxygen saturation in Arterial blood")
SPO2_PULSE_OXIMETRY: Final = Code(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")
BLOOD_GLUCOSE_MASS: Final = Code(LOINC, "2339-0", "Glucose [Mass/volume] in Blood")
BLOOD_GLUCOSE_MOLES: Final = Code(LOINC, "15074-8", "Glucose [Moles/volume] in Blood")

#: Human-readable ``Quantity.unit`` for each UCUM code the mappings emit.
UNIT_DISPLAY: Final[dict[str, str]] = {
    "/d": "per day",
    "{steps}": "steps",
    "/min": "beats/minute",
    "min": "min",
    "min/d": "min/d",
    "min/wk": "min/wk",
    "h": "h",
    "kcal": "kcal",
    "kcal/d": "kcal/d",
    "kg": "kg",
    "cm": "cm",
    "m": "m",
    "kg/m2": "kg/m2",
    "mm[Hg]": "mmHg",
    "%": "%",
    "mg/dL": "mg/dL",
    "mmol/L": "mmol/L",
    "Cel": "C",
}
