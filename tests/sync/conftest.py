"""Fixtures for the sync tests (the servers and helpers live in tests/sync/support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync.support import Sekmet


@pytest.fixture
def sekmet(tmp_path: Path) -> Iterator[Sekmet]:
    server = Sekmet(tmp_path).start()
    yield server
    server.stop()
