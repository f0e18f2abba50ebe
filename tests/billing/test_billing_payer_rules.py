"""Issue #15, billing items 1-5: payer rules kept as data, each tested at the boundary its source names.

1. Medicare pays audio-only telehealth only with the beneficiary at home (42 CFR 410.78(a)(3), CY 2025 PFS).
2. Time-based preventive counselling bills one code per patient per day, for the day's total time (CPT).
3. G0447/G0473: 22 visits in a rolling 12 months, counted together; obesity listed first, the BMI code after it
   (NCD 210.12; ICD-10-CM guideline I.C.21.c.3); a calendar-year limit says so.
4. Medi-Cal: 0592T/0593T in 30-minute units with a 16-minute midpoint, at most 3 units a day; 0591T >= 30 minutes.
5. The payer ID comes from the rule table or a payer identifier of a system the table names; never invented.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_ecr.billing import (
    BilledItem,
    Envelope,
    Insurance,
    RuleTableError,
    build_claims,
    evaluate,
    load_rules,
    render_837p,
    validate_837p,
)
from fhir_ecr.billing.engine import day_key
from tests.billing.factories import (
    COMMERCIAL,
    CPT,
    HCPCS,
    INITIAL,
    MEDI_CAL,
    PATIENT,
    PAYER_ID_SYSTEM,
    rules,
    session,
)

RULES = rules()
YEAR = {"start": date(2025, 1, 1), "end": date(2026, 12, 31)}
G0447, G0473 = (f"{HCPCS}|G0447",), (f"{HCPCS}|G0473",)
IBT_DX = ("E66.9", "Z68.35")


def run(*sessions, table=RULES, **kw):
    return evaluate(sessions, table, **{**YEAR, **kw})


def codes(ev):
    return [(f.encounter_id, f.code) for f in ev.findings]


# -- 1. place of service conditions of telehealth, per payer ------------------------------------------------------


def test_medicare_audio_only_is_paid_only_with_the_beneficiary_at_home():
    home = run(session(modality="audio-only", at_home=True))
    assert [(ln.pos, ln.modifiers) for ln in home.lines] == [("10", ("93",))] and not home.findings
    away = run(session(modality="audio-only", at_home=False))
    assert not away.lines and codes(away) == [("enc-1", "telehealth-place-not-covered")]
    assert "at home" in away.findings[0].message
    # video away from home stays payable (POS 02), and a payer whose places allow it pays audio-only away too
    assert [ln.pos for ln in run(session(modality="video", at_home=False)).lines] == ["02"]
    assert [
        ln.pos for ln in run(session(modality="audio-only", at_home=False, insurance=MEDI_CAL)).lines
    ] == ["02"]


def test_telehealth_places_are_rule_data_a_practice_can_change(tmp_path: Path):
    wider = tmp_path / "wider.yaml"
    wider.write_text(
        "version: 1\npayers:\n  medicare:\n    telehealth: {places: {audio-only: [home, other]}}\n"
    )
    ev = run(session(modality="audio-only", at_home=False), table=rules(wider))
    assert [(ln.pos, ln.modifiers) for ln in ev.lines] == [("02", ("93",))]
    narrower = tmp_path / "narrower.yaml"
    narrower.write_text("version: 1\npayers:\n  medicare:\n    telehealth: {places: {video: [home]}}\n")
    assert codes(run(session(modality="video", at_home=False), table=rules(narrower))) == [
        ("enc-1", "telehealth-place-not-covered")
    ]
    assert RULES.payer("medicare").telehealth.places["audio-only"] == ("home",)


# -- 2. one code a day for the day's total time --------------------------------------------------------------------


@pytest.fixture(scope="module")
def counselling_rules(tmp_path_factory: pytest.TempPathFactory):
    fees = tmp_path_factory.mktemp("fees") / "fees.yaml"
    fees.write_text(
        "version: 1\npayers:\n  default:\n    fees: {'99401': 40, '99402': 60, '99403': 80, '99404': 100,"
        " '99411': 20, '99412': 30}\n"
    )
    return rules(fees)


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [(8, 14, "99401"), (8, 15, "99402"), (20, 17, "99402"), (20, 18, "99403"), (30, 23, "99404")],
)
def test_two_counselling_sessions_on_one_day_bill_one_code_for_the_total(
    counselling_rules, first, second, code
):
    kind = {"types": (f"{CPT}|99401",), "insurance": COMMERCIAL}
    morning = session(encounter_id="am", minutes=first, **kind)
    evening = session(encounter_id="pm", minutes=second, **kind)
    ev = run(morning, evening, table=counselling_rules)
    assert [(ln.code, ln.minutes, ln.units) for ln in ev.lines] == [(code, first + second, 1)]
    assert ev.lines[0].key == day_key(PATIENT.id, "preventive-counselling-individual", morning.day)
    assert codes(ev) == [("am", "billed-with-day")]
    # when the day's line bills nothing, every session of the day says why (no 99401-99404 fees by default)
    assert codes(run(morning, evening)) == [("am", "no-fee"), ("pm", "no-fee")]


def test_counselling_on_different_days_and_group_counselling(counselling_rules):
    kind = {"types": (f"{CPT}|99401",), "insurance": COMMERCIAL, "minutes": 15}
    ev = run(
        session(encounter_id="a", **kind),
        session(encounter_id="b", day=date(2026, 3, 11), **kind),
        table=counselling_rules,
    )
    assert [ln.code for ln in ev.lines] == ["99401", "99401"]
    group = {"types": (f"{CPT}|99411",), "insurance": COMMERCIAL, "group_size": 4}
    ev = run(
        session(encounter_id="g1", minutes=25, **group),
        session(encounter_id="g2", minutes=25, **group),
        table=counselling_rules,
    )
    assert [(ln.code, ln.minutes) for ln in ev.lines] == [("99412", 50)]
    # a second export of the same day is already billed (the day's line), unless rebilled
    prior = BilledItem(ev.lines[0].key, PATIENT.id, "99412", date(2026, 3, 10))
    again = run(session(encounter_id="g3", minutes=25, **group), table=counselling_rules, billed=[prior])
    assert not again.lines and codes(again) == [("g3", "already-billed")]


# -- 3. rolling frequency windows, shared counters, diagnosis order ----------------------------------------------


def _ibt_billed(first: date, n: int, code: str = "G0447") -> list[BilledItem]:
    return [
        BilledItem(f"Encounter/old-{i}", PATIENT.id, code, first + timedelta(days=14 * i)) for i in range(n)
    ]


def test_g0447_22_visits_in_a_rolling_12_months_then_a_finding():
    visits = [
        session(
            encounter_id=f"v{i:02d}",
            types=G0447,
            minutes=15,
            diagnoses=IBT_DX,
            day=date(2025, 6, 2) + timedelta(days=7 * i),
        )
        for i in range(23)
    ]
    ev = run(*visits)
    assert len(ev.lines) == 22 and codes(ev) == [("v22", "frequency-limit")]
    assert "rolling" in ev.findings[0].message


def test_the_rolling_window_crosses_the_calendar_year_and_ends_a_year_after_a_visit():
    # 22 visits from 2025-03-10, every two weeks: the 22nd is on 2025-12-15
    billed = _ibt_billed(date(2025, 3, 10), 22)
    on_the_anniversary_eve = session(types=G0447, minutes=15, diagnoses=IBT_DX, day=date(2026, 3, 9))
    assert codes(run(on_the_anniversary_eve, billed=billed)) == [("enc-1", "frequency-limit")]
    # on 2026-03-10 the window is 2025-03-11..2026-03-10: the first visit has left it, 21 remain
    on_the_anniversary = replace(on_the_anniversary_eve, day=date(2026, 3, 10))
    assert [ln.code for ln in run(on_the_anniversary, billed=billed).lines] == ["G0447"]


def test_g0447_and_g0473_count_together():
    billed = _ibt_billed(date(2026, 1, 5), 12) + _ibt_billed(date(2026, 1, 12), 10, "G0473")
    individual = session(types=G0447, minutes=15, diagnoses=IBT_DX, day=date(2026, 7, 6))
    group = session(types=G0473, minutes=30, diagnoses=IBT_DX, day=date(2026, 7, 6), group_size=5)
    for s in (individual, group):
        ev = run(s, billed=billed)
        assert codes(ev) == [("enc-1", "frequency-limit")] and "counted together" in ev.findings[0].message
    assert [ln.code for ln in run(individual, billed=billed[1:]).lines] == ["G0447"]


def test_a_yearly_limit_must_say_calendar_or_rolling(tmp_path: Path):
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        "version: 1\npayers:\n  medi-cal:\n    services:\n      coaching-initial:\n"
        "        frequency: {year: 2}\n"
    )
    with pytest.raises(RuleTableError) as exc:
        load_rules(Path(RULES.sources[1]), bare)
    assert any("window" in p and "calendar" in p and "rolling" in p for p in exc.value.problems)
    # Medi-Cal's 0591T: twice a calendar year — December twice, then January again
    dec = [BilledItem(f"Encounter/d{i}", PATIENT.id, "0591T", date(2025, 12, 1 + i)) for i in range(2)]
    initial = session(types=(INITIAL,), minutes=30, insurance=MEDI_CAL, day=date(2025, 12, 20))
    assert codes(run(initial, billed=dec)) == [("enc-1", "frequency-limit")]
    assert [ln.code for ln in run(replace(initial, day=date(2026, 1, 2)), billed=dec).lines] == ["0591T"]


@pytest.mark.parametrize(
    ("dx", "ok"),
    [
        (("Z68.35",), False),  # a BMI code alone: no associated diagnosis
        (("E66.3", "Z68.35"), False),  # overweight is not obesity (NCD 210.12: BMI >= 30)
        (("E66.9",), False),  # obesity without the BMI code
        (("Z68.35", "E66.01"), True),  # both: listed obesity first whatever the order given
        (("E66.812", "Z68.41", "I10"), True),
    ],
)
def test_ibt_lists_the_obesity_diagnosis_first_and_the_bmi_after_it(dx, ok):
    ev = run(session(types=G0447, minutes=15, diagnoses=dx))
    if not ok:
        assert codes(ev) == [("enc-1", "required-diagnosis-missing")]
        return
    [line] = ev.lines
    assert line.diagnoses[0].startswith("E66.") and line.diagnoses[1].startswith("Z68.")
    claims = build_claims(ev.lines, RULES)
    text = render_837p(claims, RULES, Envelope(5, datetime(2026, 4, 1, tzinfo=UTC)))
    assert f"HI*ABK:{line.diagnoses[0].replace('.', '')}*ABF:{line.diagnoses[1].replace('.', '')}" in text


# -- 4. units with a midpoint, daily unit caps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "units"), [(15, 0), (16, 1), (45, 1), (46, 2), (60, 2), (75, 2), (76, 3)]
)
def test_medi_cal_0592t_in_30_minute_units_with_a_16_minute_midpoint(minutes, units):
    ev = run(session(minutes=minutes, insurance=MEDI_CAL))
    if units == 0:
        assert codes(ev) == [("enc-1", "too-short")]
        return
    [line] = ev.lines
    assert (line.code, line.units, line.charge) == ("0592T", units, Decimal("41.08") * units)
    # Medicare bills 0592T per session ("at least 30 minutes"), one unit however long
    assert [ln.units for ln in run(session(minutes=max(minutes, 30))).lines] == [1]


def test_medi_cal_at_most_3_units_a_day():
    three = [session(encounter_id=f"s{i}", minutes=30, insurance=MEDI_CAL) for i in range(4)]
    ev = run(*three)
    assert [ln.units for ln in ev.lines] == [1, 1, 1] and codes(ev) == [("s3", "daily-unit-limit")]
    # 60 + 60 minutes: 2 units, then 1 of the next 2 fits
    ev = run(
        session(encounter_id="a", minutes=60, insurance=MEDI_CAL),
        session(encounter_id="b", minutes=60, insurance=MEDI_CAL),
    )
    assert [(ln.encounter_id, ln.units) for ln in ev.lines] == [("a", 2), ("b", 1)]
    assert (
        codes(ev) == [("b", "daily-unit-limit")] and "1 of this session's 2 units" in ev.findings[0].message
    )
    # units billed in an earlier export count; the next day starts again
    prior = BilledItem("Encounter/old", PATIENT.id, "0592T", date(2026, 3, 10), units=3)
    assert codes(run(session(minutes=30, insurance=MEDI_CAL), billed=[prior])) == [
        ("enc-1", "daily-unit-limit")
    ]
    assert [
        ln.units
        for ln in run(session(minutes=30, insurance=MEDI_CAL, day=date(2026, 3, 11)), billed=[prior]).lines
    ] == [1]


def test_medi_cal_0591t_needs_30_minutes():
    initial = {"types": (INITIAL,), "insurance": MEDI_CAL}
    assert codes(run(session(minutes=29, **initial))) == [("enc-1", "too-short")]
    assert [ln.code for ln in run(session(minutes=30, **initial)).lines] == ["0591T"]
    assert [ln.code for ln in run(session(minutes=10, types=(INITIAL,))).lines] == [
        "0591T"
    ]  # Medicare: no time


# -- 5. payer identifiers --------------------------------------------------------------------------------------------


def test_no_payer_id_is_a_finding_not_an_invented_one():
    unnamed = Insurance(
        "cov-9", ("BETA-1",), "Beta Health", "B123", (("urn:oid:2.16.840.1.113883.6.300", "BETA-1"),)
    )
    ev = run(session(insurance=unnamed))
    assert not ev.lines and codes(ev) == [("enc-1", "no-payer-id")]
    assert "https://mecr.dev/fhir/sid/payer-id" in ev.findings[0].message
    named = replace(
        unnamed, identifiers=(("urn:oid:2.16.840.1.113883.6.300", "BETA-1"), (PAYER_ID_SYSTEM, "60054"))
    )
    [line] = run(session(insurance=named)).lines
    assert line.payer_id == "60054"
    text = render_837p(build_claims([line], RULES), RULES, Envelope(1, datetime(2026, 4, 1, tzinfo=UTC)))
    validate_837p(text)
    assert "NM1*PR*2*BETA HEALTH*****PI*60054~" in text and "PI*DEFAULT" not in text
    # the rule table's own payer_id wins over the Organization's identifiers
    medicare = run(session()).lines[0]
    assert medicare.payer_id == "00952"
