"""``iso_instant``, the ``meta.lastUpdated`` of every write, and ``new_id``, the id of every resource created
without one. Formatted a second at a time, the instant must be exact at every microsecond, across second boundaries
and before the epoch; the id must be a version 7 UUID (RFC 9562): creation order, then 62 random bits."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fhir_ecr.store import records
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


def test_new_id_is_a_version_7_uuid_in_creation_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # made one after another, they sort one after another (as text too)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after + 1  # RFC 9562 §5.7: unix_ts_ms, the first 48 bits
    # the last 62 bits are random: every hex digit turns up in them, and every variant digit
    assert {rid[19] for rid in ids} == set("89ab")
    assert {c for rid in ids for c in rid.replace("-", "")[17:]} == set("0123456789abcdef")
    assert len({rid[-12:] for rid in ids}) == len(ids)


def test_new_id_keeps_its_order_when_the_clock_stands_still_or_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(
        [5_000_000_000_000_000_000] * 3 + [4_000_000_000_000_000_000] * 2
    )  # ns: the year 2128, then 2096
    monkeypatch.setattr(records.time, "time_ns", lambda: next(clock))
    monkeypatch.setattr(records, "_last_stamp", [0])
    ids = [new_id() for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert {uuid.UUID(rid).int >> 80 for rid in ids} == {5_000_000_000_000}
