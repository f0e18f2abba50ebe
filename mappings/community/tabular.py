"""The HSDS 3.0 tabular data package: one CSV per table, linked by id columns, plus ``datapackage.json``.

Table and column names are HSDS 3.0's (``datapackage.json`` of ``openreferral/specification`` 3.0.0, the
Frictionless Tabular Data Package profile, https://specs.frictionlessdata.io/tabular-data-package/). Reading
nests each child row under the object its id columns name (a phone under its service, location,
organization, contact or service-at-location; an attribute under the object whose id is its ``link_id``),
giving the same :class:`~mappings.community.hsds.Directory` as the nested JSON. A child whose parent is in no
table (the HSDS examples have such dangling ids) is counted in ``Directory``-independent ``orphans``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from typing import Any

from mappings.errors import MalformedInputError

from .hsds import NUMBER_FIELDS, Directory, Obj

__all__ = [
    "COLUMNS",
    "TABLE_FILES",
    "read_tabular",
    "write_tabular",
    "datapackage",
    "read_csv_text",
    "csv_text",
]

#: Table -> its columns, in HSDS 3.0 order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "organizations": (
        "id",
        "name",
        "alternate_name",
        "description",
        "email",
        "website",
        "tax_status",
        "tax_id",
        "year_incorporated",
        "legal_status",
        "logo",
        "uri",
        "parent_organization_id",
    ),
    "programs": ("id", "organization_id", "name", "alternate_name", "description"),
    "services": (
        "id",
        "organization_id",
        "program_id",
        "name",
        "alternate_name",
        "description",
        "url",
        "email",
        "status",
        "interpretation_services",
        "application_process",
        "fees_description",
        "wait_time",
        "fees",
        "accreditations",
        "eligibility_description",
        "minimum_age",
        "maximum_age",
        "assured_date",
        "assurer_email",
        "licenses",
        "alert",
        "last_modified",
    ),
    "attributes": ("id", "link_id", "taxonomy_term_id", "link_type", "link_entity", "value"),
    "service_at_location": ("id", "service_id", "location_id", "description"),
    "locations": (
        "id",
        "location_type",
        "url",
        "organization_id",
        "name",
        "alternate_name",
        "description",
        "transportation",
        "latitude",
        "longitude",
        "external_identifier",
        "external_identifier_type",
    ),
    "phones": (
        "id",
        "location_id",
        "service_id",
        "organization_id",
        "contact_id",
        "service_at_location_id",
        "number",
        "extension",
        "type",
        "description",
    ),
    "contacts": (
        "id",
        "organization_id",
        "service_id",
        "service_at_location_id",
        "location_id",
        "name",
        "title",
        "department",
        "email",
    ),
    "addresses": (
        "id",
        "location_id",
        "attention",
        "address_1",
        "address_2",
        "city",
        "region",
        "state_province",
        "postal_code",
        "country",
        "address_type",
    ),
    "schedules": (
        "id",
        "service_id",
        "location_id",
        "service_at_location_id",
        "valid_from",
        "valid_to",
        "dtstart",
        "timezone",
        "until",
        "count",
        "wkst",
        "freq",
        "interval",
        "byday",
        "byweekno",
        "bymonthday",
        "byyearday",
        "description",
        "opens_at",
        "closes_at",
        "schedule_link",
        "attending_type",
        "notes",
    ),
    "funding": ("id", "organization_id", "service_id", "source"),
    "service_areas": ("id", "service_id", "name", "description", "extent", "extent_type", "uri"),
    "required_documents": ("id", "service_id", "document", "uri"),
    "languages": ("id", "service_id", "location_id", "phone_id", "name", "code", "note"),
    "accessibility": ("id", "location_id", "description", "details", "url"),
    "taxonomy_terms": (
        "id",
        "code",
        "name",
        "description",
        "parent_id",
        "taxonomy",
        "language",
        "taxonomy_id",
        "term_uri",
    ),
    "cost_options": (
        "id",
        "service_id",
        "valid_from",
        "valid_to",
        "option",
        "currency",
        "amount",
        "amount_description",
    ),
    "organization_identifiers": (
        "id",
        "organization_id",
        "identifier_scheme",
        "identifier_type",
        "identifier",
    ),
    "taxonomies": ("id", "name", "description", "uri", "version"),
    "metadata": (
        "id",
        "resource_id",
        "resource_type",
        "last_action_date",
        "last_action_type",
        "field_name",
        "previous_value",
        "replacement_value",
        "updated_by",
    ),
    "meta_table_descriptions": ("id", "name", "language", "character_set"),
}
#: Table -> its file name in the package.
TABLE_FILES = {t: f"{t}.csv" for t in COLUMNS}
#: datapackage resource names (singular) -> table.
_RESOURCE_NAMES = {
    "organization": "organizations",
    "program": "programs",
    "service": "services",
    "attribute": "attributes",
    "location": "locations",
    "phone": "phones",
    "contact": "contacts",
    "address": "addresses",
    "schedule": "schedules",
    "service_area": "service_areas",
    "required_document": "required_documents",
    "language": "languages",
    "taxonomy_term": "taxonomy_terms",
    "cost_option": "cost_options",
    "organization_identifier": "organization_identifiers",
    "taxonomy": "taxonomies",
    "meta_table_description": "meta_table_descriptions",
}


def _table_name(key: str) -> str:
    name = key.rsplit("/", 1)[-1].removesuffix(".csv")
    return _RESOURCE_NAMES.get(name, name)


def _number(value: str, column: str, table: str, file: str | None) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise MalformedInputError(
            f"{column} must be a number, not {value!r}", file=file, record=f"{table}.csv"
        ) from None
    if not math.isfinite(number):
        raise MalformedInputError(
            f"{column} must be a finite number, not {value!r}", file=file, record=f"{table}.csv"
        )
    return int(number) if number.is_integer() and "." not in value else number


def _row(raw: Mapping[str, Any], table: str, file: str | None) -> Obj:
    out: Obj = {}
    for key, value in raw.items():
        if value is None or value == "" or key is None:
            continue
        if isinstance(value, str) and key in NUMBER_FIELDS:
            out[key] = _number(value.strip(), key, table, file)
        else:
            out[key] = value
    return out


def read_tabular(
    tables: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    file: str | None = None,
    orphans: list[str] | None = None,
) -> Directory:
    """A :class:`Directory` from HSDS tables (``{"services": rows, ...}``; ``services.csv`` or the datapackage's
    singular resource names work as keys too). Child rows whose parent is in no table are named in ``orphans``."""
    rows: dict[str, list[Obj]] = {t: [] for t in COLUMNS}
    for key, table_rows in tables.items():
        table = _table_name(key)
        if table in rows:
            rows[table] += [_row(r, table, file) for r in table_rows]
    lost = orphans if orphans is not None else []
    d = Directory()
    for org in rows["organizations"]:
        d.organizations[org["id"]] = dict(org)
    for loc in rows["locations"]:
        d.locations[loc["id"]] = dict(loc)
    for svc in rows["services"]:
        d.services[svc["id"]] = dict(svc)
    sals = {s["id"]: {k: v for k, v in s.items() if k != "service_id"} for s in rows["service_at_location"]}
    for s in rows["service_at_location"]:
        owner = d.services.get(s.get("service_id", ""))
        if owner is None:
            lost.append(f"service_at_location {s['id']}")
            continue
        owner.setdefault("service_at_locations", []).append(sals[s["id"]])
    contacts = {
        c["id"]: _strip(c, ("organization_id", "service_id", "service_at_location_id", "location_id"))
        for c in rows["contacts"]
    }
    phones = {
        p["id"]: _strip(
            p, ("location_id", "service_id", "organization_id", "contact_id", "service_at_location_id")
        )
        for p in rows["phones"]
    }
    parents = {
        "organization_id": d.organizations,
        "service_id": d.services,
        "location_id": d.locations,
        "service_at_location_id": sals,
        "contact_id": contacts,
        "phone_id": phones,
    }

    def attach(table: str, child: Obj, member: str, keys: tuple[str, ...], shown: Obj) -> None:
        placed = False
        for key in keys:
            parent = parents[key].get(child.get(key, ""))
            if parent is not None:
                parent.setdefault(member, []).append(shown)
                placed = True
        if not placed:
            lost.append(f"{table} {child['id']}")

    for lang in rows["languages"]:
        attach(
            "languages",
            lang,
            "languages",
            ("service_id", "location_id", "phone_id"),
            _strip(lang, ("service_id", "location_id", "phone_id")),
        )
    for p in rows["phones"]:
        attach(
            "phones",
            p,
            "phones",
            ("location_id", "service_id", "organization_id", "contact_id", "service_at_location_id"),
            phones[p["id"]],
        )
    for c in rows["contacts"]:
        attach(
            "contacts",
            c,
            "contacts",
            ("organization_id", "service_id", "service_at_location_id", "location_id"),
            contacts[c["id"]],
        )
    for table, member, key in (
        ("addresses", "addresses", "location_id"),
        ("accessibility", "accessibility", "location_id"),
        ("service_areas", "service_areas", "service_id"),
        ("required_documents", "required_documents", "service_id"),
        ("cost_options", "cost_options", "service_id"),
        ("organization_identifiers", "organization_identifiers", "organization_id"),
        ("programs", "programs", "organization_id"),
    ):
        for child in rows[table]:
            attach(table, child, member, (key,), _strip(child, (key,)))
    for f in rows["funding"]:
        attach(
            "funding",
            f,
            "funding",
            ("organization_id", "service_id"),
            _strip(f, ("organization_id", "service_id")),
        )
    for sch in rows["schedules"]:
        attach(
            "schedules",
            sch,
            "schedules",
            ("service_id", "location_id", "service_at_location_id"),
            _strip(sch, ("service_id", "location_id", "service_at_location_id")),
        )
    taxonomies = {t["id"]: t for t in rows["taxonomies"]}
    terms = {}
    for term in rows["taxonomy_terms"]:
        shown = _strip(term, ("taxonomy_id",))
        detail = taxonomies.get(term.get("taxonomy_id", ""))
        if detail is not None:
            shown["taxonomy_detail"] = dict(detail)
        terms[term["id"]] = shown
    everything = {**d.organizations, **d.services, **d.locations}
    for attr in rows["attributes"]:
        owner = everything.get(attr.get("link_id", ""))
        if owner is None:
            lost.append(f"attributes {attr['id']}")
            continue
        shown = _strip(attr, ("link_id", "taxonomy_term_id"))
        found = terms.get(attr.get("taxonomy_term_id", ""))
        if found is not None:
            shown["taxonomy_term"] = found
        owner.setdefault("attributes", []).append(shown)
    return d


def _strip(row: Obj, keys: tuple[str, ...]) -> Obj:
    return {k: v for k, v in row.items() if k not in keys}


def write_tabular(directory: Directory) -> dict[str, list[Obj]]:
    """The directory as HSDS tables (``{"services": rows, ...}``), every table present, rows ordered by id."""
    out: dict[str, list[Obj]] = {t: [] for t in COLUMNS}
    seen: dict[str, dict[str, Obj]] = {t: {} for t in COLUMNS}

    def put(table: str, obj: Obj, **links: Any) -> None:
        """One row per id: an object nested under several parents (a phone of a service and of its location)
        is one row whose id columns name every parent."""
        old = seen[table].get(obj.get("id", ""))
        if old is not None:
            old.update({k: v for k, v in links.items() if v is not None and old.get(k) is None})
            return
        row = {c: obj.get(c) for c in COLUMNS[table] if c not in links}
        row.update(links)
        seen[table][obj.get("id", "")] = shown = {c: row.get(c) for c in COLUMNS[table]}
        out[table].append(shown)

    def phones(items: Iterable[Obj], **links: Any) -> None:
        for p in items:
            put("phones", p, **links)
            for lang in p.get("languages") or ():
                put("languages", lang, phone_id=p["id"])

    def contacts(items: Iterable[Obj], **links: Any) -> None:
        for c in items:
            put("contacts", c, **links)
            phones(c.get("phones") or (), contact_id=c["id"])

    def attributes(obj: Obj, entity: str) -> None:
        for attr in obj.get("attributes") or ():
            term = attr.get("taxonomy_term") or {}
            detail = term.get("taxonomy_detail") or {}
            if detail.get("id"):
                put("taxonomies", detail)
            if term.get("id"):
                put("taxonomy_terms", term, taxonomy_id=detail.get("id"))
            put(
                "attributes",
                {"link_entity": entity, **attr},
                link_id=obj["id"],
                taxonomy_term_id=term.get("id"),
            )

    for oid in sorted(directory.organizations):
        org = directory.organizations[oid]
        put("organizations", org)
        phones(org.get("phones") or (), organization_id=oid)
        contacts(org.get("contacts") or (), organization_id=oid)
        for f in org.get("funding") or ():
            put("funding", f, organization_id=oid)
        for ident in org.get("organization_identifiers") or ():
            put("organization_identifiers", ident, organization_id=oid)
        for program in org.get("programs") or ():
            put("programs", program, organization_id=oid)
        attributes(org, "organization")
    for lid in sorted(directory.locations):
        loc = directory.locations[lid]
        put("locations", loc)
        for table, member in (
            ("addresses", "addresses"),
            ("accessibility", "accessibility"),
            ("schedules", "schedules"),
            ("languages", "languages"),
        ):
            for child in loc.get(member) or ():
                put(table, child, location_id=lid)
        phones(loc.get("phones") or (), location_id=lid)
        contacts(loc.get("contacts") or (), location_id=lid)
        attributes(loc, "location")
    for sid in sorted(directory.services):
        svc = directory.services[sid]
        put("services", svc)
        for table, member in (
            ("schedules", "schedules"),
            ("service_areas", "service_areas"),
            ("languages", "languages"),
            ("funding", "funding"),
            ("cost_options", "cost_options"),
            ("required_documents", "required_documents"),
        ):
            for child in svc.get(member) or ():
                put(table, child, service_id=sid)
        phones(svc.get("phones") or (), service_id=sid)
        contacts(svc.get("contacts") or (), service_id=sid)
        attributes(svc, "service")
        for sal in svc.get("service_at_locations") or ():
            put("service_at_location", sal, service_id=sid)
            for sch in sal.get("schedules") or ():
                put("schedules", sch, service_at_location_id=sal["id"])
            phones(sal.get("phones") or (), service_at_location_id=sal["id"])
            contacts(sal.get("contacts") or (), service_at_location_id=sal["id"])
    return out


def datapackage(name: str, tables: Mapping[str, list[Obj]]) -> dict[str, Any]:
    """A ``datapackage.json`` for ``tables`` (Tabular Data Package profile; every field typed as text except
    HSDS's numbers)."""
    resources = []
    for table in COLUMNS:
        if table not in tables:
            continue
        fields = [{"name": c, "type": "number" if c in NUMBER_FIELDS else "string"} for c in COLUMNS[table]]
        resources.append(
            {
                "name": table,
                "path": TABLE_FILES[table],
                "profile": "tabular-data-resource",
                "schema": {"fields": fields, "primaryKey": "id"},
            }
        )
    return {"name": name, "profile": "tabular-data-package", "version": "3.0", "resources": resources}


def read_csv_text(text: str) -> list[dict[str, str]]:
    """The rows of one HSDS CSV file (header row first)."""
    return list(csv.DictReader(io.StringIO(text)))


def csv_text(table: str, rows: Iterable[Obj]) -> str:
    """One table as CSV text (header row, then the rows; numbers written as JSON writes them)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS[table]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()
