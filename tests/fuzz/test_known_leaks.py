"""Compartment leaks the fuzzer found that another branch is closing (issue #12 items 1, 3, 6, 7).

Each case is strict xfail: it fails today, and the day the fix is merged it passes, which fails the run until
its mark (and its entry in :data:`tests.fuzz.oracle.KNOWN_LEAKS`) is removed.
"""

from __future__ import annotations

from typing import Any

import pytest

from .oracle import KNOWN_LEAKS, leaked
from .seed import B_MARKER, B, marker
from .strategies import Req

_PATCH = {"Content-Type": "application/json-patch+json"}


def _as_patient(world: Any, req: Req) -> Any:
    return world.send("patient", req)


@pytest.mark.xfail(strict=True, reason=KNOWN_LEAKS["device"])
def test_patient_searching_devices_sees_only_their_own(fuzz_world: Any) -> None:
    r = _as_patient(fuzz_world, Req("GET", "/fhir/Device"))
    assert r.status_code == 200
    assert not leaked(Req("GET", "/fhir/Device"), r.text, fuzz_world.world)


@pytest.mark.xfail(strict=True, reason=KNOWN_LEAKS["device"])
def test_patient_cannot_read_another_patients_device(fuzz_world: Any) -> None:
    r = _as_patient(fuzz_world, Req("GET", "/fhir/Device/fzb-dev"))
    assert r.status_code in (403, 404)
    assert marker(B_MARKER, "Device") not in r.text


@pytest.mark.xfail(strict=True, reason=KNOWN_LEAKS["group-members"])
def test_group_read_by_a_member_does_not_name_the_other_members(fuzz_world: Any) -> None:
    r = _as_patient(fuzz_world, Req("GET", "/fhir/Group/group-ab"))
    assert f"Patient/{B}" not in r.text


@pytest.mark.xfail(strict=True, reason=KNOWN_LEAKS["patch-test"])
@pytest.mark.parametrize(("path", "pointer"), [("/fhir/Patient/fuzz-b", "/name/0/family"),
                                               ("/fhir/Observation/fzb-obs-1", "/note/0/text")])
def test_patch_test_op_on_another_patients_resource_quotes_nothing(fuzz_world: Any, path: str,
                                                                   pointer: str) -> None:
    body = f'[{{"op": "test", "path": "{pointer}", "value": "guess"}}]'.encode()
    r = _as_patient(fuzz_world, Req("PATCH", path, [], _PATCH, body))
    assert r.status_code in (403, 404)
    assert B_MARKER.lower() not in r.text.lower()


@pytest.mark.xfail(strict=True, reason="#12.3 chained search confined: a chain hop is evaluated outside the caller's "
                                       "compartment, so the count answers yes/no about another patient's name")
def test_chain_hop_does_not_answer_about_another_patient(fuzz_world: Any) -> None:
    def total(family: str) -> int:
        r = _as_patient(fuzz_world, Req("GET", "/fhir/Group", [("member:Patient.family", family),
                                                                ("_total", "accurate")]))
        assert r.status_code == 200
        return int(r.json()["total"])

    assert total(marker(B_MARKER, "Patient")) == total("Nobody-at-all") == 0


@pytest.mark.xfail(strict=True, reason="#12.7 existence oracles: history and vread of another patient's resource "
                                       "answer differently from a resource that does not exist")
@pytest.mark.parametrize("suffix", ["/_history", "/_history/1"])
def test_history_and_vread_of_another_patients_resource_look_like_a_missing_one(fuzz_world: Any,
                                                                                suffix: str) -> None:
    theirs = _as_patient(fuzz_world, Req("GET", f"/fhir/Observation/fzb-obs-1{suffix}"))
    missing = _as_patient(fuzz_world, Req("GET", f"/fhir/Observation/fzb-obs-404{suffix}"))
    assert theirs.status_code == missing.status_code == 404


@pytest.mark.xfail(strict=True, reason=KNOWN_LEAKS["audit"])
def test_audit_events_in_a_patients_record_name_only_that_patient(fuzz_world: Any) -> None:
    assert fuzz_world.send("coach", Req("GET", "/fhir/Patient")).status_code == 200  # the caseload: A and B
    fuzz_world.services.audit.flush()
    r = _as_patient(fuzz_world, Req("GET", "/fhir/AuditEvent", [("_count", "1000")]))
    assert r.status_code == 200
    assert f"Patient/{B}" not in r.text
