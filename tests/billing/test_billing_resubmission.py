"""Issue #15, billing items 5-7 over the store (SQLite and PostgreSQL).

6. Every claim number (CLM01) is unique across exports for the life of the practice, and every claim is kept as a
   FHIR Claim; ``rebill`` sends replacements (CLM05-3 7, REF*F8 with the payer's claim number when recorded), or
   originals (1) only when the earlier claim was never accepted; a replacement never silently drops lines.
7. A group member whose Encounter is not finished neither counts toward the group size nor is billed.
5. A payer Organization without a payer ID of a named system gives a finding, not ``PI*DEFAULT``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime

from fhir_ecr.billing import ExportRequest, preview, run_export, validate_837p
from fhir_ecr.billing.resubmit import CLAIM_SYSTEM, PAYER_CLAIM_NUMBER_SYSTEM
from fhir_ecr.billing.service import charge_item_id
from tests.billing.factories import encounter, load, patient_resources, practice_resources, rules
from tests.billing.x12_support import read_claims

RULES = rules()
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
T = "2026-03-{:02d}T10:00:00-05:00"
NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def seed(repo) -> None:
    load(
        repo,
        [
            *practice_resources(),
            *patient_resources("ana", dx=("R73.03", "Z71.3")),
            *patient_resources("cy", payer="acme"),
            encounter("ana-1", "ana", "follow-up", T.format(2), 40),
            encounter("ana-2", "ana", "follow-up", T.format(9), 40),
            encounter("ana-3", "ana", "follow-up", T.format(16), 40),
            encounter("cy-1", "cy", "follow-up", T.format(3), 40),
        ],
    )


def export(repo, start=MARCH[0], end=MARCH[1], fmt="837p", **kw):
    return run_export(repo, RULES, ExportRequest(start, end, fmt, **kw), now=NOW)


def _segments(text: str, tag: str) -> list[str]:
    return [s.strip() for s in text.split("~") if s.strip().startswith(tag + "*")]


def test_claim_numbers_are_unique_across_exports_and_every_claim_is_stored(repo):
    seed(repo)
    march = export(repo)
    load(repo, [encounter("ana-apr", "ana", "follow-up", "2026-04-06T10:00:00-04:00", 40)])
    april = export(repo, date(2026, 4, 1), date(2026, 4, 30), fmt="csv")
    numbers = [c.id for c in march.claims] + [c.id for c in april.claims]
    assert numbers == ["M1-1", "M1-2", "M2-1"]
    assert [c["id"] for c in read_claims(march.content.decode())] == ["M1-1", "M1-2"]
    assert "M2-1" in april.content.decode()  # the CSV's claim_id column
    for number in numbers:
        stored = repo.read("Claim", number).content
        assert (
            stored["identifier"] == [{"system": CLAIM_SYSTEM, "value": number}]
            and stored["status"] == "active"
        )
    item = repo.read("ChargeItem", charge_item_id("Encounter/ana-2")).content
    assert item["supportingInformation"][0]["reference"] == "Claim/M1-2"
    # a dry run records nothing, and re-exporting the same sessions never reuses a number
    dry = export(repo, dry_run=True, rebill=True)
    again = export(repo, rebill=True)
    assert {c.id for c in dry.claims} == {c.id for c in again.claims} == {"M3-1", "M3-2"}
    assert not {c.id for c in again.claims} & set(numbers)


def test_rebill_replaces_the_claim_with_the_payer_claim_number_when_known(repo):
    seed(repo)
    first = export(repo)
    ana_claim = next(c.id for c in first.claims if c.patient.id == "ana")
    cy_claim = next(c.id for c in first.claims if c.patient.id == "cy")
    # the payer accepted Ana's claim as 26031500012 (recorded from its 277CA); Cy's number is not known yet
    stored = repo.read("Claim", ana_claim).content
    stored["identifier"].append({"system": PAYER_CLAIM_NUMBER_SYSTEM, "value": "26031500012"})
    with repo.unit() as uow:
        uow.update("Claim", ana_claim, stored)
    again = export(repo, rebill=True)
    text = again.content.decode()
    validate_837p(text)  # REF*F8 sits where 005010X222A1 wants it (2300, after CLM, before HI)
    by_patient = {c.patient.id: c for c in again.claims}
    assert (by_patient["ana"].frequency, by_patient["ana"].replaces) == ("7", ana_claim)
    assert (by_patient["cy"].frequency, by_patient["cy"].replaces) == ("7", cy_claim)
    clms = _segments(text, "CLM")
    assert [c.split("*")[5] for c in clms] == ["11:B:7", "11:B:7"]
    assert _segments(text, "REF*F8") == ["REF*F8*26031500012"]
    replacement = repo.read("Claim", by_patient["ana"].id).content
    assert replacement["related"][0]["claim"] == {"reference": f"Claim/{ana_claim}"}
    assert replacement["related"][0]["reference"]["value"] == "26031500012"
    assert (
        repo.read("ChargeItem", charge_item_id("Encounter/ana-1")).content["supportingInformation"][0][
            "reference"
        ]
        == f"Claim/{by_patient['ana'].id}"
    )


def test_rebill_of_a_claim_that_was_never_accepted_is_an_original(repo):
    seed(repo)
    first = export(repo)
    rejected = next(c.id for c in first.claims if c.patient.id == "ana")
    stored = repo.read("Claim", rejected).content
    with repo.unit() as uow:
        uow.update("Claim", rejected, {**stored, "status": "cancelled"})  # the clearinghouse rejected it
    again = export(repo, rebill=True)
    frequency = {c.patient.id: (c.frequency, c.replaces) for c in again.claims}
    assert frequency == {
        "ana": ("1", None),
        "cy": ("7", next(c.id for c in first.claims if c.patient.id == "cy")),
    }
    assert (
        "related" not in repo.read("Claim", next(c.id for c in again.claims if c.patient.id == "ana")).content
    )


def test_a_replacement_never_drops_lines_it_did_not_evaluate(repo):
    seed(repo)
    export(repo)
    # rebilling one day of Ana's March claim would replace the whole claim with that day's line only
    part = export(repo, date(2026, 3, 9), date(2026, 3, 9), rebill=True)
    assert part.claims == [] and part.marked == 0
    [f] = part.evaluation.findings
    assert (f.encounter_id, f.code) == ("ana-2", "replacement-incomplete")
    assert "2026-03-02..2026-03-16" in f.message
    assert (
        repo.read("ChargeItem", charge_item_id("Encounter/ana-2")).content["supportingInformation"][0][
            "reference"
        ]
        == "Claim/M1-2"
    )  # still on the claim it went out on


def test_a_replacement_leaves_off_a_session_that_is_no_longer_billable(repo):
    seed(repo)
    export(repo)
    cancelled = repo.read("Encounter", "ana-3").content
    with repo.unit() as uow:
        uow.update("Encounter", "ana-3", {**cancelled, "status": "entered-in-error"})
    again = export(repo, rebill=True)
    ana = next(c for c in again.claims if c.patient.id == "ana")
    assert ana.frequency == "7" and [ln.encounter_id for ln in ana.lines] == ["ana-1", "ana-2"]
    item = repo.read("ChargeItem", charge_item_id("Encounter/ana-3")).content
    assert item["status"] == "not-billable" and "replacement" in item["note"][-1]["text"]


def test_group_members_whose_encounter_is_not_finished_do_not_count(repo):
    load(
        repo,
        [
            *practice_resources(),
            *patient_resources("ana"),
            *patient_resources("ben"),
            *patient_resources("cy"),
            *patient_resources("dee"),
        ],
    )
    three = [
        encounter("g3", "ana", "group", T.format(24), 45),
        encounter("g3-ana", "ana", "group", T.format(24), None, part_of="g3"),
        encounter("g3-ben", "ben", "group", T.format(24), None, part_of="g3"),
        encounter("g3-cy", "cy", "group", T.format(24), None, part_of="g3"),
    ]
    three[3]["status"] = "in-progress"  # Cy left before the session was over
    two = [
        encounter("g2", "dee", "group", T.format(25), 45),
        encounter("g2-dee", "dee", "group", T.format(25), None, part_of="g2"),
        encounter("g2-ben", "ben", "group", T.format(25), None, part_of="g2"),
    ]
    two[2]["status"] = "planned"  # Ben did not come
    load(repo, [*three, *two])
    ev = preview(repo, RULES, *MARCH)
    assert sorted((ln.encounter_id, ln.code) for ln in ev.lines) == [("g3-ana", "0593T"), ("g3-ben", "0593T")]
    assert sorted((f.encounter_id, f.code) for f in ev.findings) == [
        ("g2-ben", "not-finished"),
        ("g2-dee", "group-of-one"),
        ("g3-cy", "not-finished"),
    ]


def test_a_payer_without_a_payer_id_gives_a_finding_not_pi_default(repo, client, practice_env):
    seed(repo)
    beta = {
        "resourceType": "Organization",
        "id": "beta",
        "active": True,
        "name": "Beta Health",
        "identifier": [{"system": "http://example.org/tax-id", "value": "12-3456789"}],
    }
    load(
        repo,
        [
            beta,
            *patient_resources("eve", payer="beta"),
            encounter("eve-1", "eve", "follow-up", T.format(4), 40),
        ],
    )
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "from", "valueDate": "2026-03-01"},
            {"name": "to", "valueDate": "2026-03-31"},
            {"name": "format", "valueCode": "837p"},
        ],
    }
    resp = client.post("/fhir/Claim/$billing-export", json=body)
    assert resp.status_code == 200, resp.text
    params = {p["name"]: p for p in resp.json()["parameter"]}
    text = base64.b64decode(params["file"]["valueAttachment"]["data"]).decode()
    findings = base64.b64decode(params["findingsFile"]["valueAttachment"]["data"]).decode()
    assert "eve-1" in findings and "no-payer-id" in findings
    assert "PI*DEFAULT" not in text and "PI*12-3456789" not in text and "PI*ACME-HEALTH~" in text
    assert json.loads(json.dumps(params["claims"]))["valueInteger"] == 2


def test_the_day_of_service_is_the_local_date_in_the_practice_zone(repo):
    """#15.13: a session written as a UTC instant (an EHR's habit) is billed on the day it happened locally."""
    load(repo, [*practice_resources(), *patient_resources("ana")])
    late = encounter("late", "ana", "follow-up", T.format(31), 40)
    late["period"] = {"start": "2026-04-01T01:30:00Z", "end": "2026-04-01T02:10:00Z"}  # 21:30 EDT on 31 March
    load(repo, [late])
    march = preview(repo, RULES, *MARCH, tz="America/New_York")
    assert [(ln.encounter_id, ln.day) for ln in march.lines] == [("late", date(2026, 3, 31))]
    assert preview(repo, RULES, date(2026, 4, 1), date(2026, 4, 30), tz="America/New_York").lines == []
    # a patient's own zone wins over the practice's: in Berlin it was already 1 April
    ana = repo.read("Patient", "ana").content
    with repo.unit() as uow:
        uow.update(
            "Patient",
            "ana",
            {
                **ana,
                "extension": [
                    {"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": "Europe/Berlin"}
                ],
            },
        )
    assert [
        ln.day
        for ln in preview(repo, RULES, date(2026, 4, 1), date(2026, 4, 30), tz="America/New_York").lines
    ] == [date(2026, 4, 1)]
