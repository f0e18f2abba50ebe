"""The repository on SQLite and PostgreSQL: versions, history, concurrency, atomicity."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_ecr.outcomes import FhirError
from fhir_ecr.store.tables import INDEX_TABLES


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Doe", "given": ["Jane"]}], **extra}


def steps(pid: str, value: int, day: str = "2026-11-01") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "41950-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": day,
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "/d"},
    }


def count_rows(repo: Any, table: str) -> int:
    with repo.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_create_assigns_id_and_meta(repo: Any) -> None:
    result = repo.create(patient(id="client-chosen"))
    stored = result.stored
    assert result.created
    assert stored.id != "client-chosen"  # create ignores a client id (R4 http.html#create)
    assert stored.content["meta"]["versionId"] == "1"
    assert stored.content["meta"]["lastUpdated"].endswith("Z")
    assert repo.read("Patient", stored.id).content == stored.content


def test_update_versions_and_history(repo: Any) -> None:
    p = repo.create(patient()).stored
    v2 = repo.update("Patient", p.id, {**p.content, "gender": "female"}).stored
    v3 = repo.update("Patient", p.id, {**v2.content, "gender": "other"}).stored
    assert (v2.version_id, v3.version_id) == (2, 3)
    assert repo.vread("Patient", p.id, "1").content.get("gender") is None
    assert repo.vread("Patient", p.id, "2").content["gender"] == "female"
    history = repo.history("Patient", p.id)
    assert [s.version_id for s, _ in history.entries] == [3, 2, 1]
    assert [m for _, m in history.entries] == ["PUT", "PUT", "POST"]
    assert v3.last_updated > v2.last_updated > p.last_updated


def test_creates_of_one_unit_have_their_first_versions_in_history(repo: Any) -> None:
    """The history rows of a unit's creates, written in bulk at its flush: each has its own method, content and
    time, in the order of the creates."""
    with repo.unit() as uow:
        made = [
            uow.create(patient(gender="female")),
            uow.create(patient(), resource_id="chosen-1", method="PUT"),
            uow.create(steps("chosen-1", 100)),
            uow.create(patient(), resource_id="chosen-2", method="PUT"),
            uow.create(steps("chosen-2", 200)),
        ]
    stored = [m.stored for m in made]
    for s, method in zip(stored, ["POST", "PUT", "POST", "PUT", "POST"], strict=True):
        (version, how), *older = repo.history(s.resource_type, s.id).entries
        assert not older and how == method
        assert version.version_id == 1 and version.last_updated == s.last_updated
        assert version.content == s.content == repo.vread(s.resource_type, s.id, "1").content
    listed = repo.history(None, None).entries  # the whole server, newest first
    assert [v.id for v, _ in listed[: len(stored)]] == [s.id for s in reversed(stored)]
    assert count_rows(repo, "resource_history") == count_rows(repo, "resource")


def test_update_with_same_content_is_a_no_op(repo: Any) -> None:
    p = repo.create(patient()).stored
    again = repo.update("Patient", p.id, dict(p.content))
    assert not again.changed and again.stored.version_id == 1
    assert repo.history("Patient", p.id).total == 1


def test_update_creates_with_client_id(repo: Any) -> None:
    result = repo.update("Patient", "my-id", patient(id="my-id"))
    assert result.created and result.stored.id == "my-id"


def test_if_match_stale_version_is_412(repo: Any) -> None:
    p = repo.create(patient()).stored
    repo.update("Patient", p.id, {**p.content, "gender": "male"}, expected_version=1)
    with pytest.raises(FhirError) as err:
        repo.update("Patient", p.id, {**p.content, "gender": "female"}, expected_version=1)
    assert err.value.status == 412
    assert repo.read("Patient", p.id).content["gender"] == "male"


def test_delete_then_read_is_gone_and_history_kept(repo: Any) -> None:
    p = repo.create(patient()).stored
    deleted = repo.delete("Patient", p.id)
    assert deleted is not None and deleted.version_id == 2
    with pytest.raises(FhirError) as err:
        repo.read("Patient", p.id)
    assert err.value.status == 410
    assert repo.vread("Patient", p.id, "1").content["name"][0]["family"] == "Doe"
    assert repo.delete("Patient", p.id) is None  # deleting again changes nothing
    assert repo.search_params("Patient", [("family", "doe")]).total == 0
    # a deleted resource can be brought back with update
    back = repo.update("Patient", p.id, {**p.content})
    assert back.created and back.stored.version_id == 3


def test_delete_removes_index_rows(repo: Any) -> None:
    p = repo.create(patient()).stored
    assert count_rows(repo, "idx_string") > 0
    repo.delete("Patient", p.id)
    assert sum(count_rows(repo, t) for t in INDEX_TABLES) == 0


def test_update_replaces_index_rows(repo: Any) -> None:
    p = repo.create(patient()).stored
    repo.update("Patient", p.id, {**p.content, "name": [{"family": "Smith"}]})
    assert repo.search_params("Patient", [("family", "doe")]).total == 0
    assert repo.search_params("Patient", [("family", "smith")]).total == 1


def test_failed_unit_leaves_nothing(repo: Any) -> None:
    with pytest.raises(FhirError), repo.unit() as uow:
        uow.create(patient())
        uow.create(patient())
        uow.flush()
        uow.create({"resourceType": "Patient", "gender": 12})  # invalid
    assert count_rows(repo, "resource") == 0
    assert count_rows(repo, "resource_history") == 0
    assert sum(count_rows(repo, t) for t in INDEX_TABLES) == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"resourceType": "Observation", "code": {"text": "x"}}, "Observation.status"),
        (
            {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "bogus": 1},
            "Observation.bogus",
        ),
        ({"resourceType": "Patient", "name": [{"given": "Ann"}]}, "Patient.name[0].given"),
    ],
)
def test_invalid_resource_is_refused_with_expression(repo: Any, body: dict[str, Any], where: str) -> None:
    with pytest.raises(FhirError) as err:
        repo.create(body)
    assert err.value.status == 400
    assert where in [e for i in err.value.issues for e in i.get("expression", [])]


def test_patch_applies_json_patch(repo: Any) -> None:
    p = repo.create(patient()).stored
    patched = repo.patch("Patient", p.id, [{"op": "add", "path": "/gender", "value": "female"}]).stored
    assert patched.version_id == 2 and patched.content["gender"] == "female"
    with pytest.raises(FhirError) as err:
        repo.patch("Patient", p.id, [{"op": "replace", "path": "/id", "value": "other"}])
    assert err.value.status == 422
    with pytest.raises(FhirError) as err:
        repo.patch("Patient", p.id, [{"op": "add", "path": "/gender", "value": 5}])
    assert err.value.status == 400


def test_conditional_create_and_update(repo: Any) -> None:
    body = patient(identifier=[{"system": "urn:mrn", "value": "42"}])
    first = repo.create(body, if_none_exist="identifier=urn:mrn|42")
    second = repo.create(body, if_none_exist="identifier=urn:mrn|42")
    assert first.created and not second.created and second.stored.id == first.stored.id
    updated = repo.conditional_update("Patient", "identifier=urn:mrn|42", {**body, "gender": "male"})
    assert updated.stored.id == first.stored.id and updated.stored.version_id == 2
    created = repo.conditional_update("Patient", "identifier=urn:mrn|43", patient())
    assert created.created
    repo.create(patient(identifier=[{"system": "urn:mrn", "value": "42"}]))
    with pytest.raises(FhirError) as err:
        repo.create(body, if_none_exist="identifier=urn:mrn|42")
    assert err.value.status == 412


def test_concurrent_if_match_updates_lose_nothing(repo: Any) -> None:
    """Eight writers each add their mark with If-Match, retrying on 412: every mark is kept."""
    p = repo.create({"resourceType": "Patient", "identifier": []}).stored
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for _ in range(50):
                current = repo.read("Patient", p.id)
                content = dict(current.content)
                content["identifier"] = [*content.get("identifier", []), {"system": "urn:w", "value": str(n)}]
                try:
                    repo.update("Patient", p.id, content, expected_version=current.version_id)
                    return
                except FhirError as exc:
                    if exc.status not in (409, 412):
                        raise
            raise AssertionError("writer never got through")
        except Exception as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    final = repo.read("Patient", p.id)
    assert sorted(i["value"] for i in final.content["identifier"]) == [str(n) for n in range(8)]
    assert final.version_id == 9


def test_concurrent_conditional_creates_make_one(repo: Any) -> None:
    body = patient(identifier=[{"system": "urn:mrn", "value": "race"}])
    results: list[Any] = []

    def create() -> None:
        results.append(repo.create(body, if_none_exist="identifier=urn:mrn|race"))

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.stored.id for r in results}) == 1
    assert sum(r.created for r in results) == 1


def test_concurrent_conditional_creates_with_the_same_meaning_make_one(repo: Any) -> None:
    """Criteria are normalised before they key the PostgreSQL advisory lock and the search: the order of the
    parameters, their percent-encoding and result parameters (``_count``, ``_total``, ``_format``) do not make
    two requests that mean the same thing race past each other."""
    body = patient(identifier=[{"system": "urn:mrn", "value": "race two"}], gender="female")
    spellings = [
        "identifier=urn:mrn|race two&gender=female",
        "gender=female&identifier=urn%3Amrn%7Crace+two",
        "identifier=urn:mrn%7Crace%20two&_count=5&gender=female",
        "_total=none&gender=female&identifier=urn:mrn|race+two&_format=json",
    ]
    results: list[Any] = []
    barrier = threading.Barrier(len(spellings) * 2)

    def create(criteria: str) -> None:
        barrier.wait()
        results.append(repo.create(body, if_none_exist=criteria))

    threads = [threading.Thread(target=create, args=(c,)) for c in spellings * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(threads)
    assert len({r.stored.id for r in results}) == 1
    assert sum(r.created for r in results) == 1


def test_normalized_criteria_drop_result_parameters() -> None:
    from fhir_ecr.store.queries import normalized_criteria

    assert normalized_criteria("?b=2&a=1&_count=5&_total=none&_format=json&_pretty=true&_summary=count") == [
        ("a", "1"),
        ("b", "2"),
    ]
    assert normalized_criteria("a=x%7Cy+z") == normalized_criteria("a=x|y%20z") == [("a", "x|y z")]
    assert normalized_criteria("_sort=a&a=1") == [("_sort", "a"), ("a", "1")]  # refused later, not dropped


def test_everything_returns_compartment_and_references(repo: Any) -> None:
    org = repo.create({"resourceType": "Organization", "name": "Clinic"}).stored
    p = repo.create(patient(managingOrganization={"reference": f"Organization/{org.id}"})).stored
    other = repo.create(patient()).stored
    dev = repo.create({"resourceType": "Device", "status": "active"}).stored
    obs = steps(p.id, 1000)
    obs["device"] = {"reference": f"Device/{dev.id}"}
    repo.create(obs)
    repo.create(steps(other.id, 2000))
    with repo.unit(write=False) as uow:
        found, total = uow.everything(p.id)
    types = sorted(s.resource_type for s in found)
    assert types == ["Device", "Observation", "Patient"]
    assert total == 3


@pytest.mark.parametrize("bad", ["Patient/../x", "1 OR 1=1"])
def test_read_with_odd_ids_is_404(repo: Any, bad: str) -> None:
    with pytest.raises(FhirError) as err:
        repo.read("Patient", bad)
    assert err.value.status == 404


def test_patient_versions_in_one_call(repo: Any) -> None:
    """Many patients' data versions at once (the caseload's cache keys): 0 for a patient never written."""
    a = repo.create(patient()).stored.id
    b = repo.create(patient()).stored.id
    with repo.unit(write=False) as uow:
        many = uow.patient_versions([a, b, "never"])
        assert many == {a: uow.patient_version(a), b: uow.patient_version(b), "never": 0}
    assert many[a] > 0 and many[b] > 0


def test_read_many_finds_stored_ids_in_chunks_deleted_included(repo: Any, monkeypatch: Any) -> None:
    from fhir_ecr.store import reads

    monkeypatch.setattr(reads, "READ_MANY", 2)  # several statements
    ids = [repo.create(patient()).stored.id for _ in range(3)]
    repo.delete("Patient", ids[1])
    with repo.unit(write=False) as uow:
        found = uow.read_many("Patient", [*ids, "absent", ids[0]])
    assert sorted(found) == sorted(ids)
    assert found[ids[1]].deleted and not found[ids[0]].deleted
    assert found[ids[2]].content["resourceType"] == "Patient"
    with repo.unit(write=False) as uow:
        assert uow.read_many("Patient", []) == {}


def _history_json(repo: Any, rtype: str, rid: str) -> dict[int, Any]:
    """Each history row's own JSON (None where it has none), by version."""
    with repo.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT version_id, CAST(content AS TEXT) FROM resource_history WHERE res_type = :t AND "
                "res_id = :i"
            ),
            {"t": rtype, "i": rid},
        ).all()
    return {v: (None if c is None else json.loads(c)) for v, c in rows}


def test_each_version_json_is_stored_once_and_read_back_from_either_row(repo: Any) -> None:
    """Migration 0017: the current version's JSON lives in its ``resource`` row only; a newer version or a
    deletion copies it into the version's history row first. vread, history and a deleted resource's last
    content read the same as before."""
    first = repo.create(patient()).stored
    pid = first.id
    assert _history_json(repo, "Patient", pid) == {1: None}
    assert repo.vread("Patient", pid, "1").content == first.content
    second = repo.update("Patient", pid, {**patient(gender="female"), "id": pid}).stored
    assert _history_json(repo, "Patient", pid) == {1: first.content, 2: None}
    third = repo.patch("Patient", pid, [{"op": "add", "path": "/birthDate", "value": "1970-01-02"}]).stored
    assert _history_json(repo, "Patient", pid) == {1: first.content, 2: second.content, 3: None}
    assert [v.content for v, _ in repo.history("Patient", pid).entries] == [
        third.content,
        second.content,
        first.content,
    ]
    assert [v.content for v, _ in repo.history("Patient").entries] == [
        third.content,
        second.content,
        first.content,
    ]
    repo.delete("Patient", pid)
    assert _history_json(repo, "Patient", pid) == {
        1: first.content,
        2: second.content,
        3: third.content,
        4: None,
    }
    assert [repo.vread("Patient", pid, str(v)).content for v in (1, 2, 3)] == [
        first.content,
        second.content,
        third.content,
    ]
    with pytest.raises(FhirError) as gone:
        repo.vread("Patient", pid, "4")
    assert gone.value.status == 410
    with repo.unit(write=False) as uow:
        assert uow._last_content("Patient", pid) == third.content  # noqa: SLF001 - what visibility judges by
    again = repo.update("Patient", pid, {**patient(), "id": pid}).stored  # recreated after the deletion
    assert again.version_id == 5 and _history_json(repo, "Patient", pid)[5] is None
    assert repo.vread("Patient", pid, "5").content == again.content


def test_a_version_written_with_its_own_json_keeps_it(repo: Any) -> None:
    """History rows written before 0017 hold the JSON too: reads take theirs, and a newer version leaves them."""
    first = repo.create(patient()).stored
    with repo.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE resource_history SET content = (SELECT content FROM resource WHERE res_id = :i)"),
            {"i": first.id},
        )
    assert _history_json(repo, "Patient", first.id) == {1: first.content}
    repo.update("Patient", first.id, {**patient(gender="male"), "id": first.id})
    assert _history_json(repo, "Patient", first.id) == {1: first.content, 2: None}
    assert repo.vread("Patient", first.id, "1").content == first.content


def test_a_failed_update_leaves_the_history_as_it_was(repo: Any) -> None:
    """The copy into the history row is part of the write's transaction: an update refused afterwards (here an
    invalid resource in the same unit) leaves the version's JSON in the ``resource`` row alone."""
    first = repo.create(patient()).stored
    with pytest.raises(FhirError), repo.unit() as uow:
        uow.update("Patient", first.id, {**patient(gender="other"), "id": first.id})
        uow.create({"resourceType": "Patient", "gender": 12})  # invalid: the unit fails
    assert _history_json(repo, "Patient", first.id) == {1: None}
    assert repo.read("Patient", first.id).content == first.content
    assert repo.vread("Patient", first.id, "1").content == first.content
