Profile: MecrCoachingGoal
Parent: Goal
Id: mecr-coaching-goal
Title: "mECR Coaching Goal"
Description: """
A goal a person sets with their health and wellness coach. It is filed under a coaching-goal category,
may have a measurable target (LOINC-coded where a code exists, the same codes the wearable Observation
profiles record), says who expressed it (the person, or the coach on their behalf) and tracks
achievementStatus as coaching goes on.

Alignment: follows the person-centred goal of the HL7 Person-Centered Outcomes IG (expressedBy and
achievementStatus must-support, a category slice for the goal domain) and the Gravity SDOH Clinical Care
IG's SDOHCC Goal (achievementStatus must-support, addresses). Target measures are the Physical Activity
IG's exercise vital sign and time measures and the FHIR vital-signs codes.
"""
* ^status = #active
* ^experimental = false
* obeys mecr-goal-1
* lifecycleStatus MS
* achievementStatus MS
* achievementStatus ^short = "in-progress | improving | worsening | no-change | achieved | sustaining | not-achieved | no-progress | not-attainable"
* category 1..* MS
* category ^slicing.discriminator.type = #value
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.ordered = false
* category contains coaching 1..1 MS
* category[coaching] from MecrCoachingGoalCategoryVS (required)
* category[coaching] ^short = "Coaching goal category (physical-activity, nutrition, sleep, ...)"
* description MS
* description ^short = "The goal in the person's own words"
* subject MS
* subject only Reference(Patient)
* start[x] MS
* target MS
* target.measure MS
* target.measure from MecrCoachingTargetMeasureVS (extensible)
* target.detail[x] MS
* target.due[x] MS
* expressedBy MS
* expressedBy only Reference(Patient or PractitionerRole or Practitioner)
* expressedBy ^short = "The person (Patient), or the coach (PractitionerRole/Practitioner) who wrote it down with them"
* addresses MS
* addresses ^short = "The condition, risk or need this goal addresses"
* note MS
* outcomeReference MS
