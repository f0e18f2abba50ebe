"""The coaching views' derived tables (fhir_ecr.coaching.derived): kept in the writes' transaction, equal to a
rebuild after any sequence of writes, and the views computed from them equal to the views computed from the
search index — on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.derived import derived_ready, install_derived, maintain, rebuild
from fhir_ecr.coaching.derived.maintain import STATE_KEY
from fhir_ecr.coaching.derived.reads import DerivedSource, IndexSource
from fhir_ecr.coaching.schedule import CheckInStatus
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.outcomes import FhirError
from fhir_ecr.store import jsonexact
from fhir_ecr.store.tables import DerivedObservation, DerivedObservationCode
from tests.coaching.coaching_support import LOINC_STEPS, make_world, steps_reading

OBS = DerivedObservation.__table__  # type: ignore[attr-defined]
CODES = DerivedObservationCode.__table__  # type: ignore[attr-defined]
HEART = {"system": "http://loinc.org", "code": "8867-4"}
START = date(2026, 3, 1)
ZONES = ["America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]


def _rows(repo: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Both tables' rows."""
    with repo.engine.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(sa.select(OBS).order_by(OBS.c.res_pk))],
            [tuple(r) for r in conn.execute(sa.select(CODES).order_by(CODES.c.res_pk, CODES.c.seq))],
        )


def _pk(repo: Any, rid: str) -> int:
    """The key of the Observation ``rid`` (derived rows are keyed by it)."""
    with repo.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT pk FROM resource WHERE res_type = 'Observation' AND res_id = :id"),
                {"id": rid},
            ).scalar_one()
        )


def _index_only(repo: Any) -> Any:
    """The same store without the derived-data hook: its views read the search index."""
    plain = copy.copy(repo)
    plain.write_hooks = [h for h in repo.write_hooks if type(h).__name__ != "DerivedHook"]
    return plain


def _views(repo: Any, patient: str) -> dict[str, Any]:
    svc = CoachingService(repo, use_cache=False)
    series = [(HEART["system"], HEART["code"], "/min")]
    return {
        "summary": svc.coaching_summary(patient),
        "glance": svc.patient_glance(patient),
        "overview": svc.patient_overview(patient, series),
        "chart": svc.run_chart(
            patient, [(HEART["system"], HEART["code"])], START, START + timedelta(days=40)
        ),
    }


def _reading(patient: str, day: int, value: int, kind: int, code: dict[str, str]) -> dict[str, Any]:
    obs = steps_reading(patient, START + timedelta(days=day), value)
    obs["code"] = {"coding": [dict(code)]}
    obs["meta"] = {"source": "urn:test"}  # not the daily-steps profile: the code varies
    if kind == 1:  # an instant late in the UTC day: its local day depends on the time zone
        obs["effectiveDateTime"] = f"{(START + timedelta(days=day)).isoformat()}T23:30:00Z"
    elif kind == 2:  # a period (a daily summary)
        d = (START + timedelta(days=day)).isoformat()
        obs.pop("effectiveDateTime")
        obs["effectivePeriod"] = {"start": f"{d}T00:00:00-05:00", "end": f"{d}T23:59:59-05:00"}
    elif kind == 3:
        obs["status"] = "entered-in-error"
    return obs


op = st.one_of(
    st.tuples(
        st.just("reading"), st.integers(0, 40), st.integers(0, 20_000), st.integers(0, 3), st.integers(0, 3)
    ),
    st.tuples(st.just("checkin"), st.integers(0, 19), st.sampled_from(list(CheckInStatus)), st.booleans()),
    st.tuples(st.just("update"), st.integers(0, 50), st.integers(0, 40), st.integers(0, 20_000)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("move"), st.integers(0, 50)),
    st.tuples(st.just("zone"), st.sampled_from(ZONES)),
    st.tuples(st.just("habit"), st.sampled_from(["rename", "pause", "resume"])),
    st.tuples(st.just("batch"), st.integers(0, 40), st.integers(1, 6)),
)


def _apply(repo: Any, svc: CoachingService, world: Any, ids: list[str], step: tuple[Any, ...]) -> None:
    kind = step[0]
    habits = {h.habit_id: h for h in res.habits_of_plan(repo.read("CarePlan", world.plan).content)}
    if kind == "reading":
        _, day, value, shape, which = step
        steps = {"system": "http://loinc.org", "code": "41950-7"}
        obs = _reading(world.patient, day, value, shape, HEART if which % 2 else steps)
        if which >= 2:  # two codings: the second is a code row (its first reading may be this one)
            obs["code"] = {"coding": [dict(steps), dict(HEART)] if which == 2 else [dict(HEART), dict(steps)]}
        ids.append(repo.create(obs).stored.id)
    elif kind == "checkin":
        _, day, status, gym = step
        obs = res.checkin_observation(
            habits["gym" if gym else "walk"], world.patient, START + timedelta(days=day), status
        )
        key = obs["identifier"][0]
        found = repo.search_params("Observation", [("identifier", f"{key['system']}|{key['value']}")])
        if found.matches:
            repo.update("Observation", found.matches[0].id, {**obs, "id": found.matches[0].id})
        else:
            ids.append(repo.create(obs).stored.id)
    elif kind in ("update", "delete", "move") and ids:
        rid = ids[step[1] % len(ids)]
        try:
            current = repo.read("Observation", rid)
        except FhirError:  # 410: deleted by an earlier step
            return
        if kind == "delete":
            repo.delete("Observation", rid)
        else:
            content = copy.deepcopy(current.content)
            if kind == "move":
                content["subject"] = {"reference": f"Patient/{world.other_patient}"}
            elif "valueQuantity" in content:
                content["valueQuantity"]["value"] = step[3]
                if "effectiveDateTime" in content:
                    content["effectiveDateTime"] = (START + timedelta(days=step[2])).isoformat()
            repo.update("Observation", rid, content)
    elif kind == "zone":
        svc.set_time_zone(world.patient, step[1])
    elif kind == "habit":
        try:
            if step[1] == "rename":
                svc.change_habit(world.plan, "walk", title=f"Walk {len(ids)}")
            elif step[1] == "pause":
                svc.pause_habit(world.plan, "gym", "illness", start=START + timedelta(days=5))
            else:
                svc.resume_habit(world.plan, "gym", on=START + timedelta(days=9))
        except FhirError:
            pass  # e.g. resuming a habit that is not paused: nothing written
    elif kind == "batch":  # several writes in one unit of work, one of them changed again before it ends
        _, day, n = step
        with repo.unit() as uow:
            made = [
                uow.create(_reading(world.patient, day + i % 3, 100 * i, i % 3, HEART)).stored
                for i in range(n)
            ]
            content = copy.deepcopy(made[0].content)
            content["valueQuantity"]["value"] = 7
            uow.update("Observation", made[0].id, content)
            if n > 2:
                uow.delete("Observation", made[1].id)
        ids += [m.id for m in made]


@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(op, min_size=1, max_size=14))
def test_rebuild_equals_incremental_and_views_equal_index_views(
    repo: Any, steps: list[tuple[Any, ...]]
) -> None:
    install_derived(repo)
    world = make_world(repo)
    svc = CoachingService(repo)
    ids: list[str] = []
    for step in steps:
        _apply(repo, svc, world, ids, step)
    incremental = _rows(repo)
    with repo.unit(write=False) as uow:
        assert derived_ready(repo, uow)
    assert _views(repo, world.patient) == _views(_index_only(repo), world.patient)
    assert _views(repo, world.other_patient) == _views(_index_only(repo), world.other_patient)
    rebuild(repo, world.patient)
    rebuild(repo, world.other_patient)
    assert _rows(repo) == incremental
    rebuild(repo)
    assert _rows(repo) == incremental


def test_rows_roll_back_with_the_write(repo: Any) -> None:
    install_derived(repo)
    world = make_world(repo)
    before = _rows(repo)
    with pytest.raises(RuntimeError), repo.unit() as uow:
        uow.create(steps_reading(world.patient, START, 5000))
        uow.flush()
        raise RuntimeError("the request failed after the write")
    assert _rows(repo) == before
    stored = repo.create(steps_reading(world.patient, START, 5000)).stored
    obs, codes = _rows(repo)
    assert [r[0] for r in obs] == [_pk(repo, stored.id)] and obs[0][1] == world.patient
    day = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) * 1_000_000  # the date's range, in UTC µs
    assert obs[0][2:-2] == (day, day + 86_400_000_000 - 1, None, None, None)  # no check-in: no token values
    assert obs[0][-2:] == ("http://loinc.org", "41950-7") and codes == []  # one coding: one row


def test_further_codings_are_code_rows(repo: Any) -> None:
    install_derived(repo)
    world = make_world(repo)
    steps = {"system": "http://loinc.org", "code": "41950-7"}
    obs = _reading(world.patient, 2, 5000, 0, HEART)
    obs["code"] = {"coding": [dict(HEART), dict(steps), dict(HEART)]}
    stored = repo.create(obs).stored
    rows, codes = _rows(repo)
    assert [r[0] for r in rows] == [_pk(repo, stored.id)] and rows[0][-2:] == (HEART["system"], HEART["code"])
    assert [(r[1], r[3], r[4]) for r in codes] == [(1, steps["system"], steps["code"])]
    with repo.unit(write=False) as uow:
        src = DerivedSource()
        for coding in (HEART, steps):
            assert [
                d["id"]
                for d in src.readings(uow, world.patient, [(coding["system"], coding["code"])], [], ["code"])
            ] == [stored.id]
            assert [
                d["id"]
                for d in src.first_readings(
                    uow, world.patient, [(coding["system"], coding["code"])], 1, ["code"]
                )
            ] == [stored.id]
        both = [(c["system"], c["code"]) for c in (HEART, steps)]
        assert [d["id"] for d in src.readings(uow, world.patient, both, ["ge2026-03-01"], ["code"])] == [
            stored.id
        ]
        assert [d["id"] for d in src.first_since(uow, world.patient, both, START, 5, ["code"])] == [stored.id]


def test_a_stale_store_reads_the_index_until_rebuilt(repo: Any) -> None:
    """Migration 0009 over a store that already held Observations marks the tables stale: the views keep to the
    search index (still right) until `mecr db rebuild-derived` has filled them."""
    hook = install_derived(repo)
    world = make_world(repo)
    for day in range(5):
        repo.create(steps_reading(world.patient, START + timedelta(days=day), 9000 + day))
    expected = _views(_index_only(repo), world.patient)
    with repo.engine.begin() as conn:  # as if the rows had been written before the hook existed
        conn.execute(CODES.delete())
        conn.execute(OBS.delete())
    with repo.unit() as uow:
        uow.set_state(STATE_KEY, "stale")
    hook._ready.clear()
    with repo.unit(write=False) as uow:
        assert not derived_ready(repo, uow)
    assert _views(repo, world.patient) == expected
    assert rebuild(repo) == 5
    with repo.unit(write=False) as uow:
        assert uow.get_state(STATE_KEY) == "ready" and derived_ready(repo, uow)
    assert _views(repo, world.patient) == expected


def _observation_ids(repo: Any, patient: str) -> list[str]:
    """``Observation?patient=…&code=<steps>`` as a search returns it (the derived tables drive it when ready)."""
    code = f"{LOINC_STEPS['system']}|{LOINC_STEPS['code']}"
    found = repo.search_params("Observation", [("patient", patient), ("code", code), ("_sort", "date")])
    return [s.id for s in found.matches]


def test_rows_written_without_the_hook_are_noticed_and_the_index_answers_until_rebuilt(
    repo: Any, caplog: Any, monkeypatch: Any
) -> None:
    """A store written without the hook (a bare repository, a restored database) has no ``stale`` flag to say so:
    the rows are counted against the search index once, and until they agree the views and the searches the
    tables drive read the index (still right), with the two counts logged; a rebuild makes them ready again."""
    hook = install_derived(repo)
    world = make_world(repo)
    repo.create(steps_reading(world.patient, START, 9000))
    bare = _index_only(repo)  # writes that keep no derived rows
    for day in range(1, 5):
        bare.create(steps_reading(world.patient, START + timedelta(days=day), 9000 + day))
    expected_views = _views(bare, world.patient)
    expected_ids = _observation_ids(bare, world.patient)
    assert len(expected_ids) == 5
    hook.forget(repo.engine)
    with caplog.at_level("WARNING", logger="mecr.coaching"), repo.unit(write=False) as uow:
        assert uow.get_state(STATE_KEY) != "stale" and not derived_ready(repo, uow)
    assert "hold 1 rows for 5 Observations of patients" in caplog.text
    assert world.patient not in caplog.text  # counts only: no identifier in the log
    assert _observation_ids(repo, world.patient) == expected_ids
    assert _views(repo, world.patient) == expected_views

    # Within RECHECK_SECONDS the tables are not counted again; after it, they are.
    counted: list[bool] = []
    real = maintain.complete

    def counting(uow: Any) -> bool:
        counted.append(True)
        return real(uow)

    monkeypatch.setattr(maintain, "complete", counting)
    with repo.unit(write=False) as uow:
        assert not derived_ready(repo, uow)
    assert counted == []
    clock = maintain.time.monotonic() + maintain.RECHECK_SECONDS + 1
    monkeypatch.setattr(maintain.time, "monotonic", lambda: clock)
    with repo.unit(write=False) as uow:
        assert not derived_ready(repo, uow)
    assert counted == [True]

    assert rebuild(repo) == 5  # forgets what was cached: counted again at once
    with repo.unit(write=False) as uow:
        assert derived_ready(repo, uow)
    assert counted == [True, True]
    assert _observation_ids(repo, world.patient) == expected_ids
    assert _views(repo, world.patient) == expected_views


def test_a_complete_store_is_counted_once_per_process(repo: Any, monkeypatch: Any) -> None:
    hook = install_derived(repo)
    world = make_world(repo)
    for day in range(3):
        repo.create(steps_reading(world.patient, START + timedelta(days=day), 8000 + day))
    hook.forget(repo.engine)
    counted: list[bool] = []
    real = maintain.complete
    monkeypatch.setattr(maintain, "complete", lambda uow: counted.append(True) or real(uow))
    for _ in range(3):
        with repo.unit(write=False) as uow:
            assert derived_ready(repo, uow)
    assert counted == [True]


def _writer(url: str, patient: str, shared: str, seed: int, n: int) -> int:
    """One process's writes for ``patient``: new readings, updates of a shared one, deletions of its own."""
    import random

    from fhir_ecr.app import build_services
    from fhir_ecr.config import Settings

    services = build_services(Settings(database_url=url, environment="test"), migrate=False)
    repo, rnd, mine, done = services.repo, random.Random(seed), [], 0
    try:
        for i in range(n):
            choice = rnd.random()
            try:
                if choice < 0.5:
                    mine.append(
                        repo.create(
                            _reading(patient, rnd.randrange(40), i, rnd.randrange(3), HEART)
                        ).stored.id
                    )
                elif choice < 0.8:
                    current = repo.read("Observation", shared)
                    content = copy.deepcopy(current.content)
                    content["valueQuantity"]["value"] = seed * 1000 + i
                    content["effectiveDateTime"] = (START + timedelta(days=rnd.randrange(40))).isoformat()
                    repo.update("Observation", shared, content)
                elif mine:
                    repo.delete("Observation", mine.pop(rnd.randrange(len(mine))))
                done += 1
            except (
                FhirError
            ) as exc:  # 409: the other process changed the same resource first; retried by callers
                assert exc.status == 409
    finally:
        services.engine.dispose()
    return done


def test_several_processes_writing_one_patient_keep_the_rows_right(repo: Any, settings: Any) -> None:
    import multiprocessing

    install_derived(repo)
    world = make_world(repo)
    shared = repo.create(_reading(world.patient, 3, 100, 0, HEART)).stored.id
    repo.engine.dispose()  # no pooled connection crosses the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        done = pool.starmap(
            _writer, [(settings.database_url, world.patient, shared, seed, 25) for seed in (1, 2, 3)]
        )
    assert sum(done) > 50
    incremental = _rows(repo)
    assert len(incremental[0]) > 20
    assert _views(repo, world.patient) == _views(_index_only(repo), world.patient)
    rebuild(repo)
    assert _rows(repo) == incremental


def test_migration_0013_moves_the_first_coding_both_ways(repo: Any) -> None:
    """0013 over rows written in 0009's layout (every coding a code row) gives the rows a write gives now, and its
    downgrade gives the old layout back."""
    from alembic import command

    from fhir_ecr.store.db import WRITE, _alembic_config, upgrade

    install_derived(repo)
    world = make_world(repo)
    obs = _reading(world.patient, 2, 5000, 0, HEART)
    obs["code"] = {"coding": [dict(HEART), {"system": "http://loinc.org", "code": "41950-7"}]}
    repo.create(obs)
    repo.create(_reading(world.patient, 3, 6000, 2, HEART))
    now = _rows(repo)
    with repo.engine.connect().execution_options(**{WRITE: True}) as conn:
        command.downgrade(_alembic_config(conn), "0012")
        conn.commit()
    with repo.engine.connect() as conn:
        old = [
            tuple(r) for r in conn.execute(sa.text("SELECT res_pk, seq, code FROM derived_observation_code"))
        ]
        columns = {c["name"] for c in sa.inspect(conn).get_columns("derived_observation")}
    assert sorted(old) == sorted(
        [(now[0][0][0], 0, HEART["code"]), (now[0][0][0], 1, "41950-7"), (now[0][1][0], 0, HEART["code"])]
    )
    assert "code" not in columns
    upgrade(repo.engine)
    assert _rows(repo) == now


def test_the_server_counts_the_tables_at_start_up(app: Any, repo: Any, monkeypatch: Any) -> None:
    """The count runs in the app's start-up, not in the first request that reads the tables."""
    from fastapi.testclient import TestClient

    hook = install_derived(repo)
    hook.forget(repo.engine)
    counted: list[bool] = []
    real = maintain.complete
    monkeypatch.setattr(maintain, "complete", lambda uow: counted.append(True) or real(uow))
    with TestClient(app):
        assert counted == [True]
        with repo.unit(write=False) as uow:
            assert derived_ready(repo, uow)
        assert counted == [True]


def test_migration_0014_drops_the_copies_and_its_downgrade_restores_them(repo: Any) -> None:
    """0014 drops ``res_id``, ``elements`` and ``is_checkin`` and keeps every row; its downgrade fills them again
    from the stored Observations and the codes (the elements present, as the hook of 0009–0013 wrote them), and
    upgrading again gives the same rows back."""
    from alembic import command

    from fhir_ecr.store.db import WRITE, _alembic_config, upgrade

    install_derived(repo)
    world = make_world(repo)
    first = repo.create(_reading(world.patient, 2, 5000, 0, HEART)).stored
    second = repo.create(_reading(world.patient, 3, 6000, 2, HEART)).stored  # a period, not a dateTime
    walk = next(
        h for h in res.habits_of_plan(repo.read("CarePlan", world.plan).content) if h.habit_id == "walk"
    )
    checkin = repo.create(res.checkin_observation(walk, world.patient, START, CheckInStatus.DONE)).stored
    now = _rows(repo)
    assert OBS.c.keys() == [
        "res_pk", "patient_id", "low", "high", "checkin_key", "checkin_result", "status", "system",
        "code",
    ]  # fmt: skip
    with repo.engine.connect().execution_options(**{WRITE: True}) as conn:
        command.downgrade(_alembic_config(conn), "0013")
        conn.commit()
    with repo.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT res_id, elements, is_checkin FROM derived_observation")).all()
    old = {r.res_id: jsonexact.loads(r.elements) for r in found}
    kept = ("status", "code", "effectiveDateTime", "effectiveInstant", "effectivePeriod", "valueQuantity")
    assert old == {s.id: {k: s.content[k] for k in kept if k in s.content} for s in (first, second, checkin)}
    assert {r.res_id for r in found if r.is_checkin} == {checkin.id}
    assert "effectivePeriod" in old[second.id] and "effectiveDateTime" not in old[second.id]
    upgrade(repo.engine)
    assert _rows(repo) == now


def test_a_check_in_coding_after_another_still_makes_a_check_in(repo: Any) -> None:
    """Check-ins are found by their coding, first or not, dated since the day asked: the same rows, in the same
    order, from the derived tables as from the search index."""
    install_derived(repo)
    world = make_world(repo)
    walk = next(
        h for h in res.habits_of_plan(repo.read("CarePlan", world.plan).content) if h.habit_id == "walk"
    )
    plain = repo.create(res.checkin_observation(walk, world.patient, START, CheckInStatus.DONE)).stored
    second = res.checkin_observation(walk, world.patient, START + timedelta(days=1), CheckInStatus.PARTLY)
    second["code"] = {"coding": [dict(HEART), *second["code"]["coding"]]}
    later = repo.create(second).stored
    repo.create(res.checkin_observation(walk, world.patient, START - timedelta(days=3), CheckInStatus.DONE))
    with repo.unit(write=False) as uow:
        derived = DerivedSource().checkin_rows(uow, world.patient, START)
        index = IndexSource().checkin_rows(uow, world.patient, START)
    assert [r[0] for r in derived] == [plain.id, later.id]
    assert [tuple(r) for r in derived] == [tuple(r) for r in index]
