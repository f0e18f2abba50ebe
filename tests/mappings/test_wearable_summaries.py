"""Daily summaries: local days across DST, splitting intervals, and never adding overlapping sources."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from wearable_support import validate_fhir

from mappings.wearables import (
    DedupRule,
    Metric,
    Reading,
    Source,
    daily_summaries,
    summaries_to_resources,
    weekly_active_minutes,
)

NY = ZoneInfo("America/New_York")
PHONE = Source("apple-health", "iPhone")
WATCH = Source("apple-health", "Apple Watch", "Apple Watch, Watch6,7")
FITBIT = Source("fitbit", "Fitbit Web API")


def _r(
    metric: Metric, value: float, source: Source, start: datetime, minutes: float | None = 60, **kw
) -> Reading:
    end = None if minutes is None else start + timedelta(minutes=minutes)
    unit = {"steps": "{steps}", "resting-heart-rate": "/min"}.get(metric.value, "min")
    return Reading(metric, value, unit, start, source, end=end, **kw)


def _by(summaries, metric: Metric) -> dict[date, float]:  # noqa: ANN001
    return {s.day: s.value for s in summaries if s.metric is metric}


def test_phone_and_watch_steps_are_never_added() -> None:
    t = datetime(2024, 5, 2, 9, tzinfo=NY)
    readings = [
        _r(Metric.STEPS, 4000, PHONE, t),
        _r(Metric.STEPS, 4300, WATCH, t),
        _r(Metric.STEPS, 1000, WATCH, t + timedelta(hours=3)),
    ]
    (summary,) = daily_summaries(readings, tz=NY)
    assert (summary.value, summary.source) == (5300, WATCH)  # the watch ranks before the phone
    assert dict(summary.candidates) == {PHONE.key: 4000, WATCH.key: 5300}
    rule = DedupRule(per_metric={Metric.STEPS: ("apple-health|iphone",)})
    (phone_first,) = daily_summaries(readings, tz=NY, rule=rule)
    assert (phone_first.value, phone_first.source) == (4000, PHONE)


def test_unranked_sources_fall_back_to_the_largest_value() -> None:
    t = datetime(2024, 5, 2, 9, tzinfo=NY)
    a, b = Source("csv", "Pedometer A"), Source("csv", "Pedometer B")
    (summary,) = daily_summaries([_r(Metric.STEPS, 10, a, t), _r(Metric.STEPS, 30, b, t)], tz=NY)
    assert summary.source == b


def test_reimported_readings_are_not_counted_twice() -> None:
    t = datetime(2024, 5, 2, 9, tzinfo=NY)
    once = [_r(Metric.STEPS, 4000, WATCH, t)]
    assert _by(daily_summaries(once + once, tz=NY), Metric.STEPS) == {date(2024, 5, 2): 4000}


def test_source_day_totals_win_over_its_intervals() -> None:
    day = date(2024, 5, 2)
    start = datetime(2024, 5, 2, tzinfo=NY)
    readings = [
        _r(Metric.STEPS, 9000, FITBIT, start, 24 * 60, local_date=day),
        _r(Metric.STEPS, 7, FITBIT, start + timedelta(hours=1), 1),
    ]
    assert _by(daily_summaries(readings, tz=NY), Metric.STEPS) == {day: 9000}


def test_dst_days_are_23_and_25_hours_and_intervals_split_by_overlap() -> None:
    spring = datetime(2024, 3, 10, 23, tzinfo=NY)  # the night after the 23-hour day
    readings = [_r(Metric.STEPS, 200, WATCH, spring, 120)]  # 23:00 -> 01:00: half on each day
    fall = datetime(2024, 11, 3, 12, tzinfo=NY)
    readings.append(_r(Metric.STEPS, 100, WATCH, fall))
    summaries = daily_summaries(readings, tz=NY)
    assert _by(summaries, Metric.STEPS) == {
        date(2024, 3, 10): 100,
        date(2024, 3, 11): 100,
        date(2024, 11, 3): 100,
    }
    lengths = {
        s.day: s.end.astimezone(ZoneInfo("UTC")) - s.start.astimezone(ZoneInfo("UTC")) for s in summaries
    }
    assert lengths[date(2024, 3, 10)] == timedelta(hours=23)
    assert lengths[date(2024, 11, 3)] == timedelta(hours=25)
    resources = summaries_to_resources(summaries, "Patient/1")
    validate_fhir(resources)
    fall_obs = next(
        r
        for r in resources
        if r["resourceType"] == "Observation" and r["effectivePeriod"]["start"].startswith("2024-11-03")
    )
    assert fall_obs["code"]["coding"][0]["code"] == "41950-7"
    assert fall_obs["valueQuantity"] == {
        "value": 100,
        "unit": "per day",
        "system": "http://unitsofmeasure.org",
        "code": "/d",
    }
    assert fall_obs["effectivePeriod"] == {
        "start": "2024-11-03T00:00:00-04:00",
        "end": "2024-11-04T00:00:00-05:00",
    }


def test_sleep_counts_on_the_wake_day_from_asleep_stages_only() -> None:
    night = datetime(2024, 5, 1, 23, 30, tzinfo=NY)
    readings = [
        _r(Metric.SLEEP_IN_BED, 480, PHONE, night, 480),
        _r(Metric.SLEEP_LIGHT, 200, WATCH, night, 200),
        _r(Metric.SLEEP_DEEP, 90, WATCH, night + timedelta(minutes=200), 90),
        _r(Metric.SLEEP_AWAKE, 20, WATCH, night + timedelta(minutes=290), 20),
        _r(Metric.SLEEP_REM, 100, WATCH, night + timedelta(minutes=310), 100),
        # a source with session totals uses them, not its stage breakdown
        _r(Metric.SLEEP_DURATION, 400, FITBIT, night, 450),
        _r(Metric.SLEEP_DEEP, 80, FITBIT, night, 450),
    ]
    (summary,) = [s for s in daily_summaries(readings, tz=NY) if s.metric is Metric.SLEEP_DURATION]
    assert summary.day == date(2024, 5, 2)
    assert dict(summary.candidates) == {WATCH.key: 390, FITBIT.key: 400}
    assert summary.source == FITBIT  # ranked before Apple by the default rule


def test_implausible_readings_are_left_out_and_resting_hr_is_averaged() -> None:
    t = datetime(2024, 5, 2, 6, tzinfo=NY)
    readings = [
        _r(Metric.STEPS, 900_000, WATCH, t).checked(),
        _r(Metric.STEPS, 1200, WATCH, t + timedelta(hours=2)),
        _r(Metric.RESTING_HEART_RATE, 60, WATCH, t, None),
        _r(Metric.RESTING_HEART_RATE, 64, WATCH, t + timedelta(hours=9), None),
    ]
    summaries = daily_summaries(readings, tz=NY)
    assert _by(summaries, Metric.STEPS) == {date(2024, 5, 2): 1200}
    assert _by(summaries, Metric.RESTING_HEART_RATE) == {date(2024, 5, 2): 62}


def test_weekly_active_minutes() -> None:
    readings = [
        _r(Metric.ACTIVE_MINUTES, 30, WATCH, datetime(2024, 5, d, 7, tzinfo=NY), 30) for d in (6, 7, 12, 13)
    ]
    summaries = daily_summaries(readings, tz=NY)
    weeks = weekly_active_minutes(summaries, "Patient/1", NY)
    validate_fhir(weeks)
    assert [(w["effectivePeriod"]["start"][:10], w["valueQuantity"]["value"]) for w in weeks] == [
        ("2024-05-06", 90),
        ("2024-05-13", 30),
    ]  # Sunday 12 May belongs to the week of Monday 6 May
    assert (
        weeks[0]["code"]["coding"][0]["code"] == "82290-8" and weeks[0]["valueQuantity"]["code"] == "min/wk"
    )
