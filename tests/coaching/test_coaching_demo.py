"""The committed coaching demo (examples/demo/3*.json): every feature is visible through the API, on any day."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_ecr.cli import EXAMPLES_DIR
from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.demo import AS_OF_URL, DEMO_TZ, demo_coaching_bundles, demo_today, rebase_demo_bundle
from fhir_ecr.outcomes import FhirError
from tests.coaching.coaching_support import pin_clock

REPEATED = ("goal", "habit", "adherence", "pause", "repaired", "rule", "pdsa", "point", "phase", "annotation")
FILES = sorted(EXAMPLES_DIR.glob("0*-coaching-*.json"))


def load(client: Any, repo: Any, today: date) -> list[dict[str, Any]]:
    """Load the demo files moved to ``today`` (as ``mecr demo`` does), with the clock at noon that day."""
    pin_clock(repo, datetime.combine(today, time(12), ZoneInfo(DEMO_TZ)).astimezone(UTC))
    responses = []
    for path in FILES:
        bundle = rebase_demo_bundle(json.loads(path.read_text()), today)
        resp = client.post("/fhir", json=bundle)
        assert resp.status_code == 200, resp.text[:800]
        responses.append(resp.json())
    return responses


def summary(client: Any, pid: str) -> dict[str, Any]:
    resp = client.get(f"/fhir/Patient/{pid}/$coaching-summary")
    assert resp.status_code == 200, resp.text[:500]
    return res.parameters_to_dict(resp.json(), REPEATED)


def test_the_files_are_the_generator_output_stamped_with_their_day() -> None:
    assert [p.name for p in FILES] == [
        "02-coaching-people.json",
        "03-coaching-goals-and-plans.json",
        "04-coaching-daily-data.json",
        "05-coaching-sessions.json",
    ]
    stamps = {json.loads(p.read_text())["meta"]["extension"][0]["valueDate"] for p in FILES}
    assert len(stamps) == 1
    as_of = date.fromisoformat(stamps.pop())
    assert [json.loads(p.read_text()) for p in FILES] == demo_coaching_bundles(as_of)


@pytest.mark.parametrize("shift", [0, 38], ids=["as-generated", "weeks-later"])
def test_demo_shows_every_feature(client: Any, repo: Any, shift: int) -> None:
    as_of = date.fromisoformat(json.loads(FILES[0].read_text())["meta"]["extension"][0]["valueDate"])
    today = as_of + timedelta(days=shift)
    load(client, repo, today)
    ana = summary(client, "demo-ana")
    assert ana["today"] == today.isoformat() and ana["timeZone"] == DEMO_TZ
    habits = {h["habitId"]: h for h in ana["habit"]}
    # a repaired streak: the walk was missed five days ago, and the streak lives on
    walk = habits["walk"]["streak"]
    assert walk["repaired"] == [(today - timedelta(days=5)).isoformat()] and walk["current"] >= 55
    # a paused habit, with its reason and its pause history
    screens = habits["screens-off"]
    assert (screens["status"], screens["statusReason"]) == ("on-hold", "travel")
    assert [(p.get("end") is None, p["reason"]) for p in screens["pause"]] == [
        (False, "illness"),
        (True, "travel"),
    ]
    assert screens["pause"][1]["start"] == (today - timedelta(days=10)).isoformat()
    # the weekday habit still falls on its days after the dates moved
    stretch = habits["stretch"]
    assert stretch["schedule"] == "weekdays" and stretch["adherence"][1]["rate"] > 0.7
    # goals with various achievementStatus, each as stored in the file and as computed now
    statuses = {}
    for g in ana["goal"]:
        assert g["achievementStatus"]["code"] == g["storedAchievementStatus"]
        statuses[g["reference"]["reference"]] = g["storedAchievementStatus"]
    assert statuses == {
        "Goal/demo-goal-steps": "sustaining",
        "Goal/demo-goal-sleep": "no-change",
        "Goal/demo-goal-weight": "achieved",
    }
    unmeasured = [
        client.get(f"/fhir/Goal/{g}").json() for g in ("demo-goal-ben-strength", "demo-goal-cara-walk")
    ]
    assert [g["achievementStatus"]["coding"][0]["code"] for g in unmeasured] == ["in-progress", "in-progress"]
    # a shift signal in the run chart after the PDSA change
    steps = next(g for g in ana["goal"] if g["reference"]["reference"] == "Goal/demo-goal-steps")
    assert steps["runChart"]["signal"] and "shift" in steps["runChart"]["rule"]
    assert steps["runChart"]["pdsa"] == ["Walk after lunch with a colleague"]
    chart = client.get(
        "/fhir/Observation/$run-chart",
        params={"patient": "Patient/demo-ana", "code": "http://loinc.org|41950-7"},
    )
    assert chart.status_code == 200, chart.text[:500]
    rc = res.parameters_to_dict(chart.json(), REPEATED)
    change = (today - timedelta(days=30)).isoformat()
    assert [a["date"] for a in rc["annotation"]] == [change]
    assert [p["label"] for p in rc["phase"]] == ["baseline", "Walk after lunch with a colleague"]
    # against the series' own median the steps after the change form a shift (a long run above it)
    assert rc["baseline"]["enough"] and max(p["date"] for p in rc["point"] if p["shift"]) >= change
    assert rc["point"][-1]["date"] == (today - timedelta(days=1)).isoformat()
    # a weekly habit, counted in weeks
    ben = {h["habitId"]: h for h in summary(client, "demo-ben")["habit"]}
    assert ben["strength"]["streak"]["unit"] == "week" and ben["strength"]["streak"]["current"] >= 7
    # wearable daily summaries of every kind, in the IG's profiles
    for code, profile in (
        ("41950-7", "mecr-daily-steps"),
        ("93832-4", "mecr-sleep-duration"),
        ("29463-7", "mecr-body-weight"),
        ("40443-4", "mecr-resting-heart-rate"),
    ):
        found = client.get(
            "/fhir/Observation",
            params={
                "code": f"http://loinc.org|{code}",
                "_profile": f"{res.CANONICAL}/StructureDefinition/{profile}",
                "date": f"ge{(today - timedelta(days=7)).isoformat()}",
            },
        )
        assert found.json()["total"] >= 7, (code, found.text[:300])
    # a group session: the Group is the subject of the group-level Encounter, each member has one partOf it
    group = client.get("/fhir/Encounter/demo-group-session").json()
    assert group["subject"] == {"reference": "Group/demo-walking-group"}
    parts = client.get("/fhir/Encounter", params={"part-of": "Encounter/demo-group-session"}).json()
    assert sorted(e["resource"]["subject"]["reference"] for e in parts["entry"]) == [
        "Patient/demo-ana",
        "Patient/demo-ben",
        "Patient/demo-cara",
    ]
    assert group["period"]["start"].startswith((today - timedelta(days=3)).isoformat())


def test_loading_again_changes_nothing_and_a_later_day_moves_the_same_resources(
    client: Any, repo: Any
) -> None:
    as_of = date.fromisoformat(json.loads(FILES[0].read_text())["meta"]["extension"][0]["valueDate"])
    first = load(client, repo, as_of + timedelta(days=3))
    count = sum(len(b["entry"]) for b in first)
    again = load(client, repo, as_of + timedelta(days=3))
    assert all("outcome" in e["response"] for b in again for e in b["entry"])  # unchanged
    later = load(client, repo, as_of + timedelta(days=4))
    assert sum(len(b["entry"]) for b in later) == count
    assert not any(
        e["response"]["status"].startswith("201") for b in later for e in b["entry"]
    )  # no new resource
    walk = client.get("/fhir/Observation/demo-ana-habits-walk-d001").json()
    assert walk["effectiveDateTime"] == (as_of + timedelta(days=3)).isoformat()
    assert walk["identifier"][0]["value"].endswith((as_of + timedelta(days=3)).isoformat())


def test_rebase_keeps_wall_clock_times_across_dst_and_leaves_unstamped_bundles_alone() -> None:
    bundles = demo_coaching_bundles(date(2026, 10, 30))  # EDT; three weeks later it is EST
    moved = rebase_demo_bundle(bundles[3], date(2026, 11, 20))
    before = next(e["resource"] for e in bundles[3]["entry"] if e["resource"]["id"] == "demo-group-session")
    after = next(e["resource"] for e in moved["entry"] if e["resource"]["id"] == "demo-group-session")
    assert before["period"]["start"] == "2026-10-27T12:00:00-04:00"
    assert after["period"]["start"] == "2026-11-17T12:00:00-05:00"
    assert moved["meta"]["extension"] == [{"url": AS_OF_URL, "valueDate": "2026-11-20"}]
    plain = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    assert rebase_demo_bundle(plain, date(2026, 11, 20)) is plain
    assert demo_today(datetime(2026, 3, 8, 3, 30, tzinfo=UTC)) == date(2026, 3, 7)


def test_every_demo_resource_passes_the_profiles(services: Any) -> None:
    validator = services.repo.validator
    for path in FILES:
        for entry in json.loads(path.read_text())["entry"]:
            validator(entry["resource"])  # raises a 422 FhirError on any profile problem
    sessions = json.loads(FILES[3].read_text())["entry"]
    member = next(e["resource"] for e in sessions if e["resource"].get("partOf"))
    with pytest.raises(FhirError) as refused:  # a member's session must be a Patient's (mecr-enc-6)
        validator({**member, "subject": {"reference": "Group/demo-walking-group"}})
    assert "mecr-enc-6" in json.dumps(refused.value.outcome)
