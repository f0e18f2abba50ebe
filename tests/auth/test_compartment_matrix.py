"""The compartment matrix, kept as data: patient A against patient B's data, for every resource type mECR serves
and every way to reach a resource (issue #12, docs/security.md).

- ``INSTANCE_WAYS``: each way to reach one resource by id. Run against B's resource of each type and against an id
  that does not exist, the two answers must be the same (status and body, the id aside), must name nothing of B's,
  and must change nothing.
- ``SEARCHES``: chains, ``_has``, includes and counts that could only find something through B's data: as A they
  find nothing of B's (and their totals count only A's).
- ``FOREIGN_WRITES``: resources A may not write because they would also lie in B's compartment.
- ``test_the_matrix_is_complete`` fails when a served resource type, an API route or an instance operation has no
  row here, so nothing new can be added without one.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from fhir_ecr.store.searchparams import search_params
from tests.auth.compartment_world import MARK, PUBLIC, World, build_world, record
from tests.auth.support import bearer, coach, login, patient
from tests.helpers import assert_outcome

ALL_SCOPES = "patient/*.cruds"
Way = Callable[[Any, dict[str, str], str, str, dict[str, Any]], Any]


@pytest.fixture
def world(secure_services: Any) -> World:
    return build_world(secure_services.repo)


@pytest.fixture
def as_a(secure_services: Any, world: World) -> dict[str, str]:
    """Patient A's bearer token, with every patient scope (the widest a patient can hold)."""
    return bearer(secure_services, patient(world.a["Patient"], ALL_SCOPES))


def _json(headers: dict[str, str], body: Any) -> dict[str, Any]:
    return {"content": orjson.dumps(body), "headers": {**headers, "Content-Type": "application/fhir+json"}}


def _b64(ops: list[dict[str, Any]]) -> str:
    return base64.b64encode(orjson.dumps(ops)).decode()


def _own_version(rtype: str, rid: str) -> dict[str, Any]:
    """A's resource of ``rtype`` re-labelled with ``rid``: the body A would write over the target."""
    body = copy.deepcopy(record("a", "Ardent")[rtype])
    body["id"] = rid
    return body


def _batch(kind: str, request: dict[str, Any], resource: Any = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"request": request}
    if resource is not None:
        entry["resource"] = resource
    return {"resourceType": "Bundle", "type": kind, "entry": [entry]}


def _patch_binary(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": _b64(ops)}


INSTANCE_WAYS: dict[str, Way] = {
    "read": lambda c, h, t, i, w: c.get(f"/fhir/{t}/{i}", headers=h),
    "read-if-none-match": lambda c, h, t, i, w: c.get(
        f"/fhir/{t}/{i}", headers={**h, "If-None-Match": 'W/"1"'}
    ),
    "read-summary": lambda c, h, t, i, w: c.get(f"/fhir/{t}/{i}?_summary=true", headers=h),
    "vread": lambda c, h, t, i, w: c.get(f"/fhir/{t}/{i}/_history/1", headers=h),
    "vread-huge-version": lambda c, h, t, i, w: c.get(
        f"/fhir/{t}/{i}/_history/99999999999999999999", headers=h
    ),
    "history": lambda c, h, t, i, w: c.get(f"/fhir/{t}/{i}/_history", headers=h),
    "search-id": lambda c, h, t, i, w: c.get(f"/fhir/{t}?_id={i}", headers=h),
    "search-count": lambda c, h, t, i, w: c.get(f"/fhir/{t}?_id={i}&_summary=count", headers=h),
    "search-total": lambda c, h, t, i, w: c.get(f"/fhir/{t}?_id={i}&_total=accurate&_count=0", headers=h),
    "search-post": lambda c, h, t, i, w: c.post(f"/fhir/{t}/_search", data={"_id": i}, headers=h),
    "patch-test-true": lambda c, h, t, i, w: c.patch(
        f"/fhir/{t}/{i}",
        headers={**h, "Content-Type": "application/json-patch+json"},
        content=orjson.dumps(
            [{"op": "test", "path": "/id", "value": i}, {"op": "add", "path": "/language", "value": "en"}]
        ),
    ),
    "patch-test-false": lambda c, h, t, i, w: c.patch(
        f"/fhir/{t}/{i}",
        headers={**h, "Content-Type": "application/json-patch+json"},
        content=orjson.dumps([{"op": "test", "path": "/resourceType", "value": "Nope"}]),
    ),
    "patch-if-match": lambda c, h, t, i, w: c.patch(
        f"/fhir/{t}/{i}",
        headers={**h, "Content-Type": "application/json-patch+json", "If-Match": 'W/"7"'},
        content=orjson.dumps([{"op": "add", "path": "/language", "value": "en"}]),
    ),
    "put": lambda c, h, t, i, w: c.put(f"/fhir/{t}/{i}", **_json(h, _own_version(t, i))),
    "put-if-match": lambda c, h, t, i, w: c.put(
        f"/fhir/{t}/{i}", **_json({**h, "If-Match": 'W/"1"'}, _own_version(t, i))
    ),
    "delete": lambda c, h, t, i, w: c.delete(f"/fhir/{t}/{i}", headers=h),
    "delete-if-match": lambda c, h, t, i, w: c.delete(f"/fhir/{t}/{i}", headers={**h, "If-Match": 'W/"1"'}),
    "conditional-delete": lambda c, h, t, i, w: c.delete(f"/fhir/{t}?_id={i}", headers=h),
    "conditional-update": lambda c, h, t, i, w: c.put(
        f"/fhir/{t}?_id={i}", **_json(h, {k: v for k, v in _own_version(t, i).items() if k != "id"})
    ),
    "conditional-create": lambda c, h, t, i, w: c.post(
        f"/fhir/{t}",
        **_json(
            {**h, "If-None-Exist": f"_id={i}"}, {k: v for k, v in _own_version(t, i).items() if k != "id"}
        ),
    ),
    "batch-get": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("batch", {"method": "GET", "url": f"{t}/{i}"}))
    ),
    "batch-vread": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("batch", {"method": "GET", "url": f"{t}/{i}/_history/1"}))
    ),
    "batch-search": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("batch", {"method": "GET", "url": f"{t}?_id={i}&_total=accurate"}))
    ),
    "batch-patch": lambda c, h, t, i, w: c.post(
        "/fhir",
        **_json(
            h,
            _batch(
                "batch",
                {"method": "PATCH", "url": f"{t}/{i}"},
                _patch_binary([{"op": "test", "path": "/id", "value": i}]),
            ),
        ),
    ),
    "batch-put-if-match": lambda c, h, t, i, w: c.post(
        "/fhir",
        **_json(
            h, _batch("batch", {"method": "PUT", "url": f"{t}/{i}", "ifMatch": 'W/"1"'}, _own_version(t, i))
        ),
    ),
    "batch-delete": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("batch", {"method": "DELETE", "url": f"{t}/{i}"}))
    ),
    "transaction-patch": lambda c, h, t, i, w: c.post(
        "/fhir",
        **_json(
            h,
            _batch(
                "transaction",
                {"method": "PATCH", "url": f"{t}/{i}"},
                _patch_binary([{"op": "test", "path": "/id", "value": i}]),
            ),
        ),
    ),
    "transaction-put": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("transaction", {"method": "PUT", "url": f"{t}/{i}"}, _own_version(t, i)))
    ),
    "transaction-delete": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("transaction", {"method": "DELETE", "url": f"{t}/{i}"}))
    ),
    "transaction-get": lambda c, h, t, i, w: c.post(
        "/fhir", **_json(h, _batch("transaction", {"method": "GET", "url": f"{t}/{i}"}))
    ),
    "reference-in-search": lambda c, h, t, i, w: c.get(
        f"/fhir/Provenance?target={t}/{i}&_total=accurate", headers=h
    ),
    # Referential integrity must not tell A that B's resource exists: a reference to it is as dangling as one
    # to nothing.
    "reference-in-write": lambda c, h, t, i, w: c.post(
        "/fhir/Observation",
        **_json(
            h,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "note"},
                "subject": {"reference": f"Patient/{w['a']['Patient']}"},
                "focus": [{"reference": f"{t}/{i}"}],
            },
        ),
    ),
}

#: Instance operations by resource type: (method, name, parameters or body).
INSTANCE_OPS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "Patient": [
        ("GET", "$everything", None),
        ("GET", "$coaching-summary", None),
        ("GET", "$superbill", None),
        ("GET", "$export", None),
        (
            "POST",
            "$coaching-session",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "start", "valueDateTime": "2026-11-02T10:00:00Z"},
                    {"name": "end", "valueDateTime": "2026-11-02T10:30:00Z"},
                ],
            },
        ),
    ],
    "Group": [
        ("GET", "$export", None),
        (
            "POST",
            "$coaching-session",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "start", "valueDateTime": "2026-11-02T10:00:00Z"},
                    {"name": "end", "valueDateTime": "2026-11-02T10:30:00Z"},
                ],
            },
        ),
    ],
    "Encounter": [("GET", "$superbill", None)],
    "CarePlan": [
        (
            "POST",
            "$check-in",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "habitId", "valueString": "walk"},
                    {"name": "status", "valueCode": "done"},
                ],
            },
        ),
        (
            "POST",
            "$habit",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "action", "valueCode": "pause"},
                    {"name": "habitId", "valueString": "walk"},
                ],
            },
        ),
    ],
    "Goal": [
        (
            "POST",
            "$pdsa",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "title", "valueString": "try mornings"},
                    {"name": "date", "valueDate": "2026-11-01"},
                ],
            },
        )
    ],
}


def _op_way(method: str, name: str, body: dict[str, Any] | None) -> Way:
    def way(c: Any, h: dict[str, str], t: str, i: str, w: dict[str, Any]) -> Any:
        if method == "GET":
            return c.get(f"/fhir/{t}/{i}/{name}", headers=h)
        return c.post(f"/fhir/{t}/{i}/{name}", **_json(h, body))

    return way


def _normal(response: Any, target: str) -> tuple[int, Any]:
    """Status and body of ``response`` with the target id blanked, and what changes per request dropped."""
    text = response.text.replace(target, "<ID>")
    try:
        body: Any = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        body = text
    if isinstance(body, dict):
        body.pop("id", None)
        body.pop("meta", None)
        for entry in body.get("entry") or []:
            if isinstance(entry, dict):
                entry.get("response", {}).pop("lastModified", None)
    return response.status_code, body


def _leaks(text: str, world: World) -> list[str]:
    """B's marker, or any of B's resources, in a response (its self link aside: it echoes the query). A's own
    resources may still *reference* B's (the walking group lists both members; a coach linked A's Observation to
    B's): the compartment definition puts them in A's record, and a reference carries none of B's data."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        body.pop("link", None)
        text = orjson.dumps(body).decode()
    found = [MARK] if MARK in text else []
    return found + sorted(
        i for i in world.b_ids if re.search(rf'"id":"{re.escape(i)}"|"fullUrl":"[^"]*/{re.escape(i)}"', text)
    )


@pytest.mark.parametrize("rtype", sorted(set(search_params()) - PUBLIC))
def test_b_resource_answers_as_if_it_did_not_exist(
    secure_client: Any, secure_services: Any, world: World, as_a: dict[str, str], rtype: str
) -> None:
    """Every way to reach B's ``rtype`` by id answers as an id that does not exist would, leaks nothing of B's,
    and changes nothing."""
    target, ghost = world.b[rtype], f"nx-{rtype.lower()}"
    before = secure_services.repo.read(rtype, target)
    ways = dict(INSTANCE_WAYS)
    for method, name, body in INSTANCE_OPS.get(rtype, []):
        ways[f"{method} {name}"] = _op_way(method, name, body)
    w = {"a": world.a, "b": world.b}
    problems = []
    for name, way in ways.items():
        real = way(secure_client, as_a, rtype, target, w)
        fake = way(secure_client, as_a, rtype, ghost, w)
        if real.status_code >= 500:
            problems.append(f"{name}: {real.status_code}")
        if _normal(real, target) != _normal(fake, ghost):
            problems.append(
                f"{name}: B's {rtype} answers {real.status_code} {real.text[:300]!r}, a missing id "
                f"{fake.status_code} {fake.text[:300]!r}"
            )
        leaked = _leaks(real.text.replace(target, ""), world)
        if leaked:
            problems.append(f"{name}: the answer names {leaked}: {real.text[:300]!r}")
    after = secure_services.repo.read(rtype, target)
    assert not problems, "\n".join(problems)
    assert (after.version_id, after.content) == (before.version_id, before.content), "B's resource changed"


SEARCHES = [
    "Observation?subject:Patient.name=Zebramark",
    "Observation?subject:Patient.identifier=urn:mecr:test:mrn|Zebramark-MRN",
    "Group?member:Patient.name=Zebramark",
    "Group?member:Patient.birthdate=1990-02-02",
    "Group?member:Patient.general-practitioner:Practitioner.name=Zebramark-coach",
    "Observation?device:Device.device-name=Zebramark",
    "Encounter?location:Location.name=Zebramark",
    "Patient?_has:Observation:subject:code=urn:mecr:test|Zebramark-code",
    "Patient?_has:Group:member:_id=b-group",
    "Group?_has:Observation:subject:code=Zebramark-code",
    "Practitioner?_has:Provenance:agent:target:Patient.name=Zebramark",
    "Practitioner?name=Zebramark-coach",
    "Device?device-name=Zebramark",
    "Organization?name=Zebramark",
    "Location?name=Zebramark",
    "HealthcareService?name=Zebramark",
    "PractitionerRole?practitioner:Practitioner.name=Zebramark",
    "Observation?value-string=Zebramark",
    "Observation?subject=Patient/b-patient",
    "Observation?patient=b-patient&_total=accurate",
    "Patient?_id=b-patient&_summary=count",
    "Patient?identifier=urn:mecr:test:mrn|Zebramark-MRN",
    "Patient?birthdate=1990-02-02&_total=accurate",
    "Group?_include=Group:member",
    "Group?_include=Group:member&_include:iterate=Patient:general-practitioner",
    "Patient?_revinclude=Observation:subject&_revinclude=Group:member",
    "Observation?_include=Observation:has-member&_include:iterate=Observation:subject"
    "&_include:iterate=Observation:device",
    "Observation?_include=Observation:device&_revinclude:iterate=Observation:device",
    "Device?_revinclude=Observation:device&_include:iterate=Observation:subject",
    "Practitioner?_revinclude=PractitionerRole:practitioner&_revinclude:iterate=CarePlan:performer",
    "AuditEvent?_total=accurate",
    "AuditEvent?entity=Patient/b-patient",
    "Provenance?_include=Provenance:target",
]


@pytest.mark.parametrize("query", SEARCHES)
def test_searches_never_reach_b(secure_client: Any, world: World, as_a: dict[str, str], query: str) -> None:
    """Chains, reverse chains, includes and totals are evaluated inside A's record on every hop."""
    r = secure_client.get(f"/fhir/{query}", headers=as_a)
    assert r.status_code == 200, r.text
    assert not _leaks(r.text, world), r.text[:2000]
    bundle = r.json()
    matches = [e for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]
    if "total" in bundle and "_count" not in query:
        assert bundle["total"] == len(matches)


def test_a_still_sees_a(secure_client: Any, world: World, as_a: dict[str, str]) -> None:
    """The narrowing does not hide A's own record: the same kinds of searches find A's resources."""

    def ids(query: str) -> set[str]:
        r = secure_client.get(f"/fhir/{query}", headers=as_a)
        assert r.status_code == 200, r.text
        return {e["resource"]["id"] for e in r.json().get("entry", []) if "resource" in e}

    assert ids("Observation?subject:Patient.name=Ardent") == {"a-observation"}
    assert ids("Patient?_has:Observation:subject:code=Ardent-code") == {"a-patient"}
    assert ids("Group?member:Patient.name=Ardent") == {"a-group", world.shared_group}
    assert ids("Practitioner?name=Ardent-coach") == {"a-practitioner"}  # referenced by A's record
    assert ids("Device?device-name=Ardent") == {"a-device"}
    assert ids("Observation?_include=Observation:device") == {"a-observation", "a-device"}
    assert ids(f"Group?_id={world.shared_group}&_include=Group:member") == {world.shared_group, "a-patient"}
    for rtype, rid in world.a.items():
        if rtype == "AuditEvent":
            continue  # written by mECR about a coach's access; A reads it through the search above
        r = secure_client.get(f"/fhir/{rtype}/{rid}", headers=as_a)
        assert r.status_code == 200, (rtype, r.text)


FOREIGN_WRITES: list[tuple[str, dict[str, Any]]] = [
    (
        "Communication recipient",
        {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": "Patient/a-patient"},
            "recipient": [{"reference": "Patient/b-patient"}],
        },
    ),
    (
        "Communication sender",
        {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": "Patient/a-patient"},
            "sender": {"reference": "Patient/b-patient"},
        },
    ),
    (
        "Observation performer",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "mood"},
            "subject": {"reference": "Patient/a-patient"},
            "performer": [{"reference": "Patient/b-patient"}],
        },
    ),
    (
        "Group member",
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": "Patient/a-patient"}},
                {"entity": {"reference": "Patient/b-patient"}},
            ],
        },
    ),
    (
        "CareTeam participant",
        {
            "resourceType": "CareTeam",
            "subject": {"reference": "Patient/a-patient"},
            "participant": [{"member": {"reference": "Patient/b-patient"}}],
        },
    ),
    (
        "Appointment participant",
        {
            "resourceType": "Appointment",
            "status": "proposed",
            "participant": [
                {"actor": {"reference": "Patient/a-patient"}, "status": "accepted"},
                {"actor": {"reference": "Patient/b-patient"}, "status": "needs-action"},
            ],
        },
    ),
    (
        "QuestionnaireResponse author",
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": {"reference": "Patient/a-patient"},
            "author": {"reference": "Patient/b-patient"},
        },
    ),
    (
        "Observation of B only",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "mood"},
            "subject": {"reference": "Patient/b-patient"},
        },
    ),
    ("Observation of no one", {"resourceType": "Observation", "status": "final", "code": {"text": "mood"}}),
]


@pytest.mark.parametrize(("what", "body"), FOREIGN_WRITES, ids=[w for w, _ in FOREIGN_WRITES])
def test_a_cannot_write_into_b_compartment(
    secure_client: Any,
    secure_services: Any,
    world: World,
    as_a: dict[str, str],
    what: str,
    body: dict[str, Any],
) -> None:
    """A patient's write must lie wholly in their own compartment: every compartment reference names them."""
    rtype = body["resourceType"]
    before = secure_services.repo.search_params(rtype, [("_summary", "count")]).total
    assert_outcome(secure_client.post(f"/fhir/{rtype}", **_json(as_a, body)), 403, "forbidden")
    tx = _batch("transaction", {"method": "POST", "url": rtype}, body)
    assert_outcome(secure_client.post("/fhir", **_json(as_a, tx)), 403, "forbidden")
    # Moving their own resource so that it also lies in B's record is refused the same way.
    own = world.a.get(rtype)
    if own is not None:
        moved = {**body, "id": own}
        assert_outcome(secure_client.put(f"/fhir/{rtype}/{own}", **_json(as_a, moved)), 403, "forbidden")
    assert secure_services.repo.search_params(rtype, [("_summary", "count")]).total == before


def test_audit_events_name_one_patient_each(
    secure_client: Any, secure_services: Any, world: World, as_a: dict[str, str]
) -> None:
    """A coach's read of both records writes one event per patient; A's attempts on B are recorded in A's record
    as text, never as a reference to B; neither patient can read anything about the other in their trail."""
    coach_h = bearer(secure_services, coach())
    assert secure_client.get("/fhir/Patient?_count=50", headers=coach_h).status_code == 200
    assert secure_client.get("/fhir/Observation?_count=50", headers=coach_h).status_code == 200
    secure_client.get(f"/fhir/Observation/{world.b['Observation']}", headers=as_a)  # refused: as if missing
    secure_client.get("/fhir/Observation/nx-observation", headers=as_a)
    # The walking group lies in both records: A reading it is recorded in A's record only (else B would read
    # "Patient/a-patient looked at the group" in theirs).
    assert secure_client.get(f"/fhir/Group/{world.shared_group}", headers=as_a).status_code == 200
    secure_services.audit.flush()
    events = [
        s.content
        for s in secure_services.repo.search_params("AuditEvent", [("_count", "500")]).matches
        if s.id not in (world.a["AuditEvent"], world.b["AuditEvent"])
    ]
    assert events
    for event in events:
        named = {
            e["what"]["reference"]
            for e in event.get("entity", [])
            if e.get("what", {}).get("reference", "").startswith("Patient/")
        }
        agent = event["agent"][0]["who"].get("reference", "")
        assert len(named | ({agent} if agent.startswith("Patient/") else set())) <= 1, event
    for who, other in (("a", "b"), ("b", "a")):
        h = bearer(secure_services, patient(getattr(world, who)["Patient"], ALL_SCOPES))
        r = secure_client.get("/fhir/AuditEvent?_count=500", headers=h)
        assert r.status_code == 200
        assert f"Patient/{getattr(world, other)['Patient']}" not in r.text
        if who == "a":  # A's refused and missing reads are recorded alike, as what was asked for
            refusals = [e for e in r.json()["entry"] if e["resource"].get("outcome") == "4"]
            texts = sorted(
                x["description"].replace(world.b["Observation"], "<ID>").replace("nx-observation", "<ID>")
                for e in refusals
                for x in e["resource"].get("entity", [])
                if "description" in x
            )
            assert len(texts) == 2 and texts[0] == texts[1], texts


def test_pages_and_uploads_refuse_b_as_they_refuse_nobody(
    secure_client: Any, secure_services: Any, world: World
) -> None:
    """Routes that name a patient in their path refuse another patient's id exactly as an unknown one."""
    csrf = login(secure_client, secure_services, patient(world.a["Patient"], ALL_SCOPES))
    for path in (
        "/app/patients/{}",
        "/app/patients/{}/print",
        "/app/patients/{}/messages",
        "/app/patients/{}/sessions/new",
        "/app/patients/{}/goals/new",
        "/app/patients/{}/habits",
        "/app/patients/{}/goals/x/edit",
        "/app/patients/{}/referrals/new",
        "/app/patients/{}/referrals/x",
    ):
        real, fake = (secure_client.get(path.format(i)) for i in (world.b["Patient"], "nx-patient"))
        assert real.status_code == fake.status_code == 403, path
        assert MARK not in real.text
    for path in (
        "/app/patients/{}/messages",
        "/app/patients/{}/sessions",
        "/app/patients/{}/goals",
        "/app/patients/{}/goals/x",
        "/app/patients/{}/habits",
        "/app/patients/{}/referrals",
        "/app/patients/{}/referrals/x/link",
        "/app/patients/{}/referrals/x/revoke",
        "/app/patients/{}/referrals/x/consent",
        "/app/patients/{}/referrals/x/cancel",
    ):
        real, fake = (
            secure_client.post(path.format(i), data={"csrf_token": csrf})
            for i in (world.b["Patient"], "nx-patient")
        )
        assert real.status_code == fake.status_code == 403, path
    h = {"X-CSRF-Token": csrf}
    real, fake = (
        secure_client.post(
            f"/api/patients/{i}/wearable-imports",
            headers=h,
            files={"file": ("x.json", b"{}", "application/json")},
        )
        for i in (world.b["Patient"], "nx-patient")
    )
    assert real.status_code == fake.status_code == 403
    assert _normal(real, world.b["Patient"]) == _normal(fake, "nx-patient")
    for query in (
        "Observation/$run-chart?patient={}&code=urn:mecr:test|Zebramark-code",
        "Patient/{}/$coaching-summary",
        "Patient/{}/$everything",
    ):
        real, fake = (
            secure_client.get("/fhir/" + query.format(i)) for i in (world.b["Patient"], "nx-patient")
        )
        assert _normal(real, world.b["Patient"]) == _normal(fake, "nx-patient"), (query, real.text, fake.text)
        assert real.status_code in (403, 404)


#: Every route a caller can reach, and which test of this module covers it (or why none is needed).
ROUTES = {
    "/fhir": "INSTANCE_WAYS batch-* and transaction-*",
    "/fhir/_history": "refused to patients before anything is read (test_security_matrix)",
    "/fhir/{rtype}": "INSTANCE_WAYS search-*, conditional-*, SEARCHES, FOREIGN_WRITES",
    "/fhir/{rtype}/_search": "INSTANCE_WAYS search-post",
    "/fhir/{rtype}/_history": "refused to patients before anything is read (test_security_matrix)",
    "/fhir/{rtype}/{rid}": "INSTANCE_WAYS read, put, patch, delete",
    "/fhir/{rtype}/{rid}/_history": "INSTANCE_WAYS history",
    "/fhir/{rtype}/{rid}/_history/{vid}": "INSTANCE_WAYS vread",
    "/fhir/{rtype}/{rid}/{op}": "INSTANCE_OPS",
    "/fhir/metadata": "public, about no one",
    "/fhir/.well-known/smart-configuration": "public, about no one",
    "/api/patients/{patient_id}/wearable-imports": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/print": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/messages": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/sessions/new": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/sessions": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/goals/new": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/goals/{goal_id}/edit": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/goals/{goal_id}": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/goals": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/habits": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/me": "the patient's own app: takes no patient id (tests/web)",
    "/app/me/messages": "the patient's own app: takes no patient id (tests/web)",
    "/app/me/settings": "the patient's own app: takes no patient id (tests/web)",
    "/app/me/check-in": "the patient's own app: takes no patient id (tests/web)",
    "/app/caseload": "coaches only (tests/web)",
    "/app/directory": "coaches only; the public directory, ?patient= read through the coach's guard "
    "(tests/directory/test_directory_page.py)",
    "/app/goal-check": "checks a goal's wording; reads no data",
    "/fhir/$export": "system clients only: 403 to a patient before anything is read (tests/sync/test_export.py)",
    "/fhir/$export-status/{job_id}": "the requesting client's exports only; anyone else 404 (tests/sync/test_export.py)",
    "/fhir/$export-file/{job_id}/{name}": "the requesting client's files only; anyone else 404 (tests/sync)",
    "/app/sync": "coaches only, counts and ids of the practice's sync (tests/sync/test_status_page.py)",
    "/app/sync/retry": "coaches only (tests/sync/test_status_page.py)",
    "/app/patients/{patient_id}/referrals/new": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/referrals": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/referrals/{task_id}": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/referrals/{task_id}/link": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/referrals/{task_id}/revoke": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/referrals/{task_id}/consent": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/patients/{patient_id}/referrals/{task_id}/cancel": "test_pages_and_uploads_refuse_b_as_they_refuse_nobody",
    "/app/me/referrals/{task_id}": "the patient's own referrals only: another's answers 404 "
    "(tests/referrals/test_pages.py)",
    "/r/{token}": "the organisation's link: confined to its referral (tests/referrals/test_link_page.py)",
    "/app/signout": "ends the caller's own session; names no patient (tests/web/test_coach_day.py)",
    "/app/signed-out": "the signed-out page; reads no data (tests/web/test_coach_day.py)",
}


def _routes(app: Any) -> set[str]:
    out: set[str] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            elif hasattr(r, "routes") and not hasattr(r, "methods"):
                walk(r.routes)
            elif hasattr(r, "methods") and hasattr(r, "path"):
                out.add(r.path.rstrip("/") or "/")

    walk(app.routes)
    return {
        p
        for p in out
        if p.startswith(("/fhir", "/api", "/app"))
        and not p.startswith("/app/static")
        and p not in ("/app", "/app/signin", "/app/sw.js", "/app/manifest.webmanifest")
    }


def test_the_matrix_is_complete(secure_app: Any, secure_services: Any) -> None:
    """A new resource type, route or instance operation cannot be added without its row in this matrix."""
    served = set(search_params())
    world_types = set(record("b", MARK))
    assert served - PUBLIC == world_types, "types without a row: " + ", ".join(
        sorted(served - PUBLIC - world_types)
    )
    missing = _routes(secure_app) - set(ROUTES)
    assert not missing, f"routes without a row in ROUTES: {sorted(missing)}"
    ops = {
        (t, f"${op.name}")
        for op in secure_services.operations.all()
        if op.instance
        for t in op.resource_types
    }
    covered = {(t, name) for t, rows in INSTANCE_OPS.items() for _, name, _ in rows}
    assert ops == covered, f"instance operations without a row: {sorted(ops - covered)}"
