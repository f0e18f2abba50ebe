"""fhir_ecr/store."""
