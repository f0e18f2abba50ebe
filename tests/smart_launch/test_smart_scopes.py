"""SMART v1/v2 scope grammar and the ScopeSet authorization questions (checklist 1.12)."""

from __future__ import annotations

import pytest

from smart_launch import INTERACTION_CODES, ScopeError, ScopeSet, interaction_code
from smart_launch.scopes import LaunchScope, ResourceScope, parse_scope

ALL = "cruds"


def allowed_letters(scopes: ScopeSet, resource_type: str, context: str) -> str:
    return "".join(i for i in ALL if scopes.allows(i, resource_type, context))


# The v1 -> v2 equivalence table of scopes-and-launch-context.md, and v2 letters taken literally.
@pytest.mark.parametrize(
    ("scope", "letters"),
    [
        ("patient/Observation.read", "rs"),
        ("patient/Observation.write", "cud"),
        ("patient/Observation.*", "cruds"),
        ("patient/Observation.rs", "rs"),
        ("patient/Observation.r", "r"),
        ("patient/Observation.s", "s"),
        ("patient/Observation.c", "c"),
        ("patient/Observation.cu", "cu"),
        ("patient/Observation.cruds", "cruds"),
        ("patient/Observation.ud", "ud"),
    ],
)
def test_v1_and_v2_permissions_map_to_letters(scope: str, letters: str) -> None:
    assert allowed_letters(ScopeSet.parse(scope), "Observation", "patient") == letters


def test_write_does_not_imply_read() -> None:
    scopes = ScopeSet.parse("user/Goal.write")
    assert not scopes.allows("r", "Goal", "user")
    assert not scopes.allows("s", "Goal", "user")
    assert scopes.allows("u", "Goal", "user")


@pytest.mark.parametrize("context", ["patient", "user", "system"])
def test_context_never_leaks_to_another(context: str) -> None:
    scopes = ScopeSet.parse(f"{context}/*.cruds")
    for other in {"patient", "user", "system"} - {context}:
        assert allowed_letters(scopes, "Observation", other) == ""
    assert allowed_letters(scopes, "Observation", context) == "cruds"


def test_wildcard_type_covers_every_type_but_named_type_only_itself() -> None:
    scopes = ScopeSet.parse("user/*.rs patient/Goal.c")
    assert scopes.allows("r", "Practitioner", "user")
    assert scopes.allows("s", "CarePlan", "user")
    assert not scopes.allows("c", "Practitioner", "user")
    assert scopes.allows("c", "Goal", "patient")
    assert not scopes.allows("c", "CarePlan", "patient")
    assert not scopes.allows("r", "Goal", "patient")


def test_mecr_suggested_request_matrix() -> None:
    scopes = ScopeSet.parse(
        "launch openid fhirUser offline_access patient/Patient.r patient/Goal.cruds "
        "patient/CarePlan.cruds patient/Observation.rs patient/Encounter.r"
    )
    assert allowed_letters(scopes, "Patient", "patient") == "r"
    assert allowed_letters(scopes, "Goal", "patient") == "cruds"
    assert allowed_letters(scopes, "Observation", "patient") == "rs"
    assert allowed_letters(scopes, "Encounter", "patient") == "r"
    assert allowed_letters(scopes, "Condition", "patient") == ""
    assert scopes.ehr_launch and scopes.openid and scopes.fhir_user and scopes.offline_access
    assert not scopes.online_access


def test_query_filter_scope_narrows_instead_of_granting_outright() -> None:
    lab = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    scopes = ScopeSet.parse(lab)
    decision = scopes.decide("s", "Observation", "patient")
    assert decision.allowed and not decision.unrestricted
    assert decision.filters == (
        (("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),),
    )
    assert not scopes.allows("s", "Observation", "patient")
    assert scopes.query_filters("c", "Observation", "patient") == ()
    assert not scopes.decide("c", "Observation", "patient").allowed


def test_several_filters_are_alternatives_and_an_unfiltered_scope_wins() -> None:
    scopes = ScopeSet.parse(
        "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs&status=final"
    )
    assert scopes.query_filters("r", "Observation", "patient") == (
        (("category", "laboratory"),),
        (("category", "vital-signs"), ("status", "final")),
    )
    widened = scopes.with_scopes("patient/Observation.r")
    assert widened.allows("r", "Observation", "patient")
    assert widened.query_filters("r", "Observation", "patient") == ()
    # search is still only filtered
    assert widened.query_filters("s", "Observation", "patient") != ()


@pytest.mark.parametrize(
    "token",
    [
        "patient/Observation.dus",  # letters out of order
        "patient/Observation.rr",
        "patient/Observation.",
        "patient/Observation.x",
        "Patient/Observation.read",  # context is lower case
        "patient/observation.read",  # resource type is a FHIR type name
        "practitioner/Observation.read",
        "patient/Observation.read?category=x",  # query filters are v2 only
        "patient/Observation.rs?",
        "patient/Observation.rs?novalue",
        "launch/Patient",  # launch context types are lower case
        "patient/Observation",
    ],
)
def test_invalid_scopes_are_ignored_and_grant_nothing(token: str) -> None:
    scopes = ScopeSet.parse(f"{token} user/Goal.r")
    assert scopes.unrecognized == (token,)
    assert allowed_letters(scopes, "Observation", "patient") == ""
    assert scopes.allows("r", "Goal", "user")
    assert token in str(scopes)  # kept, so the string round-trips


@pytest.mark.parametrize("token", ["patient/Observation.dus", "email", "patient/Observation.read?x=1"])
def test_strict_parsing_rejects_invalid_scopes(token: str) -> None:
    with pytest.raises(ScopeError, match="not a valid SMART scope"):
        ScopeSet.parse(f"openid {token}", strict=True)


def test_special_and_launch_scopes() -> None:
    scopes = ScopeSet.parse(
        "launch launch/patient launch/encounter launch/diagnosticreport?role=https://example.org/role "
        "openid fhirUser online_access"
    )
    assert scopes.ehr_launch
    assert scopes.launch_contexts == {"patient", "encounter", "diagnosticreport"}
    role = [s for s in scopes.launch_scopes if s.context == "diagnosticreport"][0]
    assert role.role == "https://example.org/role"
    assert scopes.online_access and not scopes.offline_access
    assert scopes.unrecognized == ()
    standalone = ScopeSet.parse("launch/patient patient/*.rs")
    assert not standalone.ehr_launch and standalone.launch_contexts == {"patient"}


def test_system_scopes() -> None:
    scopes = ScopeSet.parse("system/Patient.rs system/*.read")
    assert scopes.allows("r", "Observation", "system")
    assert not scopes.allows("c", "Patient", "system")
    assert not scopes.allows("r", "Patient", "user")


def test_uri_form_is_understood() -> None:
    scopes = ScopeSet.parse(
        "http://smarthealthit.org/fhir/scopes/patient/*.rs http://openid.net/specs/openid-connect-core-1_0#openid"
    )
    assert scopes.allows("r", "Goal", "patient")
    assert scopes.openid
    assert "openid" in scopes


def test_parse_scope_types() -> None:
    scope = parse_scope("user/Goal.read")
    assert isinstance(scope, ResourceScope)
    assert scope.version == 1 and scope.interactions == frozenset("rs") and scope.context == "user"
    assert isinstance(parse_scope("launch"), LaunchScope)
    assert parse_scope("offline_access") == "offline_access"
    assert parse_scope("nonsense") is None


def test_set_behaviour_dedupes_and_compares_as_a_set() -> None:
    scopes = ScopeSet.parse("openid  openid patient/Goal.r")
    assert len(scopes) == 2
    assert str(scopes) == "openid patient/Goal.r"
    assert scopes == ScopeSet.parse("patient/Goal.r openid")
    assert ScopeSet.parse("patient/Goal.r").issubset(scopes)
    assert not ScopeSet.parse("patient/Goal.rs").issubset(scopes)
    assert len(ScopeSet.parse(None)) == 0


def test_bad_questions_raise() -> None:
    scopes = ScopeSet.parse("user/*.cruds")
    with pytest.raises(ScopeError):
        scopes.allows("x", "Goal", "user")
    with pytest.raises(ScopeError):
        scopes.allows("r", "Goal", "admin")


def test_fhir_interaction_names_map_to_letters() -> None:
    assert {
        name: interaction_code(name) for name in ("vread", "history-instance", "patch", "history-type")
    } == {
        "vread": "r",
        "history-instance": "r",
        "patch": "u",
        "history-type": "s",
    }
    assert set(INTERACTION_CODES.values()) == set(ALL)
    with pytest.raises(ScopeError):
        interaction_code("transaction")
    assert ScopeSet.parse("user/Goal.u").interactions("Goal", "user") == {"u"}


@pytest.mark.parametrize(
    ("granted", "asked", "covered"),
    [
        ("patient/Goal.cruds", "patient/Goal.rs", True),
        ("patient/*.read", "patient/Goal.rs patient/CarePlan.r", True),
        ("patient/Goal.rs", "patient/Goal.cruds", False),
        ("patient/Goal.rs", "patient/*.rs", False),
        ("patient/*.rs", "patient/*.s", True),
        ("patient/Goal.rs", "user/Goal.rs", False),
        ("patient/Observation.rs?category=lab", "patient/Observation.rs", False),
        ("patient/Observation.rs?category=lab", "patient/Observation.s?category=lab", True),
        ("patient/Observation.rs", "patient/Observation.rs?category=lab", True),
        ("openid offline_access patient/Goal.r", "offline_access", True),
        ("patient/Goal.r", "offline_access", False),
    ],
)
def test_covers_is_permission_by_permission(granted: str, asked: str, covered: bool) -> None:
    assert ScopeSet.parse(granted).covers(ScopeSet.parse(asked)) is covered
