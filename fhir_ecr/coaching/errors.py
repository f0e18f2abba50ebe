"""Errors raised by the pure coaching computations.

Hierarchy::

    ValueError
     └── CoachingError            anything the coaching core refuses to compute
          ├── ScheduleError       a habit schedule, check-in, pause or time zone that makes no sense
          ├── GoalError           a goal target or measurement series that makes no sense
          └── RunChartError       a run-chart series or phase layout that makes no sense

They subclass :class:`ValueError` because every one of them means "the input is wrong"; the service layer
translates them once, at its boundary, into an ``invalid`` OperationOutcome.
"""

from __future__ import annotations

__all__ = ["CoachingError", "GoalError", "RunChartError", "ScheduleError"]


class CoachingError(ValueError):
    """Base class: the coaching core was given input it cannot compute with."""


class ScheduleError(CoachingError):
    """A habit schedule, check-in, pause, or time-zone name is invalid."""


class GoalError(CoachingError):
    """A goal target, measurement series, or progress policy is invalid."""


class RunChartError(CoachingError):
    """A run-chart series, baseline, or phase layout is invalid."""
