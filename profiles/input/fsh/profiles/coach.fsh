Profile: MecrCoach
Parent: PractitionerRole
Id: mecr-coach
Title: "mECR Coach"
Description: """
A health and wellness coach working for an organization: the person (practitioner), the role code, the
coaching credentials held (NBC-HWC, CHES, MCHES...) and, when the coach has one, the NPI that billing puts
on claim lines (as Medicare's Diabetes Prevention Program requires).

Alignment: the NPI identifier slice uses system http://hl7.org/fhir/sid/us-npi as US Core and the Gravity
SDOH Clinical Care IG's PractitionerRole do.
"""
* ^status = #active
* ^experimental = false
* obeys mecr-coach-1
* extension contains MecrCoachCredentialExtension named credential 0..* MS
* identifier MS
* identifier ^slicing.discriminator.type = #value
* identifier ^slicing.discriminator.path = "system"
* identifier ^slicing.rules = #open
* identifier contains NPI 0..1 MS
* identifier[NPI].system 1..1 MS
* identifier[NPI].system = "http://hl7.org/fhir/sid/us-npi" (exactly)
* identifier[NPI].value 1..1 MS
* identifier[NPI].value ^short = "10-digit National Provider Identifier"
* active MS
* period MS
* practitioner 1..1 MS
* practitioner only Reference(Practitioner)
* organization MS
* code 1..* MS
* code ^slicing.discriminator.type = #pattern
* code ^slicing.discriminator.path = "$this"
* code ^slicing.rules = #open
* code contains coach 1..1 MS
* code[coach] = MecrCodes#health-and-wellness-coach
* specialty MS
* location MS
* telecom MS
