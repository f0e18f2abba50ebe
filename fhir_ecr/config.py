"""Settings: one pydantic-settings class, read from ``MECR_*`` environment variables (and a ``.env`` file).

Every setting carries its help text; ``docs/configuration.md`` is generated from this class and a test keeps it
in step.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "is_loopback_host", "settings_markdown"]


def is_loopback_host(host: str | None) -> bool:
    """True for an address only this machine can reach: ``localhost``, 127.0.0.0/8, ``::1``.

    ``0.0.0.0`` and ``::`` (every interface), other addresses, other names and unix sockets are not."""
    if not host:
        return False
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to ``host`` from this machine."""
    if host in ("0.0.0.0", "", "::", "[::]"):  # every interface: this machine reaches it on loopback
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Settings(BaseSettings):
    """mECR's configuration. Environment variables use the ``MECR_`` prefix, e.g. ``MECR_DATABASE_URL``."""

    model_config = SettingsConfigDict(env_prefix="MECR_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'mecr.db'}",
        description="SQLAlchemy URL of the store. Default: the SQLite file mecr.db in the working directory; "
        "postgresql+psycopg://user@host/db selects PostgreSQL.",
    )
    base_url: str = Field(
        default="",
        description="Public base URL of this server (no trailing slash); the FHIR base is {base_url}/fhir. "
        "Used in Location headers, Bundle links and fullUrls, the SMART redirect and launch URLs and the links "
        "mECR prints. Default: http://{MECR_HOST}:{MECR_PORT} (http://127.0.0.1:{MECR_PORT} when the host is "
        "0.0.0.0), following `mecr serve --host/--port`. Set it when a proxy or another name is in front.",
    )
    environment: Literal["development", "test", "production"] = Field(
        default="development", description="Deployment environment; production refuses unsafe defaults."
    )
    host: str = Field(default="127.0.0.1", description="Address `mecr serve` binds to.")
    port: int = Field(default=8000, description="Port `mecr serve` listens on.")
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        description="Largest request body accepted, in bytes; larger bodies get 413.",
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024,
        description="Largest wearable export upload (POST /api/patients/{id}/wearable-imports), in bytes; larger "
        "uploads get 413.",
    )
    max_unzipped_bytes: int = Field(
        default=8 * 1024**3,
        description="Most bytes a wearable import decompresses from one zip archive (upload or `mecr import "
        "wearable`); a larger archive is refused (413 / exit status 1) before it is decompressed.",
    )
    max_zip_ratio: int = Field(
        default=200,
        description="Largest uncompressed/compressed size ratio of one zip member over 1 MiB (a zip bomb of "
        "zeros reaches ~1000); checked from the archive's directory and again while decompressing.",
    )
    default_page_size: int = Field(default=20, description="Search page size when _count is not given.")
    max_page_size: int = Field(default=1000, description="Largest _count honoured; larger values are capped.")
    max_bundle_entries: int = Field(default=10000, description="Largest batch/transaction Bundle accepted.")
    validation_workers: int = Field(
        default_factory=lambda: 1 if (os.cpu_count() or 1) >= 2 else 0,
        ge=0,
        le=16,
        description="Worker processes of `mecr serve` that validate a large transaction's resources (64 or more) "
        "while the request writes them, when they are idle (docs/architecture.md; about 80 MB each, started with "
        "the server). Default: 1 on a machine of two cores or more, 0 on one. 0: every resource is validated in "
        "the request, which suits a server whose cores are all kept busy by concurrent writers.",
    )
    enforce_references: bool = Field(
        default=True,
        description="Refuse a write whose local reference (Patient/123) names no resource on this server (422), "
        "and a delete of a resource others refer to (409, unless _cascade=delete). Turn off only for a bulk load "
        "in dependency order; transactions resolve references to their own entries either way.",
    )
    log_level: str = Field(default="INFO", description="Python logging level of the mecr loggers.")
    default_time_zone: str = Field(
        default="UTC",
        description="The practice's IANA time zone (e.g. America/New_York): patients whose Patient resource has "
        "no timezone extension count their days in it (check-ins, adherence, streaks, the date of service on "
        "claims), and the patient page says so. Set it to the practice's real zone; UTC is nobody's local day.",
    )
    referral_link_days: int = Field(
        default=14,
        ge=1,
        le=90,
        description="How many days a community organisation's referral link (`/r/{token}`) works before it "
        "expires; the coach can revoke it sooner or make a new one (docs/referrals.md).",
    )
    referral_response_days: str = Field(
        default="7",
        description="Days without a response from the organisation after which a requested referral is flagged "
        "on the caseload: one number for every need (`7`), optionally followed by per-category overrides with "
        "the Gravity SDOH category code, e.g. `7,food-insecurity=3,housing-instability=10` (docs/referrals.md).",
    )
    billing_rules: str = Field(
        default="",
        description="Practice billing rule files (YAML) merged over the shipped rules, separated by the OS path "
        "separator; see docs/billing.md.",
    )

    auth: Literal["on", "off", "external"] = Field(
        default="on",
        description="Authorization of every API call and page. `on`: SMART sessions and bearer tokens, scope and "
        "patient-compartment checks, AuditEvents. `off`: development only -- every caller is an all-powerful "
        "developer; refused unless the server binds to a loopback address and the environment is not "
        "production. `external`: an outer ASGI layer authenticates (the embedded sandbox EHR).",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Key that encrypts EHR tokens and mECR's private signing keys at rest (any long random "
        "string; `python -c 'import secrets; print(secrets.token_urlsafe(48))'`). Required in production; in "
        "development and tests a key is generated and kept in the database, with a warning.",
    )
    session_ttl_seconds: int = Field(
        default=8 * 3600, description="Lifetime of a browser session, in seconds."
    )
    access_token_ttl_seconds: int = Field(
        default=300, description="Lifetime of the access tokens mECR issues to system clients, in seconds."
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure. Default: on when base_url is https.",
    )
    cookie_samesite: Literal["lax", "strict", "none"] = Field(
        default="lax",
        description="SameSite of mECR's cookies. `lax` works when the EHR opens mECR in a new window or an "
        "iframe on the same site; an EHR on another site that embeds mECR in an iframe needs `none` (which "
        "browsers accept only with Secure, i.e. an https base_url). CSRF tokens protect writes either way.",
    )
    sandbox_ehr: bool = Field(
        default=False,
        description="Mount the embedded sandbox EHR at /sandbox-ehr/ (a SMART authorization server and FHIR "
        "server over its own database) and register it as the EHR `sandbox`. `mecr demo` turns it on.",
    )
    sandbox_database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the sandbox EHR's own database. Default: sandbox-ehr.db next to the "
        "SQLite store (or the store's PostgreSQL database with the suffix _sandbox_ehr).",
    )
    launch_scope: str = Field(
        default="launch openid fhirUser user/Patient.rs user/Practitioner.rs user/Condition.rs "
        "user/Observation.rs patient/Patient.rs",
        description="Default scopes mECR asks an EHR for in an EHR launch (an EHR registration can override): a "
        "coach's, or a patient's from the patient portal, whom the EHR grants patient/ scopes only "
        "(patient/Patient.rs lets mECR read that patient).",
    )
    patient_scope: str = Field(
        default="launch/patient openid fhirUser patient/Patient.rs",
        description="Default scopes mECR asks an EHR for in a patient's standalone launch.",
    )

    job_store: str = Field(
        default="",
        description="Where the job runner (huey) keeps its queue: `sqlite:///FILE`, `postgresql://…`, "
        "`redis://HOST:PORT/DB`, or `immediate` (run each job at once in the caller, no worker: tests, the sandbox "
        "EHR). Default: a SQLite file next to a SQLite store (`mecr-jobs.db` beside `mecr.db`), or the store's "
        "own PostgreSQL database (schema `mecr_jobs`). See docs/sync.md.",
    )
    refresh_views: bool = Field(
        default=True,
        description="Refresh the kept coaching views (the caseload's rows, summaries, the patient page) on the job "
        "workers a second after each write of their data (docs/architecture.md, 'Kept views'); off, they are "
        "refreshed only by the minute's tick of a running worker. The sandbox EHR turns it off.",
    )
    derived_search: bool = Field(
        default=True,
        description="Let the coaching views' derived tables drive `Observation?patient=…&code=system|code…` "
        "searches (one index range of the patient's readings of the code instead of a probe of each of the "
        "patient's Observations; the same results: docs/architecture.md, 'Search SQL'). Off: the search index "
        "alone, as for every other search (for A/B measurements).",
    )
    worker_threads: int = Field(
        default=2,
        description="Worker threads of `mecr worker` and `mecr serve "
        "--with-worker` (each runs one job at a time).",
    )
    sync_page_size: int = Field(
        default=200, description="`_count` of each page of an incremental pull from an EMR."
    )
    sync_batch_size: int = Field(
        default=500,
        description="Pulled resources written per transaction (a page, or "
        "this many NDJSON lines of a Bulk Data file).",
    )
    sync_push_batch_size: int = Field(
        default=100, description="Outbox rows pushed per batch Bundle to an EMR."
    )
    sync_pull_overlap_seconds: int = Field(
        default=10,
        description="An incremental pull asks the EMR for what changed since the high-water mark "
        "minus this margin (writes the EMR committed late); re-reading an unchanged resource writes nothing.",
    )
    sync_retry_base_seconds: float = Field(
        default=5.0,
        description="First retry delay of a push that failed for a passing reason (timeout, 5xx, "
        "429); it doubles with each attempt, with full jitter, up to MECR_SYNC_RETRY_MAX_SECONDS, and an EMR's "
        "Retry-After is honoured.",
    )
    sync_retry_max_seconds: float = Field(
        default=3600.0, description="Longest delay between two push attempts."
    )
    sync_max_attempts: int = Field(
        default=12,
        description="Push attempts before a row is parked for an "
        "administrator (`mecr sync retry`, the status page).",
    )
    sync_lease_seconds: int = Field(
        default=120,
        description="How long a worker holds the outbox rows or export job it claimed; a worker "
        "killed mid-job leaves them to be claimed again after this.",
    )
    sync_timeout_seconds: float = Field(default=30.0, description="Timeout of each HTTP request to an EMR.")
    sync_identifier_system: str = Field(
        default="",
        description="Identifier system mECR stamps on every resource it pushes to an EMR (the value is "
        "Type/id), so that a retried create finds the first one (If-None-Exist). Default: the FHIR base "
        "{base_url}/fhir. Pin it before changing MECR_BASE_URL, or later pushes will not find earlier ones.",
    )
    export_dir: str = Field(
        default="",
        description="Directory of Bulk Data `$export` files. Default: `mecr-exports/` beside `mecr.db` (the SQLite store), or "
        "`./mecr-exports` with PostgreSQL.",
    )
    export_ttl_seconds: int = Field(
        default=3600,
        description="How long the files of a finished `$export` are "
        "kept; then they are deleted and the status URL answers 404.",
    )
    export_file_lines: int = Field(
        default=100_000,
        description="Most resources per NDJSON file of an `$export` (a type with more gets several files).",
    )

    #: True when base_url was not configured but follows host and port (see :meth:`bound_to`).
    _derived_base_url: bool = PrivateAttr(default=False)

    @field_validator("referral_response_days")
    @classmethod
    def _check_response_days(cls, value: str) -> str:
        import re

        for part in (p.strip() for p in value.split(",")):
            if part and not re.fullmatch(r"([a-z0-9-]+=)?[1-9][0-9]{0,2}", part):
                raise ValueError(f"MECR_REFERRAL_RESPONSE_DAYS: {part!r} is not DAYS or CATEGORY=DAYS")
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def local_url(self) -> str:
        """``http://{host}:{port}``: where ``mecr serve`` listens, as this machine reaches it."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @model_validator(mode="after")
    def _default_base_url(self) -> Settings:
        if not self.base_url:
            object.__setattr__(self, "base_url", self.local_url)
            self._derived_base_url = True
        return self

    def bound_to(self, host: str | None = None, port: int | None = None) -> Settings:
        """These settings for a server bound to ``host``:``port`` (``mecr serve --host/--port``); a base_url
        that was not configured follows them, so every printed link and SMART URL names the real port."""
        update: dict[str, object] = {}
        if host:
            update["host"] = host
        if port:
            update["port"] = port
        if not update:
            return self
        # A copy may have replaced the derived value since (model_copy keeps the flag): then it is configured.
        follows = self._derived_base_url and self.base_url == self.local_url
        bound = self.model_copy(update=update)
        if follows:
            object.__setattr__(bound, "base_url", bound.local_url)
        return bound

    @property
    def fhir_base(self) -> str:
        """The FHIR base URL, ``{base_url}/fhir``."""
        return f"{self.base_url}/fhir"

    @property
    def is_loopback(self) -> bool:
        """True when ``mecr serve`` binds only to this machine."""
        return is_loopback_host(self.host)

    @property
    def is_sqlite(self) -> bool:
        """True when the store is a SQLite database."""
        return self.database_url.startswith("sqlite")

    def _beside_store(self, suffix: str) -> Path | None:
        if not self.is_sqlite or ":memory:" in self.database_url:
            return None
        path = Path(self.database_url.split("///", 1)[1])
        return path.with_name(path.stem + suffix)

    @property
    def jobs_url(self) -> str:
        """The job runner's queue: ``job_store``, or its default (see the setting)."""
        if self.job_store:
            return self.job_store
        beside = self._beside_store("-jobs.db")
        if beside is not None:
            return f"sqlite:///{beside}"
        if self.database_url.startswith("postgresql"):
            return self.database_url
        return "immediate"

    @property
    def export_path(self) -> Path:
        """Where ``$export`` files go: ``export_dir``, or its default (see the setting)."""
        if self.export_dir:
            return Path(self.export_dir)
        return self._beside_store("-exports") or Path.cwd() / "mecr-exports"

    @property
    def push_identifier_system(self) -> str:
        """The identifier system of pushed resources (``sync_identifier_system`` or the FHIR base)."""
        return self.sync_identifier_system or self.fhir_base


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_markdown() -> str:
    """``docs/configuration.md``: every setting with its variable, default and help (kept in step by a test)."""
    lines = [
        "# Configuration",
        "",
        "mECR reads its settings from `MECR_*` environment variables (or a `.env` file in the working",
        "directory). This page is generated from `fhir_ecr/config.py` by `make docs`; a test fails when it is stale.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "`sqlite:///<working directory>/mecr.db`" if name == "database_url" else "(computed)"
        elif name == "base_url":
            default = "`http://{MECR_HOST}:{MECR_PORT}`"
        elif isinstance(field.default, SecretStr):
            default = "(empty)"
        else:
            default = f"`{field.default}`"
        lines.append(f"| `MECR_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(lines) + "\n"
