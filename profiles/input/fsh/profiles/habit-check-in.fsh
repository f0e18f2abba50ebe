Profile: MecrHabitCheckIn
Parent: Observation
Id: mecr-habit-check-in
Title: "mECR Habit Check-in"
Description: """
A person's report, for one local calendar day, of whether they did one habit of their habit plan: done,
partly or not-done, optionally with how much (a component) and a note. basedOn points at the habit plan,
the habit-id extension at the habit in it, and focus at the goal the habit serves.

Alignment: there is no published profile for habit check-ins; the pattern follows the Person-Centered
Outcomes IG (focus -> Goal) and the Physical Activity IG (status final/amended/corrected/entered-in-error).
"""
* ^status = #active
* ^experimental = false
* obeys mecr-checkin-1 and mecr-checkin-2
* extension contains MecrHabitId named habitId 1..1 MS
* extension[habitId] ^short = "Which habit of the plan this check-in is for"
* status MS
* status from MecrObservationStatusVS (required)
* code MS
* code = MecrCodes#habit-check-in
* subject 1..1 MS
* subject only Reference(Patient)
* basedOn 1..1 MS
* basedOn only Reference(MecrHabitPlan)
* basedOn ^short = "The habit plan the habit belongs to"
* focus MS
* focus only Reference(MecrCoachingGoal)
* focus ^short = "The goal the habit serves"
* effective[x] 1..1 MS
* effective[x] only dateTime
* effective[x] ^short = "The local day of the check-in (YYYY-MM-DD)"
* performer MS
* performer only Reference(Patient or RelatedPerson or PractitionerRole or Practitioner)
* value[x] 1..1 MS
* value[x] only CodeableConcept
* valueCodeableConcept from MecrHabitCheckInResultVS (required)
* note MS
* component 0..1 MS
* component ^short = "How much of the habit was done"
* component.code = MecrCodes#habit-check-in-amount
* component.value[x] 1..1 MS
* component.value[x] only Quantity
