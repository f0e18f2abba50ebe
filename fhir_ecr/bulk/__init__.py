"""mECR's own FHIR Bulk Data export (``$export``) for backend-services clients: see :mod:`fhir_ecr.bulk.export`."""

from .export import register_bulk_operations, run_export
from .routes import router

__all__ = ["register_bulk_operations", "router", "run_export"]
