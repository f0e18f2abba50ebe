"""Operations of the FHIR core spec that mECR serves: ``Patient/{id}/$everything``."""

from __future__ import annotations

from typing import Any

from ..outcomes import bad_request
from ..store.indexer import date_range
from .bundles import paging_link
from .operations import Operation, OperationCall, OperationRegistry

__all__ = ["register_builtin_operations"]


def _everything(call: OperationCall) -> dict[str, Any]:
    """https://hl7.org/fhir/R4/patient-operation-everything.html"""
    services = call.services
    since = call.get("_since")
    since_us = None
    if since:
        try:
            since_us = date_range(str(since))[0]
        except ValueError:
            raise bad_request(f"_since must be an instant, not {since!r}", "_since") from None
    types = {t.strip() for v in call.get_all("_type") for t in str(v).split(",") if t.strip()} or None
    count_raw = str(call.get("_count", services.settings.max_page_size))
    offset_raw = str(call.get("_offset", "0"))
    if not (count_raw.isascii() and count_raw.isdigit() and offset_raw.isascii() and offset_raw.isdigit()):
        raise bad_request("_count and _offset must be non-negative integers")
    count = min(int(count_raw), services.settings.max_page_size)
    offset = int(offset_raw)
    with call.repo.unit(write=False) as uow:
        found, total = uow.everything(
            call.instance_id, since=since_us, types=types, count=count, offset=offset
        )
    path = f"Patient/{call.resource_id}/$everything"
    params = [(k, str(v)) for k, v in call.params if isinstance(v, (str, int))]
    links = [{"relation": "self", "url": paging_link(services.fhir_base, path, params)}]
    if offset + count < total:
        links.append(
            {"relation": "next", "url": paging_link(services.fhir_base, path, params, _offset=offset + count)}
        )
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{services.fhir_base}/{s.resource_type}/{s.id}",
                "resource": s.json(),
                "search": {"mode": "match"},
            }
            for s in found
        ],
    }


def register_builtin_operations(registry: OperationRegistry) -> None:
    """Add the core operations to ``registry``."""
    registry.register(
        Operation(
            name="everything",
            title="Patient everything",
            description="The patient, every resource in the patient's compartment, and the resources they "
            "reference (Practitioner, Organization, Device, …).",
            handler=_everything,
            resource_types=("Patient",),
            instance=True,
            parameters=[
                {"name": "_since", "use": "in", "min": 0, "max": "1", "type": "instant"},
                {"name": "_type", "use": "in", "min": 0, "max": "*", "type": "code"},
                {"name": "_count", "use": "in", "min": 0, "max": "1", "type": "integer"},
                {"name": "return", "use": "out", "min": 1, "max": "1", "type": "Bundle"},
            ],
        )
    )
