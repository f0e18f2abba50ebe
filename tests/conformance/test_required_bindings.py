"""Required bindings of the FHIR R4 base spec: refused with 422 on every write path and reported by ``$validate``,
one issue per bad code with its FHIRPath; the vendored table is what the definitions give."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from fhir_ecr.outcomes import FhirError
from fhir_ecr.store.bindings import DATA, binding_issues, binding_table
from tests.helpers import assert_outcome

REPO = Path(__file__).resolve().parents[2]
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def observation(**over: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "steps"},
        "subject": {"reference": "Patient/p1"},
        **over,
    }


# (resource, the FHIRPath of its one bad code): one case per class of binding
BAD = {
    "Observation.status": observation(status="bogus"),
    "Patient.gender": {"resourceType": "Patient", "gender": "robot"},
    "Goal.lifecycleStatus": {
        "resourceType": "Goal",
        "lifecycleStatus": "someday",
        "description": {"text": "walk"},
        "subject": {"reference": "Patient/p1"},
    },
    "Encounter.status": {
        "resourceType": "Encounter",
        "status": "happening",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    },
    # a data type's binding, inside a choice element
    "Observation.valueQuantity.comparator": observation(valueQuantity={"value": 5, "comparator": "about"}),
    # a data type inside a data type (Reference.identifier.use)
    "Observation.performer[0].identifier.use": observation(performer=[{"identifier": {"use": "main"}}]),
    # a backbone element, and a repeating one
    "Patient.contact[0].gender": {"resourceType": "Patient", "contact": [{"gender": "m"}]},
    "Encounter.statusHistory[1].status": {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "statusHistory": [
            {"status": "arrived", "period": {"start": "2026-01-01"}},
            {"status": "left", "period": {"start": "2026-01-02"}},
        ],
    },
    # an element reached through contentReference (Questionnaire.item.item)
    "Questionnaire.item[0].item[0].type": {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "essay"}]}],
    },
    # a CodeableConcept bound required: a coding must be in the value set
    "Condition.clinicalStatus": {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "gone"}]
        },
    },
    # the value of an extension, and a contained resource
    "Patient.extension[0].valueQuantity.comparator": {
        "resourceType": "Patient",
        "extension": [{"url": "https://example.org/x", "valueQuantity": {"value": 1, "comparator": "~"}}],
    },
    "Patient.contained[0].status": {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Observation", "id": "o", "status": "done", "code": {"text": "x"}}],
    },
    # the narrative every resource may carry
    "Patient.text.status": {
        "resourceType": "Patient",
        "text": {"status": "written", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    },
}


@pytest.mark.parametrize("where", sorted(BAD))
def test_a_bad_code_is_refused_with_422_and_its_location(client: Any, where: str) -> None:
    resource = BAD[where]
    body = assert_outcome(
        client.post(f"/fhir/{resource['resourceType']}", json=resource), 422, "code-invalid"
    )
    assert [(i["code"], i["expression"]) for i in body["issue"]] == [("code-invalid", [where])]
    assert "(required)" in body["issue"][0]["diagnostics"]
    found = client.get(f"/fhir/{resource['resourceType']}", params={"_summary": "count"}).json()["total"]
    assert found == 0


def test_the_message_names_the_code_and_the_allowed_codes(client: Any) -> None:
    body = client.post("/fhir/Observation", json=BAD["Observation.status"]).json()
    text = body["issue"][0]["diagnostics"]
    assert "'bogus'" in text and "http://hl7.org/fhir/ValueSet/observation-status" in text
    assert "final" in text and "amended" in text


def test_a_concept_with_text_alone_does_not_meet_a_required_binding() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "verificationStatus": {"text": "probably"},
    }
    assert [i["expression"] for i in binding_issues(condition)] == [["Condition.verificationStatus"]]
    ok = {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
    condition["verificationStatus"] = {"coding": [{"system": "http://example.org", "code": "x"}, ok]}
    assert binding_issues(condition) == []


def test_one_issue_per_bad_code(client: Any) -> None:
    patient = {
        "resourceType": "Patient",
        "gender": "robot",
        "identifier": [{"use": "usual"}, {"use": "primary"}],
        "telecom": [{"system": "pager", "value": "1"}, {"system": "fax2", "use": "car", "value": "2"}],
    }
    body = assert_outcome(client.post("/fhir/Patient", json=patient), 422, "code-invalid")
    assert sorted(i["expression"][0] for i in body["issue"]) == [
        "Patient.gender",
        "Patient.identifier[1].use",
        "Patient.telecom[1].system",
        "Patient.telecom[1].use",
    ]


def test_good_codes_pass(client: Any) -> None:
    assert client.put("/fhir/Patient/p1", json=PATIENT).status_code == 201
    for resource in (
        observation(valueQuantity={"value": 5, "comparator": "<"}),
        {**BAD["Goal.lifecycleStatus"], "lifecycleStatus": "active"},
    ):
        assert client.post(f"/fhir/{resource['resourceType']}", json=resource).status_code == 201


def test_update_patch_and_conditional_writes_are_checked(client: Any) -> None:
    assert client.put("/fhir/Patient/p1", json=PATIENT).status_code == 201
    assert_outcome(client.put("/fhir/Patient/p1", json={**PATIENT, "gender": "robot"}), 422, "code-invalid")
    patch = [{"op": "replace", "path": "/gender", "value": "robot"}]
    assert_outcome(
        client.patch("/fhir/Patient/p1", json=patch, headers={"content-type": "application/json-patch+json"}),
        422,
        "code-invalid",
    )
    assert_outcome(
        client.put(
            "/fhir/Patient", params={"identifier": "x|1"}, json={"resourceType": "Patient", "gender": "robot"}
        ),
        422,
        "code-invalid",
    )
    assert client.get("/fhir/Patient/p1").json()["gender"] == "female"
    assert client.get("/fhir/Patient/p1").json()["meta"]["versionId"] == "1"


def test_a_transaction_with_a_bad_code_writes_nothing(client: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": PATIENT, "request": {"method": "PUT", "url": "Patient/p1"}},
            {"resource": BAD["Observation.status"], "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    body = assert_outcome(client.post("/fhir", json=bundle), 422, "code-invalid")
    assert any("Observation.status" in e for i in body["issue"] for e in i.get("expression", []))
    assert client.get("/fhir/Patient/p1").status_code == 404


def test_a_batch_refuses_the_bad_entry_alone(client: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": PATIENT, "request": {"method": "PUT", "url": "Patient/p1"}},
            {"resource": BAD["Patient.gender"], "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    resp = client.post("/fhir", json=bundle)
    assert resp.status_code == 200
    first, second = (e["response"] for e in resp.json()["entry"])
    assert first["status"].startswith("201")
    assert second["status"].startswith("422")
    assert second["outcome"]["issue"][0]["expression"] == ["Patient.gender"]


def test_validate_reports_bad_codes_with_200(client: Any) -> None:
    resp = client.post("/fhir/Observation/$validate", json=BAD["Observation.valueQuantity.comparator"])
    assert resp.status_code == 200
    assert [(i["code"], i["expression"]) for i in resp.json()["issue"]] == [
        ("code-invalid", ["Observation.valueQuantity.comparator"])
    ]


def test_the_repository_refuses_for_every_internal_writer(repo: Any) -> None:
    """Operations, the importer and the demo loader write through the same repository."""
    with pytest.raises(FhirError) as caught:
        repo.create(BAD["Encounter.status"])
    assert caught.value.status == 422
    assert caught.value.issues[0]["expression"] == ["Encounter.status"]


@pytest.fixture
def cli_env(settings: Any, services: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield services
    get_settings.cache_clear()


def test_mecr_load_refuses_a_bad_code(cli_env: Any, tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "goal.json"
    bad.write_text(json.dumps(BAD["Goal.lifecycleStatus"]))
    assert main(["load", "--quiet", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Goal.lifecycleStatus" in err and "someday" in err


def test_not_checked_value_sets_are_reported_once_at_start_up(app: Any, caplog: Any) -> None:
    from fastapi.testclient import TestClient

    with caplog.at_level(logging.WARNING, logger="mecr.validation"), TestClient(app):
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == "mecr.validation"]
    assert len(lines) == 1
    assert (
        "5 not checked" in lines[0] and "Attachment.contentType" in lines[0] and "Money.currency" in lines[0]
    )
    assert "docs/validation.md" in lines[0]


def test_docs_list_the_bindings_not_checked() -> None:
    docs = (REPO / "docs" / "validation.md").read_text(encoding="utf-8")
    section = docs.split("### Required bindings not checked", 1)[1].split("\n## ", 1)[0]
    for url, entry in binding_table().not_checked.items():
        assert url in section
        for element in entry["elements"]:
            assert f"`{element}`" in section


def test_the_table_holds_the_spec_s_value_sets() -> None:
    table = json.loads(DATA.read_text(encoding="utf-8"))
    assert table["bindings"]["Observation.status"] == "http://hl7.org/fhir/ValueSet/observation-status"
    assert table["valueSets"]["http://hl7.org/fhir/ValueSet/administrative-gender"] == {
        "http://hl7.org/fhir/administrative-gender": ["female", "male", "other", "unknown"]
    }
    assert table["elements"]["Observation"]["valueQuantity"] == "Quantity"
    assert "http://hl7.org/fhir/ValueSet/mimetypes" in table["notChecked"]


@pytest.mark.slow
def test_regenerating_the_table_gives_the_committed_file() -> None:
    """``scripts/vendor_fhir_definitions.py --check``: the pinned npm package, rebuilt, compared byte for byte."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the vendored FHIR definitions cannot be rebuilt here")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "vendor_fhir_definitions.py"), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout and "required-bindings.json" in result.stdout
