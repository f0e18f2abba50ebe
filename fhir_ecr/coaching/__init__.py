"""The coaching core: pure computations over habits, check-ins, goals and measurement series.

No database, no HTTP, no clock: plain dataclasses in, dataclasses out, ``today`` passed in, all dates
local. The service layer fills the inputs from FHIR resources (CarePlan.activity habits with their
``Timing``, check-in Observations, Goal targets) read through the repository.

Modules:

* :mod:`~fhir_ecr.coaching.schedule` — habit schedules (from ``Timing.repeat``), check-ins, pauses, the
  occurrence ledger, and :func:`local_date`.
* :mod:`~fhir_ecr.coaching.adherence` — adherence over 7/30/90-day (any) windows.
* :mod:`~fhir_ecr.coaching.streaks` — current and best streaks with repair and pause.
* :mod:`~fhir_ecr.coaching.progress` — goal progress and ``Goal.achievementStatus``.
* :mod:`~fhir_ecr.coaching.runchart` — run-chart signals (Anhøj rules, astronomical points, phases).

Errors (all ``ValueError``)::

    CoachingError
     ├── ScheduleError
     ├── GoalError
     └── RunChartError
"""

from fhir_ecr.coaching.adherence import (
    Adherence,
    AdherencePolicy,
    adherence,
    adherence_windows,
    ledger_adherence,
)
from fhir_ecr.coaching.errors import CoachingError, GoalError, RunChartError, ScheduleError
from fhir_ecr.coaching.progress import (
    ACHIEVEMENT_SYSTEM,
    AchievementStatus,
    Comparator,
    GoalProgress,
    GoalTarget,
    Measurement,
    ProgressPolicy,
    SlopeMethod,
    goal_progress,
    least_squares_slope,
    theil_sen_slope,
)
from fhir_ecr.coaching.runchart import (
    ChangeChart,
    Phase,
    Run,
    RunChartAnalysis,
    RunChartRule,
    analyse_changes,
    analyse_phases,
    analyse_run_chart,
    binomial_quantile,
    crossings_limit,
    longest_run_limit,
)
from fhir_ecr.coaching.schedule import (
    CheckIn,
    CheckInStatus,
    Ledger,
    Occurrence,
    OccurrenceState,
    Pause,
    Schedule,
    ScheduleKind,
    Unit,
    Weekday,
    due_dates,
    ledger,
    local_date,
    occurrences,
    schedule_from_timing,
    week_bounds,
)
from fhir_ecr.coaching.streaks import Streak, StreakPolicy, Streaks, ledger_streaks, streaks

__all__ = [
    "ACHIEVEMENT_SYSTEM",
    "AchievementStatus",
    "Adherence",
    "AdherencePolicy",
    "CheckIn",
    "CheckInStatus",
    "CoachingError",
    "Comparator",
    "GoalError",
    "GoalProgress",
    "GoalTarget",
    "Ledger",
    "Measurement",
    "Occurrence",
    "OccurrenceState",
    "Pause",
    "Phase",
    "ProgressPolicy",
    "Run",
    "RunChartAnalysis",
    "RunChartError",
    "RunChartRule",
    "Schedule",
    "ScheduleError",
    "ScheduleKind",
    "SlopeMethod",
    "Streak",
    "StreakPolicy",
    "Streaks",
    "Unit",
    "Weekday",
    "adherence",
    "adherence_windows",
    "ChangeChart",
    "analyse_changes",
    "analyse_phases",
    "analyse_run_chart",
    "binomial_quantile",
    "crossings_limit",
    "due_dates",
    "goal_progress",
    "least_squares_slope",
    "ledger",
    "ledger_adherence",
    "ledger_streaks",
    "local_date",
    "longest_run_limit",
    "occurrences",
    "schedule_from_timing",
    "streaks",
    "theil_sen_slope",
    "week_bounds",
]
