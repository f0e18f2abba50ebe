"""Database engines and migrations.

SQLite runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout; pysqlite's own transaction handling is
switched off so that a write transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front, so two
writers queue instead of deadlocking on a lock upgrade) and a read transaction with a plain ``BEGIN``
(https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl).
PostgreSQL runs READ COMMITTED; writers lock the rows they change (``SELECT … FOR UPDATE``).

JSON documents go in and out through :mod:`.jsonexact`, so numbers keep their exact form (``1.50``).

No PHI in logs: engines are created with ``hide_parameters=True``, so neither SQLAlchemy's SQL log nor the text of
a database error (``str(exc)``) carries the statement's parameters; and SQLAlchemy's DEBUG records on the engine
logger (the rows a query returned: resource bodies) are dropped (:class:`NoRowLogging`).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from . import jsonexact

__all__ = [
    "next_resource_keys",
    "make_engine",
    "upgrade",
    "current_revision",
    "head_revision",
    "WRITE",
    "NoRowLogging",
    "SQLITE_CACHE_KIB",
]

# Execution option that marks a connection's transaction as a write (BEGIN IMMEDIATE on SQLite).
WRITE = "mecr_write"

#: SQLite's page cache of each connection, in KiB (``PRAGMA cache_size=-N``). Each pooled connection fills its
#: own, up to this, and the memory stays with the process: at 64 MB a process that pulled 50,000 resources peaked
#: at 310 MB. Searches ran as fast with 2 MB as with 64 (the OS caches the file); the bulk write path is the one
#: that gains from a larger cache (docs/benchmarks.md, "EMR sync").
SQLITE_CACHE_KIB = 32 * 1024

#: Pages the WAL may hold before a commit copies them into the database (``PRAGMA wal_autocheckpoint``; SQLite's
#: default is 1,000, about 4 MB). A page that several commits change between two checkpoints is copied once, so
#: fewer, larger checkpoints copy fewer pages: writes of Observations cost 5–10 % less CPU at 10,000 (about
#: 40 MB of WAL; each checkpoint then takes about 25 ms in the commit that runs it). Readers find pages in the WAL
#: through its hash index, whatever its size (https://sqlite.org/wal.html#ckpt; docs/benchmarks.md, "Derived-data
#: write overhead on SQLite").
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000


def _json_dumps(value: Any) -> str:
    return jsonexact.dumps(value).decode()


class NoRowLogging(logging.Filter):
    """Drops SQLAlchemy's records below INFO on the engine logger: at DEBUG it logs every row a query returns,
    that is resource bodies (PHI), whatever ``hide_parameters`` says. SQL text (INFO) and errors still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


def _guard_engine_logger() -> None:
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, NoRowLogging) for f in logger.filters):
        logger.addFilter(NoRowLogging())


def _math_functions(dbapi_conn: Any) -> None:
    """``cos`` and ``radians`` for SQLite builds without its math functions (the directory's distance search,
    ``fhir_ecr/store/mecr_params.py``); PostgreSQL has them."""
    import math
    import sqlite3

    try:
        dbapi_conn.execute("SELECT cos(0), radians(0)")
    except sqlite3.OperationalError:
        dbapi_conn.create_function("cos", 1, math.cos, deterministic=True)
        dbapi_conn.create_function("radians", 1, math.radians, deterministic=True)


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///file`` or ``postgresql+psycopg://…``) set up for the store."""
    _guard_engine_logger()
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=jsonexact.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=16,
            # The connection used last is taken first: a single-threaded job keeps reusing one connection (and
            # its warm page cache) instead of rotating through every connection it ever opened, each filling a
            # page cache of its own (a unit that reads on a second connection made it two).
            pool_use_lifo=True,
            **kwargs,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()
            _math_functions(dbapi_conn)

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN"
            conn.exec_driver_sql(mode)

        return engine
    return sa.create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=jsonexact.loads,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        **kwargs,
    )


def _alembic_config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "fhir_ecr.store:migrations")
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (idempotent)."""
    with engine.connect().execution_options(**{WRITE: True}) as conn:
        command.upgrade(_alembic_config(conn), revision)
        conn.commit()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration's revision id."""
    cfg = Config()
    cfg.set_main_option("script_location", "fhir_ecr.store:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


_SEQUENCES: weakref.WeakKeyDictionary[sa.Engine, str] = weakref.WeakKeyDictionary()


def next_resource_keys(conn: sa.Connection, n: int) -> list[int]:
    """``n`` new ``resource.pk`` values from its sequence (PostgreSQL). The sequence's name is looked up once per
    engine: ``nextval(pg_get_serial_sequence(...))`` in the select list looked it up again for every row (1.3 ms
    for 500 keys, against 0.23 ms with the name bound once)."""
    seq = _SEQUENCES.get(conn.engine)
    if seq is None:
        seq = str(conn.exec_driver_sql("SELECT pg_get_serial_sequence('resource', 'pk')").scalar_one())
        _SEQUENCES[conn.engine] = seq
    rows = conn.exec_driver_sql(
        "SELECT nextval(%(seq)s::regclass) FROM generate_series(1, %(n)s)", {"seq": seq, "n": n}
    ).all()
    return [r[0] for r in rows]
