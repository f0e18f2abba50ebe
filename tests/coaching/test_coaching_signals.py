"""Issue #15, coaching items 8-13: signals a coach would otherwise misread.

8. Run-chart signals after a PDSA change need a real baseline (>= 20 useful points before the latest change),
   no Anhøj signal below 10 useful points, and the false-signal rate on random data stays ≈ 5 %.
9. FHIR comparators: ``<`` and ``>`` are strict.
10. A target without comparator takes its direction from the goal's own baseline, never older readings.
11. The latest reading of a day is chosen by instant, not by comparing strings with different offsets.
12. A goal achieved only on readings older than 28 days is achieved-but-stale.
13. Patients without a time zone take the practice's zone, and the patient page names the zone.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.progress import GoalTarget, Measurement, goal_progress
from fhir_ecr.coaching.runchart import MIN_BASELINE, analyse_changes, analyse_run_chart
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.coaching.view_shapes import _run_chart
from tests.coaching.coaching_support import make_world, pin_clock, steps_reading

DAY0 = date(2026, 1, 1)
WEIGHT = {"system": "http://loinc.org", "code": "29463-7"}
HBA1C = {"system": "http://loinc.org", "code": "4548-4"}
STEPS = {"system": "http://loinc.org", "code": "41950-7"}


def _note(day: date) -> res.PdsaNote:
    return res.PdsaNote("plan", "walk", "goal", day, "change", "PDSA: change")


# -- 8. run-chart signals after a PDSA change -----------------------------------------------------------------------

# Where the PDSA note falls in an 84-day window (the summary's), from 5 points of baseline to 75.
POSITIONS = (5, 10, 15, 19, 20, 30, 45, 60, 75)
PROMISED = 0.05


def false_signal_rates(reps: int = 600, n: int = 84, seed: int = 15) -> dict[int, float]:
    """The share of random series (independent normal days, no change at all) that the summary's run chart calls
    a signal, per position of a PDSA note."""
    rng = random.Random(seed)
    days = [DAY0 + timedelta(days=i) for i in range(n)]
    rates = {}
    for k in POSITIONS:
        hits = 0
        for _ in range(reps):
            values = [rng.gauss(8000, 1500) for _ in range(n)]
            chart, *_ = _run_chart(days, values, [_note(days[k])])
            hits += chart.signal
        rates[k] = hits / reps
    return rates


def test_false_signal_rate_with_a_pdsa_note_stays_within_the_promised_5_percent():
    rates = false_signal_rates()
    # Measured (docs/coaching.md): 0 % below 20 baseline points ("not enough baseline yet"), 4.7-8.3 % at 20-75
    # (mean 6.4 %: the Anhøj rules' own rate on 84 random points, about 7 %), 3.6 % pooled. The frozen baseline
    # before the fix fired on 43 % of these charts at 5 baseline points, 17 % at 20 and 18.6 % pooled.
    assert all(rates[k] == 0 for k in POSITIONS if k < MIN_BASELINE), rates
    enough = [rates[k] for k in POSITIONS if k >= MIN_BASELINE]
    assert max(enough) <= 0.09 and sum(enough) / len(enough) <= 0.07, rates
    assert sum(rates.values()) / len(rates) <= PROMISED, rates


def test_not_enough_baseline_yet_below_20_useful_points_before_the_change():
    # an obvious improvement after the change: 5,000 steps, then 9,000
    for k, enough in ((19, False), (20, True)):
        values = [5000.0 + (i % 3) * 10 for i in range(k)] + [9000.0 + (i % 3) * 10 for i in range(40)]
        chart = analyse_changes(values, [k])
        assert (chart.baseline_useful, chart.enough_baseline, chart.signal) == (k, enough, enough)
        assert chart.overall.withheld == (None if enough else "not-enough-baseline")


def test_no_anhoej_signal_below_10_useful_points():
    nine = analyse_run_chart([1, 2, 3, 4, 5, 6, 7, 8, 9], median=0)  # nine points above a centre line
    assert (nine.n_useful, nine.signal, nine.longest_run_limit, nine.withheld) == (
        9,
        False,
        None,
        "too-few-useful-points",
    )
    ten = analyse_run_chart(list(range(1, 11)), median=0)
    assert ten.signal and ten.longest_run_limit == 6


def test_the_summary_takes_the_baseline_before_the_latest_pdsa_change(repo):
    w = make_world(repo, start=date(2026, 1, 1))
    pin_clock(repo, datetime(2026, 3, 26, 18, 0, tzinfo=UTC))
    svc = CoachingService(repo)
    first = date(2026, 1, 1)  # 84 days to 2026-03-25 (yesterday)
    for n in range(84):
        repo.create(steps_reading(w.patient, first + timedelta(days=n), 6000 + (n * 7919) % 500))
    svc.add_pdsa(w.goal, title="early", day=first + timedelta(days=5))
    svc.add_pdsa(w.goal, title="latest", day=first + timedelta(days=70))
    chart = next(
        g for g in svc.coaching_summary(w.patient)["goal"] if g["reference"]["reference"] == f"Goal/{w.goal}"
    )["runChart"]
    assert chart["pdsa"] == ["early", "latest"]
    assert chart["baseline"]["points"] >= 60 and chart["baseline"]["enough"]  # the 70 days before "latest"
    # a single change with 12 points before it: not enough baseline yet, and no signal
    w2 = make_world(repo, start=date(2026, 1, 1))
    pin_clock(repo, datetime(2026, 3, 26, 18, 0, tzinfo=UTC))
    for n in range(84):
        repo.create(
            steps_reading(
                w2.patient, first + timedelta(days=n), (4000 if n < 72 else 12000) + (n * 7919) % 500
            )
        )
    svc.add_pdsa(w2.goal, title="late", day=first + timedelta(days=72))
    rc = svc.run_chart(w2.patient, [(STEPS["system"], STEPS["code"])], first, first + timedelta(days=83))
    assert rc["analysis"]["withheld"] is None and rc["analysis"]["signal"]  # 72 points before it
    svc.add_pdsa(w2.goal, title="too soon", day=first + timedelta(days=5))
    svc.add_pdsa(w2.goal, title="later still", day=first + timedelta(days=80))
    s = next(
        g
        for g in svc.coaching_summary(w2.patient)["goal"]
        if g["reference"]["reference"] == f"Goal/{w2.goal}"
    )["runChart"]
    assert s["baseline"]["enough"] and s["signal"]  # latest change (day 80): 80 points before it
    short = analyse_changes([4000.0] * 12 + [12000.0] * 72, [12])
    assert not short.signal and short.overall.withheld == "not-enough-baseline"


def test_the_page_says_not_enough_baseline_yet(repo, client):
    w = make_world(repo, start=date(2026, 1, 1))  # today is 2026-03-20
    first = date(2026, 2, 20)
    for n in range(28):
        repo.create(
            steps_reading(w.patient, first + timedelta(days=n), (5000 if n < 12 else 11000) + n * 37 % 300)
        )
    CoachingService(repo).add_pdsa(w.goal, title="walk after lunch", day=first + timedelta(days=12))
    chart = next(
        g
        for g in CoachingService(repo).coaching_summary(w.patient)["goal"]
        if g["reference"]["reference"] == f"Goal/{w.goal}"
    )["runChart"]
    assert chart["signal"] is False and chart["withheld"] == "not enough baseline yet"
    assert chart["baseline"] == {"points": 12, "needed": 20, "enough": False}
    page = client.get(f"/app/patients/{w.patient}").text
    assert "run chart: not enough baseline yet" in page
    assert (
        "No signal reported: not enough baseline yet (12 of 20 points before the latest PDSA change)" in page
    )


# -- 9. strict comparators ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comparator", "target", "value", "met"),
    [
        ("<", 7.0, 7.0, False),
        ("<", 7.0, 6.9, True),
        ("<=", 7.0, 7.0, True),
        (">", 10000, 10000, False),
        (">", 10000, 10001, True),
        (">=", 10000, 10000, True),
    ],
)
def test_comparators_mean_what_fhir_says(comparator, target, value, met):
    goal = {
        "id": "g",
        "target": [
            {
                "measure": {"coding": [HBA1C]},
                "detailQuantity": {"value": target, "comparator": comparator, "code": "%"},
            }
        ],
    }
    info = res.goal_info(goal)
    assert info.target is not None and info.target.is_met(value) is met
    progress = goal_progress(info.target, [Measurement(date(2026, 3, 1), value)], today=date(2026, 3, 2))
    assert progress.met is met and (progress.status.value == "achieved") is met


def test_hba1c_below_7_is_not_achieved_at_7_through_the_service(repo):
    w = make_world(repo)
    goal = repo.create(
        {
            "resourceType": "Goal",
            "meta": {"profile": [res.GOAL_PROFILE]},
            "lifecycleStatus": "active",
            "category": [{"coding": [{"system": res.GOAL_CATEGORY_SYSTEM, "code": "weight-management"}]}],
            "description": {"text": "HbA1c below 7 %"},
            "subject": {"reference": f"Patient/{w.patient}"},
            "target": [
                {
                    "measure": {"coding": [HBA1C]},
                    "detailQuantity": {
                        "value": 7,
                        "comparator": "<",
                        "unit": "%",
                        "system": "http://unitsofmeasure.org",
                        "code": "%",
                    },
                }
            ],
        }
    ).stored
    repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [HBA1C]},
            "subject": {"reference": f"Patient/{w.patient}"},
            "effectiveDateTime": "2026-03-18",
            "valueQuantity": res.quantity(7.0, "%"),
        }
    )
    _, progress = CoachingService(repo).recompute_goal(goal.id)
    assert progress is not None and not progress.met and progress.status.value != "achieved"


# -- 10. direction of a target without comparator -------------------------------------------------------------------


def _weight_goal(repo, patient: str, start: str | None) -> str:
    goal = {
        "resourceType": "Goal",
        "meta": {"profile": [res.GOAL_PROFILE]},
        "lifecycleStatus": "active",
        "category": [{"coding": [{"system": res.GOAL_CATEGORY_SYSTEM, "code": "weight-management"}]}],
        "description": {"text": "Weigh 75 kg"},
        "subject": {"reference": f"Patient/{patient}"},
        "target": [{"measure": {"coding": [WEIGHT]}, "detailQuantity": res.quantity(75, "kg")}],
    }
    if start:
        goal["startDate"] = start
    return str(repo.create(goal).stored.id)


def _weigh(repo, patient: str, day: str, kg: float) -> None:
    repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [WEIGHT]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": f"{day}T07:00:00-04:00",
            "valueQuantity": res.quantity(kg, "kg"),
        }
    )


def test_a_target_without_comparator_ignores_readings_older_than_the_goal(repo):
    w = make_world(repo)
    # months ago, before this goal, the patient weighed 70 kg; since the goal started: 80 -> 74.9 kg
    _weigh(repo, w.patient, "2025-11-02", 70.0)
    gid = _weight_goal(repo, w.patient, "2026-03-01")
    for day, kg in (("2026-03-02", 80.0), ("2026-03-09", 78.0), ("2026-03-16", 74.9)):
        _weigh(repo, w.patient, day, kg)
    svc = CoachingService(repo)
    _, progress = svc.recompute_goal(gid)
    assert progress is not None and progress.met and progress.status.value == "achieved"  # "at most 75"
    item = next(
        g for g in svc.coaching_summary(w.patient)["goal"] if g["reference"]["reference"] == f"Goal/{gid}"
    )
    assert item["achievementStatus"]["code"] == "achieved"


def test_without_a_start_date_the_goal_begins_when_it_was_created(repo):
    w = make_world(repo)  # the clock reads 2026-03-20
    _weigh(repo, w.patient, "2026-03-05", 70.0)  # before the goal was created
    gid = _weight_goal(repo, w.patient, None)
    svc = CoachingService(repo)
    _, progress = svc.recompute_goal(gid)
    assert progress is not None and progress.status.value == "in-progress" and progress.rule == "R1"
    pin_clock(repo, datetime(2026, 4, 20, 18, 0, tzinfo=UTC))
    for day, kg in (("2026-03-21", 80.0), ("2026-04-19", 74.0)):
        _weigh(repo, w.patient, day, kg)
    _, progress = CoachingService(repo).recompute_goal(gid)
    assert progress is not None and progress.met  # direction from 80 kg (after creation): at most 75


# -- 11. the latest reading of a day, by instant ---------------------------------------------------------------------


def test_the_latest_reading_of_a_day_is_chosen_by_instant():
    # both on 10 March in New York (EDT): 09:00-04:00 is 13:00Z, 13:30+00:00 is 09:30 EDT — the later one
    earlier = {
        "status": "final",
        "effectiveDateTime": "2026-03-10T09:00:00-04:00",
        "valueQuantity": {"value": 80.0},
    }
    later = {
        "status": "final",
        "effectiveDateTime": "2026-03-10T13:30:00+00:00",
        "valueQuantity": {"value": 81.0},
    }
    for order in ([earlier, later], [later, earlier]):
        assert res.measurements_by_day(order, "America/New_York", None) == [
            Measurement(date(2026, 3, 10), 81.0)
        ]
    # the string comparison got this one wrong: "2026-03-10T14:00:00+00:00" < "2026-03-10T23:00:00+05:00"?
    utc = {
        "status": "final",
        "effectiveDateTime": "2026-03-10T14:00:00+00:00",
        "valueQuantity": {"value": 1.0},
    }
    east = {
        "status": "final",
        "effectiveDateTime": "2026-03-10T18:00:00+05:00",
        "valueQuantity": {"value": 2.0},
    }
    assert res.measurements_by_day([utc, east], "America/New_York", None) == [
        Measurement(date(2026, 3, 10), 1.0)
    ]


# -- 12. achieved on stale evidence -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "stale"), [(0, False), (28, False), (29, True), (60, True)])
def test_achieved_on_readings_older_than_28_days_is_stale(age, stale):
    today = date(2026, 3, 20)
    progress = goal_progress(
        GoalTarget.at_least(8000), [Measurement(today - timedelta(days=age), 9000)], today=today
    )
    assert progress.status.value == "achieved" and progress.stale is stale
    unmet = goal_progress(
        GoalTarget.at_least(8000), [Measurement(today - timedelta(days=age), 7000)], today=today
    )
    assert not unmet.stale


def test_the_summary_and_the_page_show_achieved_but_stale(repo, client):
    w = make_world(repo)  # today is 2026-03-20 in New York
    repo.create(steps_reading(w.patient, date(2026, 2, 19), 9000))  # 29 days old, the only reading
    item = next(
        g
        for g in CoachingService(repo).coaching_summary(w.patient)["goal"]
        if g["reference"]["reference"] == f"Goal/{w.goal}"
    )
    assert item["achievementStatus"]["code"] == "achieved" and item["stale"] is True
    params = res.parameters_to_dict(
        client.get(f"/fhir/Patient/{w.patient}/$coaching-summary").json(), ["goal"]
    )
    assert params["goal"][0]["stale"] is True
    page = client.get(f"/app/patients/{w.patient}")
    assert page.status_code == 200, page.text[:300]
    assert "achieved, stale: last reading 2026-02-19" in page.text


# -- 13. the practice's time zone -------------------------------------------------------------------------------------


@pytest.fixture
def chicago(settings):
    """The services and app of a practice whose MECR_DEFAULT_TIME_ZONE is America/Chicago."""
    from fastapi.testclient import TestClient

    from fhir_ecr.app import create_app
    from tests.conftest import fresh_services

    zoned = settings.model_copy(update={"default_time_zone": "America/Chicago"})
    services = fresh_services(zoned)
    with TestClient(create_app(zoned, services=services), raise_server_exceptions=False) as c:
        yield services.repo, c
    services.engine.dispose()


def test_patients_without_a_zone_take_the_practice_zone_and_the_page_says_so(chicago):
    repo, client = chicago
    pin_clock(repo)
    pid = repo.create({"resourceType": "Patient", "name": [{"family": "Nozone"}]}).stored.id
    summary = res.parameters_to_dict(client.get(f"/fhir/Patient/{pid}/$coaching-summary").json())
    assert summary["timeZone"] == "America/Chicago" and summary["today"] == "2026-03-20"
    page = client.get(f"/app/patients/{pid}").text
    assert "Days are counted in America/Chicago (the practice's time zone; the patient has none set)" in page
    zoned = make_world(repo, tz="Europe/Berlin")
    assert (
        "Days are counted in Europe/Berlin (the patient's time zone)"
        in client.get(f"/app/patients/{zoned.patient}").text
    )


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2026-03-05", date(2026, 3, 5)),
        ("2026-03", date(2026, 3, 1)),
        ("2026", date(2026, 1, 1)),
        (None, None),
    ],
)
def test_a_goal_start_may_be_a_partial_fhir_date(start, expected):
    goal = {
        "id": "g",
        "target": [{"measure": {"coding": [WEIGHT]}, "detailQuantity": res.quantity(75, "kg")}],
    }
    if start:
        goal["startDate"] = start
    assert res.goal_info(goal).start == expected
