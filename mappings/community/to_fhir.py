"""HSDS 3.0 -> FHIR R4 ``Organization``, ``Location`` and ``HealthcareService`` (docs/community.md has the table).

The mapping follows the HL7 Human Services Directory IG 1.0.0 (http://hl7.org/fhir/us/hsds/, whose ``Mapping:``
blocks map HSDS 2.0.1; the HSDS 3.0 fields here are the same or renamed) where it maps, and adds:

* SDOH categories (Gravity ``SDOHCC-CodeSystemTemporaryCodes``) in ``HealthcareService.category``, found by
  :func:`~mappings.community.categories.categorize`; the HSDS taxonomy terms themselves go in ``type``;
* eligibility (the IG lists it as a GAP in HSDS): the age range as a coded ``eligibility`` entry with a
  ``valueRange`` extension, and ``eligibility_description`` as an entry coded ``income``/``residency``/
  ``other`` from its words (:data:`ELIGIBILITY_WORDS`);
* HSDS fields that have no FHIR element as :data:`~mappings.community.systems.HSDS_EXTENSION` extensions, so
  a directory read back from FHIR (:mod:`mappings.community.from_fhir`) keeps them.

Ids are derived from HSDS ids (:func:`fhir_id`), so importing the same directory twice names the same
resources. References to objects the directory does not hold (dangling ids, as in the HSDS examples) are left
out and counted in the :class:`~mappings.errors.SkipLog`, as are coordinates out of range and schedules that
are not weekly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any, Final

from mappings.errors import SkipLog

from .categories import categorize, category_coding, is_sdoh_taxonomy
from .hsds import Directory, Obj
from .systems import (
    AGE_EXTENSION,
    BCP47,
    DAYS,
    DIRECTORY_TAG,
    ELIGIBILITY_SYSTEM,
    HSDS_EXTENSION,
    LOCATION_PHYSICAL_TYPE,
    TAXONOMY_SYSTEM,
    UCUM,
    hsds_id_system,
)

__all__ = [
    "ELIGIBILITY_WORDS",
    "EXTENSION_FIELDS",
    "ORG_ID_SCHEME",
    "TAX_ID_SYSTEM",
    "directory_to_fhir",
    "fhir_id",
    "hsds_field",
    "time_of_day",
]

#: Identifier.system prefix of an HSDS ``organization_identifiers`` scheme (org-id.guide lists the schemes).
ORG_ID_SCHEME: Final = "https://org-id.guide/list/"
#: US Employer Identification Number (HSDS ``tax_id``).
TAX_ID_SYSTEM: Final = "urn:oid:2.16.840.1.113883.4.4"
#: HSDS fields kept as extensions, per FHIR resource type.
EXTENSION_FIELDS: Final = {
    "Organization": ("description", "tax_status", "year_incorporated", "legal_status", "logo", "uri"),
    "Location": ("transportation", "location_type", "attention"),
    "HealthcareService": (
        "alternate_name",
        "interpretation_services",
        "fees_description",
        "wait_time",
        "fees",
        "accreditations",
        "assured_date",
        "assurer_email",
        "licenses",
        "alert",
        "last_modified",
        "status",
    ),
    "area": ("extent", "extent_type", "uri"),
}
#: eligibility code -> words of ``eligibility_description`` that mean that kind of criterion.
ELIGIBILITY_WORDS: Final = {
    "income": re.compile(r"\b(income|low-income|poverty|fpl|snap|wic|medicaid|ssi|means[- ]tested)\b", re.I),
    "residency": re.compile(
        r"\b(residents?|residency|live[sd]? in|county|area|postcodes?|zip(?: codes?)?)\b", re.I
    ),
}
_ELIGIBILITY_DISPLAY: Final = {"age": "Age", "income": "Income", "residency": "Residency", "other": "Other"}
_ID_OK: Final = re.compile(r"^[A-Za-z0-9\-.]{1,59}$")
_TIME: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def fhir_id(hsds_id: str, prefix: str = "hsds-") -> str:
    """The FHIR id of an HSDS object: ``hsds-`` + its id, or + a digest of it when the id is not a valid FHIR id
    (R4 ``id``: 1-64 of ``[A-Za-z0-9-.]``)."""
    if _ID_OK.match(hsds_id) and len(prefix) + len(hsds_id) <= 64:
        return prefix + hsds_id
    return prefix + hashlib.sha256(hsds_id.encode()).hexdigest()[:40]


def hsds_field(name: str, value: Any) -> dict[str, Any]:
    """The extension that keeps HSDS field ``name`` (text, number or boolean as HSDS has it)."""
    if isinstance(value, bool):
        typed: dict[str, Any] = {"valueBoolean": value}
    elif isinstance(value, int):
        typed = {"valueInteger": value}
    elif isinstance(value, float):
        typed = {"valueDecimal": value}
    else:
        typed = {"valueString": str(value)}
    return {
        "url": HSDS_EXTENSION,
        "extension": [{"url": "field", "valueCode": name}, {"url": "value", **typed}],
    }


def _extensions(obj: Obj, fields: Iterable[str]) -> list[dict[str, Any]]:
    return [hsds_field(f, obj[f]) for f in fields if obj.get(f) not in (None, "")]


def time_of_day(text: Any) -> str | None:
    """An HSDS ``opens_at``/``closes_at`` as a FHIR ``time`` (``HH:MM:SS``), or None when it is not a time."""
    m = _TIME.match(str(text).strip()) if text is not None else None
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        return None
    return f"{int(m.group(1)):02d}:{m.group(2)}:{m.group(3) or '00'}"


def _phone_number(raw: Any) -> str:
    # The HSDS examples quote the number inside the value ("\"+44 1234 234567\""): the quotes are not part of it.
    return str(raw).strip().strip('"').strip()


def _telecom(phones: Iterable[Obj], email: Any = None, url: Any = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in phones:
        if not p.get("number"):
            continue
        kind = str(p.get("type") or "voice").lower()
        system = {"fax": "fax", "text": "sms", "sms": "sms", "pager": "pager"}.get(kind, "phone")
        value = _phone_number(p["number"])
        if p.get("extension") not in (None, ""):
            value += f" ext. {p['extension']}"
        point: dict[str, Any] = {"system": system, "value": value}
        if kind in ("cell", "mobile"):
            point["use"] = "mobile"
        out.append(point)
    if email:
        out.append({"system": "email", "value": str(email)})
    if url:
        out.append({"system": "url", "value": str(url)})
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for t in out:
        unique.setdefault((t["system"], t["value"]), t)
    return list(unique.values())


def _meta(source: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "tag": [
            {"system": DIRECTORY_TAG[0], "code": DIRECTORY_TAG[1], "display": "Community resource directory"}
        ]
    }
    if source:
        meta["source"] = source
    return meta


def _identifier(table: str, hsds_id: str) -> dict[str, str]:
    return {"system": hsds_id_system(table), "value": hsds_id}


def _weekly(schedules: Iterable[Obj], log: SkipLog, owner: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(``availableTime``-shaped entries, descriptions) of HSDS schedules; non-weekly schedules only describe."""
    times: list[dict[str, Any]] = []
    notes: list[str] = []
    for sch in schedules:
        if sch.get("description"):
            notes.append(str(sch["description"]))
        days = [
            DAYS[d.strip().upper()[-2:]]
            for d in str(sch.get("byday") or "").split(",")
            if d.strip().upper()[-2:] in DAYS
        ]
        freq = str(sch.get("freq") or "WEEKLY").upper()
        if freq != "WEEKLY" or not days:
            log.ignore(f"{owner}: a schedule that is not weekly on named days is kept as text only")
            continue
        entry: dict[str, Any] = {"daysOfWeek": days}
        opens, closes = time_of_day(sch.get("opens_at")), time_of_day(sch.get("closes_at"))
        if opens and closes:
            entry["availableStartTime"], entry["availableEndTime"] = opens, closes
        elif sch.get("opens_at") or sch.get("closes_at"):
            log.ignore(f"{owner}: a schedule whose opening hours are not times of day is kept as text only")
            continue
        else:
            entry["allDay"] = True
        if entry not in times:
            times.append(entry)
    return times, list(dict.fromkeys(notes))


def organization(org: Obj, *, source: str | None, known: set[str]) -> dict[str, Any]:
    """An HSDS organization as a FHIR Organization."""
    res: dict[str, Any] = {"resourceType": "Organization", "id": fhir_id(org["id"]), "meta": _meta(source)}
    ext = _extensions(org, EXTENSION_FIELDS["Organization"])
    if ext:
        res["extension"] = ext
    idents = [_identifier("organization", org["id"])]
    for oi in org.get("organization_identifiers") or ():
        if oi.get("identifier"):
            ident: dict[str, Any] = {
                "system": ORG_ID_SCHEME + str(oi.get("identifier_scheme") or "unknown"),
                "value": str(oi["identifier"]),
            }
            if oi.get("identifier_type"):
                ident["type"] = {"text": str(oi["identifier_type"])}
            idents.append(ident)
    if org.get("tax_id"):
        idents.append({"system": TAX_ID_SYSTEM, "value": str(org["tax_id"])})
    res["identifier"] = idents
    res["active"] = True
    res["name"] = org.get("name") or org["id"]
    if org.get("alternate_name"):
        res["alias"] = [org["alternate_name"]]
    telecom = _telecom(org.get("phones") or (), org.get("email"), org.get("website"))
    if telecom:
        res["telecom"] = telecom
    parent = org.get("parent_organization_id")
    if parent and parent in known:
        res["partOf"] = {"reference": f"Organization/{fhir_id(parent)}"}
    contacts = [_contact(c) for c in org.get("contacts") or ()]
    if contacts:
        res["contact"] = contacts
    return res


def _contact(c: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.get("title") or c.get("department"):
        out["purpose"] = {"text": " - ".join(str(c[k]) for k in ("title", "department") if c.get(k))}
    if c.get("name"):
        out["name"] = {"text": str(c["name"])}
    telecom = _telecom(c.get("phones") or (), c.get("email"))
    if telecom:
        out["telecom"] = telecom
    return out


def location(loc: Obj, *, source: str | None, known_orgs: set[str], log: SkipLog) -> dict[str, Any]:
    """An HSDS location as a FHIR Location (``mode`` instance)."""
    res: dict[str, Any] = {"resourceType": "Location", "id": fhir_id(loc["id"]), "meta": _meta(source)}
    addresses = loc.get("addresses") or []
    address = next(
        (a for a in addresses if a.get("address_type") == "physical"), addresses[0] if addresses else None
    )
    ext = _extensions({**loc, "attention": (address or {}).get("attention")}, EXTENSION_FIELDS["Location"])
    if ext:
        res["extension"] = ext
    idents = [_identifier("location", loc["id"])]
    if loc.get("external_identifier"):
        ident: dict[str, Any] = {"value": str(loc["external_identifier"])}
        if loc.get("external_identifier_type"):
            ident["type"] = {"text": str(loc["external_identifier_type"])}
        idents.append(ident)
    res["identifier"] = idents
    res["status"] = "active"
    res["name"] = loc.get("name") or loc["id"]
    if loc.get("alternate_name"):
        res["alias"] = [loc["alternate_name"]]
    if loc.get("description"):
        res["description"] = loc["description"]
    res["mode"] = "instance"
    telecom = _telecom(loc.get("phones") or (), None, loc.get("url"))
    if telecom:
        res["telecom"] = telecom
    if address is not None:
        if len(addresses) > 1:
            log.ignore(f"location {loc['id']}: only one address maps to Location.address")
        res["address"] = _address(address)
    kind = "vi" if loc.get("location_type") == "virtual" else "bu"
    res["physicalType"] = {
        "coding": [
            {
                "system": LOCATION_PHYSICAL_TYPE,
                "code": kind,
                "display": "Virtual" if kind == "vi" else "Building",
            }
        ]
    }
    lat, lon = loc.get("latitude"), loc.get("longitude")
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            res["position"] = {"longitude": lon, "latitude": lat}
        else:
            log.ignore("location coordinates out of range (latitude -90..90, longitude -180..180): left out")
    if loc.get("organization_id") in known_orgs:
        res["managingOrganization"] = {"reference": f"Organization/{fhir_id(loc['organization_id'])}"}
    hours, _ = _weekly(loc.get("schedules") or (), log, f"location {loc['id']}")
    if hours:
        res["hoursOfOperation"] = [
            {
                **{k: v for k, v in h.items() if k not in ("availableStartTime", "availableEndTime")},
                **(
                    {"openingTime": h["availableStartTime"], "closingTime": h["availableEndTime"]}
                    if "availableStartTime" in h
                    else {}
                ),
            }
            for h in hours
        ]
    return res


def _address(a: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.get("address_type") in ("physical", "postal"):
        out["type"] = a["address_type"]
    lines = [str(a[k]) for k in ("address_1", "address_2") if a.get(k)]
    if lines:
        out["line"] = lines
    for hsds, fhir in (
        ("city", "city"),
        ("region", "district"),
        ("state_province", "state"),
        ("postal_code", "postalCode"),
        ("country", "country"),
    ):
        if a.get(hsds):
            out[fhir] = str(a[hsds])
    return out


def service_area(area: Obj, *, source: str | None) -> dict[str, Any]:
    """An HSDS service area as a FHIR Location of ``mode`` kind and physical type ``area``
    (``HealthcareService.coverageArea`` references Locations)."""
    res: dict[str, Any] = {
        "resourceType": "Location",
        "id": fhir_id(area["id"], "hsds-area-"),
        "meta": _meta(source),
    }
    ext = _extensions(area, EXTENSION_FIELDS["area"])
    if ext:
        res["extension"] = ext
    res["identifier"] = [_identifier("service_area", area["id"])]
    res["status"] = "active"
    res["name"] = area.get("name") or area["id"]
    if area.get("description"):
        res["description"] = area["description"]
    res["mode"] = "kind"
    res["physicalType"] = {"coding": [{"system": LOCATION_PHYSICAL_TYPE, "code": "area", "display": "Area"}]}
    return res


def _eligibility(svc: Obj) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    low, high = svc.get("minimum_age"), svc.get("maximum_age")
    if isinstance(low, (int, float)) or isinstance(high, (int, float)):
        age: dict[str, Any] = {}
        words = []
        if isinstance(low, (int, float)):
            age["low"] = {"value": low, "unit": "years", "system": UCUM, "code": "a"}
            words.append(f"from {low}")
        if isinstance(high, (int, float)):
            age["high"] = {"value": high, "unit": "years", "system": UCUM, "code": "a"}
            words.append(f"to {high}")
        out.append(
            {
                "extension": [{"url": AGE_EXTENSION, "valueRange": age}],
                "code": _eligibility_code(["age"]),
                "comment": "Ages " + " ".join(words),
            }
        )
    text = svc.get("eligibility_description")
    if text:
        kinds = [k for k, pattern in ELIGIBILITY_WORDS.items() if pattern.search(str(text))]
        out.append({"code": _eligibility_code(kinds or ["other"]), "comment": str(text)})
    return out


def _eligibility_code(kinds: list[str]) -> dict[str, Any]:
    return {
        "coding": [
            {"system": ELIGIBILITY_SYSTEM, "code": k, "display": _ELIGIBILITY_DISPLAY[k]} for k in kinds
        ]
    }


def _code(value: Any) -> str:
    """Text as a FHIR ``code`` (no leading, trailing or repeated whitespace: R4 datatypes.html#code)."""
    return " ".join(str(value).split())


def _uri(value: Any) -> str | None:
    """Text as a FHIR ``uri`` (no whitespace), or None."""
    text = str(value).strip()
    return text if text and not any(c.isspace() for c in text) else None


def _taxonomy_coding(term: Obj) -> dict[str, Any] | None:
    detail = term.get("taxonomy_detail") or {}
    local = f"{TAXONOMY_SYSTEM}/{_code(term['taxonomy']).replace(' ', '-')}" if term.get("taxonomy") else None
    system = _uri(detail["uri"]) if detail.get("uri") else None
    code = _code(term.get("code") or term.get("id") or "")
    if not code:
        return None
    coding = {"system": system or local, "code": code, "display": term.get("name")}
    return {k: v for k, v in coding.items() if v}


def healthcare_service(svc: Obj, directory: Directory, *, source: str | None, log: SkipLog) -> dict[str, Any]:
    """An HSDS service as a FHIR HealthcareService."""
    res: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": fhir_id(svc["id"]),
        "meta": _meta(source),
    }
    ext = _extensions(
        svc
        if svc.get("status") not in ("active", "inactive")
        else {k: v for k, v in svc.items() if k != "status"},
        EXTENSION_FIELDS["HealthcareService"],
    )
    if ext:
        res["extension"] = ext
    res["identifier"] = [_identifier("service", svc["id"])]
    res["active"] = svc.get("status", "active") in ("active", "temporarily closed")
    org = directory.organizations.get(svc.get("organization_id") or "")
    if org is not None:
        res["providedBy"] = {
            "reference": f"Organization/{fhir_id(org['id'])}",
            "display": org.get("name") or org["id"],
        }
    elif svc.get("organization_id"):
        log.ignore("service organization not in the directory: providedBy left out")
    terms = [
        a["taxonomy_term"] for a in svc.get("attributes") or () if isinstance(a.get("taxonomy_term"), dict)
    ]
    sdoh = [
        str(t.get("code"))
        for t in terms
        if is_sdoh_taxonomy((t.get("taxonomy_detail") or {}).get("uri"))
        or is_sdoh_taxonomy(t.get("taxonomy"))
    ]
    program = next(
        (p for p in (org or {}).get("programs") or () if p.get("id") == svc.get("program_id")),
        svc.get("program"),
    )
    texts = (
        [t.get("name") for t in terms]
        + [t.get("code") for t in terms]
        + [svc.get("name"), svc.get("alternate_name"), svc.get("description"), (program or {}).get("name")]
    )
    categories = categorize([str(t) for t in texts if t], sdoh)
    if categories:
        res["category"] = [{"coding": [category_coding(c)]} for c in categories]
    types = [c for c in (_taxonomy_coding(t) for t in terms if str(t.get("code")) not in sdoh) if c]
    if types:
        res["type"] = [{"coding": [c]} for c in types]
    res["name"] = svc.get("name") or svc["id"]
    if svc.get("description"):
        res["comment"] = str(svc["description"])
    if svc.get("application_process"):
        res["extraDetails"] = str(svc["application_process"])
    telecom = _telecom(svc.get("phones") or (), svc.get("email"), svc.get("url"))
    if telecom:
        res["telecom"] = telecom
    refs = []
    for sal in svc.get("service_at_locations") or ():
        lid = sal.get("location_id")
        if lid in directory.locations:
            ref = {"reference": f"Location/{fhir_id(lid)}"}
            if ref not in refs:
                refs.append(ref)
        elif lid:
            log.ignore("service_at_location names a location not in the directory: left out")
    if refs:
        res["location"] = refs
    areas = [
        {"reference": f"Location/{fhir_id(a['id'], 'hsds-area-')}", "display": a.get("name") or a["id"]}
        for a in svc.get("service_areas") or ()
        if a.get("id")
    ]
    if areas:
        res["coverageArea"] = areas
    if program is not None and program.get("name"):
        res["program"] = [{"text": str(program["name"])}]
    languages = [
        _language(lang) for lang in svc.get("languages") or () if lang.get("code") or lang.get("name")
    ]
    if languages:
        res["communication"] = [lang for i, lang in enumerate(languages) if lang not in languages[:i]]
    eligibility = _eligibility(svc)
    if eligibility:
        res["eligibility"] = eligibility
    schedules = list(svc.get("schedules") or ())
    for sal in svc.get("service_at_locations") or ():
        schedules += [s for s in sal.get("schedules") or () if s not in schedules]
    times, notes = _weekly(schedules, log, f"service {svc['id']}")
    if times:
        res["availableTime"] = times
    if notes:
        res["availabilityExceptions"] = " ".join(notes)
    if svc.get("status") == "temporarily closed":
        res["notAvailable"] = [{"description": "Temporarily closed"}]
    return res


def _language(lang: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if lang.get("code") and _code(lang["code"]):
        coding = {"system": BCP47, "code": _code(lang["code"])}
        if lang.get("name"):
            coding["display"] = str(lang["name"])
        out["coding"] = [coding]
    if lang.get("name"):
        out["text"] = str(lang["name"])
    return out


def directory_to_fhir(
    directory: Directory, *, source: str | None = None, log: SkipLog | None = None
) -> list[dict[str, Any]]:
    """Every Organization, Location (service areas too) and HealthcareService of ``directory``, in that order
    (referenced before referencing). ``source`` becomes ``meta.source``; what is left out is counted in ``log``."""
    log = log if log is not None else SkipLog()
    known_orgs = set(directory.organizations)
    out = [
        organization(directory.organizations[o], source=source, known=known_orgs)
        for o in sorted(directory.organizations)
    ]
    out += [
        location(directory.locations[i], source=source, known_orgs=known_orgs, log=log)
        for i in sorted(directory.locations)
    ]
    areas: dict[str, dict[str, Any]] = {}
    services = []
    for sid in sorted(directory.services):
        svc = directory.services[sid]
        for area in svc.get("service_areas") or ():
            if area.get("id") and area["id"] not in areas:
                areas[area["id"]] = service_area(area, source=source)
        services.append(healthcare_service(svc, directory, source=source, log=log))
    return out + list(areas.values()) + services
