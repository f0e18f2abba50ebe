"""Who is in the sandbox chart: coaches and patients as the pages and the authorization server show them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..outcomes import FhirError
from ..store.repository import FhirRepository
from .oauth import Person
from .seed import MRN_SYSTEM

__all__ = ["Chart", "ChartPatient", "human_name"]


def human_name(resource: dict[str, Any]) -> str:
    """``Given Family, Suffix`` of the first (official if any) name, or the resource id."""
    names = resource.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
    if name.get("suffix") and not name.get("text"):
        text += ", " + " ".join(name["suffix"])
    return text or str(resource.get("id"))


@dataclass(frozen=True)
class ChartPatient:
    id: str
    name: str
    birth_date: str
    mrn: str


class Chart:
    """Reads the sandbox's Practitioners and Patients through the FHIR repository (blocking calls)."""

    def __init__(self, repo: FhirRepository) -> None:
        self.repo = repo

    def _all(self, rtype: str) -> list[dict[str, Any]]:
        result = self.repo.search_params(rtype, [("_count", "200")])
        return [m.content for m in result.matches if m.content is not None]

    def practitioners(self) -> list[Person]:
        people = [Person(f"Practitioner/{r['id']}", human_name(r)) for r in self._all("Practitioner")]
        return sorted(people, key=lambda p: p.display)

    def patients(self) -> list[ChartPatient]:
        out = []
        for r in self._all("Patient"):
            mrn = next(
                (i.get("value", "") for i in r.get("identifier", []) if i.get("system") == MRN_SYSTEM), ""
            )
            out.append(ChartPatient(r["id"], human_name(r), r.get("birthDate", ""), mrn))
        return sorted(out, key=lambda p: p.name)

    def person(self, reference: str) -> Person | None:
        """``Practitioner/x`` or ``Patient/x`` with its display name, or None when it is not in the chart."""
        rtype, _, rid = reference.partition("/")
        if rtype not in ("Practitioner", "Patient") or not rid:
            return None
        try:
            stored = self.repo.read(rtype, rid)
        except FhirError:
            return None
        return Person(reference, human_name(stored.content or {}))
