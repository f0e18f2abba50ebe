"""The billing rule table: services (what a session bills as) and payers (how each payer wants it), as data.

The package ships ``rules.yaml``; a practice adds a practice file (its billing provider, fee schedules, its
own codes and payer overrides; ``practice.example.yaml``). :func:`load_rules` deep-merges the files in order —
maps merge key by key, lists and scalars replace — and checks the result against the models below, reporting
every problem with its path (:class:`~fhir_ecr.billing.errors.RuleTableError`).

Payer resolution: every payer inherits from ``default`` (or from the payer named in ``inherits``); a payer's
``services`` entries override single fields of a service for that payer only (e.g. Medi-Cal's 16-minute
midpoint rule). :meth:`RuleTable.payer` returns the fully merged :class:`Payer`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import RuleTableError

__all__ = [
    "Band",
    "GroupSizeCode",
    "Participants",
    "Frequency",
    "YearLimit",
    "Monthly",
    "Service",
    "Telehealth",
    "PayerSpec",
    "Payer",
    "Address",
    "Practice",
    "RuleTable",
    "load_rules",
    "deep_merge",
    "icd10_in_range",
    "DEFAULT_RULES",
]

DEFAULT_RULES = "rules.yaml"
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_MODIFIER = re.compile(r"^[A-Z0-9]{2}$")
_ICD10 = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Model):
    """A time band: the highest band whose ``min_minutes`` the session reaches is billed."""

    min_minutes: int = Field(ge=0)
    code: str


class GroupSizeCode(_Model):
    """The code for a group of ``min``..``max`` participants (98960 individual, 98961 2-4, 98962 5-8)."""

    min: int = Field(ge=1)
    max: int | None = None
    code: str


class Participants(_Model):
    """How many people a session may have: individual codes 1..1, group codes 2.. (0593T has no maximum)."""

    min: int = Field(default=1, ge=1)
    max: int | None = None


class YearLimit(_Model):
    """At most ``max`` lines a year: per ``calendar`` year (1 January to 31 December) or in the ``rolling`` 12
    months that end on the day of service (the same date a year earlier is outside the window)."""

    max: int = Field(ge=1)
    window: Literal["calendar", "rolling"]


class Frequency(_Model):
    """Most lines per patient: ever, per year (calendar or rolling), per day. Services whose frequency names the
    same ``counter`` count their lines together (G0447 and G0473 share the 22 IBT visits of NCD 210.12)."""

    lifetime: int | None = Field(default=None, ge=1)
    year: YearLimit | None = None
    day: int | None = Field(default=None, ge=1)
    counter: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")

    @field_validator("year", mode="before")
    @classmethod
    def _year_says_its_window(cls, value: Any) -> Any:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            raise ValueError(
                f"give the window of the yearly limit: {{max: {value}, window: calendar}} or "
                f"{{max: {value}, window: rolling}}"
            )
        return value


class Monthly(_Model):
    """A per-calendar-month service: ``code`` once ``minutes`` are reached, then ``addon_code`` per block."""

    code: str
    minutes: int = Field(ge=1)
    addon_code: str | None = None
    addon_minutes: int | None = Field(default=None, ge=1)
    addon_max_units: int | None = Field(default=None, ge=1)


class Service(_Model):
    """What a session bills as. Exactly one of ``code``, ``bands``, ``by_group_size`` or ``monthly``."""

    description: str
    match: tuple[str, ...]
    enabled: bool = True
    code: str | None = None
    bands: tuple[Band, ...] = ()
    by_group_size: tuple[GroupSizeCode, ...] = ()
    monthly: Monthly | None = None
    participants: Participants = Participants()
    min_minutes: int = Field(default=0, ge=0)
    unit_minutes: int | None = Field(default=None, ge=1)
    unit_midpoint: int | None = Field(default=None, ge=1)
    max_units: int | None = Field(default=None, ge=1)
    max_units_per_day: int | None = Field(default=None, ge=1)
    daily_total: bool = False
    credentials: tuple[str, ...] | None = None
    required_diagnoses: tuple[tuple[str, ...], ...] = ()
    frequency: Frequency = Frequency()
    not_same_day: tuple[str, ...] = ()
    telehealth: bool = False
    modifiers: tuple[str, ...] = ()

    @field_validator("required_diagnoses", mode="before")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        # A flat list is one group ("any of these"); a list of lists is one group per position, in order.
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            return [value]
        return value

    @model_validator(mode="after")
    def _one_way_to_pick_a_code(self) -> Service:
        ways = sum(bool(x) for x in (self.code, self.bands, self.by_group_size, self.monthly))
        if ways != 1:
            raise ValueError("give exactly one of code, bands, by_group_size, monthly")
        for code in self.codes:
            if not _CODE.match(code):
                raise ValueError(f"{code!r} is not a CPT/HCPCS code (5 characters, A-Z 0-9)")
        for m in self.modifiers:
            if not _MODIFIER.match(m):
                raise ValueError(f"{m!r} is not a modifier (2 characters)")
        for group in self.required_diagnoses:
            if not group:
                raise ValueError("a required_diagnoses group needs at least one ICD-10-CM code or range")
            for r in group:
                lo, _, hi = r.partition("-")
                if not _ICD10.match(lo) or (hi and not _ICD10.match(hi)):
                    raise ValueError(f"{r!r} is not an ICD-10-CM code or range (e.g. Z68.30-Z68.39)")
        if self.unit_midpoint is not None and (
            self.unit_minutes is None or self.unit_midpoint > self.unit_minutes
        ):
            raise ValueError("unit_midpoint needs unit_minutes and cannot exceed it")
        if self.daily_total and self.monthly is not None:
            raise ValueError("daily_total and monthly exclude each other")
        return self

    @property
    def midpoint(self) -> int | None:
        """Minutes that make the first unit: ``unit_midpoint``, else the CPT midpoint (half a unit plus one)."""
        if not self.unit_minutes:
            return None
        return self.unit_midpoint if self.unit_midpoint is not None else self.unit_minutes // 2 + 1

    @field_validator("match")
    @classmethod
    def _system_pipe_code(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for m in value:
            if "|" not in m:
                raise ValueError(f"{m!r} must be system|code")
        return value

    @property
    def codes(self) -> list[str]:
        """Every CPT/HCPCS code this service can produce."""
        out = [self.code] if self.code else []
        out += [b.code for b in self.bands] + [g.code for g in self.by_group_size]
        if self.monthly:
            out += [self.monthly.code] + ([self.monthly.addon_code] if self.monthly.addon_code else [])
        return out


Place = Literal["home", "other"]


class Telehealth(_Model):
    """Whether a payer pays telehealth, audio-only, and the POS and modifiers it wants (CMS POS 02/10; 95/93).

    ``places`` says where the patient may be for each modality (``home``: POS 10; ``other``: POS 02): Medicare
    pays audio-only only with the beneficiary at home (42 CFR 410.78(a)(3), CY 2025 PFS)."""

    allowed: bool = True
    audio_only: bool = False
    pos_home: str = "10"
    pos_other: str = "02"
    modifier_video: str | None = "95"
    modifier_audio: str | None = "93"
    places: dict[Literal["video", "audio-only"], tuple[Place, ...]] = Field(
        default_factory=lambda: {"video": ("home", "other"), "audio-only": ("home", "other")}  # type: ignore[arg-type]
    )

    def pays_at(self, modality: str, at_home: bool) -> bool:
        """True when the payer pays ``modality`` with the patient at home (``at_home``) or elsewhere."""
        where = self.places.get(modality, ("home", "other"))  # type: ignore[call-overload]
        return ("home" if at_home else "other") in where


class PayerSpec(_Model):
    """A payer entry as written (before inheritance)."""

    name: str | None = None
    inherits: str | None = None
    payer_id: str | None = None
    payer_id_systems: tuple[str, ...] | None = None
    match: tuple[str, ...] | None = None
    claim_filing_indicator: str | None = None
    electronic: bool | None = None
    incident_to: bool | None = None
    rendering: tuple[Literal["coach", "supervisor"], ...] | None = None
    supervisor_required: bool | None = None
    report_supervising: bool | None = None
    pos_office: str | None = None
    telehealth: dict[str, Any] | None = None
    fees: dict[str, Decimal] | None = None
    services: dict[str, dict[str, Any]] | None = None


class Payer(_Model):
    """A payer after inheritance: everything the engine and the exporters need to know about it."""

    key: str
    name: str
    payer_id: str | None = None  # the id on claims (2010BB); None: the payer Organization's identifier below
    payer_id_systems: tuple[str, ...] = ()  # identifier systems of a payer Organization that hold a payer ID
    match: tuple[str, ...] = ()
    claim_filing_indicator: str = "CI"
    electronic: bool = True
    incident_to: bool = False
    rendering: tuple[Literal["coach", "supervisor"], ...] = ("coach", "supervisor")
    supervisor_required: bool = False
    report_supervising: bool = False
    pos_office: str = "11"
    telehealth: Telehealth = Telehealth()
    fees: dict[str, Decimal] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)


class Address(_Model):
    """A postal address as the 837P wants it (N3/N4; ZIP+4 for the billing provider)."""

    line: str
    city: str
    state: str = Field(pattern=r"^[A-Z]{2}$")
    postal_code: str = Field(pattern=r"^[0-9]{5}([0-9]{4})?$")


class Party(_Model):
    """The submitter or receiver of an interchange (1000A/1000B and the ISA/GS sender and receiver ids)."""

    name: str
    id: str = Field(min_length=2, max_length=15)
    contact: str | None = None
    phone: str | None = Field(default=None, pattern=r"^[0-9]{10}$")


class Practice(_Model):
    """The billing provider (2010AA) and the interchange partners, from the practice file."""

    name: str
    npi: str = Field(pattern=r"^[0-9]{10}$")
    tin: str = Field(pattern=r"^[0-9]{9}$")
    taxonomy: str | None = Field(default=None, pattern=r"^[0-9A-Z]{9}X$")
    address: Address
    phone: str | None = Field(default=None, pattern=r"^[0-9]{10}$")
    submitter: Party
    receiver: Party
    usage: Literal["T", "P"] = "T"
    default_supervisor: str | None = Field(default=None, pattern=r"^(Practitioner|PractitionerRole)/.+$")


class _Table(_Model):
    version: Literal[1]
    services: dict[str, Service]
    payers: dict[str, PayerSpec]
    practice: Practice | None = None


@dataclass(frozen=True)
class RuleTable:
    """The merged, checked rule table (services, payers, and the practice when a practice file gave one)."""

    services: Mapping[str, Service]
    payer_specs: Mapping[str, dict[str, Any]]
    practice: Practice | None
    sources: tuple[str, ...] = ()
    _cache: dict[str, Payer] = field(default_factory=dict, compare=False, repr=False)

    def payer(self, key: str) -> Payer:
        """The payer ``key`` with inheritance applied (``default`` when the key is unknown)."""
        if key not in self.payer_specs:
            key = "default"
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._resolve(key, ())
        return cached

    def _merged_spec(self, key: str, seen: tuple[str, ...]) -> dict[str, Any]:
        if key in seen:
            raise RuleTableError(
                "rules", [f"payers.{key}: inherits in a cycle ({' -> '.join((*seen, key))})"]
            )
        spec = self.payer_specs[key]
        parent = spec.get("inherits") or ("default" if key != "default" else None)
        if parent is None:
            return copy.deepcopy(spec)
        if parent not in self.payer_specs:
            raise RuleTableError("rules", [f"payers.{key}.inherits: no payer {parent!r}"])
        merged: dict[str, Any] = deep_merge(self._merged_spec(parent, (*seen, key)), spec)
        return merged

    def _resolve(self, key: str, seen: tuple[str, ...]) -> Payer:
        spec = self._merged_spec(key, seen)
        spec.pop("inherits", None)
        overrides = spec.pop("services", None) or {}
        services: dict[str, Service] = {}
        problems: list[str] = []
        for name, base in self.services.items():
            over = overrides.get(name)
            if not over:
                services[name] = base
                continue
            try:
                services[name] = Service.model_validate(
                    deep_merge(base.model_dump(exclude_defaults=True), over)
                )
            except ValidationError as exc:
                problems += _problems(exc, f"payers.{key}.services.{name}")
        for name in overrides:
            if name not in self.services:
                problems.append(f"payers.{key}.services.{name}: no such service")
        try:
            payer = Payer.model_validate(
                {
                    "key": key,
                    "payer_id": spec.get("payer_id"),
                    **{k: v for k, v in spec.items() if v is not None and k != "payer_id"},
                    "services": services,
                    "name": spec.get("name") or key,
                }
            )
        except ValidationError as exc:
            problems += _problems(exc, f"payers.{key}")
        if problems:
            raise RuleTableError(", ".join(self.sources) or "rules", problems)
        for code in payer.fees:
            if not _CODE.match(code):
                raise RuleTableError(
                    ", ".join(self.sources), [f"payers.{key}.fees.{code}: not a CPT/HCPCS code"]
                )
        return payer

    @cached_property
    def payer_keys(self) -> list[str]:
        """Every payer key, sorted."""
        return sorted(self.payer_specs)

    def payer_for(self, identifiers: Iterable[str]) -> Payer:
        """The payer whose ``match`` list holds one of ``identifiers`` (payer ids, ``Organization/id``)."""
        ids = set(identifiers)
        for key in self.payer_keys:
            if ids & set(self.payer(key).match):
                return self.payer(key)
        return self.payer("default")

    def check_all(self) -> None:
        """Resolve every payer once, so a broken override fails at load time, not mid-export."""
        for key in self.payer_keys:
            self.payer(key)


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: maps merge key by key (recursively); anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append(f"{prefix}{'.' + loc if loc else ''}: {err.get('msg')}")
    return out


def _read_yaml(source: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleTableError(source, [f"not valid YAML: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RuleTableError(source, ["the file must hold a mapping at the top level"])
    return data


def load_rules(*practice_files: str | Path, include_defaults: bool = True) -> RuleTable:
    """The shipped ``rules.yaml`` with each practice file deep-merged over it, checked.

    >>> rules = load_rules()                      # doctest: +SKIP
    >>> rules.payer("medicare").incident_to       # doctest: +SKIP
    True
    """
    merged: dict[str, Any] = {}
    sources: list[str] = []
    if include_defaults:
        text = resources.files(__package__).joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
        merged = _read_yaml(DEFAULT_RULES, text)
        sources.append(DEFAULT_RULES)
    for path in practice_files:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise RuleTableError(str(p), [f"cannot read: {exc.strerror}"]) from exc
        merged = deep_merge(merged, _read_yaml(str(p), text))
        sources.append(str(p))
    label = ", ".join(sources)
    try:
        table = _Table.model_validate(merged)
    except ValidationError as exc:
        raise RuleTableError(label, _problems(exc, "")) from exc
    if "default" not in table.payers:
        raise RuleTableError(label, ["payers.default is required"])
    raw_payers = {k: v.model_dump(exclude_none=True) for k, v in table.payers.items()}
    rules = RuleTable(
        services=dict(table.services), payer_specs=raw_payers, practice=table.practice, sources=tuple(sources)
    )
    rules.check_all()
    return rules


def icd10_in_range(code: str, ranges: Iterable[str]) -> bool:
    """True when the ICD-10-CM ``code`` (with or without its dot) falls in one of ``ranges`` ("Z68.30-Z68.39").

    Codes compare as strings without the dot, padded so that a range end like Z68.39 covers Z68.39x.
    """
    c = code.replace(".", "")
    for r in ranges:
        lo, _, hi = r.partition("-")
        lo_c, hi_c = lo.replace(".", ""), (hi or lo).replace(".", "")
        if lo_c <= c and (c <= hi_c or c.startswith(hi_c)):
            return True
    return False
