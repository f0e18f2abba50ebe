"""The SQLite engine's memory: each connection's page cache is bounded by ``SQLITE_CACHE_KIB``, and the pool hands
out the connection returned last, so that a job which once needed a second connection (a read inside a unit of
work) goes on with the first and does not fill a second page cache (docs/benchmarks.md, "EMR sync")."""

from __future__ import annotations

from pathlib import Path

from fhir_ecr.store.db import SQLITE_CACHE_KIB, make_engine


def test_each_sqlite_connection_has_the_bounded_page_cache(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -SQLITE_CACHE_KIB
    finally:
        engine.dispose()
    assert SQLITE_CACHE_KIB <= 32 * 1024


def test_the_pool_hands_out_the_connection_returned_last(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as outer:
            first = outer.connection.dbapi_connection
            with engine.connect() as inner:  # e.g. a write hook reading on its own connection
                second = inner.connection.dbapi_connection
            assert second is not first
        # Returned: the inner one, then the outer one. The next unit of work gets the outer one again.
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.connection.dbapi_connection is first
    finally:
        engine.dispose()
