"""Rule engine: each code's thresholds, groups, credentials, telehealth, payer overrides (pure, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_ecr.billing import BilledItem, RuleTableError, evaluate, load_rules, npi_valid, units_for
from tests.billing.factories import (
    BAD_NPI,
    COMMERCIAL,
    CPT,
    FOLLOW_UP,
    GROUP,
    HCPCS,
    INITIAL,
    MEDI_CAL,
    PATIENT,
    coach,
    rules,
    session,
)

MARCH = {"start": date(2026, 3, 1), "end": date(2026, 3, 31)}
RULES = rules()


def run(*sessions, table=RULES, **kw):
    return evaluate(sessions, table, **{**MARCH, **kw})


def only_line(ev):
    assert not ev.findings, ev.findings
    assert len(ev.lines) == 1, ev.lines
    return ev.lines[0]


def only_finding(ev, code):
    assert not ev.lines, ev.lines
    assert [f.code for f in ev.findings] == [code], ev.findings
    return ev.findings[0]


@pytest.mark.parametrize(("kind", "code", "minutes"), [(FOLLOW_UP, "0592T", 30), (GROUP, "0593T", 30)])
def test_30_minute_codes_bill_at_exactly_30_and_not_at_29(kind, code, minutes):
    size = 2 if kind == GROUP else 1
    line = only_line(run(session(types=(kind,), minutes=minutes, group_size=size)))
    assert (line.code, line.units, line.pos, line.modifiers) == (code, 1, "11", ())
    finding = only_finding(run(session(types=(kind,), minutes=minutes - 1, group_size=size)), "too-short")
    assert "29 min" in finding.message


def test_initial_assessment_has_no_time_minimum_and_bills_once_per_patient():
    first = session(encounter_id="a", types=(INITIAL,), minutes=10)
    second = session(encounter_id="b", types=(INITIAL,), minutes=60, day=date(2026, 3, 20))
    ev = run(first, second)
    assert [ln.code for ln in ev.lines] == ["0591T"] and ev.lines[0].encounter_id == "a"
    [f] = ev.findings
    assert (f.encounter_id, f.code) == ("b", "frequency-limit") and "2026-03-10" in f.message
    # an initial assessment billed in an earlier export counts too
    prior = BilledItem("Encounter/old", PATIENT.id, "0591T", date(2025, 6, 1))
    only_finding(run(first, billed=[prior]), "frequency-limit")


def test_group_of_one_and_of_two():
    only_finding(run(session(types=(GROUP,), minutes=45, group_size=1)), "group-of-one")
    line = only_line(run(session(types=(GROUP,), minutes=45, group_size=2, group_id="g")))
    assert line.code == "0593T"
    # an individual code for a session with several people is refused
    only_finding(run(session(types=(FOLLOW_UP,), minutes=45, group_size=2)), "not-individual")


def test_group_session_bills_each_participant():
    a = session(encounter_id="p1", types=(GROUP,), minutes=40, group_id="g", group_size=3)
    b = session(
        encounter_id="p2",
        types=(GROUP,),
        minutes=40,
        group_id="g",
        group_size=3,
        patient=replace(PATIENT, id="pat-2", given="Ben"),
    )
    ev = run(a, b)
    assert sorted((ln.patient.id, ln.code) for ln in ev.lines) == [("pat-1", "0593T"), ("pat-2", "0593T")]


@pytest.mark.parametrize("kind", [INITIAL, FOLLOW_UP, GROUP])
def test_missing_or_expired_credential(kind):
    s = session(types=(kind,), minutes=45, group_size=2 if kind == GROUP else 1)
    only_finding(run(replace(s, coach=coach("other"))), "no-credential")
    only_finding(run(replace(s, coach=None)), "no-coach")
    only_finding(run(replace(s, coach=coach("ches", end=date(2026, 2, 28)))), "credential-expired")
    assert only_line(run(replace(s, coach=coach("mches")))).units == 1


def test_medicare_telehealth_video_and_audio_only():
    video = only_line(run(session(modality="video")))
    assert (video.pos, video.modifiers) == ("10", ("95",))
    away = only_line(run(session(modality="video", at_home=False)))
    assert (away.pos, away.modifiers) == ("02", ("95",))
    audio = only_line(run(session(modality="audio-only")))
    assert (audio.pos, audio.modifiers) == ("10", ("93",))


def test_audio_only_refused_by_a_payer_that_does_not_pay_it():
    # the default (commercial) payer pays video but not audio-only
    assert only_line(run(session(modality="video", insurance=COMMERCIAL))).modifiers == ("95",)
    f = only_finding(run(session(modality="audio-only", insurance=COMMERCIAL)), "audio-only-not-allowed")
    assert "0592T" in f.message


def test_medicare_is_billed_incident_to_the_supervising_practitioner():
    line = only_line(run(session()))
    assert line.rendering.npi == "1245319599" and line.rendering.reference == "Practitioner/dr"
    only_finding(run(session(supervisor=None)), "missing-supervisor")
    # a commercial payer takes the coach (who has an NPI) as rendering provider
    assert only_line(run(session(insurance=COMMERCIAL))).rendering.reference == "PractitionerRole/coach"


def test_charges_come_from_the_payer_fee_schedule():
    assert only_line(run(session())).charge == Decimal("75.00")  # medicare
    assert only_line(run(session(insurance=COMMERCIAL))).charge == Decimal("90.00")  # default
    assert only_line(run(session(insurance=MEDI_CAL))).charge == Decimal("41.08")  # medi-cal
    assert only_line(run(session(insurance=None))).payer == "self-pay"


def test_no_fee_on_file_is_a_finding():
    # Medicare has a G0447 fee in the practice file, the commercial (default) schedule has none
    ibt = session(types=(f"{HCPCS}|G0447",), minutes=15, diagnoses=("E66.9", "Z68.35"))
    assert only_line(run(ibt)).charge == Decimal("27.00")
    f = only_finding(run(replace(ibt, insurance=COMMERCIAL)), "no-fee")
    assert "G0447" in f.message


def test_per_payer_override_medi_cal_midpoint_and_same_day_rule():
    only_finding(run(session(minutes=15, insurance=MEDI_CAL)), "too-short")
    assert only_line(run(session(minutes=16, insurance=MEDI_CAL))).code == "0592T"
    only_finding(run(session(minutes=16)), "too-short")  # Medicare keeps 30 minutes
    # 0591T is not billed the same day as 0592T, whichever comes first
    ini = session(encounter_id="a", types=(INITIAL,), insurance=MEDI_CAL)
    fol = session(encounter_id="b", minutes=40, insurance=MEDI_CAL)
    ev = run(ini, fol)
    assert [ln.code for ln in ev.lines] == ["0591T"]
    assert [(f.encounter_id, f.code) for f in ev.findings] == [("b", "same-day-conflict")]
    # Medi-Cal allows two initial assessments a year
    ev = run(
        session(encounter_id="x", types=(INITIAL,), insurance=MEDI_CAL),
        session(encounter_id="y", types=(INITIAL,), insurance=MEDI_CAL, day=date(2026, 3, 20)),
    )
    assert [ln.code for ln in ev.lines] == ["0591T", "0591T"]


def test_missing_diagnosis_and_required_bmi_diagnosis_for_g0447():
    only_finding(run(session(diagnoses=())), "missing-diagnosis")
    ibt = {"types": (f"{HCPCS}|G0447",), "minutes": 15}
    only_finding(run(session(**ibt, diagnoses=("E66.9",))), "required-diagnosis-missing")
    only_finding(run(session(**ibt, diagnoses=("E66.9", "Z68.29"))), "required-diagnosis-missing")
    line = only_line(run(session(**ibt, diagnoses=("Z71.3", "Z68.35", "E66.9"))))
    assert line.code == "G0447" and line.diagnoses[:3] == ("E66.9", "Z68.35", "Z71.3")  # obesity, then BMI
    only_finding(
        run(session(types=(f"{HCPCS}|G0447",), minutes=14, diagnoses=("E66.01", "Z68.41"))), "too-short"
    )


def test_g0473_group_of_2_to_10():
    g = {"types": (f"{HCPCS}|G0473",), "minutes": 30, "diagnoses": ("E66.811", "Z68.30")}
    only_finding(run(session(**g, group_size=1)), "group-of-one")
    assert only_line(run(session(**g, group_size=10))).code == "G0473"
    only_finding(run(session(**g, group_size=11)), "group-too-large")


@pytest.mark.parametrize(
    ("minutes", "code"),
    [(7, None), (8, "99401"), (22, "99401"), (23, "99402"), (38, "99403"), (53, "99404"), (90, "99404")],
)
def test_preventive_counselling_time_bands(minutes, code, tmp_path: Path):
    fees = tmp_path / "fees.yaml"
    fees.write_text(
        "version: 1\npayers:\n  default:\n    fees: {'99401': 40, '99402': 60, '99403': 80, '99404': 100}\n"
    )
    table = rules(fees)
    ev = run(session(types=(f"{CPT}|99401",), minutes=minutes, insurance=COMMERCIAL), table=table)
    if code is None:
        only_finding(ev, "too-short")
    else:
        assert only_line(ev).code == code


def test_self_management_education_units_and_group_size(tmp_path: Path):
    fees = tmp_path / "fees.yaml"
    fees.write_text("version: 1\npayers:\n  default:\n    fees: {'98960': 30, '98961': 15, '98962': 10}\n")
    table = rules(fees)
    dsme = {"types": (f"{CPT}|98960",), "insurance": COMMERCIAL}
    line = only_line(run(session(**dsme, minutes=46), table=table))
    assert (line.code, line.units, line.charge) == ("98960", 2, Decimal("60.00"))
    assert only_line(run(session(**dsme, minutes=45, group_size=4), table=table)).code == "98961"
    assert only_line(run(session(**dsme, minutes=30, group_size=5), table=table)).code == "98962"
    only_finding(run(session(**dsme, minutes=15), table=table), "too-short")
    only_finding(run(session(**dsme, minutes=30, group_size=9), table=table), "group-too-large")


def test_monthly_chi_minutes_add_up_per_calendar_month(tmp_path: Path):
    fees = tmp_path / "fees.yaml"
    fees.write_text("version: 1\npayers:\n  medicare:\n    fees: {'G0019': 80, 'G0022': 50}\n")
    table = rules(fees)
    chi = (f"{HCPCS}|G0019",)
    days = [date(2026, 3, d) for d in (3, 10, 17, 24)]
    sessions = [session(encounter_id=f"c{i}", types=chi, minutes=30, day=d) for i, d in enumerate(days)]
    ev = run(*sessions, table=table)
    assert [(ln.code, ln.units, ln.day) for ln in ev.lines] == [
        ("G0019", 1, date(2026, 3, 24)),
        ("G0022", 2, date(2026, 3, 24)),
    ]
    short = run(*sessions[:1], table=table)
    assert [f.code for f in short.findings] == ["too-short"]
    partial = evaluate(sessions, table, start=date(2026, 3, 1), end=date(2026, 3, 20))
    assert not partial.lines and {f.code for f in partial.findings} == {"month-incomplete"}


def test_already_billed_sessions_are_skipped_unless_rebilled():
    s = session()
    prior = BilledItem("Encounter/enc-1", PATIENT.id, "0592T", s.day)
    only_finding(run(s, billed=[prior]), "already-billed")
    assert only_line(run(s, billed=[prior], rebill=True)).key == "Encounter/enc-1"


def test_payer_filter_and_invalid_npi():
    ev = run(session(encounter_id="m"), session(encounter_id="c", insurance=COMMERCIAL), payer="medicare")
    assert [ln.encounter_id for ln in ev.lines] == ["m"] and not ev.findings
    only_finding(run(session(insurance=COMMERCIAL, coach=coach(npi=BAD_NPI))), "invalid-npi")


def test_incomplete_demographics_block_electronic_claims_only():
    homeless = replace(PATIENT, address_line=None)
    only_finding(run(session(patient=homeless)), "incomplete-demographics")
    assert only_line(run(session(patient=homeless, insurance=None))).payer == "self-pay"


def test_npi_check_digit_and_units():
    assert npi_valid("1234567893") and npi_valid("1245319599")
    assert not npi_valid("1234567890") and not npi_valid("123456789") and not npi_valid("12345678a3")
    assert [units_for(m, 30) for m in (15, 16, 45, 46, 75, 76)] == [0, 1, 1, 2, 2, 3]
    assert units_for(200, 30, max_units=4) == 4


def test_rule_table_errors_name_the_problem(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nservices:\n  x:\n    description: y\n    match: [nopipe]\n    code: '0592T'\n"
    )
    with pytest.raises(RuleTableError) as exc:
        load_rules(bad)
    assert any("services.x.match" in p and "system|code" in p for p in exc.value.problems)
    typo = tmp_path / "typo.yaml"
    typo.write_text("version: 1\npayers:\n  medicare:\n    fess: {}\n")
    with pytest.raises(RuleTableError) as exc:
        load_rules(typo)
    assert any("fess" in p for p in exc.value.problems)
    override = tmp_path / "override.yaml"
    override.write_text("version: 1\npayers:\n  medicare:\n    services: {coaching-nope: {min_minutes: 1}}\n")
    with pytest.raises(RuleTableError, match="coaching-nope: no such service"):
        load_rules(override)
    assert RuleTableError.__mro__[2].__name__ == "FhirError"
