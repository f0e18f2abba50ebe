"""837P: pyx12 accepts every interchange we write and reads the same claims back; our own checks catch what
pyx12 misses; claims split at 50 lines and 12 diagnoses; the same claims give the same bytes."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fhir_ecr.billing import (
    Envelope,
    ExportCheckError,
    X12ValidationError,
    build_claims,
    check_837p,
    check_claims,
    claims_bundle,
    evaluate,
    render_837p,
    validate_837p,
)
from fhir_ecr.billing.x12 import ENVELOPE_ELEMENTS
from tests.billing.factories import COMMERCIAL, GROUP, INITIAL, MEDI_CAL, PATIENT, rules, session
from tests.billing.x12_support import read_claims

RULES = rules()
WHEN = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


def claims_for(sessions, start=date(2026, 1, 1), end=date(2026, 12, 31)):
    ev = evaluate(sessions, RULES, start=start, end=end)
    return ev, build_claims(ev.lines, RULES)


def mixed_sessions():
    other = replace(PATIENT, id="pat-2", family="Okafor", given="James", gender="male")
    return [
        session(
            encounter_id="e1",
            types=(INITIAL,),
            minutes=50,
            day=date(2026, 3, 2),
            diagnoses=("E66.9", "Z68.35", "R73.03", "Z71.3", "Z71.89"),
        ),
        session(encounter_id="e2", modality="video", day=date(2026, 3, 9)),
        session(encounter_id="e3", modality="video", at_home=False, day=date(2026, 3, 16)),
        session(
            encounter_id="e4", types=(GROUP,), minutes=45, group_size=3, group_id="g", day=date(2026, 3, 23)
        ),
        session(encounter_id="e5", patient=other, insurance=COMMERCIAL, minutes=40, day=date(2026, 3, 5)),
        session(encounter_id="e6", patient=other, insurance=COMMERCIAL, minutes=40, day=date(2026, 4, 5)),
        session(
            encounter_id="e7",
            patient=replace(PATIENT, id="pat-3"),
            insurance=MEDI_CAL,
            minutes=20,
            day=date(2026, 3, 5),
        ),
        session(encounter_id="e8", insurance=None, day=date(2026, 3, 30)),  # self-pay: no claim
    ]


def test_pyx12_accepts_the_interchange_and_reads_back_the_same_claims():
    ev, claims = claims_for(mixed_sessions())
    assert not ev.findings
    text = render_837p(claims, RULES, Envelope(42, WHEN))
    ack = validate_837p(text)
    assert "IK5*A" in ack and "AK9*A" in ack
    parsed = read_claims(text)
    assert [c["id"] for c in parsed] == [c.id for c in claims]
    assert len(claims) == 4 and all(c.payer != "self-pay" for c in claims)
    for got, want in zip(parsed, claims, strict=True):
        assert Decimal(got["total"]) == want.total == sum(ln.charge for ln in want.lines)
        assert got["pos"] == want.pos
        assert got["dx"] == [d.replace(".", "") for d in want.diagnoses]
        assert [
            (ln["code"], ln["modifiers"], Decimal(ln["charge"]), int(ln["units"]), ln["date"])
            for ln in got["lines"]
        ] == [
            (ln.code, list(ln.modifiers), ln.charge, ln.units, ln.day.strftime("%Y%m%d")) for ln in want.lines
        ]
        if want.payer == "medicare":  # incident-to: the supervising practitioner renders
            assert got["rendering"] == "1245319599"
    medicare = next(c for c in parsed if len(c["lines"]) == 4)
    assert [ln["pos"] for ln in medicare["lines"]] == ["", "10", "02", ""]  # SV105 only when it differs
    assert medicare["lines"][0]["pointers"] == "1:2:3:4"
    assert re.search(r"SBR\*P\*18\*{7}MB~", text) and re.search(r"SBR\*P\*18\*{7}CI~", text)
    assert "NM1*DQ*1*SHAH*AMY****XX*1245319599~" in text  # Medi-Cal reports the supervising practitioner


def test_se_ge_iea_counts():
    _, claims = claims_for(mixed_sessions())
    text = render_837p(claims, RULES, Envelope(7, WHEN))
    segments = [s.strip() for s in text.split("~") if s.strip()]
    sts = [i for i, s in enumerate(segments) if s.startswith("ST*")]
    assert len(sts) == 3  # one transaction per payer: medi-cal, medicare, default
    for i in sts:
        j = next(k for k in range(i, len(segments)) if segments[k].startswith("SE*"))
        assert segments[j].split("*")[1] == str(j - i + 1)
    assert segments[-2] == "GE*3*7" and segments[-1] == "IEA*1*000000007"


def test_claims_split_at_50_lines_and_12_diagnoses():
    many = [
        session(encounter_id=f"e{i:03d}", day=date(2026, 3, 1) + timedelta(days=i % 28), minutes=30 + i)
        for i in range(120)
    ]
    _, claims = claims_for(many)
    assert [len(c.lines) for c in claims] == [50, 50, 20]
    codes = [f"Z71.{n}" for n in (1, 2, 3, 41, 42, 51, 52, 6, 7, 81, 82, 83, 84, 85, 86, 87, 89)]
    dx_heavy = [
        session(encounter_id=f"d{i}", diagnoses=(codes[i],), day=date(2026, 3, 1 + i)) for i in range(14)
    ]
    _, claims = claims_for(dx_heavy)
    assert [len(c.diagnoses) for c in claims] == [12, 2] and not check_claims(claims)
    text = render_837p(claims, RULES, Envelope(1, WHEN))
    validate_837p(text)
    assert [len(c["dx"]) for c in read_claims(text)] == [12, 2]


def test_the_exporter_checks_what_pyx12_misses():
    _, claims = claims_for(mixed_sessions())
    text = render_837p(claims, RULES, Envelope(1, WHEN))
    assert check_837p(text) == []
    mutations = {
        "CLM02": (
            re.sub(r"(CLM\*[^*]+\*)(\d+)", lambda m: m.group(1) + str(int(m.group(2)) + 1), text, count=1),
            "is not the sum of its lines",
        ),
        "NPI": (text.replace("XX*1245319599", "XX*1245319598", 1), "fails the check digit"),
        "dot": (text.replace("ABK:E669", "ABK:E66.9", 1), "not ICD-10-CM without a dot"),
        "pointer": (
            text.replace("SV1*HC:0591T*120*UN*1***1:2:3:4", "SV1*HC:0591T*120*UN*1***1:2:3:9", 1),
            "outside HI",
        ),
    }
    for name, (mutated, message) in mutations.items():
        assert mutated != text, name
        validate_837p(mutated)  # pyx12 lets each of these through …
        assert any(message in p for p in check_837p(mutated)), name  # … our check does not


def test_pyx12_rejections_are_reported_with_the_999():
    _, claims = claims_for(mixed_sessions())
    text = render_837p(claims, RULES, Envelope(1, WHEN))
    broken = re.sub(r"DTP\*472\*D8\*\d+~\n", "", text, count=1)
    with pytest.raises(X12ValidationError) as exc:
        validate_837p(broken)
    assert "IK5*R" in exc.value.ack and exc.value.status == 422


def test_render_refuses_claims_that_fail_checks():
    _, claims = claims_for([session()])
    claims[0].diagnoses.append("E66..9")  # not an ICD-10-CM code
    with pytest.raises(ExportCheckError, match="is not an ICD-10-CM code"):
        render_837p(claims, RULES, Envelope(1, WHEN))


def _mask(text: str) -> str:
    segs = []
    for seg in text.split("~"):
        el = seg.split("*")
        tag = el[0].strip()
        for t, pos in ENVELOPE_ELEMENTS:
            if tag == t and len(el) > pos:
                el[pos] = "#"
        segs.append("*".join(el))
    return "~".join(segs)


def test_same_claims_same_bytes_apart_from_the_envelope():
    sessions = mixed_sessions()
    _, a = claims_for(sessions)
    _, b = claims_for(list(reversed(sessions)))
    one = render_837p(a, RULES, Envelope(1, WHEN))
    two = render_837p(b, RULES, Envelope(99, WHEN + timedelta(days=3, hours=2)))
    assert one != two and _mask(one) == _mask(two)


def test_fhir_claims_validate_as_r4_professional_claims():
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.claim import Claim

    _, claims = claims_for(mixed_sessions())
    bundle = claims_bundle(claims, RULES.practice, created=WHEN, export_id="1")
    Bundle.model_validate(bundle)
    for entry, claim in zip(bundle["entry"], claims, strict=True):
        res = Claim.model_validate(entry["resource"])
        assert res.type.coding[0].code == "professional" and res.use == "claim"
        assert float(res.total.value) == float(claim.total)
        assert [d.diagnosisCodeableConcept.coding[0].code for d in res.diagnosis] == claim.diagnoses  # dotted
        assert [i.productOrService.coding[0].code for i in res.item] == [ln.code for ln in claim.lines]
        assert res.insurance[0].coverage.reference == f"Coverage/{claim.insurance.coverage_id}"
    group_claim = next(
        e["resource"]
        for e in bundle["entry"]
        if any(i["productOrService"]["coding"][0]["code"] == "0593T" for i in e["resource"]["item"])
    )
    assert group_claim["careTeam"][0]["provider"]["identifier"]["value"] == "1245319599"
