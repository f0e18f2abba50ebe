"""Frequency limits and daily unit caps: what a patient already had, by code and day (pure, no I/O).

Limits come from the rule table (``services.<name>.frequency`` and ``max_units_per_day``):

- ``lifetime: N`` — at most N lines ever;
- ``year: {max: N, window: calendar}`` — at most N in the calendar year (1 January to 31 December) of the day;
- ``year: {max: N, window: rolling}`` — at most N in the 12 months that end on the day of service (the same date
  a year earlier is outside: 2026-03-10 counts 2025-03-11..2026-03-10). Medicare IBT for obesity allows 22 visits
  in 12 months, G0447 and G0473 together (NCD 210.12; Noridian IBT page);
- ``day: N`` — at most N lines a day;
- ``counter: NAME`` — every service whose frequency names the same counter counts its codes' lines together;
- ``max_units_per_day: N`` — at most N units of a code a day (Medi-Cal 0592T/0593T: 3).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from .model import BilledItem
from .rules import Payer, Service

__all__ = ["History", "months_before"]


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (the month's last day when it is shorter)."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    m += 1
    last = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)).day
    return date(y, m, min(day.day, last))


class History:
    """Codes a patient had, by day (and units by day): lines billed before plus lines made earlier in this run."""

    def __init__(self, billed: Iterable[BilledItem]) -> None:
        self.days: dict[tuple[str, str], list[date]] = defaultdict(list)
        self.units: dict[tuple[str, str, date], int] = defaultdict(int)
        self.excluded: dict[tuple[str, str], tuple[str, ...]] = {}  # per payer and code, see _excluded
        self.counters: dict[str, dict[str, tuple[str, ...]]] = {}  # per payer: counter -> its codes
        for item in billed:
            self.add(item.patient_id, item.code, item.day, item.units)

    def add(self, patient_id: str, code: str, day: date, units: int = 1) -> None:
        self.days[(patient_id, code)].append(day)
        self.units[(patient_id, code, day)] += units

    def _counted(self, p: Payer, service: Service, code: str) -> tuple[str, ...]:
        counter = service.frequency.counter
        if counter is None:
            return (code,)
        shared = self.counters.get(p.key)
        if shared is None:
            shared = {}
            for svc in p.services.values():
                if svc.frequency.counter:
                    shared[svc.frequency.counter] = (*shared.get(svc.frequency.counter, ()), *svc.codes)
            self.counters[p.key] = shared
        return shared.get(counter, (code,))

    def frequency_problem(
        self, p: Payer, patient_id: str, code: str, day: date, service: Service
    ) -> str | None:
        f = service.frequency
        if f.lifetime is None and f.year is None and f.day is None:
            return None
        codes = self._counted(p, service, code)
        seen = [d for c in codes for d in self.days.get((patient_id, c), ())]
        what = code if len(codes) == 1 else f"{code} ({' and '.join(codes)} counted together)"
        if f.lifetime is not None and len(seen) >= f.lifetime:
            first = min(seen)
            return (
                f"{what} is billed at most {f.lifetime}x per patient; this patient had it on "
                f"{first.isoformat()}" + (" and later" if len(seen) > 1 else "")
            )
        if f.year is not None:
            if f.year.window == "calendar":
                count = sum(1 for d in seen if d.year == day.year)
                span = f"calendar year {day.year}"
            else:  # the 12 months that end on the day of service
                after = months_before(day, 12)
                count = sum(1 for d in seen if after < d <= day)
                span = f"12 months {(after + timedelta(days=1)).isoformat()}..{day.isoformat()}"
            if count >= f.year.max:
                return (
                    f"{what} is billed at most {f.year.max}x per patient in a {f.year.window} year; "
                    f"this patient had {count} in the {span}"
                )
        if f.day is not None and sum(1 for d in seen if d == day) >= f.day:
            return f"{what} is billed at most {f.day}x per patient per day"
        return None

    def units_on(self, patient_id: str, code: str, day: date) -> int:
        return self.units.get((patient_id, code, day), 0)

    def same_day(self, patient_id: str, codes: Sequence[str], day: date) -> str | None:
        for c in codes:
            if day in self.days.get((patient_id, c), ()):
                return c
        return None
