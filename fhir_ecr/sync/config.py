"""What sync pulls from and pushes to one EMR, as stored with its registration (``mecr sync configure``).

    Patient, Condition, Observation?category=vital-signs,laboratory, Coverage   (pull)
    Goal, CarePlan, Encounter, DocumentReference, Observation?code=http://loinc.org|41950-7   (push)

A pull entry is a resource type with optional search parameters sent to the EMR as they are. A push entry is a
type with optional token filters (``code``, ``category``, … — a token search parameter of that type) that a
local write must match to be pushed; mECR evaluates them from the write's own index rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

__all__ = ["PullSpec", "PushSpec", "SyncConfig", "ConfigError", "DEFAULT_PULL", "DEFAULT_PUSH", "parse_specs"]

#: What the coach needs from the chart (issue #18): demographics, problems, vitals and labs, coverage, the EMR's own
#: goals and plans, visits, allergies and the medications the patient takes (what a coach must know before
#: advising on food or exercise). An EMR that refuses one type's search does not stop the others (docs/sync.md).
DEFAULT_PULL = (
    "Patient, Condition, Observation?category=vital-signs,laboratory, Coverage, Goal, CarePlan, "
    "Encounter, AllergyIntolerance, MedicationStatement"
)
#: What the physician needs from coaching: goals, habit plans, sessions and their notes.
DEFAULT_PUSH = "Goal, CarePlan, Encounter, DocumentReference"
#: Types mECR never pushes: identity is linked, not copied (docs/smart.md), and the audit trail is mECR's own.
NOT_PUSHED = frozenset({"Patient", "Practitioner", "AuditEvent", "Provenance"})


class ConfigError(ValueError):
    """A sync configuration that cannot work (shown to the operator)."""


@dataclass(frozen=True)
class PullSpec:
    type: str
    query: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.type + (f"?{urlencode(self.query, safe=',|:/')}" if self.query else "")


@dataclass(frozen=True)
class PushSpec:
    type: str
    filters: tuple[tuple[str, str], ...] = ()  # (token parameter, "system|code" or "code"), all must match

    def __str__(self) -> str:
        return self.type + (f"?{urlencode(self.filters, safe=',|:/')}" if self.filters else "")

    def matches(self, tokens: tuple[tuple[Any, ...], ...]) -> bool:
        """Does a write with these token index rows ``(param, system, code, text)`` pass the filters (each
        parameter: any of its comma-separated values)?"""
        for param, wanted in self.filters:
            ok = False
            for value in wanted.split(","):
                system, bar, code = value.rpartition("|")
                ok = ok or any(
                    row[0] == param and row[2] == code and (not bar or (row[1] or "") == system)
                    for row in tokens
                )
            if not ok:
                return False
        return True


def _types() -> frozenset[str]:
    from ..store.searchparams import search_params

    return frozenset(search_params())


def parse_specs(text: str, kind: Literal["pull", "push"]) -> list[Any]:
    """``"Patient, Observation?category=vital-signs"`` → specs; ConfigError for an unknown type or parameter."""
    from ..store.searchparams import search_param

    out: list[Any] = []
    for part in (p.strip() for p in _split(text)):
        if not part:
            continue
        rtype, _, query = part.partition("?")
        rtype = rtype.strip()
        if rtype not in _types():
            raise ConfigError(f"{rtype!r} is not a resource type mECR stores")
        pairs = tuple(parse_qsl(query, keep_blank_values=False))
        if kind == "push":
            if rtype in NOT_PUSHED:
                raise ConfigError(f"{rtype} is not pushed to an EMR (identities are linked, not copied)")
            for name, _ in pairs:
                param = search_param(rtype, name)
                if param is None or param.type != "token":
                    raise ConfigError(f"push filter {name!r}: not a token search parameter of {rtype}")
            out.append(PushSpec(rtype, pairs))
        else:
            out.append(PullSpec(rtype, pairs))
    return out


def _split(text: str) -> list[str]:
    """Split on the commas that separate entries, not those inside a query (``category=a,b``)."""
    parts: list[str] = []
    types = _types()
    for piece in text.split(","):
        head = piece.strip().split("?", 1)[0]
        if parts and ("?" in parts[-1]) and head not in types:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return parts


@dataclass(frozen=True)
class SyncConfig:
    """Sync with one EMR. ``mode``: incremental ``paged`` searches or ``bulk`` Data exports (``bulk_level``:
    ``system``, ``patient`` or ``group/ID``); ``interval_minutes`` between scheduled pulls (0: only on demand);
    ``scope``: what mECR asks the EMR's token endpoint for (default: ``rs`` on pulled types, ``cru`` on pushed
    ones); ``batch``: push in batch Bundles (else one request per resource)."""

    pull: tuple[PullSpec, ...] = ()
    push: tuple[PushSpec, ...] = ()
    interval_minutes: int = 15
    mode: Literal["paged", "bulk"] = "paged"
    bulk_level: str = "system"
    scope: str = ""
    batch: bool = True
    enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pull_types(self) -> list[str]:
        return [s.type for s in self.pull]

    @property
    def push_types(self) -> frozenset[str]:
        return frozenset(s.type for s in self.push)

    def token_scope(self) -> str:
        """The scopes to ask the EMR for."""
        if self.scope:
            return self.scope
        letters: dict[str, set[str]] = {}
        for s in self.pull:
            letters.setdefault(s.type, set()).update("rs")
        for p in self.push:
            letters.setdefault(p.type, set()).update("crus")
        order = "cruds"
        return " ".join(
            f"system/{t}.{''.join(c for c in order if c in ls)}" for t, ls in sorted(letters.items())
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "pull": [str(s) for s in self.pull],
                "push": [str(s) for s in self.push],
                "interval_minutes": self.interval_minutes,
                "mode": self.mode,
                "bulk_level": self.bulk_level,
                "scope": self.scope,
                "batch": self.batch,
                "enabled": self.enabled,
                **({"extra": self.extra} if self.extra else {}),
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> SyncConfig | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(
            pull=tuple(parse_specs(", ".join(data.get("pull", [])), "pull")),
            push=tuple(parse_specs(", ".join(data.get("push", [])), "push")),
            interval_minutes=int(data.get("interval_minutes", 15)),
            mode=data.get("mode", "paged"),
            bulk_level=data.get("bulk_level", "system"),
            scope=data.get("scope", ""),
            batch=bool(data.get("batch", True)),
            enabled=bool(data.get("enabled", True)),
            extra=data.get("extra") or {},
        )

    @classmethod
    def build(cls, *, pull: str | None = None, push: str | None = None, **options: Any) -> SyncConfig:
        """A configuration from the operator's text (``None``: the defaults), checked."""
        mode = options.get("mode", "paged")
        if mode not in ("paged", "bulk"):
            raise ConfigError("mode must be paged or bulk")
        level = options.get("bulk_level", "system")
        if level not in ("system", "patient") and not (level.startswith("group/") and len(level) > 6):
            raise ConfigError("the Bulk Data level must be system, patient or group/ID")
        interval = int(options.get("interval_minutes", 15))
        if interval < 0:
            raise ConfigError("the interval must be 0 (on demand only) or more minutes")
        return cls(
            pull=tuple(parse_specs(DEFAULT_PULL if pull is None else pull, "pull")),
            push=tuple(parse_specs(DEFAULT_PUSH if push is None else push, "push")),
            interval_minutes=interval,
            mode=mode,
            bulk_level=level,
            scope=options.get("scope") or "",
            batch=bool(options.get("batch", True)),
            enabled=bool(options.get("enabled", True)),
        )
