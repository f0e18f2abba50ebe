Profile: MecrCommunityReferral
Parent: ServiceRequest
Id: mecr-community-referral
Title: "mECR Community Referral"
Description: """
A referral of a person to a community service (food pantry, walking group, housing help, diabetes
prevention programme) made from coaching. It names the social-need category, the service asked for, the
person, who asks and when, and may point at the coaching goal it serves. Its fulfilment is tracked by a
mECR Referral Task.

Alignment: the Gravity SDOH Clinical Care IG's SDOHCC ServiceRequest (SDOH category codes from its
temporary code system, pertainsToGoal extension, reasonReference, supportingInfo for consent) and the
Physical Activity IG's referral ServiceRequest (intent original-order, order or filler-order).
"""
* ^status = #active
* ^experimental = false
* extension contains $pertainsToGoal named pertainsToGoal 0..* MS
* extension[pertainsToGoal] ^short = "The coaching goal this referral serves"
* status MS
* intent MS
* intent from MecrReferralIntentVS (required)
* category 1..* MS
* category ^slicing.discriminator.type = #value
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.ordered = false
* category contains sdoh 0..* MS
* category[sdoh] from MecrReferralCategoryVS (required)
* category[sdoh] ^short = "SDOH domain (Gravity SDOHCC temporary codes)"
* code 1..1 MS
* code ^short = "The service asked for (SNOMED CT procedure where possible)"
* subject MS
* subject only Reference(Patient)
* authoredOn 1..1 MS
* requester 1..1 MS
* requester only Reference(PractitionerRole or Practitioner or Organization)
* performer MS
* performer only Reference(Organization or HealthcareService or PractitionerRole or CareTeam)
* occurrence[x] MS
* reasonCode MS
* reasonReference MS
* supportingInfo MS
* supportingInfo ^short = "Supporting information, such as the Consent to share information with the community organization"
* note MS

Profile: MecrReferralTask
Parent: Task
Id: mecr-referral-task
Title: "mECR Referral Task"
Description: """
Tracks the fulfilment of a mECR Community Referral: the Task asks the owner (a community organization or
coordination platform) to fulfill the ServiceRequest in focus, and its status follows the referral through
requested, accepted, in-progress and completed (or rejected, cancelled, failed). Status rules are FHIRPath
invariants: a reason when rejected, cancelled, on hold or failed; an owner once accepted; outputs when
completed.

Alignment: the Gravity SDOH Clinical Care IG's SDOHCC Task For Referral Management: code task-code#fulfill,
intent order, focus (1..1) the referral ServiceRequest, for (1..1) the person, authoredOn and requester
1..1, owner must-support but optional (an open request can be claimed), partOf another referral Task,
output slice PerformedActivityReference typed SDOHCC resulting-activity.
"""
* ^status = #active
* ^experimental = false
* obeys mecr-task-1 and mecr-task-2 and mecr-task-3 and mecr-task-4
* partOf MS
* partOf only Reference(MecrReferralTask)
* status MS
* status from MecrReferralTaskStatusVS (required)
* statusReason MS
* statusReason.text MS
* businessStatus MS
* businessStatus ^short = "Finer progress than status, e.g. 'Attended orientation meeting'"
* intent MS
* intent = #order (exactly)
* priority MS
* code 1..1 MS
* code = $task-code#fulfill
* focus 1..1 MS
* focus only Reference(MecrCommunityReferral)
* for 1..1 MS
* for only Reference(Patient)
* authoredOn 1..1 MS
* lastModified MS
* requester 1..1 MS
* requester only Reference(PractitionerRole or Practitioner or Organization)
* owner MS
* owner only Reference(Organization or HealthcareService or PractitionerRole or Practitioner)
* output MS
* output ^slicing.discriminator[0].type = #value
* output ^slicing.discriminator[0].path = "type"
* output ^slicing.discriminator[1].type = #type
* output ^slicing.discriminator[1].path = "value"
* output ^slicing.rules = #open
* output contains PerformedActivityReference 0..* MS
* output[PerformedActivityReference].type = $sdohcc-temp#resulting-activity
* output[PerformedActivityReference].value[x] only Reference(Procedure)
* output[PerformedActivityReference].valueReference 1..1 MS
