"""`mecr import wearable` and the patient app's upload endpoint, end to end over the real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.auth import DEVELOPER, Access, Principal, current_access
from fhir_ecr.cli import main
from fhir_ecr.config import get_settings
from fhir_ecr.wearables import FORMATS, csv_mapping_from_dict, detect_format
from smart_launch.scopes import ScopeSet
from tests.helpers import assert_outcome
from tests.wearables.support import FIXTURES, apple_export, hours, make_patient, observations

APPLE_ZIP = FIXTURES / "apple-health/healthkit-to-sqlite-export.zip"


@pytest.fixture
def env(settings: Any, services: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("MECR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield services
    get_settings.cache_clear()


def test_cli_imports_files_and_prints_the_summary(env: Any, capsys: Any, tmp_path: Path) -> None:
    patient = make_patient(env.repo)
    steps = tmp_path / "export.xml"
    steps.write_bytes(apple_export(hours("2026-03-10", 8, 17, 500)))
    assert main(["import", "wearable", "--patient", patient, "--quiet", str(APPLE_ZIP), str(steps)]) == 0
    out = capsys.readouterr().out
    assert "from 2 file(s)" in out and "created 8, updated 0, unchanged 0" in out
    assert (
        main(["import", "wearable", "--patient", patient, "--quiet", "--json", str(APPLE_ZIP), str(steps)])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 8)
    assert report["formats"] == ["apple-health", "apple-health"] and report["alreadyImported"] == 2


def test_cli_bad_file_exits_1_with_one_clear_line(env: Any, capsys: Any, tmp_path: Path) -> None:
    patient = make_patient(env.repo)
    broken = tmp_path / "export.zip"
    broken.write_bytes(APPLE_ZIP.read_bytes()[:900])
    assert main(["import", "wearable", "--patient", patient, "--quiet", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mecr: error: {broken}") and "zip" in err and "Traceback" not in err
    assert main(["import", "wearable", "--patient", "nobody", "--quiet", str(APPLE_ZIP)]) == 1
    assert "Patient/nobody" in capsys.readouterr().err
    assert main(["import", "wearable", "--patient", patient, "--quiet", str(tmp_path / "none.zip")]) == 1
    assert "cannot read the file" in capsys.readouterr().err
    assert observations(env.repo, patient) == []


def test_cli_help_and_csv_mapping(env: Any, capsys: Any, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["import", "wearable", "--help"])
    assert exc.value.code == 0
    assert "--source-priority" in capsys.readouterr().out
    patient = make_patient(env.repo)
    mapping = tmp_path / "scale.json"
    mapping.write_text(
        json.dumps(
            {
                "start": "when",
                "source_name": "Bathroom scale",
                "values": [{"metric": "weight", "column": "kg", "unit": "kg"}],
            }
        )
    )
    data = tmp_path / "scale.csv"
    data.write_text("when,kg\n2026-03-10T07:00:00,81.2\n2026-03-11T07:00:00,81.0\n2026-03-12T07:00:00,9\n")
    assert (
        main(
            ["import", "wearable", "--patient", patient, "--quiet", "--csv-mapping", str(mapping), str(data)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "created 2" in out and "line 4: weight 9 kg outside plausible range" in out
    values = sorted(o["valueQuantity"]["value"] for o in observations(env.repo, patient))
    assert values == [81.0, 81.2]
    assert main(["import", "wearable", "--patient", patient, "--quiet", str(data)]) == 1
    assert "column mapping" in capsys.readouterr().err


# --- the upload endpoint ------------------------------------------------------------------------------------


def _as(app: Any, principal: Principal) -> None:
    app.dependency_overrides[current_access] = lambda: Access(principal)


def _url(patient: str) -> str:
    return f"/api/patients/{patient}/wearable-imports"


def test_upload_imports_and_a_second_upload_changes_nothing(app: Any, client: Any, repo: Any) -> None:
    _as(app, DEVELOPER)
    patient = make_patient(repo)
    files = {"file": ("export.zip", APPLE_ZIP.read_bytes(), "application/zip")}
    first = client.post(_url(patient), files=files)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] == 7 and body["formats"] == ["apple-health"] and body["files"] == ["export.zip"]
    second = client.post(_url(patient), files=files, data={"format": "apple-health"})
    assert second.status_code == 201 and (second.json()["created"], second.json()["unchanged"]) == (0, 7)
    assert len(observations(repo, patient)) == 7


def test_upload_errors_are_operation_outcomes(app: Any, client: Any, repo: Any, settings: Any) -> None:
    _as(app, DEVELOPER)
    patient = make_patient(repo)
    broken = client.post(_url(patient), files={"file": ("export.zip", APPLE_ZIP.read_bytes()[:900])})
    body = assert_outcome(broken, 422, "invalid")
    assert "export.zip" in body["issue"][0]["diagnostics"]
    app.state.services.settings.max_upload_bytes = 1024 * 1024  # the upload limit (MECR_MAX_UPLOAD_BYTES)
    big = b"<HealthData>" + b" " * (1024 * 1024 + 10) + b"</HealthData>"
    assert_outcome(client.post(_url(patient), files={"file": ("export.xml", big)}), 413)
    assert_outcome(client.post(_url("nobody"), files={"file": ("export.zip", APPLE_ZIP.read_bytes())}), 404)
    assert_outcome(
        client.post(_url(patient), content=b"{}", headers={"content-type": "application/json"}), 415
    )
    assert_outcome(client.post(_url(patient), files={"other": ("x.zip", b"PK")}), 400)
    assert_outcome(client.post(_url(patient), files={"file": ("x.zip", b"PK")}, data={"format": "docx"}), 400)
    assert observations(repo, patient) == []


def test_a_patient_may_upload_only_to_their_own_record(app: Any, client: Any, repo: Any) -> None:
    me, other = make_patient(repo), make_patient(repo)
    _as(
        app,
        Principal(
            kind="patient", subject=f"Patient/{me}", scopes=ScopeSet.parse("patient/*.cruds"), patient_id=me
        ),
    )
    files = {"file": ("export.zip", APPLE_ZIP.read_bytes())}
    assert_outcome(client.post(_url(other), files=files), 403)
    assert client.post(_url(me), files=files).status_code == 201
    _as(
        app,
        Principal(
            kind="patient",
            subject=f"Patient/{me}",
            scopes=ScopeSet.parse("patient/Observation.rs"),
            patient_id=me,
        ),
    )
    assert_outcome(client.post(_url(me), files=files), 403)


# --- format detection -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("apple-health/healthkit-to-sqlite-export.zip", "apple-health"),
        ("apple-health/export6s3sample.xml", "apple-health"),
        ("fitbit-api/fitbit-body-log-weight.json", "fitbit"),
        ("garmin-fit/activity-small-fenix2-run.fit", "garmin-fit"),
        ("withings-api/withings-sleep-summary.json", "withings"),
        ("googlefit-api/googlefit-merge-heart-rate.json", "google-fit"),
        ("ihealth-api/ihealth-glucose.json", "ihealth"),
        ("open-mhealth/test-data/omh/data-point/1.0/shouldPass/valid-data-point.json", "omh"),
        ("apple-health/StepCount.csv", "csv"),
    ],
)
def test_format_detection_on_real_samples(fixture: str, expected: str) -> None:
    path = FIXTURES / fixture
    assert expected in FORMATS
    with path.open("rb") as stream:
        assert detect_format(stream, path.name) == expected
        assert stream.tell() == 0


def test_a_csv_mapping_is_checked() -> None:
    mapping = csv_mapping_from_dict(
        {"start": "t", "values": [{"metric": "steps", "column": "n"}], "tz": "UTC"}
    )
    assert mapping.values[0].metric.value == "steps" and mapping.tz is not None
    from mappings.errors import MalformedInputError

    for bad in (
        {"values": [{"metric": "steps", "column": "n"}]},
        {"start": "t", "values": []},
        {"start": "t", "values": [{"metric": "walking", "column": "n"}]},
        [],
    ):
        with pytest.raises(MalformedInputError):
            csv_mapping_from_dict(bad)  # type: ignore[arg-type]
