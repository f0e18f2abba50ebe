"""``IndexTemplate`` (resources alike indexed from one template) gives exactly ``index_resource``'s result: the
same rows per table and the same local references in the same order — for the audit trail's AuditEvents (one per
patient a request touched, differing in ``entity``, ``action``, ``id`` and ``meta``), and for every example and
fixture resource with one of its elements made to vary, fed through one template in turn (so each resource that
does not fit the last one's template starts a new one)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_ecr.auth.access import Access
from fhir_ecr.auth.audit import _PER_PATIENT, audit_events
from fhir_ecr.auth.principal import Principal
from fhir_ecr.store.indexer import IndexRows, IndexTemplate, index_resource
from tests.store.test_index_equivalence import BASE, _all

RECORDED = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def _sorted(rows: IndexRows) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(table_rows, key=repr) for table, table_rows in rows.items()}


def _same_as_generic(template: IndexTemplate, resource: dict[str, Any]) -> None:
    rows, refs = template.index(resource)
    want_rows, want_refs = index_resource(resource, BASE)
    assert _sorted(rows) == _sorted(want_rows)
    assert refs == want_refs


def _stored(event: dict[str, Any], n: int) -> dict[str, Any]:
    """The event as ``create`` indexes it: an id and a meta added."""
    return {
        **event,
        "id": f"ae-{n}",
        "meta": {"versionId": "1", "lastUpdated": f"2026-12-06T22:00:00.{n:06d}Z"},
    }


def _requests() -> Iterator[list[dict[str, Any]]]:
    """The AuditEvents of requests by each kind of caller, one request at a time."""
    system = Principal(kind="system", subject="client:bench", client_id="bench", display="bench")
    coach = Principal(
        kind="practitioner",
        subject="Practitioner/c1",
        fhir_user="Practitioner/c1",
        session_id="s1",
        display="C",
    )
    patient = Principal(kind="patient", subject="Patient/p1", patient_id="p1", fhir_user="Patient/p1")
    many = Access(system)
    for i in range(40):
        refs = {f"Observation/o{i}-{j}": "c" for j in range(i % 4)}
        if i % 5 == 0:
            refs[f"Patient/p{i}"] = "u"
        if i % 7 == 0:
            refs[f"Condition/x{i}"] = "d"
        many.touched_by_patient[f"p{i}"] = refs
    many.touched_by_patient[""] = {"Organization/org1": "r", f"{BASE}/Device/d1": "r"}
    yield audit_events(many, method="POST", route="/fhir", status=200, address="10.0.0.1", recorded=RECORDED)
    read = Access(coach)
    read.touched_by_patient = {"p1": {"Observation/a": "r"}, "p2": {"Goal/g": "r", "Observation/b": "r"}}
    yield audit_events(
        read, method="GET", route="/fhir/Observation", status=200, address=None, recorded=RECORDED
    )
    own = Access(patient)
    own.touched_by_patient = {"p1": {"Observation/a": "r"}}
    own.unseen = [("r", "Observation/not-mine"), ("r", "Patient/p2")]
    yield audit_events(
        own, method="GET", route="/fhir/{type}/{id}", status=404, address="::1", recorded=RECORDED
    )
    refused = Access(coach, denied=True)
    yield audit_events(refused, method="DELETE", route="/fhir/{type}/{id}", status=403, address="10.0.0.2")


def test_the_audit_events_of_each_request_are_indexed_as_one_by_one() -> None:
    template = IndexTemplate(_PER_PATIENT, BASE)
    n = 0
    for events in _requests():
        assert events
        for event in events:
            n += 1
            _same_as_generic(template, _stored(event, n))
    assert n > 40


def test_one_template_serves_a_request_and_each_event_differs_only_in_its_patient_part() -> None:
    events = [_stored(e, n) for n, e in enumerate(next(_requests()))]
    template = IndexTemplate(_PER_PATIENT, BASE)
    for event in events:
        _same_as_generic(template, event)
    assert template._template is events[0]  # every later event fitted the first one's template
    shared = {k for k in events[0] if k not in _PER_PATIENT}
    assert all(e[k] == events[0][k] for e in events for k in shared)
    assert len({repr(e["entity"]) for e in events}) == len(events)


def _varied(resource: dict[str, Any], key: str) -> dict[str, Any]:
    """``resource`` with its element ``key`` made different (a reference retargeted, a string changed)."""
    out = copy.deepcopy(resource)
    value = out[key]
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        value["reference"] = "Patient/varied"
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        value.append(copy.deepcopy(value[0]))
    elif isinstance(value, str):
        out[key] = value + "x"
    return out


@pytest.mark.parametrize("varying", [("subject", "id", "meta"), ("code", "status"), ("identifier",)])
def test_every_example_through_one_template(varying: tuple[str, ...]) -> None:
    template = IndexTemplate(varying, BASE)
    checked = 0
    for resource in _all():
        _same_as_generic(template, resource)
        for key in varying:
            if key in resource and key not in ("id", "meta"):
                _same_as_generic(template, _varied(resource, key))
                checked += 1
        _same_as_generic(template, resource)
    assert checked > 100


def test_a_change_in_a_shared_element_starts_a_new_template() -> None:
    event = _stored(next(_requests())[0], 1)
    template = IndexTemplate(_PER_PATIENT, BASE)
    _same_as_generic(template, event)
    other = copy.deepcopy(event)
    other["agent"][0]["who"] = {"reference": "Patient/p9"}  # now in p9's compartment through the agent
    rows, _ = template.index(other)
    assert ("agent", "Patient", "p9", None) in rows["idx_reference"]
    _same_as_generic(template, other)
    assert template._template is other
