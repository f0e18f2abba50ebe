"""Factories for the wearable import tests: real fixtures, small Apple Health exports built in the test, patients."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from fhir_ecr.coaching import resources as res

__all__ = ["FIXTURES", "Rec", "apple_export", "make_patient", "observations", "summaries_by_day"]

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "wearables"
WATCH = "<<HKDevice: 0x283a0c0f0>, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,2>"
PHONE = "<<HKDevice: 0x283a0c1a0>, name:iPhone, manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2>"


@dataclass(frozen=True)
class Rec:
    """One Apple Health ``<Record>``: HealthKit type (without prefix), start, end, value, unit, source."""

    kind: str
    start: str  # "2026-03-10 08:00:00 -0400"
    end: str
    value: Any
    unit: str = "count"
    source: str = "Apple Watch"
    device: str | None = WATCH

    def xml(self) -> str:
        kind = self.kind if self.kind.startswith("HK") else f"HKQuantityTypeIdentifier{self.kind}"
        device = f" device={quoteattr(self.device)}" if self.device else ""
        return (
            f' <Record type={quoteattr(kind)} sourceName={quoteattr(self.source)} sourceVersion="9.0"{device}'
            f" unit={quoteattr(self.unit)} creationDate={quoteattr(self.end)} startDate={quoteattr(self.start)}"
            f" endDate={quoteattr(self.end)} value={quoteattr(str(self.value))}/>\n"
        )


def apple_export(records: Iterable[Rec], export_date: str = "2026-03-20 10:00:00 -0400") -> bytes:
    """An ``export.xml`` holding ``records`` (one per line, as Apple writes them)."""
    body = "".join(r.xml() for r in records)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n'
        f' <ExportDate value="{export_date}"/>\n{body}</HealthData>\n'
    ).encode()


def make_patient(repo: Any, tz: str = "America/New_York") -> str:
    """A Patient in ``tz`` (the zone of their local days)."""
    return str(
        repo.create(
            {
                "resourceType": "Patient",
                "name": [{"family": "Walker"}],
                "extension": [{"url": res.TIMEZONE_URL, "valueCode": tz}],
            }
        ).stored.id
    )


def observations(repo: Any, patient: str) -> list[dict[str, Any]]:
    """Every Observation of the patient (one page of up to 1000)."""
    found = repo.search_params("Observation", [("patient", f"Patient/{patient}"), ("_count", "1000")])
    return [s.content for s in found.matches]


def summaries_by_day(repo: Any, patient: str, loinc: str) -> dict[str, float]:
    """Daily-summary values of one LOINC code by local day (``effectivePeriod.start[:10]``)."""
    out: dict[str, float] = {}
    for obs in observations(repo, patient):
        if obs.get("meta", {}).get("source") != "urn:mecr:wearable:daily-summary":
            continue
        if any(c.get("code") == loinc for c in obs["code"]["coding"]):
            day = obs["effectivePeriod"]["start"][:10]
            assert day not in out, f"two {loinc} summaries for {day}"
            out[day] = obs["valueQuantity"]["value"]
    return out


def hours(day: str, first: int, last: int, value: int, offset: str = "-0400", **kw: Any) -> list[Rec]:
    """Hourly step records ``first``..``last`` o'clock (local, ``offset``) of ``day`` (YYYY-MM-DD)."""
    return [
        Rec("StepCount", f"{day} {h:02d}:00:00 {offset}", f"{day} {h:02d}:30:00 {offset}", value, **kw)
        for h in range(first, last + 1)
    ]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
