"""The store's tables (SQLModel): current resources, their version history, and the search indexes.

- ``resource``: one row per (type, id) with the current version's JSON (JSONB on PostgreSQL), its version number
  and ``lastUpdated`` (µs since the epoch, UTC). A deleted resource keeps its row with ``deleted = true``.
- ``resource_history``: every version ever written, including deletions (``content`` null). The current version's
  JSON is written once, in its ``resource`` row: its history row's ``content`` stays null until a newer version
  or a deletion replaces it, and then receives it (``records.select_versions`` reads either).
- ``idx_*``: search-index rows of the *current* version, keyed by ``resource.pk`` (see ``indexer``).
- ``kv``: small server state (e.g. the demo loader's marker).
- ``patient_version``: a per-patient data version, bumped in the same transaction as every write of a resource
  in that patient's compartment (``FhirRepository.patient_version``), so caches of computed views can tell
  in one key lookup whether anything they were computed from has changed, across processes.
- ``derived_observation``, ``derived_observation_code``: derived data kept by a write hook registered from outside the
  store (the coaching views': ``fhir_ecr.coaching.derived``, docs/architecture.md "Derived data"), in the same
  transaction as the Observation writes they project; the store only hosts them.
- ``ehr_registration``, ``api_client``: who may launch mECR and who may call its API as a backend client.
- ``auth_credential``, ``auth_once``: sessions and issued tokens (by hash), single-use ``state``/``jti`` values.
- ``sync_outbox``, ``sync_link``, ``sync_mark``, ``bulk_export``: EMR sync (docs/sync.md): the transactional outbox
  of writes to push, which local record is which EMR record, the pull high-water marks, Bulk Data export jobs.

The alembic migrations in ``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

__all__ = [
    "metadata",
    "ResourceRow",
    "HistoryRow",
    "TOKEN_INDEX",
    "STRING_INDEX",
    "DATE_INDEX",
    "REFERENCE_INDEX",
    "NUMBER_INDEX",
    "QUANTITY_INDEX",
    "URI_INDEX",
    "KeyValue",
    "PatientVersion",
    "KeptView",
    "EhrRegistration",
    "ApiClient",
    "AuthCredential",
    "AuthOnce",
    "SyncOutbox",
    "SyncLink",
    "SyncMark",
    "BulkExport",
    "DerivedObservation",
    "DerivedObservationCode",
    "INDEX_TABLES",
]

metadata = SQLModel.metadata

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


class ResourceRow(SQLModel, table=True):
    """The current version of each resource."""

    __tablename__ = "resource"
    __table_args__ = (
        sa.UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
        # a type's resources in key order (cursor paging, Bulk Data export): migration 0010
        sa.Index("ix_resource_type_pk", "res_type", "pk"),
    )

    pk: int | None = Field(default=None, sa_column=sa.Column(PK, primary_key=True, autoincrement=True))
    res_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    res_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    version_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    last_updated: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    content: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSON_DOC, nullable=True))


class HistoryRow(SQLModel, table=True):
    """Every version of every resource."""

    __tablename__ = "resource_history"
    __table_args__ = (
        sa.UniqueConstraint("res_type", "res_id", "version_id", name="uq_history_version"),
        sa.Index("ix_history_type_updated", "res_type", "last_updated"),
        sa.Index("ix_history_updated", "last_updated"),
    )

    pk: int | None = Field(default=None, sa_column=sa.Column(PK, primary_key=True, autoincrement=True))
    res_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    res_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    version_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    last_updated: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    method: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    content: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSON_DOC, nullable=True))


def _index_table(
    name: str, values: list[sa.Column[Any]], lookup: tuple[str, ...], *extra: sa.Index
) -> sa.Table:
    """A search-index table, declared once for all seven: the resource's key and type, the search parameter,
    then ``values``; the rows have no key of their own (migration 0016). ``ix_*_lookup`` (res_type, param,
    *lookup, res_pk) drives a search from a value; ``ix_*_res`` (res_pk, param, *lookup) answers the
    per-candidate probes from the index alone and finds a resource's rows to replace."""
    short = name.removeprefix("idx_")
    return sa.Table(
        name,
        metadata,
        sa.Column("res_pk", sa.BigInteger, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        *values,
        sa.Index(f"ix_{short}_lookup", "res_type", "param", *lookup, "res_pk"),
        sa.Index(f"ix_{short}_res", "res_pk", "param", *lookup),
        *extra,
    )


def _text(column: str, length: int = 255, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(column, sa.String(length), nullable=nullable)


TOKEN_INDEX = _index_table("idx_token", [_text("system"), _text("code"), _text("text")], ("code", "system"))
STRING_INDEX = _index_table(
    "idx_string", [_text("value", nullable=False), _text("exact", nullable=False)], ("value",)
)
DATE_INDEX = _index_table(
    "idx_date",
    [sa.Column("low", sa.BigInteger, nullable=False), sa.Column("high", sa.BigInteger, nullable=False)],
    ("low", "high"),
)
REFERENCE_INDEX = _index_table(
    "idx_reference",
    [_text("target_type", 64), _text("target_id", 64), _text("url", 1024)],
    ("target_id", "target_type"),
    sa.Index("ix_reference_target", "target_type", "target_id"),
)
NUMBER_INDEX = _index_table("idx_number", [sa.Column("value", sa.Float, nullable=False)], ("value",))
QUANTITY_INDEX = _index_table(
    "idx_quantity",
    [sa.Column("value", sa.Float, nullable=False), _text("system"), _text("code"), _text("unit")],
    ("value",),
)
URI_INDEX = _index_table("idx_uri", [_text("value", 1024, nullable=False)], ("value",))


class KeyValue(SQLModel, table=True):
    """Small server state."""

    __tablename__ = "kv"
    key: str = Field(sa_column=sa.Column(sa.String(128), primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


class PatientVersion(SQLModel, table=True):
    """The data version of one patient: changes whenever a resource in the patient's compartment is written."""

    __tablename__ = "patient_version"
    patient_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class EhrRegistration(SQLModel, table=True):
    """An EHR allowed to launch mECR (``mecr ehr add``): its FHIR base (``iss``) and mECR's client there."""

    __tablename__ = "ehr_registration"
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    iss: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False, unique=True))
    client_id: str = Field(sa_column=sa.Column(sa.String(256), nullable=False))
    auth_method: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    secret_enc: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    launch_scope: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    patient_scope: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    name: str = Field(sa_column=sa.Column(sa.String(256), nullable=False))
    created: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    #: mECR's client id for SMART Backend Services at the EHR (sync); None: the launch client id.
    backend_client_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(256), nullable=True))
    #: What sync pulls and pushes for this EHR (JSON, fhir_ecr.sync.config); None: no sync.
    sync_config: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class ApiClient(SQLModel, table=True):
    """A backend-services client of mECR's own API (``mecr client add``)."""

    __tablename__ = "api_client"
    client_id: str = Field(sa_column=sa.Column(sa.String(256), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(256), nullable=False))
    jwks_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(1024), nullable=True))
    jwks: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    scope: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    #: The community organisation (Organization id) the client acts for; None for the practice's own clients.
    organization: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))


class AuthCredential(SQLModel, table=True):
    """A browser session or an issued access token, under the SHA-256 of its secret value."""

    __tablename__ = "auth_credential"
    __table_args__ = (sa.Index("ix_auth_credential_expires", "expires"),)
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    data: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    secret_enc: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    expires: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class AuthOnce(SQLModel, table=True):
    """Single-use values: pending SMART authorizations (``state``) and client-assertion ``jti``s."""

    __tablename__ = "auth_once"
    __table_args__ = (sa.Index("ix_auth_once_expires", "expires"),)
    key: str = Field(sa_column=sa.Column(sa.String(128), primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    expires: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class SyncOutbox(SQLModel, table=True):
    """A local write to push to an EMR, recorded in the same transaction as the write (transactional outbox).

    ``state``: ``pending`` (due at ``next_attempt``), ``claimed`` (a worker holds it until ``claimed_until``),
    ``done``, ``skipped`` (nothing to push, ``detail`` says why) or ``parked`` (a permanent failure, with the EMR's
    OperationOutcome in ``outcome``, until an administrator retries it). At most one ``pending`` row per resource
    and EMR: later writes of the same resource update it (the worker pushes the current version)."""

    __tablename__ = "sync_outbox"
    __table_args__ = (
        sa.Index("ix_sync_outbox_due", "ehr_id", "state", "next_attempt"),
        sa.Index(
            "uq_sync_outbox_pending",
            "ehr_id",
            "res_type",
            "res_id",
            unique=True,
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        ),
    )
    id: int | None = Field(default=None, sa_column=sa.Column(PK, primary_key=True, autoincrement=True))
    ehr_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    res_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    res_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    version_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    state: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    created: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))  # times: epoch seconds
    next_attempt: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    claimed_until: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    finished: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    last_status: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    outcome: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class SyncLink(SQLModel, table=True):
    """A local resource and its EMR counterpart: pulled (``direction`` ``pull``) or pushed (``push``), with the
    EMR's id and version, and for a push the hash of what mECR last sent (to tell its own edit from another's)."""

    __tablename__ = "sync_link"
    __table_args__ = (sa.Index("ix_sync_link_remote", "ehr_id", "res_type", "remote_id"),)
    ehr_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    res_type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    res_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    direction: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    remote_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    remote_version: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    pushed_hash: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    updated: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class SyncMark(SQLModel, table=True):
    """Pull progress of one EMR and resource type (``res_type`` ``*`` for a Bulk Data pull): the high-water mark
    (the EMR's ``lastUpdated`` or an export's ``transactionTime``, as the EMR wrote it), the last run's figures,
    and, for a Bulk Data pull under way, its state (status URL, files done) so a restarted worker resumes it."""

    __tablename__ = "sync_mark"
    ehr_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    res_type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    high_water: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    last_started: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    last_finished: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    last_count: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    state: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class BulkExport(SQLModel, table=True):
    """A Bulk Data ``$export`` job of a system client: what it asked for, its progress and its files."""

    __tablename__ = "bulk_export"
    __table_args__ = (sa.Index("ix_bulk_export_expires", "expires"),)
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    client_id: str = Field(sa_column=sa.Column(sa.String(256), nullable=False))
    scope: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    request: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    params: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    state: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    progress: str | None = Field(default=None, sa_column=sa.Column(sa.String(256), nullable=True))
    transaction_time: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    claimed_until: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    expires: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    output: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class DerivedObservation(SQLModel, table=True):
    """One row per current Observation whose subject is a Patient (derived data, kept by a write hook): its key
    (the ``resource`` row's, where the views read its id and the elements they need), patient, ``date`` range (µs,
    as ``idx_date`` holds it) and, for a habit check-in, the token values a check-in ledger needs (identifier key,
    result code, status); ``system`` and ``code``, its first distinct ``code`` coding (the others are rows of
    ``derived_observation_code``). One index, ``(patient_id, code, system, low, high)``: a measure's readings and
    the check-ins (a code like any other) by code and date, the latest data of any code by the patient's range
    of it, each date filter applied in the index. Row and index are kept small (migration 0014): the pages a
    write dirties are most of what the hook costs it. The index holds the key too (on SQLite as the rowid, on
    PostgreSQL as an included column: migration 0015), so a patient's readings of a code come from the index alone."""

    __tablename__ = "derived_observation"
    __table_args__ = (
        # PostgreSQL: res_pk included, so the index answers alone (migration 0015); SQLite's ends with the rowid
        sa.Index(
            "ix_derived_observation_code",
            "patient_id",
            "code",
            "system",
            "low",
            "high",
            postgresql_include=["res_pk"],
        ),
    )
    res_pk: int = Field(sa_column=sa.Column(PK, primary_key=True, autoincrement=False))  # SQLite: the rowid
    patient_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    low: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    high: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    checkin_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    checkin_result: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    status: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    system: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    code: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class DerivedObservationCode(SQLModel, table=True):
    """One row per distinct ``code`` coding after the first of a row of ``derived_observation`` (``seq`` 1, 2, …;
    the first is in that row), with its patient and date range again, so that "this patient's readings of these
    codes since then" is one index range here and one there."""

    __tablename__ = "derived_observation_code"
    __table_args__ = (sa.Index("ix_derived_observation_code_lookup", "patient_id", "code", "system", "low"),)
    res_pk: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    patient_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    system: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    low: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    high: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))


class KeptView(SQLModel, table=True):
    """A computed coaching view kept in the database (derived data): the caseload's glance and the coaching summary
    of one patient, with what it was computed from — the patient's data version, the local day and time zone it
    was computed for and a digest of the service's parameters — so that a reader in any process can tell whether
    it is still the view it would compute (``fhir_ecr.coaching.derived.kept``). ``value`` is the pickled view,
    read back with an unpickler that admits only plain data."""

    __tablename__ = "kept_view"
    patient_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    view: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    local_day: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))
    tz: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    params: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    computed_at: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    value: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))


#: The search-index tables by name; their value columns (after ``rowid``, ``res_pk`` and ``res_type``) are
#: ``records.INDEX_COLUMNS``, derived from these declarations.
INDEX_TABLES: dict[str, sa.Table] = {
    t.name: t
    for t in (TOKEN_INDEX, STRING_INDEX, DATE_INDEX, REFERENCE_INDEX, NUMBER_INDEX, QUANTITY_INDEX, URI_INDEX)
}
