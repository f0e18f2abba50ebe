"""The normalised reading every wearable reader yields, and the plausibility limits applied to it.

A :class:`Reading` is source-neutral: values are converted to one canonical UCUM unit per metric
(:data:`CANONICAL_UNITS`; blood glucose keeps mg/dL or mmol/L because each has its own LOINC code), times
are timezone-aware, and provenance (:class:`Source`, record id, file/line) travels with the value so that
errors and FHIR ``device``/``meta.source`` can name it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Final

from mappings.errors import MalformedInputError

__all__ = [
    "CANONICAL_UNITS",
    "PLAUSIBLE_RANGES",
    "Component",
    "Metric",
    "Reading",
    "Source",
    "check_plausible",
    "plausible_limits",
]


class Metric(enum.StrEnum):
    """What a reading measures. The value is a stable key used in identifiers."""

    STEPS = "steps"
    DISTANCE = "distance"
    HEART_RATE = "heart-rate"
    RESTING_HEART_RATE = "resting-heart-rate"
    AVG_HEART_RATE = "average-heart-rate"  # mean over one workout
    ACTIVE_ENERGY = "active-energy"
    WORKOUT_ENERGY = "workout-energy"  # calories of one workout (not added to daily energy)
    ACTIVE_MINUTES = "active-minutes"  # device-measured moderate-or-vigorous minutes
    EXERCISE = "exercise"  # one workout/session; value = duration, label = activity name
    SLEEP_DURATION = "sleep-duration"  # total time asleep of one sleep session
    SLEEP_ASLEEP = "sleep-asleep"  # a segment asleep, stage unspecified
    SLEEP_LIGHT = "sleep-light"
    SLEEP_DEEP = "sleep-deep"
    SLEEP_REM = "sleep-rem"
    SLEEP_AWAKE = "sleep-awake"
    SLEEP_IN_BED = "sleep-in-bed"
    WEIGHT = "weight"
    HEIGHT = "height"
    BMI = "bmi"
    BODY_FAT = "body-fat"
    BODY_TEMPERATURE = "body-temperature"
    BLOOD_PRESSURE = "blood-pressure"  # components systolic + diastolic
    SYSTOLIC_BP = "systolic"  # only as a component
    DIASTOLIC_BP = "diastolic"  # only as a component
    SPO2 = "spo2"
    BLOOD_GLUCOSE = "blood-glucose"


#: The one unit (UCUM code) each metric's value is stored in.
CANONICAL_UNITS: Final[dict[Metric, str]] = {
    Metric.STEPS: "{steps}",
    Metric.DISTANCE: "m",
    Metric.HEART_RATE: "/min",
    Metric.RESTING_HEART_RATE: "/min",
    Metric.AVG_HEART_RATE: "/min",
    Metric.ACTIVE_ENERGY: "kcal",
    Metric.WORKOUT_ENERGY: "kcal",
    Metric.ACTIVE_MINUTES: "min",
    Metric.EXERCISE: "min",
    Metric.SLEEP_DURATION: "min",
    Metric.SLEEP_ASLEEP: "min",
    Metric.SLEEP_LIGHT: "min",
    Metric.SLEEP_DEEP: "min",
    Metric.SLEEP_REM: "min",
    Metric.SLEEP_AWAKE: "min",
    Metric.SLEEP_IN_BED: "min",
    Metric.WEIGHT: "kg",
    Metric.HEIGHT: "cm",
    Metric.BMI: "kg/m2",
    Metric.BODY_FAT: "%",
    Metric.BODY_TEMPERATURE: "Cel",
    Metric.SYSTOLIC_BP: "mm[Hg]",
    Metric.DIASTOLIC_BP: "mm[Hg]",
    Metric.BLOOD_PRESSURE: "mm[Hg]",
    Metric.SPO2: "%",
    Metric.BLOOD_GLUCOSE: "mg/dL",
}

#: Inclusive plausible range per (metric, unit), for one reading covering at most one day. Values outside
#: are kept but flagged (``Reading.implausible``): the limits catch unit mix-ups (lb read as kg, a fraction
#: read as a percentage) and sensor glitches, not clinical abnormality, so they are deliberately wide.
PLAUSIBLE_RANGES: Final[dict[tuple[Metric, str], tuple[float, float]]] = {
    (Metric.STEPS, "{steps}"): (0, 200_000),
    (Metric.DISTANCE, "m"): (0, 300_000),
    (Metric.HEART_RATE, "/min"): (20, 300),
    (Metric.RESTING_HEART_RATE, "/min"): (20, 200),
    (Metric.AVG_HEART_RATE, "/min"): (20, 300),
    (Metric.ACTIVE_ENERGY, "kcal"): (0, 10_000),
    (Metric.WORKOUT_ENERGY, "kcal"): (0, 10_000),
    (Metric.ACTIVE_MINUTES, "min"): (0, 1440),
    (Metric.EXERCISE, "min"): (0, 1440),
    (Metric.SLEEP_DURATION, "min"): (0, 1440),
    (Metric.SLEEP_ASLEEP, "min"): (0, 1440),
    (Metric.SLEEP_LIGHT, "min"): (0, 1440),
    (Metric.SLEEP_DEEP, "min"): (0, 1440),
    (Metric.SLEEP_REM, "min"): (0, 1440),
    (Metric.SLEEP_AWAKE, "min"): (0, 1440),
    (Metric.SLEEP_IN_BED, "min"): (0, 1440),
    (Metric.WEIGHT, "kg"): (20, 500),  # an adult record: below 20 kg is a unit or entry error
    (Metric.HEIGHT, "cm"): (50, 275),
    (Metric.BMI, "kg/m2"): (8, 100),
    (Metric.BODY_FAT, "%"): (1, 80),
    (Metric.BODY_TEMPERATURE, "Cel"): (25, 45),
    (Metric.SYSTOLIC_BP, "mm[Hg]"): (40, 300),
    (Metric.DIASTOLIC_BP, "mm[Hg]"): (20, 200),
    (Metric.SPO2, "%"): (50, 100),
    (Metric.BLOOD_GLUCOSE, "mg/dL"): (10, 1500),
    (Metric.BLOOD_GLUCOSE, "mmol/L"): (0.5, 85),
}

#: Metrics whose value grows with the length of the interval: their limit scales with whole days.
_ADDITIVE: Final = frozenset(
    {Metric.STEPS, Metric.DISTANCE, Metric.ACTIVE_ENERGY, Metric.ACTIVE_MINUTES, Metric.SLEEP_DURATION}
)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a reading came from.

    ``vendor`` is the reader (``apple-health``, ``fitbit``, ``garmin``, ``withings``, ``google-fit``,
    ``ihealth``, ``omh``, ``csv``); ``name`` the app or data stream as the source names it (``Apple Watch``,
    ``merge_step_deltas``); ``device`` the hardware when known; ``app`` the originating app or version, kept
    for display but not part of the source's identity (one Google Fit merged stream mixes several apps).
    """

    vendor: str
    name: str
    device: str | None = None
    app: str | None = None

    @property
    def key(self) -> str:
        """Stable identity of the source, used in identifiers and de-duplication."""
        return f"{self.vendor}|{self.name}|{self.device or ''}"

    @property
    def display(self) -> str:
        """A human-readable label."""
        return f"{self.name} ({self.device})" if self.device and self.device != self.name else self.name


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a multi-part reading (systolic and diastolic of a blood pressure)."""

    metric: Metric
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Reading:
    """One normalised measurement.

    ``start``/``end`` are aware datetimes; ``end`` is ``None`` for an instant. ``local_date`` is set when the
    source itself aggregated the value over that local calendar day (Fitbit daily steps, Withings activity),
    and then ``start``/``end`` are that day's local midnights. ``time_zone`` is the IANA zone the source
    recorded, when it says. ``location`` says where the record was in the input, for messages.
    """

    metric: Metric
    value: float | None
    unit: str
    start: datetime
    source: Source
    end: datetime | None = None
    components: tuple[Component, ...] = ()
    time_zone: str | None = None
    local_date: date | None = None
    label: str | None = None
    record_id: str | None = None
    location: str | None = None
    entered_by_user: bool = False
    implausible: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise MalformedInputError("reading start time has no UTC offset", record=self.location)
        if self.end is not None:
            if self.end.tzinfo is None or self.end.utcoffset() is None:
                raise MalformedInputError("reading end time has no UTC offset", record=self.location)
            if self.end < self.start:
                raise MalformedInputError(
                    f"end {self.end.isoformat()} is before start {self.start.isoformat()}",
                    record=self.location,
                )
        if self.value is None and not self.components:
            raise MalformedInputError("reading has neither a value nor components", record=self.location)
        if self.value is not None and not math.isfinite(self.value):
            raise MalformedInputError(f"value {self.value!r} is not a finite number", record=self.location)

    @property
    def is_instant(self) -> bool:
        """True when the reading is a point in time (no interval)."""
        return self.end is None or self.end == self.start

    @property
    def duration(self) -> timedelta:
        """Length of the interval (zero for an instant), measured in elapsed time."""
        return timedelta(0) if self.end is None else self.end - self.start

    def checked(self) -> Reading:
        """This reading with ``implausible`` set when a value is outside :data:`PLAUSIBLE_RANGES`."""
        reason = check_plausible(self)
        return self if reason == self.implausible else replace(self, implausible=reason)


def plausible_limits(metric: Metric, unit: str, days: int = 1) -> tuple[float, float] | None:
    """The inclusive plausible range of a ``metric`` value in ``unit`` over ``days`` whole days (at least 1):
    the upper limit of an additive metric (steps, distance, energy, ...) grows with the days. None: no limit."""
    bounds = PLAUSIBLE_RANGES.get((metric, unit))
    if bounds is None:
        return None
    low, high = bounds
    return (low, high * days) if metric in _ADDITIVE else (low, high)


def check_plausible(reading: Reading) -> str | None:
    """Why the reading's value is implausible, or ``None`` when it is within limits."""
    days = max(1, math.ceil(reading.duration / timedelta(days=1)))
    checks: list[tuple[Metric, float, str]] = [(c.metric, c.value, c.unit) for c in reading.components]
    if reading.value is not None:
        checks.append((reading.metric, reading.value, reading.unit))
    for metric, value, unit in checks:
        bounds = plausible_limits(metric, unit, days)
        if bounds is None:
            continue
        low, high = bounds
        if not low <= value <= high:
            return f"{metric.value} {value:g} {unit} outside plausible range {low:g}..{high:g}"
    return None
