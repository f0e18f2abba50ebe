"""Billing over the store (SQLite and PostgreSQL): IG-shaped sessions in, exports out, lines marked billed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime

from fhir_ecr.billing import ExportRequest, preview, run_export, validate_837p
from fhir_ecr.billing.cli import findings_path, run_billing
from fhir_ecr.billing.service import CONTROL_KEY, charge_item_id
from fhir_ecr.cli import build_parser
from tests.billing.factories import encounter, load, patient_resources, practice_resources, rules
from tests.billing.test_billing_x12 import _mask
from tests.billing.x12_support import read_claims
from tests.helpers import assert_outcome

RULES = rules()
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
T = "2026-03-{:02d}T10:00:00-05:00"


def seed(repo) -> None:
    resources = [
        *practice_resources(),
        *patient_resources("ana", dx=("R73.03", "Z71.3")),
        *patient_resources("ben"),
        *patient_resources("cy", payer="acme"),
        *patient_resources("dee", payer=None),
        encounter("ana-initial", "ana", "initial", T.format(2), 50),
        encounter("ana-video", "ana", "follow-up", T.format(9), 30, modality="video"),
        encounter("ana-short", "ana", "follow-up", T.format(16), 29),
        encounter("ana-audio", "ana", "follow-up", T.format(17), 45, modality="audio-only", supervisor=False),
        # a group of two: the group-level session names its first member, as the IG example does
        encounter("grp", "ana", "group", T.format(24), 60),
        encounter("grp-ana", "ana", "group", T.format(24), None, part_of="grp"),
        encounter("grp-ben", "ben", "group", T.format(24), None, part_of="grp"),
        # a "group" of one
        encounter("solo", "ben", "group", T.format(25), 60),
        encounter("solo-ben", "ben", "group", T.format(25), None, part_of="solo"),
        encounter("cy-nocred", "cy", "follow-up", T.format(10), 40, coach_role_id="coach-uncredentialed"),
        encounter("cy-audio", "cy", "follow-up", T.format(11), 40, modality="audio-only"),
        encounter("dee-self", "dee", "follow-up", T.format(12), 40),
        encounter("april", "ana", "follow-up", "2026-04-02T10:00:00-05:00", 40),
    ]
    load(repo, resources)


def test_sessions_from_the_store_become_lines_and_findings(repo):
    seed(repo)
    ev = preview(repo, RULES, *MARCH)
    lines = {(ln.encounter_id, ln.code, ln.modifiers, ln.pos) for ln in ev.lines}
    assert lines == {
        ("ana-initial", "0591T", (), "11"),
        ("ana-video", "0592T", ("95",), "10"),
        ("ana-audio", "0592T", ("93",), "10"),
        ("grp-ana", "0593T", (), "11"),
        ("grp-ben", "0593T", (), "11"),
        ("dee-self", "0592T", (), "11"),
    }
    findings = {(f.encounter_id, f.code) for f in ev.findings}
    # the supervising physician comes from the practice file's default_supervisor when the session names none
    assert findings == {
        ("ana-short", "too-short"),
        ("solo-ben", "group-of-one"),
        ("cy-nocred", "no-credential"),
        ("cy-audio", "audio-only-not-allowed"),
    }
    by_enc = {ln.encounter_id: ln for ln in ev.lines}
    assert by_enc["grp-ben"].minutes == 60  # the participant's duration is the group session's
    assert by_enc["ana-initial"].diagnoses == ("R73.03", "Z71.3")
    assert by_enc["ana-initial"].rendering.npi == "1245319599"  # Medicare: incident to the supervisor
    assert by_enc["dee-self"].payer == "self-pay"
    audio = [ln for ln in preview(repo, RULES, date(2026, 3, 17), date(2026, 3, 17)).lines]
    assert audio[0].supervising.reference == "Practitioner/dr-amy-shah"


def test_export_marks_lines_billed_and_never_bills_twice(repo):
    seed(repo)
    now = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    first = run_export(repo, RULES, ExportRequest(*MARCH, "837p"), now=now)
    text = first.content.decode()
    validate_837p(text)
    parsed = read_claims(text)
    assert sorted(ln["code"] for c in parsed for ln in c["lines"]) == [
        "0591T",
        "0592T",
        "0592T",
        "0593T",
        "0593T",
    ]
    assert first.marked == 5 and first.control_number == 1
    item = repo.read("ChargeItem", charge_item_id("Encounter/ana-video")).content
    assert item["status"] == "billed" and item["context"]["reference"] == "Encounter/ana-video"
    assert item["code"]["coding"][0]["code"] == "0592T"
    with repo.unit(write=False) as uow:
        record = json.loads(uow.get_state("billing.export.1"))
        assert uow.get_state(CONTROL_KEY) == "1"
    assert record["format"] == "837p" and record["lines"] == 5 and record["created"].startswith("2026-04-01")

    again = run_export(repo, RULES, ExportRequest(*MARCH, "837p"), now=now)
    assert again.claims == [] and again.marked == 0 and again.control_number == 2
    assert {f.encounter_id for f in again.evaluation.findings if f.code == "already-billed"} == {
        "ana-initial",
        "ana-video",
        "ana-audio",
        "grp-ana",
        "grp-ben",
    }
    # an explicit re-export sends the same claims as replacements (CLM05-3 7) under new claim numbers, byte for
    # byte the same apart from the envelope, the claim numbers and the frequency code
    rebill = run_export(
        repo, RULES, ExportRequest(*MARCH, "837p", rebill=True), now=datetime(2026, 4, 3, tzinfo=UTC)
    )
    assert rebill.control_number == 3 and rebill.marked == 5
    assert {c.frequency for c in rebill.claims} == {"7"} and {c.id for c in rebill.claims}.isdisjoint(
        c.id for c in first.claims
    )
    assert _mask(rebill.content.decode()).replace(":B:7*", ":B:1*") == _mask(text)


def test_dry_run_marks_nothing_and_payer_filter(repo):
    seed(repo)
    dry = run_export(
        repo, RULES, ExportRequest(*MARCH, "csv", dry_run=True), now=datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert (
        dry.marked == 0 and len(dry.content.decode().splitlines()) == 1 + 6
    )  # header + all lines (self-pay too)
    medicare = run_export(
        repo, RULES, ExportRequest(*MARCH, "csv", payer="medicare"), now=datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert medicare.marked == 5 and "dee-self" not in medicare.content.decode()
    # the self-pay line is still unbilled
    rest = preview(repo, RULES, *MARCH)
    assert [ln.encounter_id for ln in rest.lines] == ["dee-self"]


def test_cli_export_writes_file_and_findings(repo, settings, tmp_path, monkeypatch):
    seed(repo)
    out = tmp_path / "march.x12"
    args = build_parser().parse_args(
        [
            "billing",
            "export",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--format",
            "837p",
            "-o",
            str(out),
            "--validate",
            "--rules",
            str(RULES.sources[1]),
        ]
    )
    assert run_billing(args, settings) == 0
    assert out.read_text().startswith("ISA*") and len(read_claims(out.read_text())) == 2
    assert "too-short" in findings_path(out).read_text()
    args = build_parser().parse_args(
        [
            "billing",
            "superbill",
            "--patient",
            "dee",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "-o",
            str(tmp_path / "sb.html"),
            "--rules",
            str(RULES.sources[1]),
        ]
    )
    assert run_billing(args, settings) == 0
    html = (tmp_path / "sb.html").read_text()
    assert "0592T" in html and "60.00" in html and "R73.03" in html and "Riverside Family Practice" in html


def test_api_export_preview_and_superbill(client, repo, practice_env):
    seed(repo)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "from", "valueDate": "2026-03-01"},
            {"name": "to", "valueDate": "2026-03-31"},
            {"name": "format", "valueCode": "fhir"},
        ],
    }
    resp = client.post("/fhir/Claim/$billing-export", json=body)
    assert resp.status_code == 200, resp.text
    params = {p["name"]: p for p in resp.json()["parameter"]}
    bundle = json.loads(base64.b64decode(params["file"]["valueAttachment"]["data"]))
    assert (
        bundle["type"] == "collection" and len(bundle["entry"]) == 2 and params["marked"]["valueInteger"] == 5
    )
    findings = base64.b64decode(params["findingsFile"]["valueAttachment"]["data"]).decode()
    assert "group-of-one" in findings
    prev = client.get(
        "/fhir/Claim/$billing-preview", params={"from": "2026-03-01", "to": "2026-03-31"}
    ).json()
    codes = [next(x["valueCode"] for x in p["part"] if x["name"] == "code") for p in prev["parameter"]]
    assert codes.count("already-billed") == 5
    sb = client.get("/fhir/Encounter/dee-self/$superbill")
    assert sb.status_code == 200 and sb.headers["content-type"].startswith("text/html") and "0592T" in sb.text
    assert_outcome(client.get("/fhir/Encounter/ana-short/$superbill"), 404, "not-found")
    assert_outcome(
        client.post(
            "/fhir/Claim/$billing-export",
            json={"resourceType": "Parameters", "parameter": [{"name": "to", "valueDate": "2026-03-31"}]},
        ),
        400,
        "invalid",
    )
    assert_outcome(client.get("/fhir/Claim/$billing-export?from=2026-03-01&to=2026-03-31"), 405)


def test_group_subject_is_not_counted_as_a_member(repo):
    """The group-level session of the IG names the Group as its subject: only the patients' own sessions count."""
    seed(repo)
    solo = encounter("solo-g", "ben", "group", T.format(26), 60)
    solo["subject"] = {"reference": "Group/walkers"}
    pair = encounter("pair-g", "ana", "group", T.format(27), 60)
    pair["subject"] = {"reference": "Group/walkers"}
    load(
        repo,
        [
            {
                "resourceType": "Group",
                "id": "walkers",
                "type": "person",
                "actual": True,
                "member": [
                    {"entity": {"reference": "Patient/ben"}},
                    {"entity": {"reference": "Patient/ana"}},
                ],
            },
            solo,
            encounter("solo-g-ben", "ben", "group", T.format(26), None, part_of="solo-g"),
            pair,
            encounter("pair-g-ana", "ana", "group", T.format(27), None, part_of="pair-g"),
            encounter("pair-g-ben", "ben", "group", T.format(27), None, part_of="pair-g"),
        ],
    )
    ev = preview(repo, RULES, date(2026, 3, 26), date(2026, 3, 27))
    assert {(f.encounter_id, f.code) for f in ev.findings} == {("solo-g-ben", "group-of-one")}
    assert {(ln.encounter_id, ln.code) for ln in ev.lines} == {
        ("pair-g-ana", "0593T"),
        ("pair-g-ben", "0593T"),
    }
