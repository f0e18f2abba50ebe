"""The coaching resources: FHIR <-> the pure coaching dataclasses; pure functions, no database, no clock.

One module per concern: ``common`` (canonical URLs, references, local dates, units, a day's measurement),
``goals``, ``habits``, ``checkins``, ``pdsa`` and ``parameters``; this package re-exports their public names
(``from fhir_ecr.coaching import resources as res``).

Builders write resources that conform to the mECR IG profiles (``profiles/``), each with ``meta.profile`` set
to the profile's canonical; parsers read them back into :mod:`~fhir_ecr.coaching.schedule` /
:mod:`~fhir_ecr.coaching.progress` inputs. What lives where:

=====================  ==================================================================================
fact                   FHIR element
=====================  ==================================================================================
patient's time zone    ``Patient.extension`` ``http://hl7.org/fhir/StructureDefinition/timezone``
                       (``valueCode``, an IANA name such as ``America/New_York``); default: the service's
                       ``default_tz`` (UTC unless configured)
habit                  one ``CarePlan.activity`` of a ``mecr-habit-plan`` CarePlan, identified by the
                       ``habit-id`` extension
habit start / stop     ``activity.detail.scheduledTiming.repeat.boundsPeriod`` start / end (local dates)
habit pauses           ``activity.extension`` ``https://mecr.dev/fhir/StructureDefinition/habit-pause``
                       (``period`` of local dates, ``reason``): the pause *history*; the current state is
                       ``detail.status = on-hold`` + ``detail.statusReason`` (IG invariant mecr-plan-2)
habit daily target     ``activity.detail.dailyAmount`` (e.g. 8000 ``/d`` steps) — what a wearable
                       reading must reach to count as done
PDSA note              ``activity.progress`` Annotation whose text starts with ``PDSA:``
check-in               ``mecr-habit-check-in`` Observation, identifier
                       ``https://mecr.dev/fhir/NamingSystem/habit-check-in|{plan}/{habit}/{YYYY-MM-DD}``
coaching session       ``mecr-coaching-session`` Encounter (+ a ClinicalImpression for the structured note)
=====================  ==================================================================================

Operation results are ``Parameters`` resources; :func:`to_parameters` / :func:`parameters_to_dict` convert
between them and plain nested dicts.
"""

from __future__ import annotations

from .checkins import (
    CHECKIN_TOKENS,
    checkin_from_observation,
    checkin_identifier,
    checkin_observation,
    checkins_from_tokens,
)
from .common import (
    CANONICAL,
    CHECKIN_ID_SYSTEM,
    CHECKIN_PROFILE,
    CHECKIN_RESULT_SYSTEM,
    COACH_PROFILE,
    GOAL_ACHIEVEMENT_SYSTEM,
    GOAL_CATEGORY_SYSTEM,
    GOAL_PROFILE,
    HABIT_ID_URL,
    HABIT_PAUSE_URL,
    MECR_CODES,
    MODALITY_SYSTEM,
    MODALITY_URL,
    PAUSE_REASON_SYSTEM,
    PDSA_PREFIX,
    PLAN_PROFILE,
    SESSION_PROFILE,
    TIMEZONE_URL,
    effective_local_date,
    measurement_value,
    measurements_by_day,
    parse_local_date,
    patient_time_zone,
    ref_id,
)
from .goals import GoalInfo, goal_info, goal_info_target
from .habits import (
    Habit,
    end_pause,
    habit_activity,
    habit_from_activity,
    habits_of_plan,
    pause_extension,
    pause_of_extension,
    pause_reason,
    timing_repeat,
)
from .parameters import parameters_to_dict, quantity, to_parameters
from .pdsa import PdsaNote, pdsa_annotation, pdsa_notes

__all__ = [
    "pause_reason",
    "CANONICAL",
    "CHECKIN_ID_SYSTEM",
    "CHECKIN_PROFILE",
    "CHECKIN_RESULT_SYSTEM",
    "COACH_PROFILE",
    "GOAL_ACHIEVEMENT_SYSTEM",
    "GOAL_CATEGORY_SYSTEM",
    "GOAL_PROFILE",
    "HABIT_ID_URL",
    "HABIT_PAUSE_URL",
    "MECR_CODES",
    "MODALITY_SYSTEM",
    "MODALITY_URL",
    "PAUSE_REASON_SYSTEM",
    "PDSA_PREFIX",
    "PLAN_PROFILE",
    "SESSION_PROFILE",
    "TIMEZONE_URL",
    "Habit",
    "GoalInfo",
    "PdsaNote",
    "checkin_identifier",
    "checkin_observation",
    "checkin_from_observation",
    "CHECKIN_TOKENS",
    "checkins_from_tokens",
    "effective_local_date",
    "goal_info",
    "goal_info_target",
    "habit_activity",
    "habit_from_activity",
    "habits_of_plan",
    "measurement_value",
    "measurements_by_day",
    "parameters_to_dict",
    "parse_local_date",
    "patient_time_zone",
    "end_pause",
    "pause_extension",
    "pause_of_extension",
    "pdsa_annotation",
    "pdsa_notes",
    "quantity",
    "ref_id",
    "timing_repeat",
    "to_parameters",
]
