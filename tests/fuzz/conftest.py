"""Fixtures of the API fuzzer: the seeded world on each backend, served in-process, and a caller per principal.

``fuzz_world`` (one per backend and test module, like the ``backend`` parameter of the store tests) empties a
database, seeds patients A and B (:mod:`tests.fuzz.seed`) and returns a :class:`FuzzWorld`: the app behind a
TestClient with authorization on, and an Authorization header for each principal — patient A (a patient
token), the coach, and a registered system client with ``system/*.cruds``. What patient A has itself sent is
remembered (:attr:`FuzzWorld.told`): B's id in a resource A wrote (or a coach wrote into A's record) is not a
leak when A reads it back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from fhir_ecr.app import create_app
from fhir_ecr.config import Settings
from tests.auth.support import SystemClient, bearer, coach, patient
from tests.conftest import BACKENDS, fresh_services

from .seed import A, Seeded, seed_world
from .strategies import Req

#: Cases per (principal, backend) in ``make test``; ``make fuzz`` raises it (docs/testing.md).
EXAMPLES = int(os.environ.get("MECR_FUZZ_EXAMPLES", "200"))
#: ``MECR_FUZZ_RANDOM=1``: a new random seed each run (the nightly campaign); otherwise the run is the same
#: every time (derandomised), so CI is never flaky.
RANDOM = os.environ.get("MECR_FUZZ_RANDOM") == "1"


class FuzzWorld:
    """The app with the seeded world, and how each principal calls it."""

    def __init__(
        self, client: Any, services: Any, world: Seeded, headers: dict[str, dict[str, str]], backend: str
    ) -> None:
        self.client = client
        self.services = services
        self.world = world
        self.headers = headers
        self.backend = backend
        self.told: set[str] = set()  # B's ids and markers that patient A has sent (and so may see again)

    def send(self, who: str, req: Req) -> Any:
        """Send ``req`` as ``who`` (``patient``, ``coach`` or ``system``)."""
        text = req.text().lower()
        # What A sent, A knows; what a coach or system client writes into A's record (B's id in a resource about
        # A), A may be shown.
        if who == "patient" or (req.method != "GET" and A in text):
            self.told.update(t for t in self.world.b_tokens() if t.lower() in text)
        headers = {
            k: v.encode("utf-8", "surrogatepass") for k, v in {**self.headers[who], **req.headers}.items()
        }
        params = [
            (
                k.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
                v.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            )
            for k, v in req.params
        ]
        path = quote(
            req.path.encode("utf-8", "surrogatepass").decode("utf-8", "replace"), safe="/$:@!*'(),;=+-._~"
        )
        return self.client.request(req.method, path, params=params, headers=headers, content=req.body)


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzWorld]:
    """The seeded world on one backend, shared by the tests of one module (seeding and start-up take seconds;
    the fuzz tests of a module run patient A first, on the world as seeded)."""
    from fastapi.testclient import TestClient

    backend = str(request.param)
    if backend == "postgres":
        url = str(request.getfixturevalue("pg_database"))
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    settings = Settings(
        database_url=url,
        base_url="http://127.0.0.1:8000",
        environment="test",
        auth="on",
        max_body_bytes=2 * 1024 * 1024,
    )
    services = fresh_services(settings)
    world = seed_world(services.repo)
    app = create_app(settings, services=services)
    # Every 500 is a failure the test reports with its request; the traceback would only flood the output.
    errors = logging.getLogger("mecr.errors")
    level = errors.level
    errors.setLevel(logging.CRITICAL)
    try:
        with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1:8000") as client:
            system = SystemClient(services, client_id="fuzz-system", scope="system/*.cruds")
            headers = {
                "patient": bearer(services, patient(A)),
                "coach": bearer(services, coach(world.coach)),
                "system": system.token(client, scope="system/*.cruds"),
            }
            yield FuzzWorld(client, services, world, headers, backend)
    finally:
        errors.setLevel(level)
        if services.audit is not None:
            services.audit.close()
        services.engine.dispose()
