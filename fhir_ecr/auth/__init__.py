"""Who is calling and what they may do: SMART sessions and bearer tokens, scope and compartment checks,
the EHR and client registries, and the audit trail (AuditEvent)."""

from .access import Access, current_access, in_patient_compartment
from .principal import DEVELOPER, Principal

__all__ = ["Access", "DEVELOPER", "Principal", "current_access", "in_patient_compartment"]
