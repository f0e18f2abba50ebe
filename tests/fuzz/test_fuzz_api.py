"""Property-based fuzzing of the whole API, in-process, as patient A, a coach and a system client.

Each case is a request drawn by :func:`tests.fuzz.strategies.requests` (every interaction, real search parameter
names, modifiers, chains, odd dates, numbers, unicode and NUL, near-valid resources, Bundles, operations). The
oracle (:mod:`tests.fuzz.oracle`): never a 5xx, errors are OperationOutcomes, and patient A never sees B's data.
``MECR_FUZZ_EXAMPLES`` sets the cases per principal and backend (docs/testing.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from .conftest import EXAMPLES, RANDOM
from .oracle import check_response
from .strategies import requests


def fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink] if RANDOM else [Phase.explicit, Phase.generate],
    )


@pytest.mark.parametrize("who", ["patient", "coach", "system"])
def test_api_fuzz(fuzz_world: Any, who: str) -> None:
    world = fuzz_world
    sent = []

    @fuzz_settings(EXAMPLES)
    @given(req=requests(world.world))
    def case(req: Any) -> None:
        sent.append(req)
        check_response(who, req, world.send(who, req), world.world, world.told)

    case()
    assert len(sent) >= EXAMPLES  # the cases were really generated and sent
