"""Pushing to a real EMR (sekmet-fhir) through the outbox: the row is written with the local write, conditional
create on mECR's identifier, If-Match updates, the 412 rule, parking and an administrator's retry."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fhir_ecr.sync import tasks
from tests.sync.support import Sekmet, local, patient, register


def _goal(pid: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": text},
        "subject": {"reference": f"Patient/{pid}"},
    }


def _linked(services: Any, sekmet: Sekmet, **config: Any) -> str:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    register(services, sekmet.base, pull="Patient", push="Goal, Encounter, DocumentReference", **config)
    tasks.pull_now(services, "emr")
    return str(local(services, "Patient")[0]["id"])


def _outbox(services: Any) -> list[tuple[str, str]]:
    with services.engine.connect() as conn:
        return [
            (r.res_type, r.state) for r in conn.execute(sa.text("SELECT res_type, state FROM sync_outbox"))
        ]


def test_the_outbox_row_commits_with_the_write_and_not_without(
    services: Any, sekmet: Sekmet, client: Any
) -> None:
    pid = _linked(services, sekmet)
    r = client.post("/fhir/Goal", json=_goal(pid, "walk"))
    assert r.status_code == 201
    assert _outbox(services) == [("Goal", "pending")]
    # a transaction that fails writes neither the Goal nor its outbox row
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Goal"}, "resource": _goal(pid, "swim")},
            {"request": {"method": "POST", "url": "Goal"}, "resource": {"resourceType": "Goal"}},
        ],
    }
    assert client.post("/fhir", json=bad).status_code == 400
    assert _outbox(services) == [("Goal", "pending")]
    # pulled resources are never pushed back
    assert all(t != "Patient" for t, _ in _outbox(services))


def test_push_creates_once_updates_with_if_match_and_parks_a_conflict(
    services: Any, sekmet: Sekmet, client: Any
) -> None:
    pid = _linked(services, sekmet)
    goal = client.post("/fhir/Goal", json=_goal(pid, "walk 30 minutes")).json()
    counts = tasks.deliver_now(services, "emr")
    assert counts.delivered == 1, counts
    remote = sekmet.search("Goal")
    assert len(remote) == 1
    assert remote[0]["subject"]["reference"] == "Patient/p1"  # mapped to the EMR's own patient
    ident = {"system": services.settings.push_identifier_system, "value": f"Goal/{goal['id']}"}
    assert ident in remote[0]["identifier"]
    # the same content again: nothing is sent
    client.put(f"/fhir/Goal/{goal['id']}", json={**goal, "description": {"text": "walk 30 minutes"}})
    assert tasks.deliver_now(services, "emr").delivered == 0
    # a change: PUT with If-Match on the EMR's version
    goal = client.get(f"/fhir/Goal/{goal['id']}").json()
    client.put(f"/fhir/Goal/{goal['id']}", json={**goal, "description": {"text": "walk 45 minutes"}})
    assert tasks.deliver_now(services, "emr").delivered == 1
    remote = sekmet.search("Goal")
    assert len(remote) == 1 and remote[0]["description"]["text"] == "walk 45 minutes"
    assert remote[0]["meta"]["versionId"] == "2"
    # someone edits it in the EMR, then the coach edits it in mECR: a 412, and the row is parked, not overwritten
    sekmet.put({**remote[0], "description": {"text": "EMR nurse's edit"}})
    goal = client.get(f"/fhir/Goal/{goal['id']}").json()
    client.put(f"/fhir/Goal/{goal['id']}", json={**goal, "description": {"text": "walk 60 minutes"}})
    counts = tasks.deliver_now(services, "emr")
    assert counts.parked == 1 and counts.delivered == 0
    assert sekmet.search("Goal")[0]["description"]["text"] == "EMR nurse's edit"
    parked = services.sync_store.outbox("emr", ["parked"])
    assert parked[0].last_status == 412
    # the administrator retries: mECR's version wins
    assert services.sync_store.retry([parked[0].id]) == 1
    assert tasks.deliver_now(services, "emr").delivered == 1
    final = sekmet.search("Goal")
    assert len(final) == 1 and final[0]["description"]["text"] == "walk 60 minutes"


def test_a_lost_response_does_not_duplicate(services: Any, sekmet: Sekmet, client: Any) -> None:
    """The EMR created the Goal but mECR never heard: the retry's conditional create finds it."""
    pid = _linked(services, sekmet, batch=False)
    session = client.post(
        "/fhir/Encounter",
        json={
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    ).json()
    from fhir_ecr.sync.mapping import push_body

    body = push_body(
        session,
        identifier_system=services.settings.push_identifier_system,
        mecr_base=services.settings.fhir_base,
        resolve=lambda t, i: "Patient/p1",
    )
    r = sekmet.http.post("/Encounter", json=body)  # as if mECR's first attempt had got through
    assert r.status_code == 201
    assert tasks.deliver_now(services, "emr").delivered == 1
    assert len(sekmet.search("Encounter")) == 1
    link = services.sync_store.links("emr", "Encounter", [session["id"]])[session["id"]]
    assert link.remote_id == r.json()["id"]


def test_a_412_when_only_the_emr_version_moved_is_re_applied(
    services: Any, sekmet: Sekmet, client: Any
) -> None:
    """The EMR's copy got a new version without a change of content (e.g. the EMR re-saved it): mECR re-reads it on
    the 412, sees what it last pushed, and applies its change on the new version — nothing is parked."""
    pid = _linked(services, sekmet, batch=False)
    goal = client.post("/fhir/Goal", json=_goal(pid, "walk 30 minutes")).json()
    assert tasks.deliver_now(services, "emr").delivered == 1
    remote = sekmet.search("Goal")[0]
    resaved = sekmet.put({**remote, "meta": {}})  # the same content, saved again by the EMR
    assert resaved["meta"]["versionId"] != remote["meta"]["versionId"]
    goal = client.get(f"/fhir/Goal/{goal['id']}").json()
    client.put(f"/fhir/Goal/{goal['id']}", json={**goal, "description": {"text": "walk 40 minutes"}})
    counts = tasks.deliver_now(services, "emr")
    assert counts.delivered == 1 and counts.parked == 0, counts
    final = sekmet.search("Goal")
    assert len(final) == 1 and final[0]["description"]["text"] == "walk 40 minutes"
    assert int(final[0]["meta"]["versionId"]) == int(resaved["meta"]["versionId"]) + 1
    link = services.sync_store.links("emr", "Goal", [goal["id"]])[goal["id"]]
    assert link.remote_version == final[0]["meta"]["versionId"]


def test_metrics_in_the_logs_carry_no_phi(services: Any, sekmet: Sekmet, client: Any, caplog: Any) -> None:
    """Each pull and push logs one line of counts (docs/sync.md, "Metrics in the logs"): types, the EHR's registry
    id, counts and durations — never a name, an identifier, an id or a URL."""
    import logging

    caplog.set_level(logging.INFO, logger="mecr.sync")
    pid = _linked(services, sekmet)
    goal = client.post("/fhir/Goal", json=_goal(pid, "walk to the Lopez bakery")).json()
    tasks.deliver_now(services, "emr")
    lines = [r.getMessage() for r in caplog.records if r.name == "mecr.sync"]
    assert any(m.startswith("pull ehr=emr type=Patient mode=paged fetched=1 created=1 ") for m in lines), (
        lines
    )
    assert any(m.startswith("push ehr=emr delivered=1 ") for m in lines), lines
    remote = sekmet.search("Goal")[0]["id"]
    for secret in ("Lopez", "MRN-1", "p1", pid, goal["id"], remote, sekmet.base, "http"):
        assert not any(secret in m for m in lines), (secret, lines)
