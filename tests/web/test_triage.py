"""The caseload's rules (fhir_ecr.coaching.triage), pure: reasons, their words and weights, On track."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fhir_ecr.coaching.referral_wait import OpenReferral
from fhir_ecr.coaching.triage import WEIGHTS, Contact, SessionDates, triage

TODAY = date(2026, 12, 6)
STEPS = "41950-7"


def goal(
    gid: str,
    *,
    at_least: float | None = 8000,
    at_most: float | None = None,
    code: str | None = STEPS,
    priority: str | None = None,
) -> dict:
    g = {
        "resourceType": "Goal",
        "id": gid,
        "lifecycleStatus": "active",
        "description": {"text": f"goal {gid}"},
        "subject": {"reference": "Patient/p"},
    }
    if code:
        value, comp = (at_least, ">=") if at_least is not None else (at_most, "<=")
        g["target"] = [
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "detailQuantity": {
                    "value": value,
                    "comparator": comp,
                    "system": "http://unitsofmeasure.org",
                    "code": "/d",
                },
            }
        ]
    if priority:
        g["priority"] = {"coding": [{"code": priority}]}
    return g


def item(
    gid: str,
    *,
    unit: str | None = "/d",
    latest: date | None = TODAY - timedelta(days=1),
    status="in-progress",
    chart: dict | None = None,
    stale: bool = False,
) -> dict:
    out = {
        "reference": {"reference": f"Goal/{gid}"},
        "description": f"goal {gid}",
        "lifecycleStatus": "active",
        "storedAchievementStatus": status,
    }
    if unit:
        out.update(
            unit=unit, latest=8100.0, latestDate=latest, achievementStatus={"code": status}, stale=stale
        )
    if chart:
        out["runChart"] = chart
    return out


def habit(
    hid: str,
    last: date | None,
    *,
    start: date = TODAY - timedelta(days=30),
    goal_id: str | None = None,
    status: str = "in-progress",
    earned: float = 6,
    scheduled: int = 7,
) -> dict:
    return {
        "plan": {"reference": "CarePlan/plan"},
        "habitId": hid,
        "title": f"Habit {hid}",
        "status": status,
        "start": start,
        "lastCheckIn": last,
        "servesGoal": {"reference": f"Goal/{goal_id}"} if goal_id else None,
        "adherence": [{"days": 7, "rate": earned / scheduled, "scheduled": scheduled, "earned": earned}],
        "streak": {"unit": "day", "current": 3, "best": 9, "repaired": []},
    }


def glance(
    goals: list,
    items: list,
    habits: list,
    last: date | None = TODAY - timedelta(days=1),
    series: dict | None = None,
) -> dict:
    return {
        "summary": {"today": TODAY, "goal": items, "habit": habits},
        "goals": goals,
        "goalSeries": series or {},
        "lastData": last,
    }


def recent() -> SessionDates:
    return SessionDates(last=TODAY - timedelta(days=4))


def kinds(t) -> list[str]:
    return [r.kind for r in t.reasons]


def run(g: dict, **kw) -> object:
    kw.setdefault("seen", set())
    kw.setdefault("contact", Contact())
    kw.setdefault("sessions", recent())
    return triage(g, today=TODAY, label=lambda code: "Steps" if code == STEPS else None, **kw)


def test_on_track_needs_a_goal_with_recent_evidence_and_nothing_firing():
    t = run(glance([goal("g")], [item("g")], [habit("h", TODAY - timedelta(days=1), goal_id="g")]))
    assert t.reasons == [] and t.on_track and t.missing is None and t.score == 0
    # the same patient without goals is not on track: "no goals yet" is a reason
    t = run(glance([], [], [habit("h", TODAY - timedelta(days=1))]))
    assert kinds(t) == ["no-goals"] and not t.on_track
    # an unmeasured goal that no habit serves: nothing fires, but there is no evidence either; the row says so
    t = run(glance([goal("u", code=None)], [item("u", unit=None)], [habit("h", TODAY - timedelta(days=1))]))
    assert (
        t.reasons == [] and not t.on_track and t.missing == "no reading or check-in for the goals in 28 days"
    )
    # ... and a recent check-in of a habit that serves it is the evidence
    t = run(glance([goal("u", code=None)], [item("u", unit=None)], [habit("h", TODAY, goal_id="u")]))
    assert t.on_track


def test_new_signals_are_read_against_the_goal_and_labelled_with_the_measure():
    up = {"signal": True, "rule": ["shift"], "direction": "up", "median": 7000}
    down = {**up, "direction": "down"}
    better = run(glance([goal("g")], [item("g", chart=up)], []))
    worse = run(glance([goal("g")], [item("g", chart=down)], []))
    assert [(r.kind, r.text) for r in better.reasons][:1] == [
        ("signal-better", "Steps: new signal, moving toward the goal")
    ]
    assert [(r.kind, r.text) for r in worse.reasons][:1] == [
        ("signal-worse", "Steps: new signal, moving away from the goal")
    ]
    assert worse.score > better.score and worse.reasons[0].alert and not better.reasons[0].alert
    # "at most" goals read the other way round
    at_most = run(glance([goal("w", at_least=None, at_most=80)], [item("w", chart=up)], []))
    assert at_most.reasons[0].kind == "signal-worse"
    # a signal of too few crossings has no direction
    cross = run(
        glance([goal("g")], [item("g", chart={"signal": True, "rule": ["crossings"], "direction": None})], [])
    )
    assert (
        cross.reasons[0].kind == "signal" and cross.reasons[0].text == "Steps: new signal, too few crossings"
    )
    # seen signals are not new and weigh nothing
    seen = run(glance([goal("g")], [item("g", chart=down)], []), seen={"g:shift"})
    assert "signal-worse" not in kinds(seen) and seen.new_signals == 0


def test_silence_weighs_more_the_longer_it_lasts_and_speaks_for_the_habits():
    habits = [habit("a", TODAY - timedelta(days=9)), habit("b", TODAY - timedelta(days=9))]
    long = run(glance([goal("g")], [item("g")], habits, last=TODAY - timedelta(days=9)))
    assert kinds(long) == ["no-data"] and long.reasons[0].weight == WEIGHTS["no-data-long"]
    assert long.reasons[0].text == "no data for 9 days (since Nov 27)"
    short = run(glance([goal("g")], [item("g")], [], last=TODAY - timedelta(days=3)))
    assert kinds(short) == ["no-data"] and short.reasons[0].weight == WEIGHTS["no-data"]
    fine = run(glance([goal("g")], [item("g")], [], last=TODAY - timedelta(days=2)))
    assert "no-data" not in kinds(fine)
    never = run(glance([goal("g")], [item("g", latest=None)], [habit("a", None)], last=None))
    assert "no data yet" in [r.text for r in never.reasons]


def test_habits_messages_goals_sessions_and_referrals():
    habits = [
        habit("a", TODAY - timedelta(days=3)),
        habit("new", None, start=TODAY - timedelta(days=1)),
        habit("paused", None, status="on-hold"),
    ]
    t = run(glance([goal("g")], [item("g")], habits))
    assert [(r.kind, r.text) for r in t.reasons] == [("habit", "Habit a: no check-in for 3 days")]
    two = run(glance([goal("g")], [item("g")], [habit("a", TODAY - timedelta(days=4)), habit("b", None)]))
    assert (
        two.reasons[0].text == "2 habits without a check-in for 3+ days" and two.score == 2 * WEIGHTS["habit"]
    )
    msgs = run(glance([goal("g")], [item("g")], []), contact=Contact(2, TODAY - timedelta(days=3), 2))
    assert msgs.reasons[0].text == "2 unanswered messages (oldest 3 days)"
    assert msgs.score == 2 * WEIGHTS["message"] + WEIGHTS["message-old"]
    slipping = run(glance([goal("g")], [item("g", status="worsening")], []))
    assert [(r.kind, r.text) for r in slipping.reasons] == [("goal-slipping", "Steps goal: worsening")]
    stale = run(glance([goal("g")], [item("g", latest=TODAY - timedelta(days=29))], []))
    assert [r.kind for r in stale.reasons] == ["goal-stale"] and "last reading Nov 7" in stale.reasons[0].text
    overdue = run(
        glance([goal("g")], [item("g")], []), sessions=SessionDates(last=TODAY - timedelta(days=31))
    )
    assert kinds(overdue) == ["session-overdue"]
    planned = run(
        glance([goal("g")], [item("g")], []),
        sessions=SessionDates(last=None, next=datetime(2026, 12, 9, 10, 0)),
    )
    assert planned.reasons == [] and planned.next_session is not None  # a session ahead is not a reason
    today = run(
        glance([goal("g")], [item("g")], []), sessions=SessionDates(next=datetime(2026, 12, 6, 15, 0))
    )
    assert [(r.kind, r.text) for r in today.reasons] == [("session-today", "session today 15:00")]
    waiting = [OpenReferral("sr", "p", "Food pantry", "Food Bank", TODAY - timedelta(days=15), 15)]
    ref = run(glance([goal("g")], [item("g")], []), referrals=waiting)
    assert [(r.kind, r.text, r.weight) for r in ref.reasons] == [
        ("referral", "referral waiting on Food Bank 15 days: Food pantry", WEIGHTS["referral-long"])
    ]


def test_reasons_are_ranked_by_weight_and_the_row_shows_the_primary_goal():
    series = {"hi": [(TODAY - timedelta(days=2), 7000.0), (TODAY - timedelta(days=1), 7100.0)]}
    goals = [goal("lo", priority="low-priority"), goal("hi", priority="high-priority")]
    t = run(
        glance(
            goals,
            [item("lo"), item("hi", chart={"signal": True, "rule": ["shift"], "direction": "down"})],
            [habit("a", TODAY - timedelta(days=5))],
            series=series,
        ),
        contact=Contact(1, TODAY, 1),
    )
    assert kinds(t) == ["signal-worse", "message", "habit"]
    assert t.primary is not None and t.primary.goal_id == "hi" and t.primary.points == series["hi"]
    assert t.primary.band == (8000, None) and t.primary.unit == "/d"
    assert t.adherence7 is not None and abs(t.adherence7 - 6 / 7) < 1e-9
