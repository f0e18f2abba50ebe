"""Kept views (fhir_ecr.coaching.derived.kept): the glance and the summary of each patient are kept in the database
with what they were computed from, so another process — or this one after its cache is gone — reads them instead of
computing them; a kept view is used only while its stamp holds (same data version, local day, time zone and
parameters), the background refresh recomputes exactly the ones that no longer hold, and a kept row never runs
code when it is read."""

from __future__ import annotations

import pickle
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_ecr.coaching.cache import view_cache
from fhir_ecr.coaching.derived import kept
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.composition import build_services
from tests.coaching.coaching_support import NOW, make_world, pin_clock, steps_reading
from tests.coaching.test_coaching_cache import patient_access, practitioner, walk

TODAY = date(2026, 3, 20)


class _NotPlain:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("executed",))


def _forget_process_cache(repo: Any) -> None:
    view_cache(repo.engine).clear()


def _no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("computed although a kept view holds")

    monkeypatch.setattr(CoachingService, "_gather", refuse)


def _kept_rows(repo: Any) -> dict[tuple[str, str], int]:
    with repo.engine.connect() as conn:
        return {
            (r.patient_id, r.view): int(r.version)
            for r in conn.execute(sa.select(kept.KEPT.c.patient_id, kept.KEPT.c.view, kept.KEPT.c.version))
        }


def test_a_computed_glance_is_kept_with_its_summary_and_read_back_without_computing(
    repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world(repo)
    svc = CoachingService(repo)
    svc.check_in(w.plan, "walk", "done", day=TODAY)
    glance = svc.patient_glances([w.patient])[w.patient]
    version = repo.patient_version(w.patient)
    assert _kept_rows(repo) == {(w.patient, "glance"): version, (w.patient, "summary"): version}
    _forget_process_cache(repo)  # as a second process, or this one after a restart
    _no_compute(monkeypatch)
    assert svc.patient_glances([w.patient])[w.patient] == glance
    assert walk(svc.coaching_summary(w.patient))["lastCheckIn"] == TODAY


def test_another_process_reads_what_this_one_kept(
    repo: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world(repo)
    summary = CoachingService(repo).coaching_summary(w.patient)
    other = build_services(settings, migrate=False)  # its own engine and empty cache
    try:
        pin_clock(other.repo)
        _no_compute(monkeypatch)
        assert CoachingService(other.repo).coaching_summary(w.patient) == summary
    finally:
        other.engine.dispose()


def test_a_kept_view_stops_holding_after_a_write_a_new_day_or_other_parameters(repo: Any) -> None:
    w = make_world(repo)
    today = [NOW]
    svc = CoachingService(repo, now=lambda: today[0])
    svc.check_in(w.plan, "walk", "done", day=TODAY)
    assert walk(svc.coaching_summary(w.patient))["streak"]["current"] == 1
    # a write by another writer: the kept summary's version no longer holds
    _forget_process_cache(repo)
    repo.create(steps_reading(w.patient, TODAY, 4321))
    assert svc.coaching_summary(w.patient)["goal"][0]["latest"] == 4321
    # three days later, nothing written: the kept view is of another day
    _forget_process_cache(repo)
    today[0] = NOW + timedelta(days=3)
    later = svc.coaching_summary(w.patient)
    assert later["today"] == TODAY + timedelta(days=3) and walk(later)["streak"]["current"] == 0
    # other parameters: not the kept view of the defaults
    _forget_process_cache(repo)
    short = CoachingService(repo, windows=(7,), now=lambda: today[0]).coaching_summary(w.patient)
    assert [a["days"] for a in walk(short)["adherence"]] == [7]


def test_refresh_recomputes_exactly_the_views_that_no_longer_hold(
    repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world(repo)
    today = [NOW]
    svc = CoachingService(repo, now=lambda: today[0])
    svc.patient_glances([w.patient, w.other_patient])
    assert svc.refresh_kept() == (0, 0)  # everything kept holds
    repo.create(steps_reading(w.patient, TODAY, 9100))  # the nightly import wrote for one patient
    assert svc.refresh_kept() == (1, 0)
    assert _kept_rows(repo)[(w.patient, "glance")] == repo.patient_version(w.patient)
    fresh = CoachingService(repo, use_cache=False, now=lambda: today[0]).patient_glances([w.patient])
    _forget_process_cache(repo)
    with monkeypatch.context() as m:
        _no_compute(m)
        assert svc.patient_glances([w.patient]) == fresh  # the refreshed one, not computed at the view
    today[0] = NOW + timedelta(days=1)  # a new local day: every kept view is of yesterday
    assert svc.refresh_kept() == (2, 0)
    assert svc.refresh_kept(budget_seconds=0.0) == (0, 0)
    repo.create(steps_reading(w.patient, TODAY, 9200))
    repo.create(steps_reading(w.other_patient, TODAY, 9300))
    assert svc.refresh_kept(budget_seconds=0.0, batch=1) == (1, 1)  # out of time after one batch
    assert svc.refresh_kept() == (1, 0)


def test_a_row_that_is_not_plain_data_is_never_run_and_counts_as_missing(repo: Any, capsys: Any) -> None:
    assert kept.decode(pickle.dumps(_NotPlain())) is None
    assert kept.decode(b"\x80\x05not a pickle") is None
    assert capsys.readouterr().out == ""
    w = make_world(repo)
    svc = CoachingService(repo)
    summary = svc.coaching_summary(w.patient)
    with repo.engine.begin() as conn:
        conn.execute(kept.KEPT.update().values(value=pickle.dumps((_NotPlain(), []))))
    _forget_process_cache(repo)
    assert svc.coaching_summary(w.patient) == summary  # computed again
    assert capsys.readouterr().out == ""


def test_kept_views_obey_scopes_the_compartment_and_the_audit_trail(
    repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world(repo)
    CoachingService(repo).patient_glances([w.patient, w.other_patient])
    _forget_process_cache(repo)
    # another patient's token: their glances are all this caller gets, and nothing of w.patient's is kept or read
    asked: list[str] = []
    real_load = kept.load
    monkeypatch.setattr(kept, "load", lambda conn, view, ids: asked.extend(ids) or real_load(conn, view, ids))
    rows_before = _kept_rows(repo)
    other = patient_access(w.other_patient)
    assert list(CoachingService(repo.guarded(other)).patient_glances([w.patient, w.other_patient])) == [
        w.other_patient
    ]
    assert w.patient not in asked and _kept_rows(repo) == rows_before
    narrow = practitioner("user/Patient.rs")
    with pytest.raises(Exception) as refused:
        CoachingService(repo.guarded(narrow)).patient_glances([w.patient])
    assert getattr(refused.value, "status", None) == 403
    coach = practitioner()
    CoachingService(repo.guarded(coach)).patient_glances([w.patient])
    touched = {ref for _, ref, _ in coach.touched}
    assert f"Goal/{w.goal}" in touched and f"CarePlan/{w.plan}" in touched  # a kept hit names its sources


def test_refresh_views_job_runs_once_at_a_time(services: Any) -> None:
    from fhir_ecr.sync import tasks

    w = make_world(services.repo)
    assert tasks.refresh_views(services) == (2, 0)
    assert services.sync_store.lease("refresh_views", "someone else", 60)
    services.repo.create(steps_reading(w.patient, TODAY, 9000))
    assert tasks.refresh_views(services) is None  # another worker holds the lease
    services.sync_store.release("refresh_views", "someone else")
    assert tasks.refresh_views(services) == (1, 0)


def test_a_deleted_patients_kept_views_are_dropped_by_the_refresh(repo: Any) -> None:
    w = make_world(repo)
    svc = CoachingService(repo)
    svc.patient_glances([w.patient, w.other_patient])
    repo.delete("Patient", w.other_patient)
    assert svc.refresh_kept() == (0, 0)  # nothing to compute for a deleted patient
    assert {pid for pid, _ in _kept_rows(repo)} == {w.patient}


def test_refresh_keeps_the_page_overview_for_its_series_only(
    repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world(repo)
    steps = ("http://loinc.org", "41950-7", "/d")
    sleep = ("http://loinc.org", "93832-4", "h")
    svc = CoachingService(repo)
    repo.create(steps_reading(w.patient, TODAY, 8100))
    assert svc.refresh_kept(overview_series=[steps]) == (2, 0)
    fresh = CoachingService(repo, use_cache=False).patient_overview(w.patient, [steps])
    _forget_process_cache(repo)
    with monkeypatch.context() as m:
        _no_compute(m)
        assert svc.patient_overview(w.patient, [steps]) == fresh  # kept by the refresh
        assert svc.patient_glances([w.patient])[w.patient]["summary"] == fresh["summary"]  # kept with it
        with pytest.raises(AssertionError, match="computed"):
            svc.patient_overview(w.patient, [steps, sleep])  # other series: not the kept overview
