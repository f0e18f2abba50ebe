"""``iso_instant``, the ``meta.lastUpdated`` of every write, and ``new_id``, the id of every resource created
without one. Formatted a second at a time, the instant must be exact at every microsecond, across second boundaries
and before the epoch; the id must be a random version 4 UUID."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from fhir_ecr.store.records import iso_instant, new_id

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _exact(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_iso_instant_is_exact_everywhere() -> None:
    rnd = random.Random(19)
    now = 1_796_589_975_931_000
    values = [0, 1, 999_999, 1_000_000, -1, -999_999, -1_000_000, -1_000_001, now, now + 999_999]
    values += [now + rnd.randrange(-(10**8), 10**8) for _ in range(20_000)]  # many to a second, in no order
    values += [rnd.randrange(-62_135_596_800_000_000, 253_402_300_799_999_999) for _ in range(20_000)]
    for us in values:
        assert iso_instant(us) == _exact(us), us
    assert iso_instant(now) == "2026-12-06T20:46:15.931000Z"
    assert iso_instant(-62_135_596_800_000_000) == "0001-01-01T00:00:00.000000Z"


def test_new_id_is_a_random_version_4_uuid() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # every hex digit of the random ones, and every variant digit, turns up
    assert {rid[19] for rid in ids} == set("89ab")
    assert {c for rid in ids for c in rid.replace("-", "")[13:]} == set("0123456789abcdef")
