"""The caseload on a crafted practice of 15 patients, one for every reason (server-side, authorization on)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fhir_ecr.coaching.cache import view_cache
from fhir_ecr.coaching.referral_wait import REFERRAL_PROFILE, open_referrals, response_days
from tests.web.caseload_world import EXPECTED, TZ, build_caseload_world
from tests.web.web_support import coach_principal, login, patient_principal

COACH = "Practitioner/caseload-coach"
ROW = re.compile(
    r'<tr class="row[^"]*" data-patient="([^"]+)" data-score="(\d+)">.*?class="row-name"[^>]*>([^<]+)<'
    r'.*?<td class="reasons"[^>]*>(.*?)</td>.*?<td class="goal-cell"[^>]*>(.*?)</td>',
    re.S,
)


def rows(html: str) -> list[dict]:
    out = []
    for pid, score, name, reasons, goal in ROW.findall(html):
        out.append(
            {
                "id": pid,
                "score": int(score),
                "name": name,
                "goal": goal,
                "reasons": re.findall(r'data-reason="([^"]+)">([^<]*)<', reasons),
            }
        )
    return out


@pytest.fixture
def world(secure_services, secure_settings):
    secure_services.settings = secure_settings.model_copy(update={"default_time_zone": TZ})
    return build_caseload_world(secure_services, COACH)


@pytest.fixture
def coach(secure_services, secure_client, world):
    _, session = login(secure_services, coach_principal(COACH), secure_client)
    return session


def test_every_reason_fires_for_its_patient_and_rows_are_ranked_by_need(secure_client, world, coach):
    resp = secure_client.get("/app/caseload")
    assert resp.status_code == 200, resp.text[:300]
    found = rows(resp.text)
    assert len(found) == len(EXPECTED) == 15
    assert "15 of 15 patients you coach" in resp.text
    by_name = {r["name"]: r for r in found}
    for name, kind in EXPECTED.items():
        assert kind in [k for k, _ in by_name[name]["reasons"]], (name, by_name[name]["reasons"])
    # ranked by score, highest first (ties by name); the expected order of the reasons' weights
    scores = [r["score"] for r in found]
    assert scores == sorted(scores, reverse=True)
    order = [r["name"] for r in found]
    assert (
        order.index("Wendy Walsh")
        < order.index("Cris Crane")
        < order.index("Sid Stone")
        < order.index("Bert Brooks")
        < order.index("Mo Mills")
        < order.index("Nia Noor")
        < order.index("Gil Gray")
        < order.index("Stella Stark")
        < order.index("Nora Nash")
        < order.index("Hal Hart")
    )
    # On track only for Olive; Eve's row says what is missing; their rows have no reason chips
    assert [n for n, r in by_name.items() if ("on-track", "On track") in r["reasons"]] == ["Olive Olsen"]
    assert by_name["Eve Ennis"]["reasons"] == [("missing", "no reading or check-in for the goals in 28 days")]
    # the words of a few reasons
    assert ("signal-worse", "Steps: new signal, moving away from the goal") in by_name["Wendy Walsh"][
        "reasons"
    ]
    assert ("no-data", f"no data for 10 days (since {_day(10)})") in by_name["Sid Stone"]["reasons"]
    assert ("message", "1 unanswered message (today)") in by_name["Mo Mills"]["reasons"]
    # requested 20 days ago and no answer yet: past the 7 response days (MECR_REFERRAL_RESPONSE_DAYS)
    assert any(
        t.startswith("no answer from the food bank in 20 days") for _, t in by_name["Rita Ross"]["reasons"]
    )
    # the primary goal: label, sparkline, latest value with unit, target band
    olive = by_name["Olive Olsen"]["goal"]
    assert (
        'class="spark"' in olive
        and "Steps" in olive
        and "8,200 steps" in olive
        and "target ≥ 8,000 steps" in olive
    )


def _day(ago: int) -> str:
    return f"{datetime.now(ZoneInfo(TZ)).date() - timedelta(days=ago):%b %-d}"


def test_filters_search_scope_and_counts(secure_services, secure_client, world, coach):
    def names(**params):
        html = secure_client.get("/app/caseload", params=params).text
        return [r["name"] for r in rows(html)], html

    got, html = names(show="data")
    assert set(got) == {"Sid Stone", "Nia Noor"} and "2 of 15 patients" in html
    got, _ = names(show="signals")
    assert set(got) == {"Wendy Walsh", "Bert Brooks", "Cris Crane"}
    got, _ = names(show="referrals")
    assert got == ["Rita Ross"]
    got, _ = names(show="attention")
    assert "Olive Olsen" not in got and "Eve Ennis" not in got and len(got) == 13
    got, html = names(q="CL-0004")  # by MRN
    assert got == ["Sid Stone"] and "1 of 15 patients" in html
    got, html = names(q="olsen", show="all")
    assert got == ["Olive Olsen"]
    got, html = names(q="nobody")
    assert got == [] and "0 of 15 patients" in html and "No patients match." in html
    # the whole practice includes a patient who is not this coach's; "mine" does not
    other = secure_services.repo.create(
        {"resourceType": "Patient", "name": [{"family": "Elsewhere", "given": ["Ann"]}]}
    ).stored.id
    mine, _ = names()
    everyone, html = names(scope="all")
    assert (
        "Ann Elsewhere" not in mine
        and "Ann Elsewhere" in everyone
        and "16 of 16 patients in the whole practice" in html
    )
    assert other


def test_a_single_patient_is_counted_in_the_singular(secure_services, secure_client):
    pid = secure_services.repo.create({"resourceType": "Patient", "name": [{"family": "Solo"}]}).stored.id
    login(secure_services, coach_principal("Practitioner/nobody"), secure_client)
    html = secure_client.get("/app/caseload").text
    assert "1 of 1 patient in the whole practice" in html and f'data-patient="{pid}"' in html


def test_a_row_shows_the_patient_pages_numbers(secure_client, world, coach):
    """One computation: the caseload's sparkline of the primary goal says what the patient page's says (the goal's
    latest, lowest and highest over the same window), and the caseload warms the page's cache entry."""
    html = secure_client.get("/app/caseload").text
    for name in ("Olive Olsen", "Wendy Walsh", "Bert Brooks"):
        pid = world[name]
        row = next(r for r in rows(html) if r["id"] == pid)
        spark = re.search(r'<svg class="spark"[^>]*aria-label="([^"]+)"', row["goal"]).group(1)
        page = secure_client.get(f"/app/patients/{pid}").text
        labels = re.findall(r'<svg class="spark"[^>]*aria-label="([^"]+)"', page)
        assert spark in labels, (spark, labels)
        assert "lowest" in spark and "highest" in spark


def test_caseload_views_come_from_the_cache_and_follow_writes(secure_services, secure_client, world, coach):
    from fhir_ecr.web.caseload import _row_cache
    from tests.coaching.coaching_support import steps_reading

    secure_client.get("/app/caseload")
    views, rows_ = view_cache(secure_services.engine).stats, _row_cache(secure_services.engine).stats
    before = (views.hits, views.misses, rows_.hits)
    secure_client.get("/app/caseload")
    assert rows_.hits == before[2] + 16  # every row (15) and the coach's list of patients from the cache
    assert (views.hits, views.misses) == before[:2]  # nothing computed, no glance even looked up
    # a new reading for Sid (silent for 10 days) ends his silence on the next view
    today = datetime.now(ZoneInfo(TZ)).date()
    secure_services.repo.create(steps_reading(world["Sid Stone"], today, 9000))
    sid = next(r for r in rows(secure_client.get("/app/caseload").text) if r["name"] == "Sid Stone")
    assert "no-data" not in [k for k, _ in sid["reasons"]]


def test_seeing_a_signal_on_the_patient_page_makes_it_old(secure_client, world, coach):
    secure_client.get(f"/app/patients/{world['Wendy Walsh']}")
    wendy = next(r for r in rows(secure_client.get("/app/caseload").text) if r["name"] == "Wendy Walsh")
    assert "signal-worse" not in [k for k, _ in wendy["reasons"]]


def test_patients_may_not_open_the_caseload(secure_services, secure_client, world):
    login(secure_services, patient_principal(world["Olive Olsen"]), secure_client)
    resp = secure_client.get("/app/caseload")
    assert (
        resp.status_code == 403
        and "Walsh" not in resp.text
        and resp.headers["content-type"].startswith("text/html")
    )


def test_open_referrals_wait_since_the_tasks_last_move(secure_services, world):
    """The "waiting on someone" rule: active referral of the mECR profile, no ended Task; waiting since the latest
    Task's lastModified, else authoredOn."""
    repo = secure_services.repo
    today = datetime.now(ZoneInfo(TZ)).date()
    rita = world["Rita Ross"]
    found = open_referrals(repo, [rita], today, TZ)[rita]
    assert [(r.waiting_days, r.performer) for r in found] == [(20, "the food bank")]
    # no answer to a request for 20 days: overdue after 7 (the default), not when food needs 30 (a setting)
    assert found[0].overdue and found[0].status == "requested" and found[0].category == "food-insecurity"
    assert not open_referrals(repo, [rita], today, TZ, response_days("7,food-insecurity=30"))[rita][0].overdue
    assert open_referrals(repo, [rita], today, TZ, response_days("30,food-insecurity=20"))[rita][0].overdue
    task = next(s for s in repo.search_params("Task", [("patient", f"Patient/{rita}")]).matches)
    moved = (datetime.now(ZoneInfo(TZ)) - timedelta(days=2)).isoformat(timespec="seconds")
    repo.update(
        "Task",
        task.id,
        {
            **(task.content or {}),
            "status": "accepted",
            "lastModified": moved,
            "owner": {"display": "the food bank"},
        },
    )
    assert open_referrals(repo, [rita], today, TZ)[rita][0].waiting_days == 2
    task = repo.read("Task", task.id)
    repo.update(
        "Task",
        task.id,
        {
            **(task.content or {}),
            "status": "completed",
            "output": [{"type": {"text": "result"}, "valueString": "enrolled"}],
        },
    )
    assert open_referrals(repo, [rita], today, TZ) == {}
    # a ServiceRequest without the referral profile, or not active, is not a referral here
    plain = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{rita}"},
    }
    repo.create(plain)
    assert open_referrals(repo, [rita], today, TZ) == {}
    assert REFERRAL_PROFILE.endswith("mecr-community-referral")


def _forget_this_process(services) -> None:
    from fhir_ecr.web.caseload import _row_cache

    view_cache(services.engine).clear()
    _row_cache(services.engine).clear()


def test_rows_are_kept_for_the_viewer_and_read_back_by_another_process(
    secure_services, secure_client, world, coach, monkeypatch
):
    """A drawn row is kept per viewer (kept_view): a process with empty caches draws nothing while the rows hold,
    and draws again after a write, for another viewer, or when what the viewer has seen changed."""
    from fhir_ecr.web import caseload as page
    from tests.coaching.coaching_support import steps_reading

    first = secure_client.get("/app/caseload").text
    _forget_this_process(secure_services)
    drawn: list[int] = []
    real = page._compute_rows

    def counting(data, patients, *args):
        drawn.append(len(patients))
        return real(data, patients, *args)

    monkeypatch.setattr(page, "_compute_rows", counting)
    again = secure_client.get("/app/caseload").text
    assert drawn == [] and rows(again) == rows(first)  # every row read back from kept_view
    today = datetime.now(ZoneInfo(TZ)).date()
    secure_services.repo.create(steps_reading(world["Sid Stone"], today, 9000))
    _forget_this_process(secure_services)
    sid = next(r for r in rows(secure_client.get("/app/caseload").text) if r["name"] == "Sid Stone")
    assert drawn == [1] and "no-data" not in [k for k, _ in sid["reasons"]]  # only Sid's row drawn again
    secure_client.get(f"/app/patients/{world['Wendy Walsh']}")  # Wendy's signal seen
    _forget_this_process(secure_services)
    wendy = next(r for r in rows(secure_client.get("/app/caseload").text) if r["name"] == "Wendy Walsh")
    assert "signal-worse" not in [k for k, _ in wendy["reasons"]] and drawn[-1] == 1


def test_the_refresh_job_draws_the_rows_of_recent_viewers_ahead(
    secure_services, secure_client, world, coach, monkeypatch
):
    """After a nightly import, refresh_views recomputes the kept glances and then draws the rows of every recent
    caseload viewer, so their first view draws nothing."""
    from fhir_ecr.sync import tasks
    from fhir_ecr.web import caseload as page
    from tests.coaching.coaching_support import steps_reading

    secure_client.get("/app/caseload")  # the coach is a recent viewer now
    today = datetime.now(ZoneInfo(TZ)).date()
    with secure_services.repo.unit() as uow:  # the nightly import: a reading for every patient
        for pid in world.values():
            uow.create(steps_reading(pid, today, 7777))
    done, left = tasks.refresh_views(secure_services)
    assert (done, left) == (len(world), 0)
    _forget_this_process(secure_services)  # as if the job ran in a separate worker process

    def refuse(*_args, **_kwargs):
        raise AssertionError("a row was drawn at view time")

    monkeypatch.setattr(page, "_compute_rows", refuse)
    found = rows(secure_client.get("/app/caseload").text)
    assert len(found) == 15 and all("no-data" not in [k for k, _ in r["reasons"]] for r in found)
