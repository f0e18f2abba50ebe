"""Identity capture is closed: nobody but the care team edits the identifiers mECR links records to the EHR by,
nobody but mECR marks one as set by the EHR, and a launch links only by such marked identifiers, refusing
ambiguity (issue #12 item 2; fhir_ecr/auth/linking.py, docs/security.md)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhir_ecr.auth.access import IDENTIFIER_SOURCE_URL
from fhir_ecr.auth.linking import LinkConflict, clear_link_conflict, link_conflicts, link_resource
from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from tests.auth.support import bearer, coach, patient
from tests.auth.test_launch_routes import ISS, _start, ehr, mock_ehr  # noqa: F401 - fixtures
from tests.helpers import assert_outcome

MRN = "urn:oid:1.2.3.4"
EHR_MARK = [{"url": IDENTIFIER_SOURCE_URL, "valueCode": "ehr"}]


def _json(headers: dict[str, str], body: Any) -> dict[str, Any]:
    return {"content": orjson.dumps(body), "headers": {**headers, "Content-Type": "application/fhir+json"}}


@pytest.fixture
def me(secure_services: Any) -> dict[str, Any]:
    """A patient record with an MRN (set by the EHR) and a token for that patient with every patient scope."""
    record = {
        "resourceType": "Patient",
        "id": "pat-a",
        "name": [{"family": "Ardent"}],
        "birthDate": "1980-01-01",
        "identifier": [{"system": MRN, "value": "MRN-1", "extension": EHR_MARK}],
    }
    secure_services.repo.update("Patient", "pat-a", record)
    return {"record": record, "h": bearer(secure_services, patient("pat-a", "patient/*.cruds"))}


EDITS = {
    "add an MRN": lambda r: {**r, "identifier": [*r["identifier"], {"system": MRN, "value": "MRN-2"}]},
    "change the MRN": lambda r: {
        **r,
        "identifier": [{"system": MRN, "value": "MRN-2", "extension": EHR_MARK}],
    },
    "unmark the MRN": lambda r: {**r, "identifier": [{"system": MRN, "value": "MRN-1"}]},
    "remove the MRN": lambda r: {k: v for k, v in r.items() if k != "identifier"},
    "add an EHR link": lambda r: {
        **r,
        "identifier": [*r["identifier"], {"system": "urn:mecr:ehr:ehr1:Patient", "value": "p-ehr-9"}],
    },
    "add a Patient.link": lambda r: {
        **r,
        "link": [{"other": {"reference": "Patient/pat-a"}, "type": "seealso"}],
    },
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_patient_cannot_edit_their_identifiers(
    secure_client: Any, secure_services: Any, me: dict[str, Any], edit: str
) -> None:
    changed = EDITS[edit](me["record"])
    assert_outcome(secure_client.put("/fhir/Patient/pat-a", **_json(me["h"], changed)), 403, "forbidden")
    ops = (
        [{"op": "replace", "path": "/identifier", "value": changed["identifier"]}]
        if "identifier" in changed
        else [{"op": "remove", "path": "/identifier"}]
    )
    if "link" in changed:
        ops = [{"op": "add", "path": "/link", "value": changed["link"]}]
    r = secure_client.patch(
        "/fhir/Patient/pat-a",
        content=orjson.dumps(ops),
        headers={**me["h"], "Content-Type": "application/json-patch+json"},
    )
    assert_outcome(r, 403, "forbidden")
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": changed, "request": {"method": "PUT", "url": "Patient/pat-a"}}],
    }
    assert_outcome(secure_client.post("/fhir", **_json(me["h"], tx)), 403, "forbidden")
    assert secure_services.repo.read("Patient", "pat-a").version_id == 1


def test_a_patient_may_edit_the_rest_of_their_record(
    secure_client: Any, secure_services: Any, me: dict[str, Any]
) -> None:
    changed = {**me["record"], "telecom": [{"system": "phone", "value": "555-0100"}]}
    r = secure_client.put("/fhir/Patient/pat-a", **_json(me["h"], changed))
    assert r.status_code == 200, r.text
    assert r.json()["identifier"] == me["record"]["identifier"]


def test_a_patient_cannot_create_a_record_with_identifiers(secure_client: Any, me: dict[str, Any]) -> None:
    """Not even one with their own id and no other change than an identifier: a new Observation is fine, a
    trusted identifier anywhere is mECR's alone."""
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "mood"},
        "subject": {"reference": "Patient/pat-a"},
        "identifier": [{"system": "urn:mecr:ehr:ehr1:Observation", "value": "x"}],
    }
    assert_outcome(secure_client.post("/fhir/Observation", **_json(me["h"], body)), 403, "forbidden")
    body["identifier"] = [{"system": "urn:example:mine", "value": "x"}]
    assert secure_client.post("/fhir/Observation", **_json(me["h"], body)).status_code == 201


def test_the_care_team_edits_identifiers_but_cannot_mark_them(
    secure_client: Any, secure_services: Any, me: dict[str, Any]
) -> None:
    h = bearer(secure_services, coach())
    typed = {**me["record"], "identifier": [*me["record"]["identifier"], {"system": MRN, "value": "MRN-9"}]}
    assert secure_client.put("/fhir/Patient/pat-a", **_json(h, typed)).status_code == 200
    marked = {
        **typed,
        "identifier": [*typed["identifier"], {"system": MRN, "value": "MRN-7", "extension": EHR_MARK}],
    }
    assert_outcome(secure_client.put("/fhir/Patient/pat-a", **_json(h, marked)), 403, "forbidden")
    linked = {
        **typed,
        "identifier": [*typed["identifier"], {"system": "urn:mecr:ehr:x:Patient", "value": "1"}],
    }
    assert_outcome(secure_client.put("/fhir/Patient/pat-a", **_json(h, linked)), 403, "forbidden")
    unlinked = {**typed, "identifier": [i for i in typed["identifier"] if "extension" not in i]}
    assert (
        secure_client.put("/fhir/Patient/pat-a", **_json(h, unlinked)).status_code == 200
    )  # unlinking is allowed
    new = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": "MRN-5", "extension": EHR_MARK}],
    }
    assert_outcome(secure_client.post("/fhir/Patient", **_json(h, new)), 403, "forbidden")


def _remote(mrn: str = "MRN-1", born: str = "1980-01-01", rid: str = "p-ehr-1") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": rid,
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": "Lovelace"}],
        "birthDate": born,
    }


def test_linking_uses_only_identifiers_the_ehr_or_mecr_set(repo: Any) -> None:
    repo.update(
        "Patient",
        "typed",
        {
            "resourceType": "Patient",
            "id": "typed",
            "name": [{"family": "Other"}],
            "identifier": [{"system": MRN, "value": "MRN-1"}],
        },
    )  # typed by someone
    local = link_resource(repo, "ehr1", _remote())
    assert local != "typed"
    assert repo.read("Patient", "typed").content["name"] == [{"family": "Other"}]  # untouched
    created = repo.read("Patient", local).content
    assert {(i["system"], i["value"]) for i in created["identifier"]} == {
        ("urn:mecr:ehr:ehr1:Patient", "p-ehr-1"),
        (MRN, "MRN-1"),
    }
    assert next(i for i in created["identifier"] if i["system"] == MRN)["extension"] == EHR_MARK
    assert link_resource(repo, "ehr1", _remote()) == local  # found again by the link identifier


def test_linking_by_a_marked_mrn_refreshes_the_same_person(repo: Any) -> None:
    repo.update(
        "Patient",
        "synced",
        {
            "resourceType": "Patient",
            "id": "synced",
            "birthDate": "1980-01-01",
            "name": [{"family": "Old"}],
            "identifier": [{"system": MRN, "value": "MRN-1", "extension": EHR_MARK}],
        },
    )
    assert link_resource(repo, "ehr1", _remote()) == "synced"
    content = repo.read("Patient", "synced").content
    assert content["name"] == [{"family": "Lovelace"}]
    assert {"system": "urn:mecr:ehr:ehr1:Patient", "value": "p-ehr-1"} in content["identifier"]


def test_two_records_with_the_mrn_are_a_conflict_not_a_pick(repo: Any) -> None:
    for rid in ("one", "two"):
        repo.update(
            "Patient",
            rid,
            {
                "resourceType": "Patient",
                "id": rid,
                "name": [{"family": rid}],
                "identifier": [{"system": MRN, "value": "MRN-1", "extension": EHR_MARK}],
            },
        )
    with pytest.raises(LinkConflict) as exc:
        link_resource(repo, "ehr1", _remote())
    assert exc.value.status == 409 and sorted(exc.value.candidates) == ["one", "two"]
    for rid in ("one", "two"):
        content = repo.read("Patient", rid).content
        assert content["name"] == [{"family": rid}] and len(content["identifier"]) == 1  # nothing copied
    assert repo.search_params("Patient", [("_summary", "count")]).total == 2  # and nothing created
    with pytest.raises(LinkConflict):
        link_resource(repo, "ehr1", _remote())
    [entry] = link_conflicts(repo)
    assert entry["key"] == "ehr1:Patient:p-ehr-1" and entry["count"] == 2
    assert sorted(entry["candidates"]) == ["one", "two"] and "MRN" not in entry["reason"]
    assert clear_link_conflict(repo, entry["key"]) and link_conflicts(repo) == []
    assert not clear_link_conflict(repo, entry["key"])


def test_another_birth_date_is_a_conflict_not_a_merge(repo: Any) -> None:
    repo.update(
        "Patient",
        "synced",
        {
            "resourceType": "Patient",
            "id": "synced",
            "birthDate": "1955-05-05",
            "name": [{"family": "Elder"}],
            "identifier": [{"system": MRN, "value": "MRN-1", "extension": EHR_MARK}],
        },
    )
    with pytest.raises(LinkConflict):
        link_resource(repo, "ehr1", _remote(born="1980-01-01"))
    content = repo.read("Patient", "synced").content
    assert content["name"] == [{"family": "Elder"}] and content["birthDate"] == "1955-05-05"


def test_two_records_with_the_same_ehr_link_are_a_conflict(repo: Any) -> None:
    for rid in ("one", "two"):
        repo.update(
            "Patient",
            rid,
            {
                "resourceType": "Patient",
                "id": rid,
                "identifier": [{"system": "urn:mecr:ehr:ehr1:Patient", "value": "p-ehr-1"}],
            },
        )
    with pytest.raises(LinkConflict):
        link_resource(repo, "ehr1", _remote())


def test_a_launch_into_a_conflict_is_refused_with_a_page(
    secure_client: Any,
    secure_services: Any,
    ehr: Any,  # noqa: F811
    mock_ehr: Any,  # noqa: F811
) -> None:
    for rid in ("one", "two"):  # the mocked EHR's patient carries urn:oid:1.2.3.4|MRN-77
        secure_services.repo.update(
            "Patient",
            rid,
            {
                "resourceType": "Patient",
                "id": rid,
                "identifier": [{"system": MRN, "value": "MRN-77", "extension": EHR_MARK}],
            },
        )
    q = _start(secure_client, f"/smart/launch?iss={ISS}&launch=L-1")
    r = secure_client.get(f"/smart/callback?code=C1&state={q['state']}", follow_redirects=False)
    assert r.status_code == 409
    assert "mecr ehr conflicts" in r.text and "MRN-77" not in r.text
    assert "mecr_session" not in r.headers.get("set-cookie", "")
    assert [e["key"] for e in link_conflicts(secure_services.repo)] == ["ehr1:Patient:p-ehr-1"]


def test_mecr_ehr_conflicts_lists_and_clears(
    settings: Any, services: Any, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        assert main(["ehr", "conflicts"]) == 0
        assert "no identity conflicts" in capsys.readouterr().out
        for rid in ("one", "two"):
            services.repo.update(
                "Patient",
                rid,
                {
                    "resourceType": "Patient",
                    "id": rid,
                    "identifier": [{"system": MRN, "value": "MRN-1", "extension": EHR_MARK}],
                },
            )
        with pytest.raises(LinkConflict):
            link_resource(services.repo, "ehr1", _remote())
        assert main(["ehr", "conflicts"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("ehr1:Patient:p-ehr-1\t") and "one, two" in out
        assert main(["ehr", "conflicts", "--clear", "nope"]) == 2
        assert main(["ehr", "conflicts", "--clear", "ehr1:Patient:p-ehr-1"]) == 0
        assert main(["ehr", "conflicts"]) == 0
        assert "no identity conflicts" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
