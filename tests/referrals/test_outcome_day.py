"""A referral outcome's day is the patient's: a Procedure performed in the evening in New York is written with
the next day's date by a server in UTC, and the goal chart, counting the patient's days, must mark it on the day
before (the chart ends on the patient's today and drew no mark for a day after it)."""

from __future__ import annotations

import pytest

from fhir_ecr.referrals.service import outcome_day

NY = "America/New_York"


@pytest.mark.parametrize(
    ("value", "tz", "day"),
    [
        ("2026-12-07T01:30:00Z", NY, "2026-12-06"),  # 20:30 the evening before in New York (EST, UTC-5)
        ("2026-12-07T04:59:59.999Z", NY, "2026-12-06"),  # the last instant of the 6th there
        ("2026-12-07T05:00:00Z", NY, "2026-12-07"),  # midnight there
        ("2026-07-07T03:59:00+00:00", NY, "2026-07-06"),  # summer time (EDT, UTC-4)
        ("2026-07-07T04:00:00+00:00", NY, "2026-07-07"),
        (
            "2026-12-06T23:30:00-05:00",
            "Asia/Tokyo",
            "2026-12-07",
        ),  # the patient's zone decides, not the writer's
        ("2026-12-07", NY, "2026-12-07"),  # a date is a day already
        ("2026-12-07T01:30:00Z", None, "2026-12-07"),  # no zone known: the day it is written with
        ("2026-12-07T01:30:00", NY, "2026-12-07"),  # no offset: no instant to move
        ("2026-12-07T01:30:00Z", "Not/AZone", "2026-12-07"),
        ("", NY, None),
    ],
)
def test_outcome_day(value: str, tz: str | None, day: str | None) -> None:
    assert outcome_day(value, tz) == day
