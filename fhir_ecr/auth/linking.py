"""Link the EHR's Patient and Practitioner to mECR's own records at launch time.

mECR keeps its own Patient/Practitioner (the coaching record is its own store). A launch links by identifier:

1. the **link identifier** ``urn:mecr:ehr:{ehr id}:{Type}`` | the EHR's resource id — set on every record
   mECR created or linked from that EHR, so the next launch finds it at once;
2. otherwise any of the EHR resource's business identifiers (MRN, NPI, …) with a system — an existing local
   record (from sync or an earlier import) is linked, and gets the link identifier;
3. otherwise a new local record with the EHR's demographics, its identifiers and the link identifier.

Demographics are refreshed from the EHR on each launch (name, birthDate, gender, telecom) — the EHR is the
source of truth for them; coaching data is never overwritten.
"""

from __future__ import annotations

from typing import Any

from ..store.repository import FhirRepository

__all__ = ["link_identifier_system", "link_resource"]

_DEMOGRAPHICS = {
    "Patient": ("name", "birthDate", "gender", "telecom", "address", "active"),
    "Practitioner": ("name", "telecom", "qualification", "gender", "active"),
}


def link_identifier_system(ehr_id: str, rtype: str) -> str:
    return f"urn:mecr:ehr:{ehr_id}:{rtype}"


def link_resource(repo: FhirRepository, ehr_id: str, remote: dict[str, Any]) -> str:
    """The local id of the record linked to ``remote`` (a Patient or Practitioner read from the EHR)."""
    rtype = remote["resourceType"]
    link = {"system": link_identifier_system(ehr_id, rtype), "value": str(remote["id"])}
    business = [i for i in remote.get("identifier") or [] if isinstance(i, dict) and i.get("system")
                and i.get("value") and not str(i["system"]).startswith("urn:mecr:ehr:")]
    with repo.unit() as uow:
        found = uow.search(_query(rtype, f"{link['system']}|{link['value']}")).matches
        if not found:
            for ident in business:
                matches = uow.search(_query(rtype, f"{ident['system']}|{ident['value']}")).matches
                if len(matches) == 1:
                    found = matches
                    break
        if found:
            local = dict(found[0].content or {})
            updated = dict(local)
            idents = list(updated.get("identifier") or [])
            for ident in [link, *business]:
                if not any(i.get("system") == ident["system"] and i.get("value") == ident["value"] for i in idents):
                    idents.append({k: ident[k] for k in ("system", "value", "type", "use") if k in ident})
            updated["identifier"] = idents
            for key in _DEMOGRAPHICS.get(rtype, ()):
                if key in remote:
                    updated[key] = remote[key]
            updated.pop("meta", None)
            local.pop("meta", None)
            if updated != local:
                uow.update(rtype, local["id"], updated)
            return str(local["id"])
        new: dict[str, Any] = {"resourceType": rtype}
        new["identifier"] = [link, *[{k: i[k] for k in ("system", "value", "type", "use") if k in i}
                                     for i in business]]
        for key in _DEMOGRAPHICS.get(rtype, ()):
            if key in remote:
                new[key] = remote[key]
        return uow.create(new).stored.id


def _query(rtype: str, token: str) -> Any:
    from ..store.search import parse_search

    return parse_search(rtype, [("identifier", token)], default_count=2)
