Extension: MecrHabitId
Id: habit-id
Title: "mECR Habit Id"
Description: "A stable identifier of one habit inside a habit plan. CarePlan.activity has no identifier of its own, and a check-in must say which habit of the plan it reports on, so the same id is put on the plan's activity and on each check-in for it."
Context: CarePlan.activity, Observation
* value[x] only string
* valueString 1..1
* valueString ^short = "Habit id, unique within its CarePlan"

Extension: MecrSessionModalityExtension
Id: coaching-session-modality
Title: "mECR Coaching Session Modality"
Description: "How a coaching session was held: in person, video or audio only. Encounter.class says AMB or VR; VR does not tell video from audio only, which billing needs (telehealth modifier 95 or 93)."
Context: Encounter
* value[x] only Coding
* valueCoding 1..1
* valueCoding from MecrSessionModalityVS (required)

Extension: MecrCoachCredentialExtension
Id: coach-credential
Title: "mECR Coach Credential"
Description: "A coaching certification the coach holds, shaped like Practitioner.qualification (code, identifier, period, issuer) but on the PractitionerRole, because it is the coaching role the credential qualifies: the same person may work in other roles that the credential says nothing about."
Context: PractitionerRole
* extension contains
    code 1..1 MS and
    identifier 0..1 MS and
    period 0..1 MS and
    issuer 0..1 MS
* extension[code] ^short = "The credential (NBC-HWC, CHES, ...)"
* extension[code].value[x] only CodeableConcept
* extension[code].valueCodeableConcept 1..1
* extension[code].valueCodeableConcept from MecrCoachCredentialVS (extensible)
* extension[identifier] ^short = "Certificate number given by the issuer"
* extension[identifier].value[x] only Identifier
* extension[identifier].valueIdentifier 1..1
* extension[period] ^short = "Period the credential is valid"
* extension[period].value[x] only Period
* extension[period].valuePeriod 1..1
* extension[issuer] ^short = "Organization that issued the credential"
* extension[issuer].value[x] only Reference(Organization)
* extension[issuer].valueReference 1..1

Extension: MecrHabitPauseExtension
Id: habit-pause
Title: "mECR Habit Pause"
Description: "One pause of a habit (vacation, illness, ...): the local days it covers and why. The extension repeats, so a habit keeps its pause history; while a pause is open (no end) the habit is on hold (detail.status on-hold with detail.statusReason, invariant mecr-plan-2). Paused days are outside the habit's schedule: they neither count against adherence nor break or extend a streak."
Context: CarePlan.activity
* extension contains
    period 1..1 MS and
    reason 0..1 MS
* extension[period] ^short = "The paused days: start and end (inclusive) are local dates; no end while the pause is open"
* extension[period].value[x] only Period
* extension[period].valuePeriod 1..1
* extension[period].valuePeriod.start 1..1
* extension[reason] ^short = "Why the habit is paused"
* extension[reason].value[x] only CodeableConcept
* extension[reason].valueCodeableConcept 1..1
* extension[reason].valueCodeableConcept from MecrHabitPauseReasonVS (extensible)

Extension: MecrIdentifierSourceExtension
Id: identifier-source
Title: "mECR Identifier Source"
Description: "Who set this identifier: the EHR or mECR itself. mECR links its records to the EHR's only by identifiers carrying this extension (or its own link identifiers, system urn:mecr:ehr:{ehr}:{type}); no API caller can add or change an identifier that carries it, so a typed MRN or NPI can never capture another person's record at the next launch."
Context: Identifier
* value[x] only code
* valueCode 1..1
* valueCode from MecrIdentifierSourceVS (required)
