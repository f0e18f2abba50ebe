"""No PHI in logs when the database fails (issue #12.13), on both backends, over real HTTP (uvicorn).

Every logger that could carry a statement, a row or an exception text (mecr, sqlalchemy, psycopg, uvicorn,
asyncio, starlette) is captured at DEBUG, with tracebacks formatted; the patient's name, MRN and a marker in the
resource body must never appear. The database errors are real ones raised by the driver:

- a statement that fails with the resource body as its parameter (PostgreSQL quotes the value in the message
  itself: ``invalid input syntax for type integer: "{…}"``; SQLite's message carries it only in SQLAlchemy's
  ``[parameters: …]``, which ``hide_parameters`` removes) → a 500, logged by mECR and again by uvicorn;
- a unique-index violation on the resource table (an update-as-create racing another) → a 409.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fhir_ecr.store.repository import UnitOfWork
from tests.helpers import assert_outcome

NAME, MRN, MARKER = "Zebediah", "MRN-7731-PHI", "BODY-MARKER-5521"
PATIENT = {
    "resourceType": "Patient",
    "name": [{"family": "Quuxley", "given": [NAME]}],
    "identifier": [{"system": "urn:mecr:mrn", "value": MRN}],
    "birthDate": "1961-04-03",
    "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{MARKER}</div>'},
}
SECRETS = (NAME, "Quuxley", MRN, MARKER, "1961-04-03")
LOGGERS = ("mecr", "sqlalchemy", "psycopg", "uvicorn", "asyncio", "starlette", "fastapi")
JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on every logger that matters, uvicorn's included (it does not propagate to the root)."""
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uvicorn.removeHandler(caplog.handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _failing_statement(conn: sa.Connection, body: str) -> None:
    """Run a statement the database refuses, with ``body`` as its parameter."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT CAST(:v AS integer)"), {"v": body})
    else:
        conn.execute(sa.text("SELECT :v FROM no_such_table"), {"v": body})


def test_hide_parameters_keeps_values_out_of_a_real_integrity_error(services: Any) -> None:
    """The text of a real IntegrityError (what a careless ``log.error(str(exc))`` would print) has no values."""
    body = json.dumps({"resourceType": "Patient", "name": [{"given": [NAME]}]})
    insert = sa.text(
        "INSERT INTO resource (pk, res_type, res_id, version_id, last_updated, deleted, content) "
        "VALUES (:pk, 'Patient', 'dup', 1, 0, false, :c)"
    )
    with pytest.raises(sa.exc.IntegrityError) as caught, services.engine.begin() as conn:
        conn.execute(insert, {"pk": 9_000_001, "c": body})
        conn.execute(insert, {"pk": 9_000_002, "c": body})
    text = str(caught.value)
    assert "unique" in text.lower() and NAME not in text
    assert "[SQL parameters hidden due to hide_parameters=True]" in text


def test_a_failing_statement_logs_no_values(services: Any) -> None:
    body = json.dumps({"given": NAME, "mrn": MRN})
    with pytest.raises(sa.exc.DBAPIError) as caught, services.engine.connect() as conn:
        _failing_statement(conn, body)
    if services.engine.dialect.name == "postgresql":
        # PostgreSQL quotes the value in the error message itself: hide_parameters cannot help, so no code
        # path may log an exception's text (fhir_ecr.fhir.errors.describe).
        assert NAME in str(caught.value)
    else:
        assert NAME not in str(caught.value)


def test_database_errors_through_the_api_leave_no_phi_in_the_log(
    live_server: Any, every_log: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"{live_server.url}/fhir"
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/Patient", json=PATIENT)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert http.get(f"/Patient/{pid}").status_code == 200
        assert http.get("/Patient", params={"identifier": f"urn:mecr:mrn|{MRN}"}).json()["total"] == 1

        # 1. A statement the database refuses, carrying the stored body: 500, logged by mECR and by uvicorn.
        real_read = UnitOfWork.read

        def read_then_fail(self: UnitOfWork, rtype: str, rid: str) -> Any:
            stored = real_read(self, rtype, rid)
            _failing_statement(self.conn, stored.raw or "")
            return stored

        monkeypatch.setattr(UnitOfWork, "read", read_then_fail)
        # (uvicorn closes the connection after an exception: do not reuse it)
        assert_outcome(http.get(f"/Patient/{pid}", headers={"Connection": "close"}), 500, "exception")
        monkeypatch.setattr(UnitOfWork, "read", real_read)

        # 2. A unique-index violation: an update-as-create that does not see the existing row (a race).
        monkeypatch.setattr(UnitOfWork, "_current_row", lambda self, rtype, rid, lock=False: None)
        monkeypatch.setattr(UnitOfWork, "_check_absent", lambda self, keys: None)
        assert_outcome(http.put(f"/Patient/{pid}", json={**PATIENT, "id": pid}), 409, "conflict")
        monkeypatch.undo()
        assert http.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"  # nothing was written

    # every record but those of this test's own HTTP client (httpx logs the URLs it requests), with tracebacks
    text = "\n".join(
        every_log.handler.format(r) for r in every_log.records if not r.name.startswith(("httpx", "httpcore"))
    )
    # the capture worked: SQL at INFO, mECR's error line, uvicorn's own (redacted) record of the exception
    assert "SELECT" in text and "[SQL parameters hidden due to hide_parameters=True]" in text
    error = "DataError" if live_server.settings.database_url.startswith("postgresql") else "OperationalError"
    error = f"sqlalchemy.exc.{error} from "
    assert f"unexpected error in GET /fhir/{{rtype}}/{{rid}}: {error}" in text, text[-3000:]
    assert f"Exception in ASGI application: {error}" in text, text[-3000:]
    assert " in read < routes.py:" in text  # where it happened is there, for whoever debugs it
    for secret in SECRETS:
        assert secret not in text, (secret, text[text.find(secret) - 500 : text.find(secret) + 200])


def test_a_malformed_fhir_context_entry_is_logged_without_its_values(every_log: Any) -> None:
    from smart_launch.tokens import parse_fhir_context

    assert parse_fhir_context([{"identifier": MRN, "type": NAME}, 42, "Encounter/e1"]) == parse_fhir_context(
        ["Encounter/e1"]
    )
    assert "ignoring malformed fhirContext entry (dict with keys ['identifier', 'type'])" in every_log.text
    for secret in SECRETS:
        assert secret not in every_log.text
