"""Support for the sync tests: a real EMR that is not mECR (``sekmet-fhir``, a FHIR R4 server with SMART Backend
Services, paged search, ``_lastUpdated`` and Bulk Data, started as its own process on a free port), mECR's
services registered with it, and helpers to seed it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from fhir_ecr.auth.registry import add_ehr
from fhir_ecr.sync.config import SyncConfig
from smart_launch import ClientKeySet
from tests.conftest import free_port

#: mECR's signing keys in these tests (sekmet trusts their public half); set on each test's vault.
KEYS = ClientKeySet.generate()
HARNESS_TOKEN = "harness-token"


class Sekmet:
    """A running sekmet-fhir server (own process)."""

    def __init__(self, tmp: Path, *, token_lifetime: int = 3600, inbound_validation: str = "strict") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        settings = {
            "base_url": self.base,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(tmp / "sekmet"),
            "server_auth": {
                "types": ["smart", "bearer"],
                "tokens": [HARNESS_TOKEN],
                "token_lifetime": token_lifetime,
                "smart_clients": [{"client_id": "mecr", "jwks": KEYS.public_jwks(), "scopes": "system/*.*"}],
            },
            "simulator": {"enabled": False},
            "log_inbound": False,
            "validation": {"inbound": inbound_validation},
        }
        self.config = tmp / "sekmet.yaml"
        self.config.write_text(yaml.safe_dump(settings))
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {HARNESS_TOKEN}"}, timeout=30
        )

    def start(self) -> Sekmet:
        exe = Path(sys.executable).with_name("sekmet")
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "SEKMET_CONFIG": str(self.config)},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/metadata", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("sekmet did not start")

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    # -- the harness side ---------------------------------------------------------------------------------------

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        r = self.http.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def search(self, rtype: str, **params: str) -> list[dict[str, Any]]:
        out, url = [], f"/{rtype}"
        query: dict[str, str] | None = {"_count": "1000", **params}
        while url:
            r = self.http.get(url, params=query)
            assert r.status_code == 200, r.text
            body = r.json()
            out += [
                e["resource"] for e in body.get("entry", []) if e.get("search", {}).get("mode") == "match"
            ]
            url = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), "")
            query = None
        return out


def store_keys(services: Any) -> None:
    """Store the keys sekmet trusts as mECR's signing keys: a worker process reads them from the store, as in
    production."""
    sealed = services.vault._fernet.encrypt(json.dumps(KEYS.private_jwks()).encode()).decode()
    with services.repo.unit() as uow:
        uow.set_state("auth.signing_jwks", sealed)


def start_worker(settings: Any, tmp: Path, **env: str) -> subprocess.Popen[bytes]:
    """``mecr worker`` as its own process, on the test's store and job queue (``env``: more MECR_ settings)."""
    environ = {
        **os.environ,
        "MECR_DATABASE_URL": settings.database_url,
        "MECR_BASE_URL": settings.base_url,
        "MECR_ENVIRONMENT": "test",
        "MECR_AUTH": "off",
        "MECR_SYNC_LEASE_SECONDS": "1",
        "MECR_JOB_STORE": settings.jobs_url,
        "MECR_WORKER_THREADS": "1",
        **env,
    }
    exe = Path(sys.executable).with_name("mecr")
    return subprocess.Popen(
        [str(exe), "worker"],
        env=environ,
        stdout=(tmp / "worker.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def wait_for(condition: Any, timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``condition()`` until it is true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def patient(pid: str, mrn: str, family: str, born: str = "1970-01-01") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:oid:1.2.3.4.5.1", "value": mrn}],
        "name": [{"family": family, "given": ["Test"]}],
        "birthDate": born,
        "gender": "female",
    }


def weight(
    oid: str, pid: str, kg: float | str, when: str = "2026-11-01T09:00:00Z", encounter: str | None = None
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }
    if encounter:
        obs["encounter"] = {"reference": f"Encounter/{encounter}"}
    return obs


def condition(cid: str, pid: str, code: str = "E11.9") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
    }


def register(services: Any, base: str, ehr_id: str = "emr", **config: Any) -> SyncConfig:
    """Register ``base`` as EHR ``ehr_id`` with sync configured; mECR's keys are the ones sekmet trusts."""
    services.vault._keys = KEYS
    add_ehr(services, ehr_id=ehr_id, iss=base, client_id="mecr", auth_method="private_key_jwt")
    options = {"scope": "system/*.cruds", "interval_minutes": 0, **config}
    sync = SyncConfig.build(**options)
    services.auth_store.update_ehr(ehr_id, sync_config=sync.to_json())
    services.sync.forget()
    return sync


def local(services: Any, rtype: str, **params: str) -> list[dict[str, Any]]:
    result = services.repo.search_params(rtype, [*params.items(), ("_count", "1000")])
    return [s.content for s in result.matches]


def dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def queue_export(services: Any, job_id: str, types: tuple[str, ...] = ("Observation",)) -> None:
    """A queued system-level ``$export`` job of ``types`` by the developer principal, as the kick-off records it
    (for running :func:`fhir_ecr.bulk.export.run_export` directly)."""
    services.sync_store.add_export(
        id=job_id,
        client_id="developer",
        scope="system/*.rs",
        request="test",
        state="queued",
        transaction_time="2026-12-10T00:00:00Z",
        created=int(time.time()),
        params=json.dumps(
            {
                "level": "system",
                "group": None,
                "types": list(types),
                "since": None,
                "filters": {},
                "principal": "developer",
            }
        ),
    )
