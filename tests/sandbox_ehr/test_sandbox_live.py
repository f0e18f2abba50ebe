"""The sandbox over real HTTP (uvicorn): a confidential asymmetric client whose JWKS URL the sandbox fetches
with its own HTTP client, as it does when mECR serves it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from fhir_ecr.sandbox_ehr import SandboxClient, create_sandbox_ehr
from smart_launch import (
    ClientKeySet,
    ClientRegistration,
    InMemoryStateStore,
    PrivateKeyJwt,
    SmartLaunchClient,
)

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Live:
    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.keys = ClientKeySet.generate(["ES384"])
        outer = FastAPI()

        @outer.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return self.keys.public_jwks()

        self.sandbox = create_sandbox_ehr(
            base_url=f"{self.origin}/sandbox-ehr",
            database_url=f"sqlite:///{tmp / 'live-sandbox.db'}",
            clients=[
                SandboxClient(
                    "mecr",
                    [f"{self.origin}/smart/callback"],
                    launch_url=f"{self.origin}/smart/launch",
                    auth_method="private_key_jwt",
                    jwks_url=f"{self.origin}/.well-known/jwks.json",
                )
            ],
        )
        outer.mount("/sandbox-ehr", self.sandbox)
        self.server = uvicorn.Server(
            uvicorn.Config(outer, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    box = Live(tmp_path)
    box.thread.start()
    deadline = time.monotonic() + 15
    while not box.server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield box
    box.server.should_exit = True
    box.thread.join(10)
    box.sandbox.state.sandbox.dispose()


async def test_ehr_launch_over_http_with_a_fetched_jwks(live: Live) -> None:
    fhir_base = f"{live.origin}/sandbox-ehr/fhir"
    async with httpx.AsyncClient() as http:
        launch = await http.post(
            f"{live.origin}/sandbox-ehr/launch",
            data={"client_id": "mecr", "practitioner": "coach-marcus", "patient": "pat-1003"},
        )
        assert launch.status_code == 303
        query = dict(httpx.URL(launch.headers["location"]).params)
        client = SmartLaunchClient(
            http,
            [
                ClientRegistration(
                    fhir_base, PrivateKeyJwt("mecr", live.keys), (f"{live.origin}/smart/callback",)
                )
            ],
            InMemoryStateStore(),
        )
        redirect = await client.begin_ehr_launch(
            query, session_id="b", scope="launch openid fhirUser user/*.rs"
        )
        page = await http.get(redirect.url)
        tx = page.text.split('name="tx" value="', 1)[1].split('"', 1)[0]
        answer = await http.post(
            f"{live.origin}/sandbox-ehr/authorize/decision", data={"tx": tx, "decision": "allow"}
        )
        callback = dict(httpx.URL(answer.headers["location"]).params)
        result = await client.handle_callback(callback, session_id="b")
        assert result.patient == "pat-1003"
        assert result.fhir_user == f"{fhir_base}/Practitioner/coach-marcus"
        patient = await http.get(f"{fhir_base}/Patient/pat-1003", auth=result.auth())
        assert patient.status_code == 200 and patient.json()["name"][0]["given"] == ["Chloe"]
