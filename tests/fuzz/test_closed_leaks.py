"""Compartment leaks the fuzzer found before issue #12 closed them (items 1, 3, 5, 6, 7): kept as regression
tests, each one the fuzzer's own reproduction."""

from __future__ import annotations

from typing import Any

import pytest

from .oracle import leaked
from .seed import B_MARKER, B, marker
from .strategies import Req

_PATCH = {"Content-Type": "application/json-patch+json"}


def _as_patient(world: Any, req: Req) -> Any:
    return world.send("patient", req)


def test_patient_searching_devices_sees_only_their_own(fuzz_world: Any) -> None:
    r = _as_patient(fuzz_world, Req("GET", "/fhir/Device"))
    assert r.status_code == 200
    assert not leaked(Req("GET", "/fhir/Device"), r.text, fuzz_world.world)


def test_patient_cannot_read_another_patients_device(fuzz_world: Any) -> None:
    r = _as_patient(fuzz_world, Req("GET", "/fhir/Device/fzb-dev"))
    assert r.status_code in (403, 404)
    assert marker(B_MARKER, "Device") not in r.text


def test_group_read_by_a_member_shows_the_other_member_only_by_reference(fuzz_world: Any) -> None:
    """docs/security.md, known limits: the shared group is in A's record and lists B; B's data stays B's."""
    r = _as_patient(fuzz_world, Req("GET", "/fhir/Group/group-ab"))
    assert r.status_code == 200 and f"Patient/{B}" in r.text
    assert B_MARKER.lower() not in r.text.lower()
    b = _as_patient(fuzz_world, Req("GET", f"/fhir/Patient/{B}"))
    assert b.status_code == 404


@pytest.mark.parametrize(
    ("path", "pointer"),
    [("/fhir/Patient/fuzz-b", "/name/0/family"), ("/fhir/Observation/fzb-obs-1", "/note/0/text")],
)
def test_patch_test_op_on_another_patients_resource_quotes_nothing(
    fuzz_world: Any, path: str, pointer: str
) -> None:
    body = f'[{{"op": "test", "path": "{pointer}", "value": "guess"}}]'.encode()
    r = _as_patient(fuzz_world, Req("PATCH", path, [], _PATCH, body))
    assert r.status_code in (403, 404)
    assert B_MARKER.lower() not in r.text.lower()


def test_chain_hop_does_not_answer_about_another_patient(fuzz_world: Any) -> None:
    def total(family: str) -> int:
        r = _as_patient(
            fuzz_world, Req("GET", "/fhir/Group", [("member:Patient.family", family), ("_total", "accurate")])
        )
        assert r.status_code == 200
        return int(r.json()["total"])

    assert total(marker(B_MARKER, "Patient")) == total("Nobody-at-all") == 0


@pytest.mark.parametrize("suffix", ["/_history", "/_history/1"])
def test_history_and_vread_of_another_patients_resource_look_like_a_missing_one(
    fuzz_world: Any, suffix: str
) -> None:
    theirs = _as_patient(fuzz_world, Req("GET", f"/fhir/Observation/fzb-obs-1{suffix}"))
    missing = _as_patient(fuzz_world, Req("GET", f"/fhir/Observation/fzb-obs-404{suffix}"))
    assert theirs.status_code == missing.status_code == 404


def test_audit_events_in_a_patients_record_name_only_that_patient(fuzz_world: Any) -> None:
    assert fuzz_world.send("coach", Req("GET", "/fhir/Patient")).status_code == 200  # the caseload: A and B
    fuzz_world.services.audit.flush()
    r = _as_patient(fuzz_world, Req("GET", "/fhir/AuditEvent", [("_count", "1000")]))
    assert r.status_code == 200
    # A's own refused requests are recorded as text (what A asked for); no event names B by reference.
    named = {
        e.get("what", {}).get("reference")
        for entry in r.json().get("entry", [])
        for e in entry["resource"].get("entity", [])
    }
    assert f"Patient/{B}" not in named
    assert B_MARKER.lower() not in r.text.lower()
