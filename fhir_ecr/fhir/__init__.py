"""fhir_ecr/fhir."""
