"""The derived tables driving Observation searches by patient and code (fhir_ecr.coaching.derived.drive): the same
ids, order, totals, pages and includes as the search index alone, on random data and queries — on SQLite and
PostgreSQL."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_ecr.coaching.derived import install_derived, rebuild
from fhir_ecr.coaching.derived.drive import DerivedSearch, codings_of, patient_of
from fhir_ecr.coaching.derived.maintain import STATE_KEY
from fhir_ecr.store.search import parse_search
from fhir_ecr.store.tables import DerivedObservation, DerivedObservationCode
from fhir_ecr.store.visibility import Confinement

OBS = DerivedObservation.__table__  # type: ignore[attr-defined]
CODES = DerivedObservationCode.__table__  # type: ignore[attr-defined]
L, S = "http://loinc.org", "urn:other"
CODINGS = [(L, "a"), (L, "b"), (S, "a"), (None, "a"), (L, "c")]
PATIENTS = ["p0", "p1", "p2"]
SUBJECTS = [*(f"Patient/{p}" for p in PATIENTS)] * 3 + ["Group/p0", "Group/g1", None]


def _effective(rnd: random.Random) -> dict[str, Any]:
    day = f"2026-03-{rnd.randrange(1, 12):02d}"
    shape = rnd.randrange(8)
    if shape == 0:
        return {"effectiveDateTime": day}
    if shape == 1:
        return {"effectiveDateTime": rnd.choice(["2026", "2026-03", "2026-02"])}
    if shape == 2:
        return {
            "effectiveDateTime": f"{day}T{rnd.randrange(24):02d}:30:00{rnd.choice(['Z', '+05:00', '-09:00'])}"
        }
    if shape == 3:
        return {"effectiveInstant": f"{day}T23:59:59.500Z"}
    if shape == 4:
        end = f"2026-03-{rnd.randrange(12, 20):02d}"
        return {"effectivePeriod": {"start": day, **({"end": end} if rnd.random() < 0.7 else {})}}
    if shape == 5:
        days = sorted(f"2026-03-{rnd.randrange(1, 28):02d}" for _ in range(rnd.randrange(1, 4)))
        return {"effectiveTiming": {"event": days}}
    return {}


def _observation(rnd: random.Random) -> dict[str, Any]:
    codings = []
    for system, code in rnd.sample(CODINGS, rnd.randrange(0, 4)):
        codings.append({"code": code, **({"system": system} if system else {})})
    if codings and rnd.random() < 0.1:
        codings.append(dict(codings[0]))  # a repeated coding
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": rnd.choice(["final", "final", "amended"]),
        "code": {"coding": codings} if codings else {"text": "free text"},
        **_effective(rnd),
    }
    subject = rnd.choice(SUBJECTS)
    if subject:
        obs["subject"] = {"reference": subject}
    return obs


def _world(repo: Any, rnd: random.Random, n: int = 45) -> list[str]:
    for p in PATIENTS:
        repo.update("Patient", p, {"resourceType": "Patient", "id": p})
    for g in ("p0", "g1"):  # a Group with a patient's id: `subject=p0` finds both
        repo.update("Group", g, {"resourceType": "Group", "id": g, "type": "person", "actual": True})
    ids = [repo.create(_observation(rnd)).stored.id for _ in range(n)]
    for _ in range(n // 2):  # updates that change code, subject or date; deletes
        rid = rnd.choice(ids)
        if rnd.random() < 0.25:
            repo.delete("Observation", rid)
            ids.remove(rid)
        else:
            repo.update("Observation", rid, {**_observation(rnd), "id": rid})
    with repo.unit() as uow:  # a batch in one unit: a created and updated resource, a created and deleted one
        first = uow.create(_observation(rnd)).stored.id
        uow.update("Observation", first, {**_observation(rnd), "id": first})
        gone = uow.create(_observation(rnd)).stored.id
        uow.delete("Observation", gone)
    return [*ids, first]


def _query(rnd: random.Random, ids: list[str]) -> list[tuple[str, str]]:
    patient = rnd.choice(
        [("patient", "p0"), ("patient", "Patient/p1"), ("subject", "Patient/p2"), ("patient", "p1")] * 3
        + [
            ("subject", "p0"),  # a bare id on subject: Patient/p0 and Group/p0
            ("subject", "Group/p0"),
            ("patient", "Group/p0"),
            ("patient:Patient", "p0"),
            ("patient", "p0,p1"),
            ("patient:missing", "false"),
            ("subject:missing", "true"),
            ("patient", "http://testserver/fhir/Patient/p0"),
        ]
    )
    code = rnd.choice(
        [("code", f"{L}|a"), ("code", f"{L}|a,{S}|a"), ("code", f"{L}|b,{L}|c"), ("code", f"{S}|a")] * 3
        + [
            ("code", "a"),
            ("code", "|a"),
            ("code", f"{L}|"),
            ("code:not", f"{L}|a"),
            ("code:text", "free"),
            ("combo-code", f"{L}|a"),
            ("code", f"{L}|a,a"),
        ]
    )
    params = [patient, code]
    for extra in (
        (
            "date",
            rnd.choice(["ge2026-03-05", "lt2026-03", "eq2026", "sa2026-03-04T00:00:00Z", "le2026-03-08"]),
        ),
        ("status", "final"),
        ("code", f"{L}|b"),
        ("_id", ",".join(rnd.sample(ids, min(len(ids), 8)))),
        ("_lastUpdated", "gt2000-01-01"),
        ("patient", "p0"),
    ):
        if rnd.random() < (0.5 if extra[0] == "date" else 0.1):
            params.append(extra)
    rnd.shuffle(params)
    params.append(("_count", str(rnd.choice([1, 3, 50]))))
    result = rnd.random()
    if result < 0.2:
        params.append(("_sort", rnd.choice(["date", "-date", "_id", "-_lastUpdated"])))
    elif result < 0.3:
        params.append(("_summary", "count"))
    elif result < 0.4:
        params.append(("_total", "none"))
    if rnd.random() < 0.2:
        params.append(("_include", rnd.choice(["Observation:patient", "Observation:subject"])))
    return params


def _pages(repo: Any, params: list[tuple[str, str]]) -> list[tuple[Any, ...]]:
    """Every page of the search (following the cursor or offset): ids, total, included, and where next."""
    query = parse_search("Observation", params)
    out = []
    for _ in range(30):
        result = repo.search(copy.deepcopy(query))
        out.append(
            (
                [m.id for m in result.matches],
                result.total,
                [(i.resource_type, i.id) for i in result.included],
                result.next_cursor,
                result.next_offset,
            )
        )
        if result.next_cursor is None and result.next_offset is None:
            break
        query.cursor, query.offset = result.next_cursor, result.next_offset or 0
    return out


def _values(repo: Any, params: list[tuple[str, str]]) -> tuple[Any, ...]:
    """What the coaching views read through a search: index values and partial documents of every match."""
    query = parse_search("Observation", params)
    with repo.unit(write=False) as uow:
        values = uow.search_index_values(query, [("code", L, None), ("status", None, None)], ["date"])
        elements = list(uow.search_elements(query, ["code", "subject", "effectivePeriod"]))
    return values, elements


def _index_only(repo: Any) -> Any:
    plain = copy.copy(repo)
    plain.search_drivers = []
    return plain


class _Counting(DerivedSearch):
    """The driver, counting the searches it drove."""

    drove = 0

    def __call__(self, uow: Any, resource_type: str, criteria: list[Any]) -> Any:
        found = super().__call__(uow, resource_type, criteria)
        _Counting.drove += found is not None
        return found


def _counting(repo: Any) -> Any:
    driven = copy.copy(repo)
    hook = install_derived(repo)
    driven.search_drivers = [_Counting(hook)]
    _Counting.drove = 0
    return driven


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_driven_searches_equal_index_searches(repo: Any, seed: int) -> None:
    rnd = random.Random(seed)
    install_derived(repo)
    ids = _world(repo, rnd)
    driven, plain = _counting(repo), _index_only(repo)
    queries = [_query(rnd, ids) for _ in range(70)]
    for params in queries:
        assert _pages(driven, params) == _pages(plain, params), params
    for params in queries[:25]:
        assert _values(driven, params) == _values(plain, params), params
    assert _Counting.drove >= 20  # the accelerated shape came up often enough to mean something
    rebuild(repo)  # a rebuild gives the same rows: the same answers
    for params in queries[:20]:
        assert _pages(driven, params) == _pages(plain, params), params


def test_only_exact_shapes_are_driven() -> None:
    def criterion(name: str, value: str) -> Any:
        return parse_search("Observation", [(name, value)]).criteria[0]

    assert patient_of(criterion("patient", "p0"), None) == "p0"
    assert patient_of(criterion("patient", "Patient/p0"), None) == "p0"
    assert patient_of(criterion("subject", "Patient/p0"), None) == "p0"
    for name, value in [
        ("subject", "p0"),
        ("subject", "Group/p0"),
        ("patient", "Group/p0"),
        ("patient:Patient", "p0"),
        ("patient", "p0,p1"),
        ("patient:missing", "true"),
        ("patient.name", "x"),
    ]:
        assert patient_of(criterion(name, value), None) is None, (name, value)
    assert codings_of(criterion("code", f"{L}|a,{S}|b")) == [(L, "a"), (S, "b")]
    for name, value in [("code", "a"), ("code", "|a"), ("code", f"{L}|"), ("code:not", f"{L}|a")]:
        assert codings_of(criterion(name, value)) is None, (name, value)
    assert codings_of(criterion("combo-code", f"{L}|a")) is None


def test_without_the_hook_or_with_a_stale_flag_the_index_drives(repo: Any) -> None:
    rnd = random.Random(5)
    hook = install_derived(repo)
    _world(repo, rnd, 20)
    params = [("patient", "p0"), ("code", f"{L}|a,{S}|a,{L}|b,{L}|c")]
    expected = _pages(_index_only(repo), params)
    assert expected[0][0]  # something to find
    assert _pages(repo, params) == expected  # the tables found complete (and the fact cached)
    with (
        repo.engine.begin() as conn
    ):  # the derived rows gone: only a search the index drives still finds them
        conn.execute(CODES.delete())
        conn.execute(OBS.delete())
    assert _pages(repo, params)[0][0] == []  # ready and driving: it reads the (now empty) tables
    hook.forget(repo.engine)  # a new process counts the rows against the index: the index drives again
    assert _pages(repo, params) == expected
    unhooked = copy.copy(repo)  # the driver registered, but the hook not on this repository
    unhooked.write_hooks = [h for h in repo.write_hooks if h is not hook]
    assert _pages(unhooked, params) == expected
    with repo.unit() as uow:
        uow.set_state(STATE_KEY, "stale")
    hook._ready.clear()
    assert _pages(repo, params) == expected
    rebuild(repo)
    assert _pages(repo, params) == expected


class _ConfinedTo:
    """A caller confined to one patient's record, with every scope."""

    def __init__(self, patient: str) -> None:
        self.patient = patient

    def require(self, rtype: str, letter: str) -> object:
        return None

    def allows(self, rtype: str, letter: str) -> bool:
        return True

    def confinement(self) -> Confinement:
        return Confinement(self.patient)

    def before_history(self, rtype: str | None, rid: str | None) -> None: ...

    def after_read(self, found: list[Any], patient_id: str | None = None) -> None: ...

    def hidden(self, letter: str, rtype: str, rid: str) -> None: ...

    def check_write(self, letter: str, old: Any, new: Any) -> None: ...


def test_a_patient_scoped_caller_still_sees_only_their_patient(repo: Any) -> None:
    rnd = random.Random(9)
    install_derived(repo)
    _world(repo, rnd, 40)
    driven = _counting(repo)
    for patient in PATIENTS:
        params = [
            ("patient", patient),
            ("code", f"{L}|a,{S}|a,{L}|b,{L}|c"),
            ("_include", "Observation:subject"),
        ]
        everyone = _pages(driven, params)
        for caller in PATIENTS:
            seen = _pages(driven.guarded(_ConfinedTo(caller)), params)
            assert seen == _pages(_index_only(repo).guarded(_ConfinedTo(caller)), params)
            if caller == patient:
                assert seen == everyone
            else:
                assert seen[0][:3] == ([], 0, [])
    assert _Counting.drove > 0
    with repo.engine.connect() as conn:  # the rows of every patient were there to be (wrongly) found
        assert {r[0] for r in conn.execute(sa.select(OBS.c.patient_id).distinct())} >= set(PATIENTS)


def test_a_unit_that_has_written_sees_its_own_writes(repo: Any) -> None:
    """The derived rows of a unit's writes are written when it ends: until then its searches (a transaction's
    conditional entries) are the index's, which already holds them."""
    install_derived(repo)
    _world(repo, random.Random(3), 5)
    driven = _counting(repo)
    params = [("patient", "p1"), ("code", f"{L}|c")]
    obs = {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"}}
    with driven.unit() as uow:
        before = [m.id for m in uow.search(parse_search("Observation", params)).matches]
        assert _Counting.drove == 1
        made = uow.create({**obs, "code": {"coding": [{"system": L, "code": "c"}]}}).stored.id
        assert {m.id for m in uow.search(parse_search("Observation", params)).matches} == {*before, made}
        uow.update("Observation", made, {**obs, "id": made, "code": {"coding": [{"system": L, "code": "b"}]}})
        assert [m.id for m in uow.search(parse_search("Observation", params)).matches] == before
        assert _Counting.drove == 1
    assert _pages(driven, params)[0][0] == before and _Counting.drove == 2
