"""HSDS 3.0 directories in memory, and the nested JSON of the HSDS API in and out.

A :class:`Directory` holds HSDS objects by id, each with its own children nested (a service's phones,
schedules, languages, service areas, attributes, contacts and its ``service_at_locations``; a location's
addresses, phones, languages, accessibility, schedules and contacts; an organization's phones, contacts,
funding, identifiers and programs). Services and locations name their organization by ``organization_id``,
and a service-at-location names its location by ``location_id``: the same shape whichever form the data came
in, the API's nested JSON (:func:`read_hsds_json`) or the tabular data package
(:func:`mappings.community.tabular.read_tabular`).

The JSON shapes read are those of HSDS 3.0's OpenAPI description (``schema/openapi.json``): a ``service``,
``organization``, ``service_at_location`` or ``location`` object, a ``Page`` of them (``contents``), a plain
list of them, or the tabular form as one JSON object (``{"services.csv": [...], ...}``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.errors import MalformedInputError, UnsupportedInputError

__all__ = ["Directory", "read_hsds_json", "services_json", "NUMBER_FIELDS"]

#: Fields HSDS 3.0 types as numbers (the tabular form has them as text).
NUMBER_FIELDS = frozenset(
    {
        "latitude",
        "longitude",
        "minimum_age",
        "maximum_age",
        "extension",
        "year_incorporated",
        "amount",
        "count",
        "interval",
        "timezone",
    }
)

Obj = dict[str, Any]


@dataclass
class Directory:
    """HSDS organizations, services and locations by id (children nested, see the module docstring)."""

    organizations: dict[str, Obj] = field(default_factory=dict)
    services: dict[str, Obj] = field(default_factory=dict)
    locations: dict[str, Obj] = field(default_factory=dict)

    def merge(self, other: Directory) -> None:
        """Add ``other``'s objects; an object seen twice keeps the fuller of its two copies."""
        for mine, theirs in (
            (self.organizations, other.organizations),
            (self.services, other.services),
            (self.locations, other.locations),
        ):
            for oid, obj in theirs.items():
                old = mine.get(oid)
                mine[oid] = obj if old is None or len(obj) >= len(old) else old

    def __len__(self) -> int:
        return len(self.organizations) + len(self.services) + len(self.locations)


def _clean(obj: Mapping[str, Any]) -> Obj:
    """A copy without empty values (None, "", [], {})."""
    return {k: v for k, v in obj.items() if v not in (None, "", [], {})}


def _need_id(obj: Any, kind: str, file: str | None) -> str:
    if not isinstance(obj, dict):
        raise MalformedInputError(f"a {kind} must be a JSON object", file=file)
    oid = obj.get("id")
    if not isinstance(oid, str) or not oid.strip():
        raise MalformedInputError(
            f"a {kind} has no id", file=file, record=str(obj.get("name") or "")[:60] or None
        )
    return oid


def _kind(obj: Mapping[str, Any]) -> str | None:
    """Which HSDS object ``obj`` is (HSDS 3.0 required fields and nested members tell them apart)."""
    if (
        "service" in obj
        and isinstance(obj.get("service"), dict)
        or "location" in obj
        and "service_id" not in obj
        and isinstance(obj.get("location"), dict)
    ):
        return "service_at_location"
    if "status" in obj or "service_at_locations" in obj or "service_areas" in obj:
        return "service"
    if "location_type" in obj or "addresses" in obj or "latitude" in obj:
        return "location"
    if (
        "services" in obj
        or "website" in obj
        or "organization_identifiers" in obj
        or "legal_status" in obj
        or "description" in obj
        and "name" in obj
    ):
        return "organization"
    return None


def read_hsds_json(data: Any, *, file: str | None = None) -> Directory:
    """A :class:`Directory` from parsed HSDS JSON (any shape the module docstring lists)."""
    from .tabular import read_tabular

    directory = Directory()
    if isinstance(data, dict) and any(str(k).endswith(".csv") for k in data):
        return read_tabular({k: v for k, v in data.items() if isinstance(v, list)}, file=file)
    if isinstance(data, dict) and isinstance(data.get("contents"), list):
        items: Iterable[Any] = data["contents"]
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = [data]
    else:
        raise MalformedInputError("HSDS JSON must be an object or a list of objects", file=file)
    for i, item in enumerate(items):
        kind = _kind(item) if isinstance(item, dict) else None
        if kind is None:
            raise UnsupportedInputError(
                "not an HSDS service, organization, location or service_at_location object",
                file=file,
                record=f"item {i}",
            )
        {
            "service": _add_service,
            "organization": _add_organization,
            "location": _add_location,
            "service_at_location": _add_service_at_location,
        }[kind](directory, item, file)
    return directory


def _add_organization(directory: Directory, obj: Obj, file: str | None) -> str:
    oid = _need_id(obj, "organization", file)
    org = _clean({k: v for k, v in obj.items() if k not in ("services", "locations")})
    directory.merge(Directory(organizations={oid: org}))
    for loc in obj.get("locations") or ():
        _add_location(directory, {**loc, "organization_id": loc.get("organization_id") or oid}, file)
    for svc in obj.get("services") or ():
        _add_service(directory, {**svc, "organization_id": svc.get("organization_id") or oid}, file)
    return oid


def _add_location(directory: Directory, obj: Obj, file: str | None) -> str:
    lid = _need_id(obj, "location", file)
    directory.merge(Directory(locations={lid: _clean(obj)}))
    return lid


def _add_service(directory: Directory, obj: Obj, file: str | None) -> str:
    sid = _need_id(obj, "service", file)
    svc = _clean({k: v for k, v in obj.items() if k not in ("organization", "program")})
    org = obj.get("organization")
    if isinstance(org, dict) and org.get("id"):
        svc["organization_id"] = _add_organization(directory, org, file)
    program = obj.get("program")
    if isinstance(program, dict) and program.get("id"):
        svc["program_id"] = program["id"]
        owner = directory.organizations.get(svc.get("organization_id") or "")
        if owner is not None and not any(p.get("id") == program["id"] for p in owner.get("programs") or ()):
            owner.setdefault("programs", []).append(_clean(program))
        elif owner is None:
            svc["program"] = _clean(program)  # kept on the service until its organization is known
    sals = []
    for sal in obj.get("service_at_locations") or ():
        sal = dict(sal)
        loc = sal.pop("location", None)
        if isinstance(loc, dict) and loc.get("id"):
            sal["location_id"] = _add_location(directory, loc, file)
        sals.append(_clean(sal))
    if sals:
        svc["service_at_locations"] = sals
    directory.merge(Directory(services={sid: svc}))
    return sid


def _add_service_at_location(directory: Directory, obj: Obj, file: str | None) -> str:
    sal_id = _need_id(obj, "service_at_location", file)
    service, loc = obj.get("service"), obj.get("location")
    if not isinstance(service, dict) or not service.get("id"):
        raise MalformedInputError("a service_at_location without its service", file=file, record=sal_id)
    sal = _clean({k: v for k, v in obj.items() if k not in ("service", "location")})
    if isinstance(loc, dict) and loc.get("id"):
        sal["location_id"] = _add_location(directory, loc, file)
    sid = _add_service(directory, service, file)
    svc = directory.services[sid]
    others = [s for s in svc.get("service_at_locations") or () if s.get("id") != sal_id]
    svc["service_at_locations"] = [*others, sal]
    return sal_id


def services_json(directory: Directory) -> list[Obj]:
    """The directory as a list of nested HSDS ``service`` objects (organization, program and locations nested,
    as the HSDS API's ``GET /services/{id}`` returns them), then the organizations and locations no service
    names, so :func:`read_hsds_json` reads back the same directory."""
    out: list[Obj] = []
    used_orgs: set[str] = set()
    used_locs: set[str] = set()
    for sid in sorted(directory.services):
        svc = copy.deepcopy(directory.services[sid])
        org_id = svc.get("organization_id")
        org = directory.organizations.get(org_id or "")
        if org is not None:
            used_orgs.add(org_id or "")
            svc["organization"] = copy.deepcopy(org)
            program = next(
                (p for p in org.get("programs") or () if p.get("id") == svc.get("program_id")), None
            )
            if program is not None:
                svc["program"] = copy.deepcopy(program)
        for sal in svc.get("service_at_locations") or ():
            loc = directory.locations.get(sal.get("location_id") or "")
            if loc is not None:
                used_locs.add(loc["id"])
                sal["location"] = copy.deepcopy(loc)
        out.append(svc)
    out += [copy.deepcopy(o) for oid, o in sorted(directory.organizations.items()) if oid not in used_orgs]
    out += [copy.deepcopy(loc) for lid, loc in sorted(directory.locations.items()) if lid not in used_locs]
    return out
