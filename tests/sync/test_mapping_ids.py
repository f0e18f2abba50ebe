"""The ids of pulled copies (``mapping.local_id``) are the UUIDv5 they always were: a changed id would make every
re-pull create a duplicate. Written out without ``uuid.UUID`` for speed, so checked against it."""

from __future__ import annotations

import random
import uuid

import pytest

from fhir_ecr.sync.mapping import _NAMESPACE, draft, finish, local_id, pulled


def test_local_id_is_the_uuid5_of_ehr_type_and_remote_id() -> None:
    rng = random.Random(18)
    alphabet = "abcXYZ019-._/:|é日🙂 "
    cases = [("emr", "Observation", "w0"), ("", "", ""), ("e" * 300, "Patient", "x" * 64)]
    cases += [
        (
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))),
            rng.choice(["Patient", "Observation", "Condition", "Encounter"]),
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70))),
        )
        for _ in range(5000)
    ]
    for ehr, rtype, rid in cases:
        assert local_id(ehr, rtype, rid) == str(uuid.uuid5(_NAMESPACE, f"{ehr}/{rtype}/{rid}")), (
            ehr,
            rtype,
            rid,
        )


def test_local_id_is_pinned() -> None:
    # never change: the ids of every copy pulled so far depend on it
    assert local_id("emr", "Observation", "w0") == str(uuid.uuid5(_NAMESPACE, "emr/Observation/w0"))
    assert str(_NAMESPACE) == "6d3c52a4-9a3f-4d67-9a43-3c0e3b5c2f18"


def test_local_id_refuses_what_uuid5_refuses() -> None:
    with pytest.raises(UnicodeEncodeError):
        uuid.uuid5(_NAMESPACE, "emr/Patient/\ud800")
    with pytest.raises(UnicodeEncodeError):
        local_id("emr", "Patient", "\ud800")


def test_a_draft_with_a_given_local_id_is_the_same_copy() -> None:
    remote = {
        "resourceType": "Observation",
        "id": "w1",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": "urn:x", "value": "1"}],
    }

    def resolve(t: str, i: str) -> str | None:
        return "Patient/local-1" if (t, i) == ("Patient", "p1") else None

    plain = pulled(remote, ehr_id="emr", emr_base="http://emr/fhir", resolve=resolve)
    drafted = draft(
        remote, ehr_id="emr", emr_base="http://emr/fhir", local=local_id("emr", "Observation", "w1")
    )
    given = finish(drafted, resolve, "http://emr/fhir")
    assert plain == given and plain["id"] == local_id("emr", "Observation", "w1")
