"""The coaching service over the real store (SQLite and PostgreSQL): goals, habits, check-ins, wearables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.outcomes import FhirError
from tests.coaching.coaching_support import make_world, pin_clock, steps_reading


def _svc(repo):
    return CoachingService(repo)


def _summary_habit(summary, habit_id):
    return next(h for h in summary["habit"] if h["habitId"] == habit_id)


def test_two_check_ins_same_day_are_one_resource_with_two_versions(repo):
    w = make_world(repo)
    svc = _svc(repo)
    first = svc.check_in(w.plan, "walk", "partly", day=date(2026, 3, 19), note="rain")
    again = svc.check_in(w.plan, "walk", "partly", day=date(2026, 3, 19), note="rain")
    second = svc.check_in(w.plan, "walk", "done", day=date(2026, 3, 19))
    assert first.created and not again.changed and not second.created
    assert second.stored.id == first.stored.id and second.stored.version_id == 2
    assert second.stored.content["status"] == "amended"
    found = repo.search_params(
        "Observation", [("patient", f"Patient/{w.patient}"), ("code", f"{res.MECR_CODES}|habit-check-in")]
    )
    assert [s.id for s in found.matches] == [first.stored.id]
    history = repo.history("Observation", first.stored.id)
    assert history.total == 2
    first_version = repo.vread("Observation", first.stored.id, "1").content
    assert first_version["valueCodeableConcept"]["coding"][0]["code"] == "partly"
    obs = second.stored.content
    assert obs["basedOn"] == [{"reference": f"CarePlan/{w.plan}"}]
    assert obs["focus"] == [{"reference": f"Goal/{w.goal}"}]
    assert obs["extension"][0] == {"url": res.HABIT_ID_URL, "valueString": "walk"}
    assert obs["meta"]["profile"] == [res.CHECKIN_PROFILE]


@pytest.mark.parametrize(
    ("instant", "tz", "expected"),
    [
        # New York, 7 March 2026 (EST, UTC-5): 04:59Z is 23:59 on the 6th, 05:00Z is midnight on the 7th.
        ("2026-03-07T04:59:00+00:00", "America/New_York", date(2026, 3, 6)),
        ("2026-03-07T05:00:00+00:00", "America/New_York", date(2026, 3, 7)),
        # DST starts 8 March 02:00 local: after it, midnight is 04:00Z (EDT, UTC-4).
        ("2026-03-09T03:59:00+00:00", "America/New_York", date(2026, 3, 8)),
        ("2026-03-09T04:00:00+00:00", "America/New_York", date(2026, 3, 9)),
        # Same instant, other side of the world: Auckland is already a day ahead.
        ("2026-03-09T03:59:00+00:00", "Pacific/Auckland", date(2026, 3, 9)),
    ],
)
def test_check_in_day_is_the_patients_local_date_around_midnight_and_dst(repo, instant, tz, expected):
    w = make_world(repo, tz=tz)
    result = _svc(repo).check_in(w.plan, "walk", "done", at=datetime.fromisoformat(instant))
    assert result.day == expected
    assert result.stored.content["effectiveDateTime"] == expected.isoformat()


def test_today_is_local_so_a_late_evening_check_in_is_not_in_the_future(repo):
    # 2026-03-21 03:30Z is still the 20th in New York: today there is the 20th, not the 21st.
    w = make_world(repo)
    pin_clock(repo, datetime(2026, 3, 21, 3, 30, tzinfo=UTC))
    assert _svc(repo).check_in(w.plan, "walk", "done").day == date(2026, 3, 20)
    with pytest.raises(FhirError) as exc:
        _svc(repo).check_in(w.plan, "walk", "done", day=date(2026, 3, 21))
    assert exc.value.status == 422


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"habit_id": "swim"}, 422, "not-found"),
        ({"day": date(2026, 3, 21)}, 422, "business-rule"),
        ({"day": date(2026, 2, 28)}, 422, "business-rule"),
        ({"status": "maybe"}, 400, "value"),
    ],
)
def test_check_in_refuses_bad_input(repo, kwargs, status, code):
    w = make_world(repo)
    args = {"habit_id": "walk", "status": "done", "day": date(2026, 3, 10), **kwargs}
    with pytest.raises(FhirError) as exc:
        _svc(repo).check_in(w.plan, args.pop("habit_id"), args.pop("status"), **args)
    assert exc.value.status == status
    assert exc.value.issues[0]["code"] == code


def test_check_in_for_another_patient_and_after_stop_is_refused(repo):
    w = make_world(repo)
    svc = _svc(repo)
    with pytest.raises(FhirError) as exc:
        svc.check_in(w.plan, "walk", "done", day=date(2026, 3, 10), patient_id=w.other_patient)
    assert (exc.value.status, exc.value.issues[0]["code"]) == (422, "business-rule")
    svc.stop_habit(w.plan, "walk", on=date(2026, 3, 15))
    svc.check_in(w.plan, "walk", "done", day=date(2026, 3, 15))
    with pytest.raises(FhirError) as exc:
        svc.check_in(w.plan, "walk", "done", day=date(2026, 3, 16))
    assert exc.value.status == 422


def test_pause_and_resume_keep_paused_days_out_of_adherence_and_streaks(repo):
    w = make_world(repo)
    svc = _svc(repo)
    for n in range(1, 11):  # 1..10 March done
        svc.check_in(w.plan, "walk", "done", day=date(2026, 3, n))
    paused = svc.pause_habit(
        w.plan, "walk", "illness", start=date(2026, 3, 11), expected_version=w.plan_version
    )
    detail = paused.content["activity"][0]["detail"]
    assert detail["status"] == "on-hold"
    assert detail["statusReason"]["coding"][0] == {"system": res.PAUSE_REASON_SYSTEM, "code": "illness"}
    resumed = svc.resume_habit(w.plan, "walk", on=date(2026, 3, 18))
    habit = res.habits_of_plan(resumed.content)[0]
    assert habit.status == "in-progress" and "statusReason" not in resumed.content["activity"][0]["detail"]
    assert [(p.start, p.end, p.reason) for p in habit.pauses] == [
        (date(2026, 3, 11), date(2026, 3, 17), "illness")
    ]
    for n in (18, 19):
        svc.check_in(w.plan, "walk", "done", day=date(2026, 3, n))
    walk = _summary_habit(svc.coaching_summary(w.patient), "walk")
    # 7 paused days neither break nor extend the streak; today (20th) is pending.
    assert walk["streak"]["current"] == 12 and walk["streak"]["best"] == 12
    thirty = next(a for a in walk["adherence"] if a["days"] == 30)
    assert (thirty["scheduled"], thirty["done"], thirty["paused"], thirty["rate"]) == (12, 12, 7, 1.0)
    week = next(a for a in walk["adherence"] if a["days"] == 7)
    assert week["paused"] == 4 and week["scheduled"] == 2


def test_habit_changes_need_the_current_plan_version(repo):
    w = make_world(repo)
    svc = _svc(repo)
    changed = svc.change_habit(w.plan, "walk", title="Walk after dinner", expected_version=w.plan_version)
    assert changed.version_id == w.plan_version + 1
    with pytest.raises(FhirError) as exc:
        svc.pause_habit(w.plan, "walk", "travel", expected_version=w.plan_version)
    assert exc.value.status == 412
    added = svc.add_habit(
        w.plan,
        res.habit_activity(
            "water", "8 glasses", res.timing_repeat("weekdays", weekdays=["mon", "tue"]), date(2026, 3, 2)
        ),
        expected_version=changed.version_id,
    )
    assert [h.habit_id for h in res.habits_of_plan(added.content)] == ["walk", "gym", "water"]
    with pytest.raises(FhirError) as exc:
        svc.add_habit(
            w.plan, res.habit_activity("water", "again", res.timing_repeat("daily"), date(2026, 3, 2))
        )
    assert exc.value.status == 400


def test_goal_status_follows_the_evidence_from_wearable_days(repo):
    w = make_world(repo)
    svc = _svc(repo)
    goal = repo.read("Goal", w.goal).content
    assert goal["achievementStatus"]["coding"][0]["code"] == "in-progress"
    assert goal["meta"]["profile"] == [res.GOAL_PROFILE]
    assert goal["target"][0]["detailQuantity"]["comparator"] == ">="
    statuses = []
    for day, steps in (
        (date(2026, 3, 14), 5000),
        (date(2026, 3, 15), 6000),
        (date(2026, 3, 16), 7000),
        (date(2026, 3, 17), 8100),
        (date(2026, 3, 18), 8300),
        (date(2026, 3, 19), 9000),
    ):
        result = svc.apply_wearable_observation(
            repo.create(steps_reading(w.patient, day, steps)).stored.content
        )
        statuses.append(result.goals[w.goal])
    # R7 too few points, R9 improving, then achieved (R3) and sustaining after three met days (R2).
    assert statuses == ["in-progress", "in-progress", "improving", "achieved", "achieved", "sustaining"]
    assert repo.read("Goal", w.goal).content["achievementStatus"]["coding"][0]["code"] == "sustaining"


def test_wearable_day_at_target_counts_as_done_and_never_downgrades(repo):
    w = make_world(repo)
    svc = _svc(repo)
    low = svc.apply_wearable_observation(steps_reading(w.patient, date(2026, 3, 10), 7999))
    assert low.observation is not None and low.checkins == []
    high = svc.apply_wearable_observation(steps_reading(w.patient, date(2026, 3, 11), 8000))
    [ci] = high.checkins
    assert ci.day == date(2026, 3, 11)
    obs = ci.stored.content
    assert obs["valueCodeableConcept"]["coding"][0]["code"] == "done"
    assert obs["derivedFrom"] == [{"reference": f"Observation/{high.observation.id}"}]
    assert obs["component"][0]["valueQuantity"]["value"] == 8000
    manual = svc.check_in(w.plan, "walk", "done", day=date(2026, 3, 12), note="by hand")
    later = svc.apply_wearable_observation(steps_reading(w.patient, date(2026, 3, 12), 12000))
    assert later.checkins == []
    assert repo.read("Observation", manual.stored.id).content["note"] == [{"text": "by hand"}]


def test_goal_without_comparator_takes_its_direction_from_the_first_measurement(repo):
    w = make_world(repo)
    goal = {
        "resourceType": "Goal",
        "meta": {"profile": [res.GOAL_PROFILE]},
        "lifecycleStatus": "active",
        "category": [{"coding": [{"system": res.GOAL_CATEGORY_SYSTEM, "code": "weight-management"}]}],
        "description": {"text": "Weigh 75 kg"},
        "subject": {"reference": f"Patient/{w.patient}"},
        "startDate": "2026-03-10",
        "target": [
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "detailQuantity": res.quantity(75, "kg"),
            }
        ],
    }
    gid = repo.create(goal).stored.id
    for n, kg in enumerate((80.0, 78.0, 76.0, 74.9)):
        repo.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": f"Patient/{w.patient}"},
                "effectiveDateTime": f"2026-03-1{n}T08:00:00-04:00",
                "valueQuantity": res.quantity(kg, "kg"),
            }
        )
    stored, progress = _svc(repo).recompute_goal(gid)
    assert progress is not None and progress.met and progress.status.value == "achieved"
    assert stored.content["achievementStatus"]["coding"][0]["code"] == "achieved"


def test_pdsa_note_and_run_chart_phases(repo):
    w = make_world(repo, start=date(2026, 1, 1))
    svc = _svc(repo)
    first = date(2026, 1, 20)
    for n in range(50):
        day = first + timedelta(days=n)
        steps = (5000 if n < 25 else 8000) + (n % 5) * 100
        repo.create(steps_reading(w.patient, day, steps))
    svc.add_pdsa(
        w.goal,
        title="Walk with a colleague",
        day=first + timedelta(days=25),
        plan="Sam joins",
        author=f"PractitionerRole/{w.coach}",
    )
    chart = svc.run_chart(w.patient, [("http://loinc.org", "41950-7")], first, first + timedelta(days=49))
    assert len(chart["point"]) == 50
    # The series' own median (between the 5,000s before the change and the 8,000s after it), with 25 useful
    # baseline points before the change (>= 20): the run of 25 below it and the run of 25 above it are shifts.
    assert chart["median"] == 6700
    assert chart["baseline"] == {"points": 25, "needed": 20, "enough": True}
    assert chart["analysis"]["signal"] and "shift" in chart["analysis"]["rule"]
    assert chart["analysis"]["shiftFrom"] == first and all(p["shift"] for p in chart["point"])
    assert [p["label"] for p in chart["phase"]] == ["baseline", "Walk with a colleague"]
    assert chart["phase"][1]["median"] == 8200
    assert chart["annotation"][0]["habitId"] == "walk" and chart["annotation"][0][
        "date"
    ] == first + timedelta(days=25)
    with pytest.raises(FhirError) as exc:
        svc.add_pdsa(w.goal, title="later", day=date(2026, 3, 25))
    assert exc.value.status == 422


def test_time_zone_setting_is_validated(repo):
    w = make_world(repo)
    with pytest.raises(FhirError) as exc:
        _svc(repo).set_time_zone(w.patient, "Mars/Olympus")
    assert exc.value.status == 400
    stored = _svc(repo).set_time_zone(w.patient, "Europe/Berlin")
    assert res.patient_time_zone(stored.content, "UTC") == "Europe/Berlin"
