Profile: MecrHabitPlan
Parent: CarePlan
Id: mecr-habit-plan
Title: "mECR Habit Plan"
Description: """
The habits a person is building with their coach, one CarePlan activity per habit. Each habit says what
it is (detail.code and description), when (detail.scheduledTiming), which goal it serves (detail.goal)
and where it stands (detail.status); a paused habit is on-hold with a statusReason, and each pause (the
days it covers and why) is a habit-pause extension on the activity, which keeps the pause history. Habits
carry a habit-id extension so check-ins can point at one habit of the plan.

Alignment: activities are inline details, as in the HL7 Person-Centered Outcomes IG's care plan with
self-care action steps; the Physical Activity IG's care plan keeps its plan in narrative only, so this
profile is stricter than it.
"""
* ^status = #active
* ^experimental = false
* obeys mecr-plan-1 and mecr-plan-2 and mecr-plan-3
* status MS
* intent MS
* intent = #plan (exactly)
* category 1..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains habitPlan 1..1 MS
* category[habitPlan] = MecrCodes#habit-plan
* title MS
* subject MS
* subject only Reference(Patient)
* period MS
* author MS
* author only Reference(PractitionerRole or Practitioner or Patient)
* goal MS
* goal only Reference(MecrCoachingGoal)
* activity 1..* MS
* activity ^short = "One habit"
* activity.extension contains MecrHabitId named habitId 1..1 MS and MecrHabitPauseExtension named pause 0..* MS
* activity.extension[pause] ^short = "The habit's pauses (history); an open one while it is on hold"
* activity.reference 0..0
* activity.detail 1..1 MS
* activity.detail.code 1..1 MS
* activity.detail.code ^short = "The habit (coded where possible, else text)"
* activity.detail.description MS
* activity.detail.goal MS
* activity.detail.goal only Reference(MecrCoachingGoal)
* activity.detail.status MS
* activity.detail.statusReason MS
* activity.detail.statusReason from MecrHabitPauseReasonVS (extensible)
* activity.detail.statusReason ^short = "Why the habit is paused (required when status is on-hold)"
* activity.detail.scheduled[x] 1..1 MS
* activity.detail.scheduled[x] only Timing
* activity.detail.dailyAmount MS
* activity.detail.dailyAmount ^short = "How much per day, for a counted habit (8 glasses, 20 min)"
