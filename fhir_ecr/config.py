"""Settings: one pydantic-settings class, read from ``MECR_*`` environment variables (and a ``.env`` file).

Every setting carries its help text; ``docs/configuration.md`` is generated from this class and a test keeps it
in step.
"""

from __future__ import annotations

import ipaddress
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
        default=32 * 1024 * 1024, description="Largest request body accepted, in bytes; larger bodies get 413."
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
    session_ttl_seconds: int = Field(default=8 * 3600, description="Lifetime of a browser session, in seconds.")
    access_token_ttl_seconds: int = Field(
        default=300, description="Lifetime of the access tokens mECR issues to system clients, in seconds.")
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

    #: True when base_url was not configured but follows host and port (see :meth:`bound_to`).
    _derived_base_url: bool = PrivateAttr(default=False)

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
