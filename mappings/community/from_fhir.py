"""FHIR R4 ``Organization``, ``Location`` and ``HealthcareService`` -> HSDS 3.0, the reverse of
:mod:`mappings.community.to_fhir` (docs/community.md).

HSDS ids come back from the HSDS identifiers the forward mapping wrote; a resource without one (a directory
entered in FHIR, the Gravity examples) gets a UUID derived from its type and id (:func:`hsds_id`), so writing
the same resources twice gives the same HSDS ids. Children (phones, schedules, languages, ...) get UUIDs
derived from their parent's id and position. SDOH categories become attributes whose taxonomy term is in the
taxonomy ``SDOHCC`` (with the Gravity code system as its URI), which the forward mapping reads back as
categories.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any, Final

from .categories import CATEGORIES
from .hsds import Directory, Obj
from .systems import AGE_EXTENSION, DAYS, ELIGIBILITY_SYSTEM, HSDS_EXTENSION, HSDS_ID_SYSTEM, SDOHCC_CATEGORY
from .to_fhir import ORG_ID_SCHEME, TAX_ID_SYSTEM

__all__ = ["directory_from_fhir", "hsds_id"]

_NAMESPACE: Final = uuid.UUID("6f1d9c1e-3f0b-5b8e-9a55-6d2f0c7a1e42")
_FHIR_DAYS: Final = {v: k for k, v in DAYS.items()}
_EXT_PHONE: Final = re.compile(r"^(.*?) ext\. (\d+)$")


def hsds_id(rtype: str, resource: dict[str, Any], table: str) -> str:
    """The HSDS id of a FHIR resource: its HSDS identifier, or a UUID derived from ``rtype/id``."""
    system = f"{HSDS_ID_SYSTEM}/{table}"
    for ident in resource.get("identifier") or ():
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return str(uuid.uuid5(_NAMESPACE, f"{rtype}/{resource.get('id')}"))


def _child_id(parent: str, kind: str, i: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{parent}/{kind}/{i}"))


def _fields(resource: dict[str, Any]) -> Obj:
    out: Obj = {}
    for ext in resource.get("extension") or ():
        if ext.get("url") != HSDS_EXTENSION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension") or ()}
        name = (parts.get("field") or {}).get("valueCode")
        value = parts.get("value") or {}
        for key in ("valueString", "valueInteger", "valueDecimal", "valueBoolean"):
            if key in value and name:
                out[name] = value[key]
    return out


def _ref_id(ref: Any, rtype: str) -> str | None:
    text = (ref or {}).get("reference") if isinstance(ref, dict) else None
    if isinstance(text, str) and text.startswith(f"{rtype}/"):
        return text.split("/", 1)[1]
    return None


def _phones(telecom: Iterable[dict[str, Any]], owner: str) -> tuple[list[Obj], str | None, str | None]:
    """(HSDS phones, email, url) of a FHIR telecom list."""
    phones: list[Obj] = []
    email = url = None
    for point in telecom:
        system, value = point.get("system"), point.get("value")
        if not value:
            continue
        if system == "email" and email is None:
            email = str(value)
        elif system == "url" and url is None:
            url = str(value)
        elif system in ("phone", "fax", "sms", "pager"):
            phone: Obj = {"id": _child_id(owner, "phone", len(phones))}
            m = _EXT_PHONE.match(str(value))
            phone["number"] = m.group(1) if m else str(value)
            if m:
                phone["extension"] = int(m.group(2))
            phone["type"] = {
                "phone": "cell" if point.get("use") == "mobile" else "voice",
                "fax": "fax",
                "sms": "text",
                "pager": "pager",
            }[system]
            phones.append(phone)
    return phones, email, url


def _organization(res: dict[str, Any]) -> Obj:
    oid = hsds_id("Organization", res, "organization")
    org: Obj = {"id": oid, "name": res.get("name") or oid, **_fields(res)}
    if res.get("alias"):
        org["alternate_name"] = res["alias"][0]
    phones, email, url = _phones(res.get("telecom") or (), oid)
    org.update({k: v for k, v in (("email", email), ("website", url)) if v})
    if phones:
        org["phones"] = phones
    idents: list[dict[str, Any]] = []
    for ident in res.get("identifier") or ():
        system = str(ident.get("system") or "")
        if system == TAX_ID_SYSTEM:
            org["tax_id"] = ident.get("value")
        elif system.startswith(ORG_ID_SCHEME):
            oi = {
                "id": _child_id(oid, "identifier", len(idents)),
                "identifier_scheme": system[len(ORG_ID_SCHEME) :],
                "identifier": ident.get("value"),
            }
            if (ident.get("type") or {}).get("text"):
                oi["identifier_type"] = ident["type"]["text"]
            idents.append(oi)
    if idents:
        org["organization_identifiers"] = idents
    contacts = []
    for i, c in enumerate(res.get("contact") or ()):
        contact: Obj = {"id": _child_id(oid, "contact", i)}
        if (c.get("name") or {}).get("text"):
            contact["name"] = c["name"]["text"]
        purpose = str((c.get("purpose") or {}).get("text") or "")
        if purpose:
            title, _, department = purpose.partition(" - ")
            contact["title"] = title
            if department:
                contact["department"] = department
        cphones, cemail, _ = _phones(c.get("telecom") or (), contact["id"])
        if cemail:
            contact["email"] = cemail
        if cphones:
            contact["phones"] = cphones
        contacts.append(contact)
    if contacts:
        org["contacts"] = contacts
    return org


def _location(res: dict[str, Any], org_ids: dict[str, str]) -> Obj:
    lid = hsds_id("Location", res, "location")
    fields = _fields(res)
    attention = fields.pop("attention", None)
    physical = [c.get("code") for c in (res.get("physicalType") or {}).get("coding") or ()]
    loc: Obj = {
        "id": lid,
        "name": res.get("name") or lid,
        "location_type": fields.pop("location_type", None) or ("virtual" if "vi" in physical else "physical"),
    }
    loc.update(fields)
    if res.get("alias"):
        loc["alternate_name"] = res["alias"][0]
    if res.get("description"):
        loc["description"] = res["description"]
    org = org_ids.get(_ref_id(res.get("managingOrganization"), "Organization") or "")
    if org:
        loc["organization_id"] = org
    pos = res.get("position") or {}
    if "latitude" in pos and "longitude" in pos:
        loc["latitude"], loc["longitude"] = pos["latitude"], pos["longitude"]
    for ident in res.get("identifier") or ():
        if not str(ident.get("system") or "").startswith(HSDS_ID_SYSTEM) and ident.get("value"):
            loc["external_identifier"] = ident["value"]
            if (ident.get("type") or {}).get("text"):
                loc["external_identifier_type"] = ident["type"]["text"]
            break
    phones, _, url = _phones(res.get("telecom") or (), lid)
    if url:
        loc["url"] = url
    if phones:
        loc["phones"] = phones
    a = res.get("address")
    if a:
        address: Obj = {"id": _child_id(lid, "address", 0), "address_type": a.get("type") or "physical"}
        lines = a.get("line") or []
        for key, value in (
            ("attention", attention),
            ("address_1", lines[0] if lines else None),
            ("address_2", ", ".join(lines[1:]) or None),
            ("city", a.get("city")),
            ("region", a.get("district")),
            ("state_province", a.get("state")),
            ("postal_code", a.get("postalCode")),
            ("country", a.get("country")),
        ):
            if value:
                address[key] = value
        loc["addresses"] = [address]
    schedules = _schedules(
        [
            {
                "daysOfWeek": h.get("daysOfWeek"),
                "allDay": h.get("allDay"),
                "availableStartTime": h.get("openingTime"),
                "availableEndTime": h.get("closingTime"),
            }
            for h in res.get("hoursOfOperation") or ()
        ],
        lid,
    )
    if schedules:
        loc["schedules"] = schedules
    return loc


def _schedules(times: Iterable[dict[str, Any]], owner: str) -> list[Obj]:
    out: list[Obj] = []
    for t in times:
        days = [_FHIR_DAYS[d] for d in t.get("daysOfWeek") or () if d in _FHIR_DAYS]
        if not days:
            continue
        sch: Obj = {"id": _child_id(owner, "schedule", len(out)), "freq": "WEEKLY", "byday": ",".join(days)}
        if t.get("availableStartTime") and t.get("availableEndTime") and not t.get("allDay"):
            sch["opens_at"], sch["closes_at"] = t["availableStartTime"], t["availableEndTime"]
        out.append(sch)
    return out


def _service(
    res: dict[str, Any],
    org_ids: dict[str, str],
    loc_ids: dict[str, str],
    areas: dict[str, dict[str, Any]],
    orgs: dict[str, Obj],
) -> Obj:
    sid = hsds_id("HealthcareService", res, "service")
    fields = _fields(res)
    svc: Obj = {
        "id": sid,
        "name": res.get("name") or sid,
        "status": fields.pop("status", None) or ("active" if res.get("active", True) else "inactive"),
    }
    svc.update(fields)
    org = org_ids.get(_ref_id(res.get("providedBy"), "Organization") or "")
    if org:
        svc["organization_id"] = org
    if res.get("comment"):
        svc["description"] = res["comment"]
    if res.get("extraDetails"):
        svc["application_process"] = res["extraDetails"]
    phones, email, url = _phones(res.get("telecom") or (), sid)
    svc.update({k: v for k, v in (("email", email), ("url", url)) if v})
    if phones:
        svc["phones"] = phones
    program = next((p.get("text") for p in res.get("program") or () if p.get("text")), None)
    if program:
        pid = str(uuid.uuid5(_NAMESPACE, f"program/{org or ''}/{program}"))
        svc["program_id"] = pid
        owner = orgs.get(org or "")
        if owner is not None and not any(p["id"] == pid for p in owner.get("programs") or ()):
            owner.setdefault("programs", []).append({"id": pid, "name": program})
        elif owner is None:
            svc["program"] = {"id": pid, "name": program}
    sals = []
    for ref in res.get("location") or ():
        lid = loc_ids.get(_ref_id(ref, "Location") or "")
        if lid:
            sals.append({"id": str(uuid.uuid5(_NAMESPACE, f"{sid}/{lid}")), "location_id": lid})
    if sals:
        svc["service_at_locations"] = sals
    service_areas = []
    for ref in res.get("coverageArea") or ():
        area = areas.get(_ref_id(ref, "Location") or "")
        if area is not None:
            entry: Obj = {
                "id": hsds_id("Location", area, "service_area"),
                "name": area.get("name"),
                **_fields(area),
            }
            if area.get("description"):
                entry["description"] = area["description"]
            service_areas.append(entry)
        elif (ref or {}).get("display"):
            service_areas.append(
                {"id": _child_id(sid, "service_area", len(service_areas)), "name": ref["display"]}
            )
    if service_areas:
        svc["service_areas"] = service_areas
    languages: list[dict[str, Any]] = []
    for lang in res.get("communication") or ():
        coding: dict[str, Any] = next(iter(lang.get("coding") or ()), {})
        entry = {
            "id": _child_id(sid, "language", len(languages)),
            "code": coding.get("code"),
            "name": lang.get("text") or coding.get("display"),
        }
        languages.append({k: v for k, v in entry.items() if v})
    if languages:
        svc["languages"] = languages
    _eligibility_back(res, svc)
    schedules = _schedules(res.get("availableTime") or (), sid)
    if schedules:
        svc["schedules"] = schedules
        if res.get("availabilityExceptions"):
            schedules[0]["description"] = res["availabilityExceptions"]
    attributes = _attributes(res, sid)
    if attributes:
        svc["attributes"] = attributes
    return svc


def _eligibility_back(res: dict[str, Any], svc: Obj) -> None:
    texts = []
    for entry in res.get("eligibility") or ():
        codes = {
            c.get("code")
            for c in (entry.get("code") or {}).get("coding") or ()
            if c.get("system") == ELIGIBILITY_SYSTEM
        }
        rng = next(
            (e.get("valueRange") for e in entry.get("extension") or () if e.get("url") == AGE_EXTENSION), None
        )
        if "age" in codes and rng is not None:
            for bound, key in (("low", "minimum_age"), ("high", "maximum_age")):
                if (rng.get(bound) or {}).get("value") is not None:
                    svc[key] = rng[bound]["value"]
        elif entry.get("comment"):
            texts.append(str(entry["comment"]))
    if texts:
        svc["eligibility_description"] = " ".join(texts)


def _attributes(res: dict[str, Any], sid: str) -> list[Obj]:
    out: list[Obj] = []
    codings = [
        c
        for cc in res.get("category") or ()
        for c in cc.get("coding") or ()
        if c.get("system") == SDOHCC_CATEGORY and c.get("code") in CATEGORIES
    ]
    codings += [c for cc in res.get("type") or () for c in cc.get("coding") or () if c.get("code")]
    for c in codings:
        i = len(out)
        sdoh = c.get("system") == SDOHCC_CATEGORY
        system = str(c.get("system") or "")
        taxonomy = "SDOHCC" if sdoh else system.rsplit("/", 1)[-1] or "local"
        term: Obj = {
            "id": str(uuid.uuid5(_NAMESPACE, f"term/{system}/{c['code']}")),
            "code": c["code"],
            "name": c.get("display") or c["code"],
            "taxonomy": taxonomy,
        }
        if system:
            term["taxonomy_detail"] = {
                "id": str(uuid.uuid5(_NAMESPACE, f"taxonomy/{system}")),
                "name": taxonomy,
                "uri": system,
            }
        out.append(
            {
                "id": _child_id(sid, "attribute", i),
                "link_type": "service_category" if sdoh else "type",
                "taxonomy_term": term,
            }
        )
    return out


def directory_from_fhir(resources: Iterable[dict[str, Any]]) -> Directory:
    """An HSDS :class:`Directory` from FHIR Organizations, Locations and HealthcareServices (other types are
    ignored). Locations of ``mode`` kind with physical type ``area`` are service areas, not locations."""
    items = list(resources)
    orgs = [r for r in items if r.get("resourceType") == "Organization"]
    locs = [r for r in items if r.get("resourceType") == "Location"]

    def is_area(r: dict[str, Any]) -> bool:
        return r.get("mode") == "kind" and any(
            c.get("code") == "area" for c in (r.get("physicalType") or {}).get("coding") or ()
        )

    areas = {str(r.get("id")): r for r in locs if is_area(r)}
    org_ids = {str(r.get("id")): hsds_id("Organization", r, "organization") for r in orgs}
    loc_ids = {str(r.get("id")): hsds_id("Location", r, "location") for r in locs if not is_area(r)}
    d = Directory()
    for r in orgs:
        org = _organization(r)
        parent = org_ids.get(_ref_id(r.get("partOf"), "Organization") or "")
        if parent:
            org["parent_organization_id"] = parent
        d.organizations[org["id"]] = org
    for r in locs:
        if not is_area(r):
            loc = _location(r, org_ids)
            d.locations[loc["id"]] = loc
    for r in items:
        if r.get("resourceType") == "HealthcareService":
            svc = _service(r, org_ids, loc_ids, areas, d.organizations)
            d.services[svc["id"]] = svc
    return d
