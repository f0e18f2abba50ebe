"""The coaching views are cached per patient data version: a repeat read is served from the cache, any write
for the patient (through the service, the repository, or another process) makes the next read recompute, and
the cache never lets a caller see what their own access would not."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from fhir_ecr.auth import Access, Principal
from fhir_ecr.coaching.cache import view_cache
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.composition import build_services
from fhir_ecr.outcomes import FhirError
from smart_launch.scopes import ScopeSet
from tests.coaching.coaching_support import NOW, make_world, pin_clock, steps_reading

TODAY = date(2026, 3, 20)


def walk(summary: dict[str, Any]) -> dict[str, Any]:
    return next(h for h in summary["habit"] if h["habitId"] == "walk")


def practitioner(scopes: str = "user/*.cruds") -> Access:
    return Access(
        Principal(
            kind="practitioner",
            subject="Practitioner/c",
            fhir_user="Practitioner/c",
            scopes=ScopeSet.parse(scopes),
        )
    )


def patient_access(pid: str) -> Access:
    return Access(
        Principal(
            kind="patient",
            subject=f"Patient/{pid}",
            fhir_user=f"Patient/{pid}",
            patient_id=pid,
            scopes=ScopeSet.parse("patient/*.cruds"),
        )
    )


def test_a_repeat_read_is_a_hit_and_a_private_copy(repo: Any) -> None:
    w = make_world(repo)
    svc = CoachingService(repo)
    stats = view_cache(repo.engine).stats
    first = svc.coaching_summary(w.patient)
    hits = stats.hits
    second = svc.coaching_summary(w.patient)
    assert stats.hits == hits + 1
    assert second == first
    second["habit"].clear()  # the caller's copy: the cached value is untouched
    assert CoachingService(repo).coaching_summary(w.patient) == first


def test_every_kind_of_write_makes_the_next_read_recompute(repo: Any) -> None:
    w = make_world(repo)
    svc = CoachingService(repo)
    assert walk(svc.coaching_summary(w.patient))["lastCheckIn"] is None
    svc.check_in(w.plan, "walk", "done", day=TODAY)  # through the service
    assert walk(svc.coaching_summary(w.patient))["lastCheckIn"] == TODAY
    # straight through the repository (another writer, e.g. the FHIR API or an importer)
    obs = repo.search_params("Observation", [("patient", f"Patient/{w.patient}")]).matches[0]
    repo.delete("Observation", obs.id)
    assert walk(svc.coaching_summary(w.patient))["lastCheckIn"] is None
    # a goal changed by a bulk unit of work (the importers' path)
    goal = repo.read("Goal", w.goal).content
    with repo.unit() as uow:
        uow.update("Goal", w.goal, {**goal, "description": {"text": "Walk more"}})
        uow.create(steps_reading(w.patient, TODAY, 9000))
    summary = svc.coaching_summary(w.patient)
    assert summary["goal"][0]["description"] == "Walk more"
    assert summary["goal"][0]["latest"] == 9000
    # the patient's time zone (on the Patient) decides "today"
    svc.set_time_zone(w.patient, "Pacific/Kiritimati")  # UTC+14: already 21 March there
    assert svc.coaching_summary(w.patient)["today"] == TODAY + timedelta(days=1)


def test_another_process_writing_invalidates_this_one(repo: Any, settings: Any) -> None:
    w = make_world(repo)
    mine = CoachingService(repo)
    assert walk(mine.coaching_summary(w.patient))["lastCheckIn"] is None
    other = build_services(settings, migrate=False)  # its own engine and cache: a second server process
    try:
        pin_clock(other.repo)
        CoachingService(other.repo).check_in(w.plan, "walk", "partly", day=TODAY)
    finally:
        other.engine.dispose()
    assert walk(mine.coaching_summary(w.patient))["lastCheckIn"] == TODAY


def test_other_patients_writes_keep_the_entry(repo: Any) -> None:
    w = make_world(repo)
    svc = CoachingService(repo)
    svc.coaching_summary(w.patient)
    repo.create(steps_reading(w.other_patient, TODAY, 5000))
    stats = view_cache(repo.engine).stats
    hits = stats.hits
    svc.coaching_summary(w.patient)
    assert stats.hits == hits + 1


def test_a_new_day_is_a_new_entry(repo: Any) -> None:
    w = make_world(repo)
    today = [NOW]
    svc = CoachingService(repo, now=lambda: today[0])
    svc.check_in(w.plan, "walk", "done", day=TODAY)
    assert walk(svc.coaching_summary(w.patient))["streak"]["current"] == 1
    today[0] = NOW + timedelta(days=3)  # three days later with no check-in: the streak is over
    later = svc.coaching_summary(w.patient)
    assert later["today"] == TODAY + timedelta(days=3) and walk(later)["streak"]["current"] == 0


def test_service_parameters_are_part_of_the_key(repo: Any) -> None:
    w = make_world(repo)
    assert [a["days"] for a in walk(CoachingService(repo).coaching_summary(w.patient))["adherence"]] == [
        7,
        30,
        90,
    ]
    short = CoachingService(repo, windows=(7,)).coaching_summary(w.patient)
    assert [a["days"] for a in walk(short)["adherence"]] == [7]


def test_the_cache_does_not_bypass_scopes_or_the_compartment(repo: Any) -> None:
    w = make_world(repo)
    CoachingService(repo).coaching_summary(w.patient)  # cached by an all-powerful caller
    narrow = practitioner("user/Patient.rs")  # may read patients, not their observations
    with pytest.raises(FhirError) as refused:
        CoachingService(repo.guarded(narrow)).coaching_summary(w.patient)
    assert refused.value.status == 403
    other = patient_access(w.other_patient)
    with pytest.raises(FhirError) as refused:
        CoachingService(repo.guarded(other)).coaching_summary(w.patient)
    assert refused.value.status == 404  # another patient's record answers as if it did not exist
    own = patient_access(w.patient)
    assert CoachingService(repo.guarded(own)).coaching_summary(w.patient) == CoachingService(
        repo
    ).coaching_summary(w.patient)


def test_a_hit_still_reads_the_patient_and_is_audited(repo: Any) -> None:
    w = make_world(repo)
    coach = practitioner()
    CoachingService(repo.guarded(coach)).coaching_summary(w.patient)
    again = practitioner()
    CoachingService(repo.guarded(again)).coaching_summary(w.patient)
    touched = {ref for _, ref, _ in again.touched}
    assert (
        f"Patient/{w.patient}" in touched and f"Goal/{w.goal}" in touched and f"CarePlan/{w.plan}" in touched
    )
    repo.delete("Patient", w.other_patient)
    with pytest.raises(FhirError) as gone:
        CoachingService(repo).coaching_summary(w.other_patient)
    assert gone.value.status == 410


def test_overview_matches_the_summary_and_run_chart(repo: Any) -> None:
    w = make_world(repo)
    svc = CoachingService(repo)
    for n in range(10):
        repo.create(steps_reading(w.patient, TODAY - timedelta(days=n), 7000 + 100 * n))
    steps = ("http://loinc.org", "41950-7")
    overview = svc.patient_overview(w.patient, [(*steps, "/d")])
    assert overview["summary"] == CoachingService(repo, use_cache=False).coaching_summary(w.patient)
    assert overview["runChart"]["http://loinc.org|41950-7"] == svc.run_chart(w.patient, [steps])
    assert overview["series"]["http://loinc.org|41950-7"][-1] == (TODAY, 7000)
    assert overview["goalSeries"][w.goal] == overview["series"]["http://loinc.org|41950-7"]
    assert [g["id"] for g in overview["goals"]] == [w.goal]
    repo.create(steps_reading(w.patient, TODAY - timedelta(days=20), 1234))
    assert len(svc.patient_overview(w.patient, [(*steps, "/d")])["series"]["http://loinc.org|41950-7"]) == 11
